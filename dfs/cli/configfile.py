"""Config files: `dfs master --config FILE` (and shadow, worker, mount, backup), and
`dfs init ROLE` to write a commented one.

A config file is TOML with one key per command-line option of that command: the option's
name without the leading dashes, '-' written '_' (``--chunk-size`` is ``chunk_size``).
Positional arguments (the mount's folder) stay on the command line. What the command line
says wins over the file; a file's value of an option that the command line excludes (the
file's ``token_file`` when ``--token`` is given) is dropped. Relative paths in a file
(``data``, ``token_file``, ``auth``, ``cache_dir``, ``state``) are taken from the file's
folder, never from the working directory. An unknown key, or a value of the wrong type, is
an InvalidArgument naming the key and the file; a file holding the join token itself
(``token``) must not be readable by others.

The file is read before the command line is parsed: its values become the options'
defaults (``apply``), so `--help` and the checks argparse makes see them.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import stat
import textwrap
from collections.abc import Sequence
from typing import Any

from dfs import errors
from dfs.cli.common import Subparsers

COMMANDS = ("master", "shadow", "worker", "mount", "backup")
"""The commands that take ``--config FILE``."""
ROLES = {"master": "master", "shadow": "shadow", "worker": "worker", "mount": "mount",
         "client": "mount", "backup": "backup"}
"""`dfs init ROLE`: which command's options a file for ROLE holds (a client's is the
mount's: the other client commands have no setting but ``--auth``)."""
PATH_KEYS = frozenset({"data", "token_file", "auth", "cache_dir", "state"})
OPTION = "--config"


def key_of(action: argparse.Action) -> str:
    longest = max(action.option_strings, key=len)
    return longest.lstrip("-").replace("-", "_")


def keyed(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """{key: action} of every option a file may set (not help, hidden ones or --config)."""
    found = {}
    for action in parser._actions:
        if (not action.option_strings or isinstance(action, argparse._HelpAction)
                or action.help == argparse.SUPPRESS or OPTION in action.option_strings):
            continue
        found[key_of(action)] = action
    return found


def add_option(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(OPTION, default=None, metavar="FILE",
                        help=f"read options from this TOML file (`dfs init {command}` writes "
                             "one); the command line overrides it")


def _toml() -> Any:
    """tomllib (Python 3.11), or the tomli package it came from on Python 3.10."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise errors.NotSupported("config files need Python 3.11 (or the tomli package)")


def _checked(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """``value`` as the option's default, or InvalidArgument naming the key and the file."""
    def wrong(kind: str) -> errors.InvalidArgument:
        return errors.InvalidArgument(f"{path}: {key} must be {kind}, not {value!r}")
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(value, (dict, list)):
        raise wrong("a single value")
    if action.type is int:
        if type(value) is not int:
            raise wrong("a whole number")
    elif action.type is float:
        if type(value) not in (int, float):
            raise wrong("a number")
        value = float(value)
    elif action.type is None:
        if not isinstance(value, str):
            raise wrong('a string ("...")')
    elif not isinstance(value, bool):
        value = str(value)  # argparse converts a string default with the option's type
    else:
        raise wrong("a string or number")
    if action.choices is not None and value not in action.choices:
        raise errors.InvalidArgument(f"{path}: {key} must be one of "
                                     f"{', '.join(map(str, action.choices))}, not {value!r}")
    if key in PATH_KEYS and isinstance(value, str) and value:
        value = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(value))
    return value


def load(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """{dest: value} of the options ``path`` sets for the command of ``parser``."""
    toml = _toml()
    try:
        with open(path, "rb") as f:
            data = toml.load(f)
            mode = os.fstat(f.fileno()).st_mode
    except FileNotFoundError:
        raise errors.FileNotFound(f"{path}: no such config file") from None
    except OSError as exc:
        raise errors.InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument(f"{path} is not valid TOML: {exc}") from None
    actions = keyed(parser)
    values: dict[str, Any] = {}
    for key, value in data.items():
        action = actions.get(key)
        if action is None:
            close = difflib.get_close_matches(key, actions, n=1)
            hint = f" (did you mean {close[0]}?)" if close else \
                f" (`dfs init {parser.prog.split()[-1]}` lists the keys)"
            raise errors.InvalidArgument(f"{path}: unknown key {key!r}{hint}")
        values[action.dest] = _checked(path, key, value, action)
    if "token" in data and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise errors.PermissionDenied(f"{path} holds the join token but others may read it: "
                                      f"chmod 600 {path} (or use token_file)")
    for group in parser._mutually_exclusive_groups:
        inside = [a.dest for a in group._group_actions if a.dest in values]
        if len(inside) > 1:
            raise errors.InvalidArgument(f"{path}: {' and '.join(inside)} exclude each other")
    return values


def _given(action: argparse.Action, argv: Sequence[str]) -> bool:
    return any(arg == opt or arg.startswith(opt + "=") for arg in argv
               for opt in action.option_strings)


def _config_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == OPTION and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(OPTION + "="):
            return arg.split("=", 1)[1]
    return None


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def apply(top: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Before parsing ``argv``: the values of its command's ``--config FILE`` become that
    command's defaults (and required options it sets are no longer required)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in COMMANDS:
        return
    parser = _commands(top)[command]
    rest = argv[list(argv).index(command) + 1:]
    path = _config_path(rest)
    if path is None:
        return
    values = load(path, parser)
    for group in parser._mutually_exclusive_groups:  # the command line's choice wins
        if any(_given(a, rest) for a in group._group_actions):
            for action in group._group_actions:
                values.pop(action.dest, None)
    for action in parser._actions:
        if action.dest in values and action.option_strings:
            action.default = values[action.dest]
            action.required = False


# --- dfs init ROLE ---------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string


def _help(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    text = str(action.help)
    try:
        return text % {**vars(action), "prog": parser.prog}
    except (KeyError, TypeError, ValueError):
        return text


def example(role: str, parser: argparse.ArgumentParser, given: dict[str, Any]) -> str:
    """The commented config file of ``role``: every key, with its help and default; the
    options in ``given`` ({dest: value}) set, the others commented out."""
    command = parser.prog.split()[-1]
    keys = keyed(parser)
    sample = next((key for key in keys if "_" in key), "")
    usage = f"dfs {command}{' DIR' if command == 'mount' else ''} --config THIS_FILE"
    intro = (f"DFS {role}: `{usage}`. Every key is an option of `dfs {command}` without its "
             "dashes, '-' written '_'" + (f" (--{sample.replace('_', '-')} is {sample})"
                                          if sample else "")
             + ". An option on the command line overrides the file. Relative paths are "
             "taken from this file's folder. Uncomment and edit what you need.")
    lines = [*textwrap.wrap(intro, 88, initial_indent="# ", subsequent_indent="# "), ""]
    for key, action in keys.items():
        if action.help:
            lines += textwrap.wrap(" ".join(_help(action, parser).split()), 88,
                                   initial_indent="# ", subsequent_indent="# ")
        if action.dest in given:
            lines.append(f"{key} = {_toml_value(given[action.dest])}")
        elif action.default is None or action.default == "":
            lines.append(f"# {key} = {action.metavar or key.upper()}")  # no default: fill in
        else:
            lines.append(f"# {key} = {_toml_value(action.default)}")
        lines.append("")
    return "\n".join(lines)


def cmd_init(args: argparse.Namespace, sub: Subparsers) -> int:
    """`dfs init ROLE [OPTIONS of that role] [--out FILE] [-f]`."""
    command = ROLES[args.role]
    parser = sub.choices[command]
    actions = keyed(parser)
    given_parser = argparse.ArgumentParser(prog=f"dfs init {args.role}", add_help=False)
    given_parser.add_argument("--out", "-o", dest="init_out", default=args.out)
    given_parser.add_argument("--force", "-f", dest="init_force", action="store_true",
                              default=args.force)
    for action in actions.values():
        kwargs: dict[str, Any] = {"dest": action.dest, "default": argparse.SUPPRESS}
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            kwargs["action"] = "store_true" if isinstance(
                action, argparse._StoreTrueAction) else "store_false"
        else:
            kwargs["type"] = action.type
            kwargs["choices"] = action.choices
        given_parser.add_argument(*action.option_strings, **kwargs)
    try:
        parsed = given_parser.parse_args(args.options)
    except SystemExit:
        raise errors.InvalidArgument(f"dfs init {args.role}: options are those of "
                                     f"`dfs {command}` (see dfs {command} --help)") from None
    given = vars(parsed)
    out, force = given.pop("init_out"), given.pop("init_force")
    if "token" in given:
        raise errors.InvalidArgument("the join token does not belong in a config file: give "
                                     "token_file (--token-file FILE), or $DFS_JOIN_TOKEN")
    for dest in ("data", "token_file", "auth", "cache_dir", "state"):
        if given.get(dest):
            given[dest] = os.path.abspath(os.path.expanduser(given[dest]))
    text = example(args.role, parser, given)
    if not out:
        print(text, end="")
        return 0
    if os.path.exists(out) and not force:
        raise errors.FileExists(f"{out} exists; use -f to replace it")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    print(f"wrote {out}: `dfs {command} --config {out}` uses it")
    return 0


def add_commands(sub: Subparsers) -> None:
    """``--config`` on the commands that take it, and `dfs init` (after every other
    command: the example lists their options)."""
    for command in COMMANDS:
        add_option(sub.choices[command], command)
    p = sub.add_parser("init", help="write a commented config file for a node or a mount")
    p.add_argument("role", choices=sorted(ROLES))
    p.add_argument("options", nargs=argparse.REMAINDER,
                   help="options of that role to set in the file (the others are listed, "
                        "commented out)")
    p.add_argument("--out", "-o", default=None, metavar="FILE",
                   help="write it there (default: print it)")
    p.add_argument("--force", "-f", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=lambda args: cmd_init(args, sub))

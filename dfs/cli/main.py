"""The `dfs` command. Every subcommand is a function ``(args) -> int`` in the module of its
group (nodes, files, admin, trash, mount); ``main(argv)`` parses, sets up logging, runs it,
and turns a DfsError into one line on stderr and exit status 1 (``--debug`` shows the
traceback). Node code (``nodes``) and the mount are imported lazily, inside the
subcommands that start them (dfs.cli.nodes and dfs.cli.mount only).
"""

from __future__ import annotations

import argparse
import logging
import sys

from dfs import errors
from dfs.cli import admin, configfile, events, files, mount, nodes, trash, workers

NODE_COMMANDS = ("master", "worker", "shadow")
"""Nodes log at INFO (they run for long, their log is the record); commands log only
warnings unless --debug."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfs", description="A distributed file system.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The order of `dfs --help`: nodes, register, files, the admin's view, the folders.
    nodes.add_commands(sub)
    admin.add_register(sub)
    files.add_commands(sub)
    admin.add_commands(sub)
    events.add_commands(sub)
    workers.add_commands(sub)
    trash.add_commands(sub)
    mount.add_commands(sub)
    configfile.add_commands(sub)  # --config on the nodes and the mount, and `dfs init`
    return parser


def setup_logging(debug: bool, command: str) -> None:
    if debug:
        level = logging.DEBUG
    else:
        level = logging.INFO if command in NODE_COMMANDS else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say: arguments needed by one action only (exits with usage)."""
    if args.command == "users" and args.action != "list" and not args.name:
        parser.error(f"users {args.action} needs a NAME")
    if args.command == "trash" and args.action == "restore" and not args.path:
        parser.error("trash restore needs a PATH")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        configfile.apply(parser, argv)  # a --config FILE's values become the defaults
    except errors.DfsError as exc:
        print(f"dfs: {exc.message}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    setup_logging(args.debug, args.command)
    _check_arguments(parser, args)
    try:
        status: int = args.func(args)
        return status
    except errors.DfsError as exc:
        if args.debug:
            raise
        print(f"dfs: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())

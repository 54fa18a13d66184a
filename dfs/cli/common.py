"""What every command module of `dfs` shares: how a client command is declared, how it
opens its client, how it names remote paths. (Option defaults come from the config
dataclasses: ``dfs.config.default(MasterConfig, "lease")``.)"""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from dfs import paths

if TYPE_CHECKING:
    from dfs.client import DfsClient

Command = Callable[[argparse.Namespace], int]
"""A subcommand: parsed arguments -> exit status."""

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers()`` returns: each command module adds its commands to it."""


def remote_path(text: str, args: argparse.Namespace) -> str:
    """A remote path as typed: absolute, or relative to the user's home folder (as HDFS
    resolves them in /user/NAME): 'a/b' is /home/NAME/a/b for the user of ``--auth``."""
    if text.startswith("/"):
        return text
    from dfs import auth
    _masters, user, _key = auth.read_auth_file(args.auth or paths.default_auth_file())
    return posixpath.normpath(posixpath.join(paths.home_of(user), text))


def open_client(args: argparse.Namespace) -> DfsClient:
    """A client for the user of ``--auth`` (default: $DFS_AUTH, then the config dir)."""
    from dfs.client import DfsClient
    return DfsClient.from_auth_file(args.auth)


def client_command(sub: Subparsers, name: str, func: Command,
                   help_text: str) -> argparse.ArgumentParser:
    """A subcommand that talks to the cluster as the user of ``--auth``."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--auth", default=None, help="auth file (default $DFS_AUTH or the "
                                                "user's config dir)")
    p.set_defaults(func=func)
    return p

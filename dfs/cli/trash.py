"""`dfs trash list | restore PATH | empty`: a user's deleted files."""

from __future__ import annotations

import argparse
import time

from dfs.cli.common import Subparsers, client_command, open_client, remote_path
from dfs.cli.output import print_table


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_trash(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        if args.action == "list":
            print_table([(t.path, t.size, _when(t.deleted_at), _when(t.expires))
                         for t in dfs.trash_list()], ("path", "size", "deleted", "expires"))
        elif args.action == "restore":
            path = remote_path(args.path, args)
            dfs.trash_restore(path)
            print(f"restored {path}")
        else:
            print(f"emptied the trash ({dfs.trash_empty()} file(s) freed)")
    return 0


def add_commands(sub: Subparsers) -> None:
    p = client_command(sub, "trash", cmd_trash, "deleted files: list, restore PATH, empty")
    p.add_argument("action", choices=["list", "restore", "empty"])
    p.add_argument("path", nargs="?")

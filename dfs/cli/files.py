"""File commands: put, get, cat, ls, mkdir, rm, mv, chmod, stat."""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
import time

from dfs import errors
from dfs.cli.common import Subparsers, client_command, open_client, remote_path
from dfs.cli.output import device_numbers, mode_string, size_or_device
from dfs.progress import progress_bar
from dfs.wire import DirEntry

KIND_NAMES = {"d": "directory", "f": "regular file", "l": "symbolic link", "p": "fifo",
              "s": "socket", "c": "character device", "b": "block device"}


def cmd_put(args: argparse.Namespace) -> int:
    remote = remote_path(args.remote, args)
    with open_client(args) as dfs:
        if remote.endswith("/") or (dfs.exists(remote) and dfs.stat(remote).is_dir):
            remote = posixpath.join(remote, os.path.basename(args.local))
        size = os.path.getsize(args.local) if os.path.isfile(args.local) else 0
        bar, progress = progress_bar(size, os.path.basename(args.local))
        try:
            result = dfs.put(args.local, remote, mode=_octal(args.mode) if args.mode else None,
                             progress=progress)
        finally:
            if bar:
                bar.close()
    if result.under_replicated:
        print(f"warning: {result.under_replicated} chunk(s) of {remote} have a single copy "
              "(too few live workers); the master adds the second copy later", file=sys.stderr)
    return 0


def _confirm_overwrite(path: str, force: bool) -> None:
    """Ask before replacing a local file; without a terminal, refuse unless ``-f``."""
    if force or not os.path.exists(path):
        return
    if not sys.stdin.isatty():
        raise errors.FileExists(f"{path} exists; use -f to overwrite it")
    answer = input(f"{path} exists. Overwrite? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise errors.FileExists(f"{path} left as it was")


def cmd_get(args: argparse.Namespace) -> int:
    remote = remote_path(args.remote, args)
    local = args.local
    if os.path.isdir(local):
        local = os.path.join(local, posixpath.basename(remote))
    with open_client(args) as dfs:
        stat = dfs.stat(remote)
        if stat.is_dir:
            raise errors.IsADirectory(f"{remote} is a directory")
        _confirm_overwrite(local, args.force)
        bar, progress = progress_bar(stat.size, posixpath.basename(remote))
        try:
            dfs.get(remote, local, progress=progress)
        finally:
            if bar:
                bar.close()
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        for data in dfs.iter_chunks(remote_path(args.remote, args)):
            sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    path = remote_path(args.path, args)
    with open_client(args) as dfs:
        stat = dfs.stat(path)
        entries = dfs.listdir(path) if stat.is_dir else [
            DirEntry(posixpath.basename(path), stat)]
    for entry in entries:
        name = entry.name + ("/" if entry.stat.is_dir else "")
        if args.long:
            s = entry.stat
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.mtime_ns / 1e9))
            print(f"{mode_string(s)} {s.nlink:>3} {s.owner:<10} {s.gid:<6} "
                  f"{size_or_device(s):>12} {when} {name}")
        else:
            print(name)
    return 0


def cmd_mkdir(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        for path in args.paths:
            dfs.mkdir(remote_path(path, args), parents=args.parents)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        for path in (remote_path(p, args) for p in args.paths):
            if dfs.stat(path).is_dir:
                if not args.recursive:
                    raise errors.IsADirectory(f"{path} is a directory (use rm -r)")
                dfs.rm_tree(path)
            else:
                dfs.rm(path)
    return 0


def cmd_mv(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        dfs.rename(remote_path(args.src, args), remote_path(args.dst, args))
    return 0


def _octal(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise errors.InvalidArgument(f"mode must be octal, like 644: {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise errors.InvalidArgument(f"mode must be 0..7777 (octal): {text!r}")
    return mode


def cmd_chmod(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        dfs.chmod(remote_path(args.path, args), _octal(args.mode))
    return 0


def _id_or_name(text: str) -> int | str | None:
    return None if text == "" else int(text) if text.isdigit() else text


def cmd_chown(args: argparse.Namespace) -> int:
    """OWNER[:GROUP] or :GROUP, each a number or a name, as chown(1)."""
    owner, _, group = args.owner.partition(":")
    new_owner, new_group = _id_or_name(owner), _id_or_name(group)
    if new_owner is None and new_group is None:
        raise errors.InvalidArgument("say an owner, :GROUP, or both (OWNER:GROUP)")
    with open_client(args) as dfs:
        dfs.chown(remote_path(args.path, args), new_owner, new_group)
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        s = dfs.stat(remote_path(args.path, args))
    kind = KIND_NAMES.get(s.kind, s.kind)
    print(f"  path: {remote_path(args.path, args)}\n  type: {kind}\n  size: {s.size}\n"
          f"  mode: {mode_string(s)} ({s.mode:04o})\n owner: {s.owner} (uid {s.uid})\n"
          f" group: {s.gid}\n inode: {s.ino}\n links: {s.nlink}\n"
          f"modify: {time.ctime(s.mtime_ns / 1e9)}")
    if s.kind in ("c", "b"):
        print("device: %d, %d" % device_numbers(s.rdev))
    return 0


def add_commands(sub: Subparsers) -> None:
    p = client_command(sub, "put", cmd_put, "upload a file")
    p.add_argument("local")
    p.add_argument("remote")
    p.add_argument("--mode", default="", help="a new file's mode, octal (default 600)")
    p = client_command(sub, "get", cmd_get, "download a file")
    p.add_argument("remote")
    p.add_argument("local")
    p.add_argument("-f", "--force", action="store_true", help="overwrite without asking")
    p = client_command(sub, "cat", cmd_cat, "print a file")
    p.add_argument("remote")
    p = client_command(sub, "ls", cmd_ls, "list a directory")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("-l", "--long", action="store_true")
    p = client_command(sub, "mkdir", cmd_mkdir, "make directories")
    p.add_argument("paths", nargs="+")
    p.add_argument("-p", "--parents", action="store_true")
    p = client_command(sub, "rm", cmd_rm, "remove files")
    p.add_argument("paths", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true")
    p = client_command(sub, "mv", cmd_mv, "rename or move")
    p.add_argument("src")
    p.add_argument("dst")
    p = client_command(sub, "chmod", cmd_chmod, "change permissions (o+r shares with other users)")
    p.add_argument("mode")
    p.add_argument("path")
    p = client_command(sub, "chown", cmd_chown,
                       "change owner and/or group: OWNER[:GROUP] or :GROUP (names or numbers)")
    p.add_argument("owner")
    p.add_argument("path")
    p = client_command(sub, "stat", cmd_stat, "show a file's attributes")
    p.add_argument("path")

"""The folder commands: mount, umount, backup. The only module of the CLI that imports
the mount (``mount/``, FUSE) — lazily, inside the commands, so every other command runs
without mfusepy; `dfs up` and `dfs down` come here to mount and unmount."""

from __future__ import annotations

import argparse

from dfs.cli.common import Subparsers, client_command
from dfs.config import ClientConfig, default


def cmd_mount(args: argparse.Namespace) -> int:
    from mount import lifecycle
    return lifecycle.cmd_mount(args)


def cmd_umount(args: argparse.Namespace) -> int:
    from mount import lifecycle
    return lifecycle.cmd_umount(args)


def mount_for_up(mount_dir: str, auth_file: str) -> int:
    """`dfs up`: mount the local cluster (a failure leaves it running). -> exit status."""
    from mount import lifecycle
    return lifecycle.mount_for_up(mount_dir, auth_file)


def unmount_for_down(data_dir: str) -> list[str]:
    """`dfs down`: unmount the mounts of the cluster in ``data_dir``. -> the dirs unmounted
    (none when the mount cannot even be imported: then nothing can be mounted either)."""
    try:
        from mount import lifecycle
    except ImportError:
        return []
    return lifecycle.unmount_for_down(data_dir)


def known_mounts() -> list[tuple[str, int, bool, str]]:
    """`dfs status`: (folder, pid, process alive, log) of each mount on this machine (none
    when the mount cannot even be imported)."""
    try:
        from mount import logfile
    except ImportError:
        return []
    return [(m.dir, m.pid, m.alive, m.log) for m in logfile.known()]


def cmd_backup(args: argparse.Namespace) -> int:
    from dfs.backup import command
    return command.cmd_backup(args)


def add_commands(sub: Subparsers) -> None:
    p = client_command(sub, "mount", cmd_mount, "mount the cluster as a folder")
    p.add_argument("dir")
    p.add_argument("--foreground", action="store_true", help="stay attached (logs to stderr)")
    p.add_argument("--timeout", type=float, default=default(ClientConfig, "timeout"),
                   help="seconds before an operation fails while a node is unreachable")
    p.add_argument("--cache-dir", default=None, help="on-disk chunk cache ('' disables it)")
    p.add_argument("--log-file", default=None, help=argparse.SUPPRESS)  # set by `dfs mount`
    p.add_argument("--nosymfollow", action="store_true",
                   help="the kernel follows no symlink in the folder (root only; README)")
    p.add_argument("--write-back", type=float, default=None, metavar="MIB",
                   help="memory for written data not yet stored, all files together "
                        f"(default {default(ClientConfig, 'write_back_bytes') >> 20})")
    p.add_argument("--read-buffers", type=float, default=None, metavar="MIB",
                   help="memory for chunks read and read ahead "
                        f"(default {default(ClientConfig, 'read_buffer_bytes') >> 20})")
    p = sub.add_parser("umount", help="unmount a DFS folder and wait for the mount to exit")
    p.add_argument("dir")
    p.set_defaults(func=cmd_umount)
    p = client_command(sub, "backup", cmd_backup, "watch a local folder and upload what appears")
    p.add_argument("local_dir")
    p.add_argument("remote_dir", nargs="?", default="/")
    p.add_argument("--mirror-deletes", action="store_true",
                   help="also delete in the cluster what is deleted locally")
    p.add_argument("--state", default=None, help="state file (default: the user's state dir)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds a file must stay unchanged before it is uploaded")
    p.add_argument("--once", action="store_true", help="sync once and exit (for cron)")

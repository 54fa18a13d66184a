"""`dfs backup LOCAL_DIR [REMOTE_DIR]`: the CLI entry (dfs.cli.mount calls it)."""

from __future__ import annotations

import argparse
import logging
import os
import posixpath
import signal
from types import FrameType

from dfs import errors
from dfs.backup.state import StateStore, default_state_path
from dfs.backup.tree import Tree
from dfs.backup.watcher import SETTLE_SECONDS, Backup
from dfs.config import format_addresses

log = logging.getLogger(__name__)

FAILOVER_DEADLINE = 5.0
"""Client calls give up after this long; the uploader then retries on its own schedule."""
ONCE_PATIENCE = 60.0
"""With --once, give up (exit 1) after the cluster has been unavailable this long."""
PACKAGE_LOGGER = "dfs.backup"
"""Every module of the watcher logs under it: its progress is shown at INFO."""


def _remote_dir(text: str | None) -> str:
    """'photos/', '/photos' -> '/photos'; '' and '/' -> '/'."""
    return posixpath.normpath("/" + (text or "").strip().strip("/"))


def cmd_backup(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM (exit 0), or one sync with --once."""
    from dfs.client import DfsClient
    if not args.debug:
        logging.getLogger(PACKAGE_LOGGER).setLevel(logging.INFO)
    local = os.path.abspath(os.path.expanduser(args.local_dir))
    if not os.path.isdir(local):
        raise errors.FileNotFound(f"{args.local_dir}: no such local folder")
    settle = getattr(args, "settle", None)
    settle = SETTLE_SECONDS if settle is None else settle
    if settle < 0:
        raise errors.InvalidArgument("--settle must not be negative")
    remote = _remote_dir(args.remote_dir)
    client = DfsClient.from_auth_file(args.auth, failover_deadline=FAILOVER_DEADLINE,
                                      cache_dir="")
    try:
        masters = format_addresses(client.config.masters)
        state_path = getattr(args, "state", None) or default_state_path(local, remote, masters,
                                                                        client.user)
        state = StateStore(os.path.abspath(state_path), local, remote, masters, client.user)
        state.load()
        tree = Tree(local, remote, ignore=[state.path, state.path + ".tmp"])
        once = getattr(args, "once", False)
        backup = Backup(client, tree, state, settle=settle, mirror_deletes=args.mirror_deletes,
                        patience=ONCE_PATIENCE if once else None)
        previous = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            backup.request_stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        try:
            return backup.run(once=once)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        client.close()

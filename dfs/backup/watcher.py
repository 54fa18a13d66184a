"""`dfs backup LOCAL_DIR [REMOTE_DIR]`: watch a folder and keep a copy of it in the cluster.

New and changed files are uploaded once they are complete (size and mtime still for the
settle time), the folder structure is kept, renames become remote renames, and a restart
uploads nothing that is already there. Local deletes are mirrored only with
``--mirror-deletes``. While the cluster is unreachable the work waits and is retried with
backoff; nothing pending is dropped and the watcher does not exit.

The pieces, each a small object in its own module of dfs.backup:

- ``Tree``, ``Scanner`` (tree): relative <-> local and remote paths; a walk of the folder
  -> {relative path: (size, mtime_ns)} and directories.
- ``ChangeQueue`` (changes): pending paths with settle logic, ordered operations.
- ``EventHandler`` (events): watchdog events -> queue calls.
- ``Uploader`` (uploader): takes work from the queue and applies it to the cluster
  (``Operations``, in operations; the comparison with what the cluster holds in compare),
  retrying while the cluster is unavailable; its loop is ``run()`` / ``stop()``.
- ``StateStore`` (state): what was uploaded, kept across restarts.
- ``Backup`` (here): owns them all; ``run()`` starts, rescans now and then, and stops.
- ``cmd_backup`` (command): the CLI entry.

Threads of a `dfs backup` process: the main thread (``Backup.run``: start-up scan,
periodic rescans, waiting for SIGINT/SIGTERM), watchdog's observer and emitter threads
(only call the queue), and the uploader thread (the only one that talks to the cluster
and the only writer of the state). The queue and the state store each have one lock;
``Uploader`` has one more for its map of failed files. No thread holds two locks at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from dfs.backup.changes import ChangeQueue, Op
from dfs.backup.events import EventHandler, start_observer
from dfs.backup.state import StateStore
from dfs.backup.tree import Scanner, Tree
from dfs.backup.uploader import Uploader

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from dfs.client import DfsClient

log = logging.getLogger(__name__)

SETTLE_SECONDS = 1.0
RESCAN_SECONDS = 600.0
"""A full rescan now and then catches anything the watcher missed (inotify overflow)."""
POLL_SECONDS = 1.0
"""How often the main thread looks at the folder, the observer and the rescan clock."""
ONCE_POLL_SECONDS = 0.2
"""With --once: how often it looks whether everything is done."""
JOIN_UPLOADER = 30.0
JOIN_OBSERVER = 5.0


class Backup:
    """Watches ``tree.local_root`` and keeps ``tree.remote_root`` in the cluster up to date.

    ``run()`` (in the caller's thread) starts the watchdog observer, scans the folder,
    starts the uploader thread, then rescans every ``rescan_interval`` seconds until
    ``request_stop()`` (safe from a signal handler or any thread); then it stops the
    observer, the uploader and saves the state. ``once=True`` does one full sync and
    returns when there is nothing left to do.
    """

    def __init__(self, client: DfsClient, tree: Tree, state: StateStore,
                 settle: float = SETTLE_SECONDS, mirror_deletes: bool = False,
                 rescan_interval: float = RESCAN_SECONDS,
                 patience: float | None = None) -> None:
        self.client = client
        self.tree = tree
        self.state = state
        self.mirror_deletes = mirror_deletes
        self.rescan_interval = rescan_interval
        self.scanner = Scanner(tree)
        self.queue = ChangeQueue(settle, tree.stat)
        self.uploader = Uploader(client, tree, self.queue, state, mirror_deletes, patience)
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None

    def request_stop(self) -> None:
        self._stop.set()

    def _initial_scan(self) -> None:
        """Queue every file that differs from the state; then the start-up check."""
        scan = self.scanner.scan()
        queued = 0
        for rel, signature in scan.files.items():
            entry = self.state.get(rel)
            if entry is None or entry.signature != signature:
                self.queue.changed(rel)
                queued += 1
        self.queue.add(Op("verify", "", scan=scan))
        log.info("%s: %d files, %d new or changed since the last run", self.tree.local_root,
                 len(scan.files), queued)

    def rescan(self) -> None:
        for rel, signature in self.scanner.scan().files.items():
            entry = self.state.get(rel)
            if (entry is None or entry.signature != signature) and \
                    self.uploader.should_check(rel, signature):
                self.queue.changed(rel)

    def run(self, once: bool = False) -> int:
        """-> exit status: 0, or 1 when it had to stop (or with --once, left files out)."""
        if not once:  # the observer first: nothing falls between it and the scan
            handler = EventHandler(self.tree, self.queue, self.scanner, self.mirror_deletes)
            self._observer = start_observer(handler)
        self._initial_scan()
        self._thread = threading.Thread(target=self.uploader.run, name="dfs-backup-uploader",
                                        daemon=True)
        self._thread.start()
        if not once:
            log.info("watching %s -> %s (settle %.1fs%s)", self.tree.local_root,
                     self.tree.remote_root, self.queue.settle,
                     ", mirroring deletes" if self.mirror_deletes else "")
        try:
            status = self._wait(once)
        finally:
            self._shutdown()
        if once and self.uploader.failed:
            status = 1
        return status

    def _wait(self, once: bool) -> int:
        """The main thread's watch until a stop: -> 0, or 1 when something went wrong."""
        next_rescan = time.monotonic() + self.rescan_interval
        while not self._stop.wait(ONCE_POLL_SECONDS if once else POLL_SECONDS):
            if self.uploader.gave_up:
                return 1
            if once:
                if self.queue.idle():
                    return 0
                continue
            if not os.path.isdir(self.tree.local_root):
                log.error("the watched folder %s is gone; stopping", self.tree.local_root)
                return 1
            if self._observer is not None and not self._observer.is_alive():
                log.error("the folder watcher stopped unexpectedly; stopping")
                return 1
            if self.rescan_interval and time.monotonic() >= next_rescan:
                self.rescan()
                next_rescan = time.monotonic() + self.rescan_interval
        return 0

    def _shutdown(self) -> None:
        if self._observer is not None:
            self._observer.stop()
        self.uploader.stop()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_UPLOADER)
            if self._thread.is_alive():
                log.warning("the uploader did not stop within %.0fs; exiting anyway",
                            JOIN_UPLOADER)
        if self._observer is not None:
            self._observer.join(timeout=JOIN_OBSERVER)
        self.state.flush()
        log.info("stopped: %d files in %s; %s", len(self.state), self.tree.remote_root,
                 self.uploader.summary())

"""Snapshots off the request path: when the journal has grown enough, seal it and let a
child process (``python -m dfs.compact``) fold it into a new snapshot.

When: at least ``snapshot_every`` entries since the last snapshot, and the journal at
least a quarter of the snapshot's size (``SIZE_RATIO``), so the cost of snapshots per
entry stays the same however big the namespace grows, and a restart never replays more
than about a quarter of a snapshot's worth of journal.

What the request path pays: the seal (one fdatasync and a rename, under the metadata
lock, once per snapshot). The child loads, applies and writes in its own interpreter (at
a lower priority); this thread waits for it and adopts its result. A failed snapshot (the
disk is full) costs nothing but a retry later (``RETRY_MAX``): the sealed journal stays and
is loaded at start like the journal.

Thread-safety: ``maybe_start`` under the metadata lock; the thread touches only the files
(dfs.journal.Journal.adopt_compacted guards them).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable

import dfs
from dfs import errors
from dfs.journal import Journal

log = logging.getLogger(__name__)

SIZE_RATIO = 4  # journal bytes * SIZE_RATIO >= snapshot bytes
RETRY_MAX = 60.0  # seconds between attempts after failures, at most
NO_SPACE = 3  # dfs.compact's exit status for a full disk


class Compactor:
    def __init__(self, journal: Journal, every: int, clock: Callable[[], float]) -> None:
        self.journal = journal
        self.every = every
        self.clock = clock
        self.thread: threading.Thread | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.done = 0  # snapshots adopted (tests and status)
        self.stopped = False

    def due(self) -> bool:
        journal = self.journal
        if self.stopped or self.thread is not None or self.clock() < self.retry_at:
            return False
        if journal.has_sealed():
            return True  # an earlier attempt to finish
        return (journal.entries_since_snapshot >= self.every
                and journal.end * SIZE_RATIO >= journal.snapshot_bytes)

    def maybe_start(self) -> None:
        """Metadata lock held: seal the journal and start a snapshot if one is due."""
        if not self.due():
            return
        if not self.journal.has_sealed():
            try:
                self.journal.seal()
            except errors.DfsError as exc:
                self._failed(str(exc))
                return
        self.thread = threading.Thread(target=self._run, args=(self.journal.generation,),
                                       name="master-snapshot", daemon=True)
        self.thread.start()

    def _run(self, generation: int) -> None:
        try:
            root = os.path.dirname(os.path.dirname(os.path.abspath(dfs.__file__)))
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            self.child = subprocess.Popen(
                [sys.executable, "-m", "dfs.compact", self.journal.directory,
                 self.journal.compacted_name(generation)], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            out, err = self.child.communicate()
            code = self.child.returncode
            if self.journal.generation != generation:  # replaced meanwhile (a standby was
                self.failures = 0  # sent the leader's namespace): this one is moot
                self.retry_at = 0.0
            elif code == 0:
                if self.journal.adopt_compacted(generation):
                    log.debug("snapshot written at entry %s", out.decode().strip())
                    self.done += 1
                self.failures = 0
                self.retry_at = 0.0
            elif not self.stopped:
                why = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
                self._failed(("the disk is full: " if code == NO_SPACE else "") + why[0])
        except OSError as exc:
            self._failed(str(exc))
        finally:
            self.child = None
            self.thread = None

    def _failed(self, why: str) -> None:
        self.failures += 1
        delay = min(RETRY_MAX, 2.0 ** self.failures)
        self.retry_at = self.clock() + delay
        say = log.warning if self.failures == 1 else log.info
        say("snapshot failed (%s); the journal keeps every change, trying again in %.0f s",
            why, delay)

    def stop(self) -> None:
        """No more snapshots from here; a running child is ended (its work is lost, the
        sealed journal stays)."""
        self.stopped = True
        child, thread = self.child, self.thread
        if child is not None:
            child.kill()
        if thread is not None:
            thread.join(timeout=10)

"""The metadata lock, and why no answer leaves before what it shows is durable.

A mutation is decided, written to the journal (page cache) and applied to the namespace
under the lock, in order; the fsync of the journal and the standby's round trip happen
after the lock is released (group commit: the mutations decided meanwhile share them).
So, for a moment, the namespace in memory holds changes that are not durable yet.

The rule that keeps that invisible: leaving the *outermost* hold of the lock waits until
every entry written so far is durable (fsynced here, and on the standby or the standby
marked stale: nodes/master/replication.py). Every answer is built under the lock and
returned after leaving it, so no client, and no worker told to delete a chunk, ever acts
on a change that could still be lost. A read that comes while nothing is pending pays one
comparison; one that comes during a commit waits for that commit's fsync, as a
linearizable read in etcd waits for its read index. A mutation is acknowledged only once
it is durable on both servers; if that fails (the leader lost its majority) the answer is
an error and the client retries on the new leader.

The replication thread and the standby resync take ``raw`` (no waiting): they are what
makes entries durable and must never wait for themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

Barrier = Callable[[], Callable[[], None] | None]
"""Called with the lock held as its outermost hold ends: -> what to wait for once it is
released (raises if the change cannot be made durable), or None if nothing is pending."""


class MetadataLock:
    """A re-entrant lock (``with lock:``) whose outermost release waits on ``barrier``."""

    def __init__(self) -> None:
        self.raw = threading.RLock()
        self._holds = threading.local()
        self.barrier: Barrier = lambda: None

    def __enter__(self) -> MetadataLock:
        self.raw.acquire()
        self._holds.depth = getattr(self._holds, "depth", 0) + 1
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._holds.depth -= 1
        wait = None
        try:
            if self._holds.depth == 0:
                wait = self.barrier()
        finally:
            self.raw.release()
        if wait is not None:
            wait()

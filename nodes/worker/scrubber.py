"""Background checking of every stored replica.

Each pass re-reads every complete chunk file at no more than ``rate`` bytes per second
and verifies each 64 KiB block against its stored CRC32C. A replica that fails is logged
and queued in ``ChunkStore.report_bad``; the next heartbeat carries it to the metadata
servers, and the leader quarantines that replica and re-replicates a good copy (the usual
repair path), without any client having to read it first. A pass starts at most every
``min_pass`` seconds, so a small store is not re-read in a tight loop.

Threads: one Task named ``scrubber``, owned by the worker. It only reads files and takes
``ChunkStore.lock`` briefly to queue a report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from dfs.config import WorkerConfig, default
from nodes.tasks import Task
from nodes.worker.store import ChunkStore

log = logging.getLogger(__name__)


class Scrubber:
    def __init__(self, store: ChunkStore, rate: int, min_pass: float,
                 clock: Callable[[], float] = time.monotonic,
                 keep_quarantine: float = default(WorkerConfig, "keep_quarantine")) -> None:
        """``rate``: bytes per second (0: never scrub); ``min_pass``: seconds from the start
        of one pass to the start of the next; ``keep_quarantine``: seconds corrupt copies
        are kept aside, deleted at the start of a pass once older."""
        self.store = store
        self.keep_quarantine = keep_quarantine
        self.rate = rate
        self.min_pass = min_pass
        self.clock = clock
        self.passes = 0
        self._last_start: float | None = None
        self.task = Task("scrubber", self.scrub_pass, self._until_next_pass)

    def start(self) -> None:
        if self.rate > 0:
            self.task.start()

    def stop(self) -> None:
        self.task.stop()

    def _until_next_pass(self) -> float:
        """The first pass starts at once, each next one ``min_pass`` after the last began."""
        if self._last_start is None:
            return 0.0
        return self._last_start + self.min_pass - self.clock()

    def scrub_pass(self) -> None:
        started = self._last_start = self.clock()
        done = 0
        self.store.expire_quarantine(self.keep_quarantine)

        def pace(nbytes: int) -> None:
            nonlocal done
            done += nbytes
            delay = started + done / self.rate - self.clock()
            if delay > 0:
                self.task.wait(delay)
        try:
            for chunk_id, kind in sorted(self.store.inventory()):
                if self.task.stopping:
                    return
                if self.store.verify(chunk_id, kind, pace) is False:
                    log.error("scrub: chunk %d (%s) fails its checksum: reporting it",
                              chunk_id, kind)
                    self.store.report_bad(chunk_id, kind)
        finally:
            self.passes += 1

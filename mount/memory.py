"""The mount process gives freed memory back to the system (glibc; elsewhere a no-op).

Measured with tests/t4_sparse.py's workload (40 open files written in turn, 16 MiB
write-back budget, then closed, read back and deleted): idle 36 MiB, 131 MiB after,
although every buffer had been freed (tracemalloc: under 1 MiB of Python objects left).
glibc kept it: it makes up to eight malloc arenas per core, one for each busy thread
(FUSE's loop threads, the client's upload pools), and each keeps what was freed in it.
At most two arenas: 87 MiB after; and ``malloc_trim(0)`` once no file is open: 50 MiB
(the script's own 4 MiB included). A trim walks the heap (0.2 ms measured when it had
memory to give back, microseconds when not); it is done when ``TRIM_AFTER`` bytes or more
were given back since the last one, so a ``cp -r`` of small files rarely trims.

The garbage collector (``steady_gc``): a listing of a 50,000-file folder makes ~800,000
objects (its Stats, the cache's entries) and CPython's default young threshold (700)
collected so often, with full collections over the whole grown heap, that decoding it cost
15 us an entry instead of 3 (measured with a 300,000-object heap, the cache's own size
after such a listing). What was made at start (modules, mfusepy, rpyc) is frozen: full
collections never walk it.
"""

from __future__ import annotations

import gc
import logging
import threading

from dfs import glibc
from dfs.glibc import M_ARENA_MAX

log = logging.getLogger(__name__)

ARENAS = 2
TRIM_AFTER = 1024 * 1024
GC_YOUNG = 20_000  # allocations between young collections (CPython's default: 700)


class Heap:
    def __init__(self) -> None:
        self.libc = glibc.libc()
        self.trimmed_at = 0
        self.lock = threading.Lock()

    def limit_arenas(self) -> None:
        """Call first thing in the mount process, before its threads start."""
        if self.libc is not None:
            self.libc.mallopt(M_ARENA_MAX, ARENAS)

    def steady_gc(self) -> None:
        """Call once the mount is set up, before it serves: what exists now stays (frozen),
        and young objects are collected every GC_YOUNG allocations, not every 700."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])

    def freed(self, released: int) -> None:
        """No file is open; ``released``: bytes the client's buffers have given back, ever.
        Trims the heap if enough was freed since the last trim."""
        if self.libc is None or released - self.trimmed_at < TRIM_AFTER:
            return
        with self.lock:
            if released - self.trimmed_at < TRIM_AFTER:
                return
            self.trimmed_at = released
            self.libc.malloc_trim(0)
            log.debug("heap trimmed (%d MiB freed by the buffers so far)", released >> 20)


HEAP = Heap()  # one per process

"""The metadata server gives memory that freed objects left in glibc's heap back to the
system (glibc; elsewhere a no-op), so its resident size follows what it holds.

Measured (issue 12): a listing of a 10,000-file folder, as the master answers it on a
connection's thread (entries to wire form, brine), peaks at 24 MiB of Python objects and
then leaves 21 MiB resident, none of it objects, and ``malloc_trim(0)`` gives none of it
back: glibc keeps it at the top of that thread's arena (rpyc serves each connection on its
own thread, so a remount's new connections fill new arenas), and trims an arena's top only
past a threshold that it raises to twice the largest block freed so far (up to 64 MiB).
With both thresholds fixed at glibc's defaults (setting them turns the raising off): 3 MiB
left, the freed top going back as it is freed, in every arena.

``Heap.tick`` (a background task) also trims what is free inside the heaps (pages of free
blocks between live ones) when the resident size has grown ``TRIM_GROWTH`` since the
last trim: one read of /proc/self/statm per pass; a trim (well under a millisecond to a
few, the GIL released) only after that much growth, which a namespace that grows for real
pays once per ``TRIM_GROWTH``.

Not given back: what Python's own allocator holds (objects up to 512 bytes, in 1 MiB
arenas) goes back only when a whole arena is empty. Measured through the mount: 30,000
files created, listed, stat'ed and deleted leave 20 MiB of the 24 the master grew by, and
the next 30,000 files take it back (1.4 MiB more).
"""

from __future__ import annotations

import logging

from dfs import glibc
from dfs.glibc import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, resident_bytes

log = logging.getLogger(__name__)

THRESHOLD = 128 * 1024  # glibc's default for both, kept from rising
TRIM_GROWTH = 8 * 1024 * 1024  # bytes of resident growth since the last trim


class Heap:
    """One per process; made first thing, before the server's threads allocate much."""

    def __init__(self) -> None:
        self.libc = glibc.libc()
        if self.libc is not None:
            self.libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD)
            self.libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)
        self.floor = resident_bytes() or 0  # resident size after the last trim
        self.trims = 0

    def tick(self) -> None:
        if self.libc is None:
            return
        now = resident_bytes()
        if now is None:
            return
        self.floor = min(self.floor, now)  # it shrank by itself
        if now - self.floor < TRIM_GROWTH:
            return
        self.libc.malloc_trim(0)
        self.trims += 1
        self.floor = resident_bytes() or now
        log.debug("heap trimmed: %d -> %d MiB resident", now >> 20, self.floor >> 20)

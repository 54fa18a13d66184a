"""Which chunks the master's tick looks at (nodes/master/placement.py: garbage collection,
trimming of surplus copies, repair).

Looking at every chunk on every tick held the metadata lock for a time that grew with the
namespace (500,000 chunks: seconds). So a tick looks at:

- the chunks whose copies changed since the last tick (``touch``: a copy reported, lost,
  dropped or deleted, a worker declared dead, registered or removed, a worker starting or
  ending a drain): repair of a dead worker's chunks starts at the next tick, as before;
- the endangered chunks (referenced, fewer copies than wanted) that repair takes up this
  tick: they wait in a queue, fewest copies first (``most_endangered``), so repair of a dead
  worker's chunks stays most-endangered-first and a tick takes only those the workers have
  room to copy, not the whole backlog;
- the next ``slice_size`` chunks of a round-robin pass over every located chunk: what no
  report tells (a file deleted, an allocation expired: its chunks are garbage now) is found
  within one pass, ``len(locations) / slice_size`` ticks; with fewer chunks than that, every
  tick is a full pass, as it was.

Not thread-safe: used under the master's metadata lock, as the WorkerTable.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator

SLICE = 4096  # chunks of the round-robin pass per tick: a few milliseconds of the lock


class ChunkScan:
    def __init__(self, slice_size: int = SLICE) -> None:
        self.slice_size = slice_size
        self.changed: set[int] = set()  # chunk ids whose copies changed since the last tick
        # queued for repair (referenced, too few copies when last looked at, no repair
        # asked yet): chunk id -> the copies it kept
        self.endangered: dict[int, int] = {}
        # (kept copies, chunk id) of those, a heap: fewest copies first; an entry whose
        # count is not the chunk's any more is skipped
        self._queue: list[tuple[int, int]] = []
        self._pass: list[int] = []  # the chunk ids of the round-robin pass under way
        self._at = 0  # how far that pass is

    def touch(self, chunk_id: int) -> None:
        """The copies of ``chunk_id`` changed: look at it at the next tick."""
        self.changed.add(chunk_id)

    def due(self, located: Collection[int]) -> set[int]:
        """The chunk ids to look at this tick (``located``: every chunk with a copy); the
        changes noted from now on are for the next tick."""
        if self._at >= len(self._pass):  # a new pass: the chunks located now
            self._pass, self._at = list(located), 0
        part = self._pass[self._at:self._at + self.slice_size]
        self._at += len(part)
        due, self.changed = self.changed, set()
        due.update(part)
        return due

    def endanger(self, chunk_id: int, kept: int) -> None:
        """``chunk_id`` keeps only ``kept`` copies: queue it for repair (once)."""
        if self.endangered.get(chunk_id) != kept:
            self.endangered[chunk_id] = kept
            heapq.heappush(self._queue, (kept, chunk_id))

    def safe(self, chunk_id: int) -> None:
        """``chunk_id`` has its copies, or needs none any more."""
        self.endangered.pop(chunk_id, None)

    def most_endangered(self) -> Iterator[int]:
        """Take the queued chunk ids out, fewest copies first (then oldest id); one the
        caller cannot repair now goes back with ``endanger``. (One whose repair is asked is
        looked at again when a copy lands, or the repair expires: both ``touch`` it.)"""
        while self._queue:
            kept, chunk_id = heapq.heappop(self._queue)
            if self.endangered.get(chunk_id) == kept:
                del self.endangered[chunk_id]
                yield chunk_id

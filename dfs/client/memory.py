"""The client's memory: one write-back budget and one pool of read buffers for every open
file (a whole mount's), so memory stays bounded however many files are open.

``WriteBudget``: bytes written and not yet stored (DfsFile's chunk buffers and uploads in
flight). A writer takes what it needs before its buffer grows; when the budget is full it
first stores its own buffers (partial chunks too: a short chunk is legal) and waits for
its uploads, then asks the other files holding bytes to do the same (``Holder.relieve``,
which each file does only if it is idle: a busy file's own writer is making progress) and
waits until there is room. Nothing that waits holds budget, so every wait ends; a wait
longer than ``deadline`` seconds (workers that stopped answering) is NoMemory, not a hang.

``ReadBuffers``: chunks recently read or read ahead, least recently used first out, keyed
by chunk id (ids are never reused, so an entry is never stale). A read ahead reserves its
room before it starts and is skipped when there is none. A file forgets its chunks when it
is closed.

Thread-safe: each has its own lock, never held while calling out (relieve, loads).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Protocol

from dfs import errors

POLL = 0.05  # seconds between two rounds of asking idle files to store their buffers


class Holder(Protocol):
    def relieve(self) -> None:
        """Store what is buffered and reap finished uploads, if not busy (never blocks)."""


class WriteBudget:
    def __init__(self, capacity: int, deadline: float = 60.0) -> None:
        self.capacity = capacity
        self.deadline = deadline
        self.used = 0
        self.peak = 0  # the most ever held at once (figures and tests)
        self.released = 0  # bytes given back, ever (the mount trims its heap by this)
        self.holders: dict[Holder, int] = {}
        self.cond = threading.Condition()

    def take(self, count: int, holder: Holder) -> bool:
        """Take ``count`` bytes for ``holder`` if they fit now. -> whether they were taken."""
        if count > self.capacity:
            raise errors.NoMemory(
                f"one chunk needs {count >> 20} MiB: more than the whole write-back budget "
                f"({self.capacity >> 20} MiB); give the client a bigger write_back_bytes")
        if count <= 0:
            return True
        with self.cond:
            if self.used + count > self.capacity:
                return False
            self.used += count
            self.peak = max(self.peak, self.used)
            self.holders[holder] = self.holders.get(holder, 0) + count
            return True

    def give(self, count: int, holder: Holder) -> None:
        """``holder`` no longer holds ``count`` bytes."""
        if count <= 0:
            return
        with self.cond:
            self.used -= count
            self.released += count
            left = self.holders.get(holder, 0) - count
            if left > 0:
                self.holders[holder] = left
            else:
                self.holders.pop(holder, None)
            self.cond.notify_all()

    def poke(self) -> None:
        """An upload finished: a waiter may find room once its file reaps it."""
        with self.cond:
            self.cond.notify_all()

    def held(self, holder: Holder) -> int:
        with self.cond:
            return self.holders.get(holder, 0)

    def wait(self, count: int, holder: Holder) -> None:
        """Until ``count`` more bytes fit (the caller then tries ``take`` again): ask the
        other holders to store their buffers, round after round. ``holder`` holds nothing
        (it stored its own first), so it blocks nobody."""
        started = time.monotonic()
        while True:
            with self.cond:
                if self.used + count <= self.capacity:
                    return
                others = [h for h in self.holders if h is not holder]
            for other in others:
                other.relieve()
            with self.cond:
                if self.used + count <= self.capacity:
                    return
                if time.monotonic() - started > self.deadline:
                    raise errors.NoMemory(
                        f"the write-back budget ({self.capacity >> 20} MiB) stayed full for "
                        f"{self.deadline:.0f}s: uploads are not finishing")
                self.cond.wait(POLL)


class ReadBuffers:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        # a chunk id -> its bytes; (ChunkRef, block number) -> a block's: LRU first
        self.entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self.used = 0  # bytes in entries plus reservations
        self.peak = 0
        self.released = 0  # bytes of entries dropped, ever

    def get(self, chunk_id: Hashable) -> bytes | None:
        with self.lock:
            data = self.entries.get(chunk_id)
            if data is not None:
                self.entries.move_to_end(chunk_id)
            return data

    def _make_room(self, count: int) -> bool:
        """Drop least recently used entries until ``count`` more bytes fit. Lock held."""
        while self.used + count > self.capacity and self.entries:
            _cid, old = self.entries.popitem(last=False)
            self.used -= len(old)
            self.released += len(old)
        return self.used + count <= self.capacity

    def put(self, chunk_id: Hashable, data: bytes, reserved: int = 0) -> None:
        """Keep ``data`` (in place of ``reserved`` bytes a read ahead reserved for it)."""
        with self.lock:
            self.used -= reserved
            old = self.entries.pop(chunk_id, None)
            if old is not None:
                self.used -= len(old)
            if self._make_room(len(data)):
                self.entries[chunk_id] = data
                self.used += len(data)
                self.peak = max(self.peak, self.used)

    def reserve(self, count: int) -> bool:
        """Room for a read ahead of ``count`` bytes (older entries make way). -> False if
        reservations already fill the buffers: then it is not worth reading ahead."""
        with self.lock:
            if not self._make_room(count):
                return False
            self.used += count
            self.peak = max(self.peak, self.used)
            return True

    def unreserve(self, count: int) -> None:
        with self.lock:
            self.used -= count

    def forget(self, chunk_ids: Iterable[Hashable]) -> None:
        with self.lock:
            for cid in chunk_ids:
                old = self.entries.pop(cid, None)
                if old is not None:
                    self.used -= len(old)
                    self.released += len(old)

"""The read side of a DfsFile (dfs.client.files): a stored chunk's bytes, from the client's
shared read buffers or from its workers, and the next chunks read ahead on sequential access.

A chunk read goes into the read buffers (dfs.client.memory.ReadBuffers) under its chunk id;
the ids one file put there are forgotten when it lets go (``let_go``, at close). A chunk no
replica of the open's layout has is looked up once more at the master (copies move: a
worker came back and a repaired copy was dropped, one was drained). Read ahead takes room
in the read buffers first and skips when there is none; a failed read ahead is left for
the read itself to meet (and report).

Random reads (one that does not start near where the last one ended) load only the 64 KiB
blocks they touch (``blocks``), each checked against the CRC32C its worker stored at
upload, instead of the whole chunk: a 4 KiB read costs a block, not 4 MiB. The blocks are
kept in the read buffers too, under (ChunkRef, block number): a rewritten chunk is a new
ChunkRef, so an old block is never served for it.

Not thread-safe on its own: its DfsFile calls it under the file's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Protocol

from dfs import errors
from dfs.client.memory import ReadBuffers
from dfs.client.transfer import Transfer
from dfs.config import BLOCK_SIZE, MIB
from dfs.wire import FileLayout, ReadChunk

PREFETCH_CHUNKS = 4  # chunks one file reads ahead at most on sequential access
SEQUENTIAL_SLACK = MIB // 4  # a read starting this near the last one's end is sequential

log = logging.getLogger("dfs.client.files")  # its DfsFile's log


class ReadClient(Protocol):
    """What reading needs of the client (DfsClient, or the mount's Committer around one)."""

    transfer: Transfer
    chunk_pool: ThreadPoolExecutor
    read_buffers: ReadBuffers

    def layout(self, path: str) -> FileLayout: ...


class ChunkReader:
    def __init__(self, client: ReadClient, path: str) -> None:
        self.client = client
        self.path = path
        self.read_ids: set[Hashable] = set()  # what this file put in the read buffers
        self.prefetching: dict[int, tuple[Future[None], int]] = {}  # index -> (task, bytes)
        self.last_read_index = -1
        self.read_end = 0  # the file offset where the last read ended

    def stored(self, index: int, chunk: ReadChunk) -> bytes:
        """The bytes of ``chunk``, chunk ``index`` of the file: from the read buffers (after
        its read ahead, if one is running), else loaded and kept there."""
        cid = chunk.ref.chunk_id
        data = self.client.read_buffers.get(cid)
        if data is None:
            ahead = self.prefetching.pop(index, None)
            if ahead is not None:
                ahead[0].result()
                data = self.client.read_buffers.get(cid)
            if data is None:
                data = self._load(chunk)
                self.client.read_buffers.put(cid, data)
            self.read_ids.add(cid)
        return data

    def sequential(self, offset: int) -> bool:
        """Whether a read at ``offset`` continues the last one (the kernel's read ahead
        may come a little out of order)."""
        return abs(offset - self.read_end) <= SEQUENTIAL_SLACK

    def ended_at(self, offset: int) -> None:
        self.read_end = offset

    def blocks(self, index: int, chunk: ReadChunk, start: int, count: int) -> bytes:
        """``count`` bytes at ``start`` of a stored chunk, for a random read: from the whole
        chunk if it is here already, else from the blocks they touch (kept, or loaded in
        one call)."""
        whole = self.client.read_buffers.get(chunk.ref.chunk_id)
        if whole is None and index in self.prefetching:
            return self.stored(index, chunk)[start:start + count]
        if whole is not None:
            return whole[start:start + count]
        first, last = start // BLOCK_SIZE, (start + count - 1) // BLOCK_SIZE
        buffers = self.client.read_buffers
        found = {b: buffers.get((chunk.ref, b)) for b in range(first, last + 1)}
        missing = [b for b, data in found.items() if data is None]
        if missing:
            data = self.client.transfer.load_blocks(chunk, missing[0],
                                                    missing[-1] - missing[0] + 1)
            for n, block in enumerate(range(missing[0], missing[-1] + 1)):
                piece = found[block] = data[n * BLOCK_SIZE:(n + 1) * BLOCK_SIZE]
                buffers.put((chunk.ref, block), piece)
                self.read_ids.add((chunk.ref, block))
        offset = start - first * BLOCK_SIZE
        return b"".join(found[b] or b"" for b in range(first, last + 1))[offset:offset + count]

    def _load(self, chunk: ReadChunk) -> bytes:
        """A chunk's bytes; if no replica the layout named has them, the master is asked
        once more where the chunk is now and those replicas are tried."""
        try:
            return self.client.transfer.load_chunk(chunk)
        except errors.DataLost:
            moved = self._relocated(chunk)
            if moved is None:
                raise
            log.info("%s: chunk %d moved since the open: reading it where it is now",
                     self.path, chunk.ref.chunk_id)
            return self.client.transfer.load_chunk(moved)

    def _relocated(self, chunk: ReadChunk) -> ReadChunk | None:
        """The same chunk (id and version) with the replicas the master knows now, or None
        (the file changed meanwhile, or nothing new is known)."""
        try:
            layout = self.client.layout(self.path)
        except errors.DfsError:
            return None
        for fresh in layout.chunks:
            if fresh.ref == chunk.ref and set(fresh.replicas) != set(chunk.replicas):
                return fresh
        return None

    def was_read(self, index: int, following: list[ReadChunk | None]) -> None:
        """Chunk ``index`` was read; if the one before it was the last read (sequential
        access), read ``following`` ahead: the stored chunks of ``index + 1`` on (at most
        PREFETCH_CHUNKS), None where there is nothing to fetch (a hole, or bytes the file
        holds itself). The next chunk is read ahead whenever the read buffers can make
        room for it; the ones after it only into room that is free (they push out nothing
        another file read), so many readers at once share the buffers as before."""
        if index == self.last_read_index + 1:
            for ahead, chunk in enumerate(following[:PREFETCH_CHUNKS], start=index + 1):
                if not self._prefetch(ahead, chunk, evict=ahead == index + 1):
                    break
        self.last_read_index = index

    def _prefetch(self, index: int, chunk: ReadChunk | None, evict: bool) -> bool:
        """Read ``chunk`` (chunk ``index``) ahead. -> False when the read buffers have
        no room for it (then there is none for the ones after it either)."""
        for i, (task, _count) in list(self.prefetching.items()):
            if task.done():
                del self.prefetching[i]
        buffers = self.client.read_buffers
        if (chunk is None or index in self.prefetching
                or len(self.prefetching) >= PREFETCH_CHUNKS
                or buffers.get(chunk.ref.chunk_id) is not None):
            return True
        count = chunk.ref.length
        if not evict and buffers.used + count > buffers.capacity:
            return False  # free room only, beyond the next chunk
        if not buffers.reserve(count):
            return False  # the read buffers are all spoken for: no read ahead
        self.read_ids.add(chunk.ref.chunk_id)
        task = self.client.chunk_pool.submit(self._read_ahead, chunk)
        self.prefetching[index] = (task, count)
        return True

    def _read_ahead(self, chunk: ReadChunk) -> None:
        """Load a chunk into the read buffers, in the room reserved for it. A failure is
        left for the read itself to meet (and report)."""
        try:
            data = self.client.transfer.load_chunk(chunk)
        except errors.DfsError:
            self.client.read_buffers.unreserve(chunk.ref.length)
            return
        except BaseException:
            self.client.read_buffers.unreserve(chunk.ref.length)
            raise
        self.client.read_buffers.put(chunk.ref.chunk_id, data, reserved=chunk.ref.length)

    def let_go(self) -> None:
        """Stop reading ahead and forget every chunk this file put in the read buffers."""
        running = []
        for task, count in self.prefetching.values():
            if task.cancel():
                self.client.read_buffers.unreserve(count)
            else:
                running.append(task)
        wait_all(running)
        self.prefetching.clear()
        self.client.read_buffers.forget(self.read_ids)
        self.read_ids.clear()

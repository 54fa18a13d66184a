"""DfsFile: an open DFS file with positional and streaming reads and writes.

Close-to-open consistency, as NFS and JuiceFS: a reader sees a file as it was committed
when it was opened; a writer's changes reach the master only on ``flush()``/``close()``,
which wait for every upload and raise if anything failed (nothing is dropped silently).

Writes go into per-chunk buffers; a buffer that fills up while writing sequentially is
uploaded in the background right away (at most ``parallel_chunks`` at once per file, then
the writer waits: memory stays bounded). Chunks are immutable: changing part of one
stores a new chunk, and the commit swaps the file's chunk list in one journal entry.

Reads keep the last few chunks in memory and prefetch the next one on sequential access.

Thread-safe: one lock per file (the mount may call from several threads).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from dfs import chunks, errors, wire
from dfs.client.transfer import Transfer
from dfs.config import ClientConfig
from dfs.wire import FileLayout, PutResult, ReadChunk, WrittenChunk

MEMORY_CHUNKS = 3
PREFETCH_CHUNKS = 2  # chunks read ahead at most on sequential access
BytesLike = bytes | bytearray | memoryview


class FileClient(Protocol):
    """What a DfsFile needs of its client (DfsClient, or the mount's Committer around one)."""

    config: ClientConfig
    transfer: Transfer
    chunk_pool: ThreadPoolExecutor

    def commit(self, ino: int, written: list[WrittenChunk], size: int) -> PutResult: ...


class DfsFile:
    def __init__(self, client: FileClient, path: str, layout: FileLayout,
                 writable: bool) -> None:
        self.client = client
        self.path = path
        self.ino = layout.stat.ino
        self.chunk_size = layout.chunk_size
        self.size = layout.stat.size
        self.writable = writable
        # ReadChunk per index: the current content (None: a hole)
        self.refs: list[ReadChunk | None] = list(layout.chunks)
        self.new: set[int] = set()  # indices whose ref was stored by this handle, not committed
        self.buffers: dict[int, bytearray] = {}  # changed, not yet uploaded
        self.uploads: dict[int, tuple[bytes, Future[ReadChunk]]] = {}
        self.dirty = False
        self.error: errors.DfsError | None = None
        self.pos = 0
        self.closed = False
        self.lock = threading.RLock()
        self.memory: OrderedDict[int, bytes] = OrderedDict()  # recently read
        self.prefetching: dict[int, Future[bytes]] = {}
        self.last_read_index = -1

    # --- streaming interface ------------------------------------------------------------

    def read(self, size: int | None = -1) -> bytes:
        with self.lock:
            if size is None or size < 0:
                size = max(0, self.size - self.pos)
            data = self.pread(self.pos, size)
            self.pos += len(data)
            return data

    def write(self, data: BytesLike) -> int:
        with self.lock:
            self.pwrite(self.pos, data)
            self.pos += len(data)
            return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        with self.lock:
            base = {0: 0, 1: self.pos, 2: self.size}[whence]
            if base + offset < 0:
                raise errors.InvalidArgument("negative seek position")
            self.pos = base + offset
            return self.pos

    def tell(self) -> int:
        return self.pos

    def __enter__(self) -> DfsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- positional reads ---------------------------------------------------------------

    def pread(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise errors.InvalidArgument("negative offset or size")
        with self.lock:
            self._check_open()
            end = min(self.size, offset + size)
            parts = []
            for index, start, count in chunks.chunk_spans(offset, max(0, end - offset),
                                                           self.chunk_size):
                data = self._chunk_bytes(index)
                piece = data[start:start + count]
                if len(piece) < count:  # a hole left by a grow: zeros are its real content
                    piece = bytes(piece) + bytes(count - len(piece))
                parts.append(piece)
            return b"".join(parts)

    def _chunk_bytes(self, index: int) -> bytes | bytearray:
        if index in self.buffers:
            return self.buffers[index]
        if index in self.uploads:
            return self.uploads[index][0]
        if index in self.memory:
            self.memory.move_to_end(index)
            data = self.memory[index]
        elif index in self.prefetching:
            data = self.prefetching.pop(index).result()
        elif index < len(self.refs) and (ref := self.refs[index]) is not None:
            data = self.client.transfer.load_chunk(ref)
        else:
            return b""  # beyond the end, or a hole: reads as zeros
        self._remember(index, data)
        if index == self.last_read_index + 1:
            self._prefetch(index + 1)
        self.last_read_index = index
        return data

    def _remember(self, index: int, data: bytes) -> None:
        self.memory[index] = data
        self.memory.move_to_end(index)
        while len(self.memory) > MEMORY_CHUNKS:
            self.memory.popitem(last=False)

    def _prefetch(self, index: int) -> None:
        ref = self.refs[index] if index < len(self.refs) else None
        if (ref is not None and index not in self.memory and index not in self.buffers
                and index not in self.prefetching
                and len(self.prefetching) < PREFETCH_CHUNKS):
            self.prefetching[index] = self.client.chunk_pool.submit(
                self.client.transfer.load_chunk, ref)

    # --- positional writes --------------------------------------------------------------

    def pwrite(self, offset: int, data: BytesLike) -> int:
        if not self.writable:
            raise errors.PermissionDenied(f"{self.path} is not open for writing")
        if offset < 0:
            raise errors.InvalidArgument("negative offset")
        view = memoryview(data)
        with self.lock:
            self._check_open()
            done = 0
            for index, start, count in chunks.chunk_spans(offset, len(view), self.chunk_size):
                buf = self._buffer(index)
                if len(buf) < start:
                    buf.extend(bytes(start - len(buf)))
                buf[start:start + count] = view[done:done + count]
                done += count
                if len(buf) == self.chunk_size and start + count == self.chunk_size:
                    self._upload(index)  # full and written to its end: send it now
            self.size = max(self.size, offset + len(view))
            self.dirty = True
            return len(view)

    def _buffer(self, index: int) -> bytearray:
        buf = self.buffers.get(index)
        if buf is None:
            buf = self.buffers[index] = bytearray(self._chunk_bytes(index))
            self.memory.pop(index, None)
        return buf

    def _upload(self, index: int) -> None:
        self._raise_failed_upload()
        if index in self.uploads:
            self._finish_upload(index)  # an older version of this chunk is still in flight
        while len(self.uploads) >= self.client.config.parallel_chunks:
            self._finish_upload(next(iter(self.uploads)))
        data = bytes(self.buffers.pop(index))
        future = self.client.chunk_pool.submit(self.client.transfer.store_chunk, self.path, data)
        self.uploads[index] = (data, future)

    def _finish_upload(self, index: int) -> None:
        data, future = self.uploads[index]
        try:
            stored = future.result()
        except errors.DfsError as exc:
            self.error = exc
            del self.uploads[index]
            raise
        del self.uploads[index]
        while len(self.refs) <= index:
            self.refs.append(None)
        self.refs[index] = stored
        self.new.add(index)

    def _raise_failed_upload(self) -> None:
        if self.error is not None:
            raise errors.like(self.error, f"an earlier write to {self.path} failed: {self.error}")

    def truncate(self, size: int) -> None:
        if not self.writable:
            raise errors.PermissionDenied(f"{self.path} is not open for writing")
        if size < 0:
            raise errors.InvalidArgument("negative size")
        with self.lock:
            self._check_open()
            if size < self.size:
                keep = chunks.chunk_count(size, self.chunk_size)
                self._wait_uploads()
                for index in list(self.buffers):
                    if index >= keep:
                        del self.buffers[index]
                del self.refs[keep:]
                self.new = {i for i in self.new if i < keep}
                self.memory.clear()
                if size % self.chunk_size and keep:
                    last = keep - 1
                    buf = self._buffer(last)
                    del buf[size - last * self.chunk_size:]
            self.size = size
            self.dirty = True

    # --- commit --------------------------------------------------------------------------

    def _wait_uploads(self) -> None:
        while self.uploads:
            self._finish_upload(next(iter(self.uploads)))

    def _normalise(self) -> None:
        """Make every chunk but the last full (zeros fill holes), and the last end at size."""
        count = chunks.chunk_count(self.size, self.chunk_size)
        del self.refs[count:]
        for index in list(self.buffers):
            if index >= count:
                del self.buffers[index]
        for index in range(count):
            want = min(self.chunk_size, self.size - index * self.chunk_size)
            buf = self.buffers.get(index)
            ref = self.refs[index] if index < len(self.refs) else None
            if buf is None and ref is not None and ref.ref.length == want:
                continue
            if buf is None:
                buf = self._buffer(index)
            if len(buf) < want:
                buf.extend(bytes(want - len(buf)))
            del buf[want:]

    def flush(self) -> None:
        """Upload what is buffered and commit; raises if any part failed."""
        with self.lock:
            self._check_open()
            if not self.dirty:
                return
            self._raise_failed_upload()
            self._wait_uploads()
            self._normalise()
            for index in sorted(self.buffers):
                self._upload(index)
            self._wait_uploads()
            written = []
            for index, ref in enumerate(self.refs):
                assert ref is not None, "_normalise stored every hole"
                written.append(wire.written_from_read(ref, index in self.new))
            self.client.commit(self.ino, written, self.size)
            self.new.clear()
            self.dirty = False

    fsync = flush

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                self.flush()
            finally:
                self.closed = True
                for future in self.prefetching.values():
                    future.cancel()
                self.memory.clear()

    def _check_open(self) -> None:
        if self.closed:
            raise errors.InvalidArgument("I/O on a closed file")

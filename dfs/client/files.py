"""DfsFile: an open DFS file with positional and streaming reads and writes.

Close-to-open consistency, as NFS and JuiceFS: a reader sees a file as it was committed
when it was opened; a writer's changes reach the master only on ``flush()``/``close()``,
which wait for every upload and raise if anything failed (nothing is dropped silently).

Sparse: the file's chunks are a map from index to chunk (dfs.wire.ChunkRef). A missing
index is a hole: it reads as zeros without asking any worker, and so does the rest of a
chunk shorter than ``chunk_size``. Truncating up, or writing past the end, stores nothing
for the gap; a chunk that is all zeros when it is stored is dropped (a hole again), and
a chunk's trailing zeros are not stored.

Writes go into per-chunk buffers; a buffer written to its chunk's end is uploaded in the
background at once (at most ``parallel_chunks`` at once per file). Chunks are immutable:
changing part of one stores a new chunk, and the commit swaps the file's chunk list in
one journal entry.

Memory (dfs.client.memory): the buffers and uploads of every file of one client (a whole
mount) share one write-back budget; when it is full a writer stores buffered chunks,
partial ones too, and waits for uploads instead of growing. Chunks read, and the next
ones read ahead on sequential access, live in the client's shared read buffers and are
forgotten at close (the read side: dfs.client.reader). A read returns at most the
budget's worth at once (a short read, as POSIX allows); ``read()`` of everything refuses
with NoMemory beyond that.

Thread-safe: one lock per file (the mount may call from several threads).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Protocol

from dfs import chunks, errors, wire
from dfs.chunks import MAX_FILE_SIZE
from dfs.client.memory import WriteBudget
from dfs.client.reader import PREFETCH_CHUNKS, ChunkReader, ReadClient
from dfs.client.renewer import Renewer
from dfs.client.transfer import Pieces
from dfs.config import ClientConfig
from dfs.wire import FileLayout, PutResult, ReadChunk, WrittenChunk

SEEK_DATA, SEEK_HOLE = 3, 4  # os.SEEK_DATA, os.SEEK_HOLE on Linux
BytesLike = bytes | bytearray | memoryview

log = logging.getLogger(__name__)


class FileClient(ReadClient, Protocol):
    """What a DfsFile needs of its client (DfsClient, or the mount's Committer around one):
    what reading needs (dfs.client.reader), and for writing these."""

    config: ClientConfig
    write_budget: WriteBudget
    renewer: Renewer

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
        self.budget = client.write_budget
        self.max_request = client.config.write_back_bytes  # bytes one read returns at most
        self.refs: dict[int, ReadChunk] = {c.ref.chunk_index: c for c in layout.chunks}  # sparse
        self.new: set[int] = set()  # indices whose ref was stored by this handle, not committed
        self.buffers: dict[int, bytearray] = {}  # changed, not yet uploaded
        self.uploads: dict[int, tuple[Pieces, Future[ReadChunk]]] = {}
        self.dirty = False
        self.error: errors.DfsError | None = None
        self.pos = 0
        self.closed = False
        self.lock = threading.RLock()
        self.reader = ChunkReader(client, path)  # stored chunks: read buffers, read ahead
        self.renewed = time.monotonic()  # when the new chunks were last kept pending

    # --- streaming interface ------------------------------------------------------------

    def read(self, size: int | None = -1) -> bytes:
        with self.lock:
            if size is None or size < 0:
                size = max(0, self.size - self.pos)
                if size > self.max_request:
                    raise errors.NoMemory(
                        f"{self.path}: {size} bytes are left, more than one read may hold "
                        f"({self.max_request}): read it in pieces")
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
            if whence in (SEEK_DATA, SEEK_HOLE):
                self.pos = self.seek_data(offset) if whence == SEEK_DATA else self.seek_hole(offset)
                return self.pos
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

    # --- where the data is --------------------------------------------------------------

    def _lengths(self) -> dict[int, int]:
        """{index: bytes} of every chunk with content (stored, in flight or buffered). Copies
        each table first (atomic under the GIL), so it may run without the lock."""
        lengths = {i: c.ref.length for i, c in self.refs.copy().items()}
        lengths.update((i, len(data)) for i, (data, _f) in self.uploads.copy().items())
        lengths.update((i, len(buf)) for i, buf in self.buffers.copy().items())
        return lengths

    def stored(self) -> int:
        """Bytes the file's content takes (st_blocks): holes cost nothing."""
        return sum(self._lengths().values())

    def seek_data(self, offset: int) -> int:
        """lseek SEEK_DATA: the first offset >= ``offset`` with content."""
        with self.lock:
            found = chunks.find_data(self._lengths(), offset, self.size, self.chunk_size)
        if found is None:
            raise errors.NoSuchOffset(f"{self.path}: no data at or after offset {offset}")
        return found

    def seek_hole(self, offset: int) -> int:
        """lseek SEEK_HOLE: the first offset >= ``offset`` in a hole (the end is one)."""
        with self.lock:
            found = chunks.find_hole(self._lengths(), offset, self.size, self.chunk_size)
        if found is None:
            raise errors.NoSuchOffset(f"{self.path}: offset {offset} is past the end")
        return found

    # --- positional reads ---------------------------------------------------------------

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at the end, and at most the write-back
        budget's worth at once); holes read as zeros."""
        if offset < 0 or size < 0:
            raise errors.InvalidArgument("negative offset or size")
        with self.lock:
            self._check_open()
            end = min(self.size, offset + min(size, self.max_request))
            sequential = self.reader.sequential(offset)
            parts = []
            for index, start, count in chunks.chunk_spans(offset, max(0, end - offset),
                                                           self.chunk_size):
                chunk = self.refs.get(index)
                if sequential or chunk is None or index in self.buffers \
                        or index in self.uploads:
                    piece = self._chunk_bytes(index)[start:start + count]
                else:  # a random read: the blocks it touches, not the whole chunk
                    piece = self.reader.blocks(index, chunk, start,
                                               min(count, max(0, chunk.ref.length - start)))
                if len(piece) < count:  # a hole, or past a short chunk's end: zeros
                    piece = bytes(piece) + bytes(count - len(piece))
                parts.append(piece)
            self.reader.ended_at(max(offset, end))
            return b"".join(parts)

    def _content(self, index: int) -> bytes | bytearray:
        """Chunk ``index`` as this handle sees it (b"" for a hole: no worker is asked)."""
        if index in self.buffers:
            return self.buffers[index]
        if index in self.uploads:
            return self.uploads[index][0].joined()
        chunk = self.refs.get(index)
        if chunk is None:
            return b""
        return self.reader.stored(index, chunk)

    def _chunk_bytes(self, index: int) -> bytes | bytearray:
        data = self._content(index)
        following = [None if ahead in self.buffers or ahead in self.uploads  # here already
                     else self.refs.get(ahead)
                     for ahead in range(index + 1, index + 1 + PREFETCH_CHUNKS)]
        self.reader.was_read(index, following)
        return data

    # --- positional writes --------------------------------------------------------------

    def pwrite(self, offset: int, data: BytesLike) -> int:
        if not self.writable:
            raise errors.PermissionDenied(f"{self.path} is not open for writing")
        if offset < 0:
            raise errors.InvalidArgument("negative offset")
        view = memoryview(data)
        if offset + len(view) > MAX_FILE_SIZE:
            raise errors.FileTooLarge(f"{self.path}: a write past the largest file size")
        with self.lock:
            self._check_open()
            done = 0
            for index, start, count in chunks.chunk_spans(offset, len(view), self.chunk_size):
                buf = self._buffer(index, start + count)
                if len(buf) < start:
                    buf.extend(bytes(start - len(buf)))
                buf[start:start + count] = view[done:done + count]
                done += count
                if start + count == self.chunk_size:
                    self._upload(index)  # written to its end: send it now
            self.size = max(self.size, offset + len(view))
            self.dirty = True
            return len(view)

    def _stored_length(self, index: int) -> int:
        if index in self.uploads:
            return len(self.uploads[index][0])
        chunk = self.refs.get(index)
        return chunk.ref.length if chunk is not None else 0

    def _buffer(self, index: int, end: int) -> bytearray:
        """The buffer of chunk ``index``, with room taken from the budget for it to reach
        ``end`` bytes (its current content first)."""
        while True:
            buf = self.buffers.get(index)
            have = len(buf) if buf is not None else 0
            base = have if buf is not None else self._stored_length(index)
            grow = max(base, end) - have
            if self.budget.take(grow, self):
                break
            self._make_room(grow)
        if buf is None:
            try:
                buf = self.buffers[index] = bytearray(self._content(index))
            except BaseException:
                self.budget.give(grow, self)
                raise
        return buf

    def _make_room(self, count: int) -> None:
        """The budget is full: store this file's buffers and wait for its uploads; if this
        file holds nothing, wait for the others (dfs.client.memory.WriteBudget.wait)."""
        if self.buffers or self.uploads:
            self._spill(wait=True)
        else:
            self.budget.wait(count, self)

    def _spill(self, wait: bool) -> None:
        """Upload every buffer (partial chunks too); with ``wait``, wait for every upload."""
        self._reap()
        for index in sorted(self.buffers):
            if not wait and len(self.uploads) >= self.client.config.parallel_chunks:
                break
            self._upload(index)
        if wait:
            self._wait_uploads()

    def relieve(self) -> None:
        """The budget is short (another file's writer asks): store this file's buffers,
        unless it is busy; never blocks. A failure is kept for this file's next flush."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            self._spill(wait=False)
        except errors.DfsError:
            pass  # in self.error: this file's own flush reports it
        finally:
            self.lock.release()

    def _upload(self, index: int) -> None:
        self._raise_failed_upload()
        if index in self.uploads:
            self._finish_upload(index)  # an older version of this chunk is still in flight
        while len(self.uploads) >= self.client.config.parallel_chunks:
            self._finish_upload(next(iter(self.uploads)))
        data = self.buffers.pop(index)
        if chunks.is_zero(data):  # a hole: nothing to store
            self.budget.give(len(data), self)
            self.refs.pop(index, None)
            self.new.discard(index)
            return
        kept = chunks.data_length(data)  # trailing zeros read as zeros: not stored
        if kept < len(data):
            self.budget.give(len(data) - kept, self)
            del data[kept:]
        # cut into the pieces every replica is sent; the buffer goes (held once in flight)
        pieces = Pieces(data, self.client.transfer.piece_size)
        future = self.client.chunk_pool.submit(self.client.transfer.store_chunk, self.path,
                                               index, pieces)
        future.add_done_callback(lambda _f: self.budget.poke())
        self.uploads[index] = (pieces, future)
        self.client.renewer.watch(self)  # until it commits, its new chunks must be kept

    def _finish_upload(self, index: int) -> None:
        data, future = self.uploads[index]
        try:
            stored = future.result()
        except errors.DfsError as exc:
            self.error = exc
            raise
        finally:
            del self.uploads[index]
            self.budget.give(len(data), self)
        self.refs[index] = stored
        self.new.add(index)

    def keep_new_chunks(self, force: bool = False) -> None:
        """Renew the uploaded, uncommitted chunks every ``renew_every`` seconds, so a file
        open for longer than the master's gc_grace keeps them (dfs/client/renewer.py calls
        this with ``force`` from its thread: it gives up if the file is busy)."""
        if not self.lock.acquire(blocking=not force):
            return
        try:
            self._reap()  # uploads that finished meanwhile are new chunks too
            now = time.monotonic()
            if not self.new or (not force and
                                now - self.renewed < self.client.config.renew_every):
                return
            self.renewed = now
            ids = sorted(self.refs[i].ref.chunk_id for i in self.new if i in self.refs)
            try:
                self.client.transfer.renew(ids)
            except errors.DfsError as exc:  # tried again later; the commit decides
                log.warning("%s: could not keep its new chunks pending: %s", self.path, exc)
        finally:
            self.lock.release()

    def _reap(self) -> None:
        """Take in the uploads that have finished (their bytes go back to the budget)."""
        for index in [i for i, (_d, f) in self.uploads.items() if f.done()]:
            try:
                self._finish_upload(index)
            except errors.DfsError:
                pass  # in self.error

    def _raise_failed_upload(self) -> None:
        if self.error is not None:
            raise errors.like(self.error, f"an earlier write to {self.path} failed: {self.error}")

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes or extend it with a hole (which stores nothing)."""
        if not self.writable:
            raise errors.PermissionDenied(f"{self.path} is not open for writing")
        if size < 0:
            raise errors.InvalidArgument("negative size")
        if size > MAX_FILE_SIZE:
            raise errors.FileTooLarge(f"{self.path}: {size} is past the largest file size")
        with self.lock:
            self._check_open()
            if size < self.size:
                self._cut(size)
            self.size = size
            self.dirty = True

    def _cut(self, size: int) -> None:
        self._wait_uploads()
        keep = chunks.chunk_count(size, self.chunk_size)  # indices below this survive
        for index in [i for i in self.buffers if i >= keep]:
            self.budget.give(len(self.buffers.pop(index)), self)
        for index in [i for i in self.refs if i >= keep]:
            del self.refs[index]
        self.new = {i for i in self.new if i < keep}
        last = keep - 1
        tail = size - last * self.chunk_size  # bytes of the last chunk that stay
        if keep and (len(self.buffers[last]) if last in self.buffers
                     else self._stored_length(last)) > tail:
            buf = self._buffer(last, 0)
            self.budget.give(len(buf) - tail, self)
            del buf[tail:]

    # --- commit --------------------------------------------------------------------------

    def _wait_uploads(self) -> None:
        while self.uploads:
            self._finish_upload(next(iter(self.uploads)))

    def flush(self) -> None:
        """Upload what is buffered and commit; raises if any part failed."""
        with self.lock:
            self._check_open()
            if not self.dirty:
                return
            self._raise_failed_upload()
            for index in sorted(self.buffers):
                self._upload(index)
            self._wait_uploads()
            written = [wire.written_from_read(self.refs[i], i in self.new)
                       for i in sorted(self.refs)]
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
            except errors.DfsError:
                self._give_back_new()  # never committed: their room is free again now
                raise
            finally:
                self.closed = True
                self._let_go()

    def _give_back_new(self) -> None:
        """After a failed close: hand the uploaded, uncommitted chunks back to the master
        now instead of holding their room (on a full cluster, say) until its gc_grace."""
        self._reap()
        ids = sorted(self.refs[i].ref.chunk_id for i in self.new if i in self.refs)
        self.new.clear()
        if ids:
            try:
                self.client.transfer.abandon(ids)
            except errors.DfsError as exc:
                log.info("%s: uncommitted chunks left for the master to free: %s",
                         self.path, exc)

    def _let_go(self) -> None:
        """Give back every byte this file holds: buffers, uploads, read buffers."""
        for index in list(self.uploads):
            try:
                self._finish_upload(index)
            except errors.DfsError:
                pass  # flush has raised already
        for buf in self.buffers.values():
            self.budget.give(len(buf), self)
        self.buffers.clear()
        self.reader.let_go()

    def _check_open(self) -> None:
        if self.closed:
            raise errors.InvalidArgument("I/O on a closed file")

"""Whole files in one go: ``put`` (one commit for all chunks) and ``get`` (chunks ahead).

Both keep up to ``parallel_chunks`` chunks in flight on the client's chunk pool; each
chunk's bytes move through dfs.client.transfer. DfsClient's put/get methods call these.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import IO, TYPE_CHECKING

from dfs import chunks, errors, wire
from dfs.wire import PutResult, ReadChunk

if TYPE_CHECKING:
    from dfs.client.client import DfsClient

log = logging.getLogger(__name__)

ALLOCATE_BATCH = 64  # chunk ids asked for at once by a put of several chunks
PARTIAL_SUFFIX = ".dfs-partial"  # a download in progress (the backup watcher ignores these)

Progress = Callable[[int], object]


def put_stream(client: DfsClient, stream: IO[bytes], remote: str, size: int, mode: int,
               overwrite: bool, progress: Progress | None) -> PutResult:
    """Store ``size`` bytes read from ``stream`` as ``remote`` in one commit.

    Up to ``parallel_chunks`` chunks are in flight; on any failure the chunks already
    stored are handed back to the master (abandon) so their space is freed at once.
    A chunk of zeros is a hole and trailing zeros are left out: neither is stored (a
    sparse file stays sparse)."""
    chunk_size = client.chunk_size
    count = chunks.chunk_count(size, chunk_size)
    allocated: list[int] = []
    futures: list[Future[ReadChunk]] = []
    stored: list[ReadChunk] = []
    targets: list[wire.WriteTarget] = []

    def collect(future: Future[ReadChunk]) -> None:
        stored.append(future.result())
        if progress:
            progress(stored[-1].ref.length)
    try:
        for index in range(count):
            want = min(chunk_size, size - index * chunk_size)
            data = stream.read(want)
            if len(data) != want:
                raise errors.InvalidArgument(f"{remote}: the source changed size while reading")
            kept = 0 if chunks.is_zero(data) else chunks.data_length(data)
            if kept < want:  # zeros at the end (or all zeros) read as zeros: not stored
                data = data[:kept]
                if progress:
                    progress(want - kept)
                if not kept:
                    continue
            if not targets and count > 1:  # one chunk: from the reserved ids
                targets = wire.targets_from_wire(client.master.call(
                    "allocate", remote, min(ALLOCATE_BATCH, count - index), ()))
                allocated.extend(t.chunk_id for t in targets)
            futures.append(client.chunk_pool.submit(client.transfer.store_chunk, remote, index,
                                                    data, targets.pop(0) if targets else None))
            if len(futures) >= client.config.parallel_chunks:
                collect(futures.pop(0))
        while futures:
            collect(futures.pop(0))
        written = [wire.written_from_read(chunk, True)
                   for chunk in sorted(stored, key=lambda c: c.ref.chunk_index)]
        result = wire.put_result_from_wire(client.master.call(
            "put", remote, mode, wire.written_to_wire(written), size, overwrite))
    except BaseException:
        for future in futures:
            future.cancel()
        _abandon(client, allocated + [c.ref.chunk_id for c in stored])
        raise
    _abandon(client, [t.chunk_id for t in targets])  # allocated for chunks that were holes
    if result.under_replicated:
        log.warning("%s: %d chunk(s) stored with fewer copies than wanted", remote,
                    result.under_replicated)
    return result


def _abandon(client: DfsClient, chunk_ids: list[int]) -> None:
    if not chunk_ids:
        return
    try:
        client.master.call("abandon", tuple(sorted(set(chunk_ids))))
    except errors.DfsError as exc:
        log.debug("could not hand back chunks (the master frees them later): %s", exc)


def put_file(client: DfsClient, local: str, remote: str, mode: int | None, overwrite: bool,
             progress: Progress | None) -> PutResult:
    """Upload local file ``local``; ``mode`` None: the local owner bits only (private)."""
    try:
        with open(local, "rb") as f:
            st = os.fstat(f.fileno())
            if not os.path.isfile(local):
                raise errors.InvalidArgument(f"{local} is not a regular file")
            return put_stream(client, f, remote, st.st_size,
                              mode if mode is not None else st.st_mode & 0o700,
                              overwrite, progress)
    except FileNotFoundError:
        raise errors.FileNotFound(f"{local}: no such local file") from None
    except IsADirectoryError:
        raise errors.IsADirectory(f"{local} is a directory") from None
    except PermissionError:
        raise errors.PermissionDenied(f"{local}: permission denied") from None


def _stored(client: DfsClient, layout: wire.FileLayout) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) of each stored chunk of ``layout``, a few downloaded ahead.

    Files larger than half the cache bypass it: they would only push out everything
    else and never be read from it (and writing them costs about 20% of a get)."""
    use_cache = layout.stat.size <= client.config.cache_bytes // 2
    ahead: list[tuple[int, Future[bytes]]] = []
    queue = list(layout.chunks)
    while queue or ahead:
        while queue and len(ahead) < client.config.parallel_chunks:
            chunk = queue.pop(0)
            ahead.append((chunk.ref.chunk_index * layout.chunk_size, client.chunk_pool.submit(
                client.transfer.load_chunk, chunk, use_cache)))
        offset, future = ahead.pop(0)
        yield offset, future.result()


def _zeros(count: int, piece: int) -> Iterator[bytes]:
    """``count`` zero bytes, ``piece`` at a time (a hole: no worker is asked)."""
    if count <= 0:
        return
    full = bytes(min(count, piece))
    while count > 0:
        yield full if count >= len(full) else bytes(count)
        count -= len(full)


def iter_chunks(client: DfsClient, remote: str) -> Iterator[bytes]:
    """Yield a file's bytes chunk by chunk, downloading a few chunks ahead; holes are
    zeros, made here."""
    layout = client.layout(remote)
    pos = 0
    for offset, data in _stored(client, layout):
        yield from _zeros(offset - pos, layout.chunk_size)
        yield data
        pos = offset + len(data)
    yield from _zeros(layout.stat.size - pos, layout.chunk_size)


def get_file(client: DfsClient, remote: str, local: str, progress: Progress | None) -> None:
    """Download ``remote`` to ``local`` (written to a temp file, then renamed)."""
    tmp = f"{local}{PARTIAL_SUFFIX}"
    try:
        layout = client.layout(remote)
        with open(tmp, "wb") as f:  # sparse where the remote file is: holes are skipped
            pos = 0
            for offset, data in _stored(client, layout):
                f.seek(offset)
                f.write(data)
                if progress:
                    progress(offset + len(data) - pos)
                pos = offset + len(data)
            f.truncate(layout.stat.size)
            if progress and layout.stat.size > pos:
                progress(layout.stat.size - pos)
        os.replace(tmp, local)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

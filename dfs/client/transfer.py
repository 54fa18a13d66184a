"""Moving one chunk's bytes between a client and the workers.

Upload: the bytes go to every replica in parallel, in pieces of about 1 MiB (rpyc's sweet
spot), cut once for all of them (``Pieces``) and sent one after another without waiting
for each answer (``WorkerLinks.call_each``; downloads ask for a chunk's pieces the same
way): the next piece travels while the worker stores the last. If a replica fails and
other workers are alive, the chunk is stored again under a new id on workers that did
not fail; only when no other worker can take it is the chunk accepted with fewer copies
(reported as under-replicated, repaired by the master later).

Download: the cache first, then each replica in turn (primary first). Every chunk is
checked against the CRC32C the master recorded; a bad or unreachable replica is skipped,
a corrupt one reported to the master (a hint only: the master has that worker check the
copy again, and only a failure the worker confirms takes the copy out of service). When
every replica fails the read raises DataLost: never zeros.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dfs import chunks, errors, wire
from dfs.client.cache import ChunkCache
from dfs.client.connections import MasterLink, WorkerLinks
from dfs.config import BLOCK_SIZE
from dfs.wire import ReadChunk, Replica, WriteTarget

log = logging.getLogger(__name__)

# Placements tried for one chunk. A fixed count, not a RetryPolicy: each new placement
# avoids every worker that failed before and needs no pause (nothing is waited for, a
# different worker is asked), so more tries would only use up chunk ids on a cluster
# whose workers are failing one after another.
UPLOAD_ATTEMPTS = 3


class Reservations:
    """Chunk ids allocated ahead, a batch at a time, for writes of one chunk (small files,
    the mount's files): one journaled master call per ``BATCH`` chunks instead of one per
    file. Placement was chosen for the whole batch, so it is spread like any other.
    Unused ids are handed back at close (else the master frees them after its grace time);
    a batch older than ``MAX_AGE`` is dropped, long before its tokens expire.
    Thread-safe: ``lock`` guards the list."""

    BATCH = 16
    MAX_AGE = 60.0

    def __init__(self, master: MasterLink) -> None:
        self.master = master
        self.lock = threading.Lock()
        self.targets: list[WriteTarget] = []
        self.fetched = 0.0

    def take(self, path: str) -> WriteTarget:
        with self.lock:
            if self.targets and time.monotonic() - self.fetched < self.MAX_AGE:
                return self.targets.pop(0)
            stale, self.targets = self.targets, []
        self._hand_back(stale)
        try:
            batch = wire.targets_from_wire(self.master.call("allocate", path, self.BATCH, ()))
        except (errors.NoSpace, errors.QuotaExceeded):
            # room for fewer than a batch (on the workers, or in the user's quota): just
            # this one, or a clear error
            return wire.targets_from_wire(self.master.call("allocate", path, 1, ()))[0]
        with self.lock:
            self.targets.extend(batch[1:])
            self.fetched = time.monotonic()
        return batch[0]

    def release(self) -> None:
        with self.lock:
            unused, self.targets = self.targets, []
        self._hand_back(unused)

    def _hand_back(self, targets: list[WriteTarget]) -> None:
        if targets:
            try:
                self.master.call("abandon", tuple(t.chunk_id for t in targets))
            except errors.DfsError as exc:
                log.debug("unused chunk ids not handed back (freed later): %s", exc)


class Pieces:
    """A chunk's bytes cut into the pieces sent to the workers (exact bytes: what rpyc
    sends without more copies), with their CRC32C. Cut once for every replica and every
    placement tried; a writer hands these over and lets its buffer go, so a chunk in
    flight is held once, as the write-back budget counts it."""

    def __init__(self, data: chunks.BytesLike, piece_size: int) -> None:
        if type(data) is bytes and len(data) <= piece_size:
            self.parts = [data] if data else []
        else:
            view = memoryview(data)
            self.parts = [bytes(view[offset:offset + piece_size])
                          for offset in range(0, len(view), piece_size)]
        self.length = sum(len(part) for part in self.parts)
        self.crc = 0
        for part in self.parts:
            self.crc = chunks.crc_update(part, self.crc)

    def __len__(self) -> int:
        return self.length

    def at_offsets(self) -> list[tuple[int, bytes]]:
        """(offset in the chunk, piece) of each piece."""
        found, offset = [], 0
        for part in self.parts:
            found.append((offset, part))
            offset += len(part)
        return found

    def joined(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


RENEW_BATCH = 4096  # chunk ids per renew call (the master's MAX_CHUNKS_PER_CALL)


class Transfer:
    def __init__(self, master: MasterLink, workers: WorkerLinks, cache: ChunkCache | None,
                 piece_size: int, threads: int) -> None:
        self.master = master
        self.workers = workers
        self.cache = cache
        self.piece_size = piece_size
        self.pool = ThreadPoolExecutor(max_workers=threads * 2, thread_name_prefix="dfs-io")
        self.reservations = Reservations(master)

    def renew(self, chunk_ids: list[int]) -> None:
        """Keep these uploaded, uncommitted chunks pending (an open file's): the master
        frees pending chunks after its gc_grace, and a file may stay open far longer."""
        for start in range(0, len(chunk_ids), RENEW_BATCH):
            self.master.call("renew", tuple(chunk_ids[start:start + RENEW_BATCH]))

    def abandon(self, chunk_ids: list[int]) -> None:
        """These uploaded chunks will never be committed: free them now."""
        for start in range(0, len(chunk_ids), RENEW_BATCH):
            self.master.call("abandon", tuple(chunk_ids[start:start + RENEW_BATCH]))

    # --- upload ----------------------------------------------------------------------

    def _send(self, target: WriteTarget, replica: Replica, pieces: Pieces) -> None:
        """Every piece to one replica, sent without waiting for each answer (the worker
        checks the first before the others come: WorkerLinks.call_each)."""
        self.workers.call_each(replica, "write", [
            (target.token, target.chunk_id, replica.kind, offset, piece, len(pieces),
             pieces.crc) for offset, piece in pieces.at_offsets()])

    def store_chunk(self, path: str, index: int, data: chunks.BytesLike | Pieces,
                    target: WriteTarget | None = None) -> ReadChunk:
        """Store ``data`` as chunk ``index`` of ``path``. -> ReadChunk of the stored copies.

        ``target`` is a WriteTarget from an earlier allocate() (batched), or None.
        """
        pieces = data if isinstance(data, Pieces) else Pieces(data, self.piece_size)
        crc = pieces.crc
        failed: set[str] = set()
        full: set[str] = set()  # workers that refused for want of space
        best: ReadChunk | None = None
        for _attempt in range(UPLOAD_ATTEMPTS):
            if target is None and not failed:
                target = self.reservations.take(path)
            elif target is None:  # placed again, away from the workers that failed
                try:
                    target = wire.targets_from_wire(
                        self.master.call("allocate", path, 1, tuple(sorted(failed))))[0]
                except errors.NoSpace:
                    if best is not None:
                        return best  # no other worker has room: fewer copies for now
                    raise
            results = self._send_all(target, pieces)
            stored = tuple(r for r, exc in results if exc is None)
            for replica, exc in results:
                if isinstance(exc, errors.StaleToken):
                    # a new leader since the allocation (a failover): not the worker's fault;
                    # the ids reserved with the old tokens are of no use either
                    log.info("chunk %d: token from before a failover; placing it again",
                             target.chunk_id)
                    self.reservations.release()
                elif exc is not None:
                    if isinstance(exc, errors.NoSpace):
                        full.add(replica.worker_id)  # expected when full: not a warning
                    log.log(logging.INFO if isinstance(exc, errors.NoSpace) else logging.WARNING,
                            "chunk %d to worker %s failed: %s", target.chunk_id,
                            replica.worker_id, exc)
                    failed.add(replica.worker_id)
            ref = wire.ChunkRef(target.chunk_id, target.version, len(pieces), crc, index)
            written = wire.ReadChunk(ref, stored, target.read_token)
            if stored and len(stored) == len(target.replicas):
                return written
            if stored and (best is None or len(stored) > len(best.replicas)):
                best = written
            target = None
        if best is not None:
            return best  # fewer copies than wanted: the master repairs it later
        if failed and failed == full:
            raise errors.NoSpace(f"no room for a chunk of {path}: the workers are full")
        raise errors.WorkerUnavailable(f"no worker could store a chunk of {path}")

    def _send_all(self, target: WriteTarget,
                  pieces: Pieces) -> list[tuple[Replica, errors.DfsError | None]]:
        futures = [(r, self.pool.submit(self._send, target, r, pieces))
                   for r in target.replicas]
        results: list[tuple[Replica, errors.DfsError | None]] = []
        for replica, future in futures:
            try:
                future.result()
                results.append((replica, None))
            except errors.DfsError as exc:
                results.append((replica, exc))
        return results

    # --- download --------------------------------------------------------------------

    def _fetch(self, chunk: ReadChunk, replica: Replica) -> bytes:
        """The chunk's pieces, asked for all at once (``WorkerLinks.call_each``). A copy
        shorter than recorded answers a piece past its end with less, or with
        InvalidArgument (an offset beyond it): corrupt, as a short piece is."""
        ref = chunk.ref
        offsets = range(0, ref.length, self.piece_size)
        try:
            answers = self.workers.call_each(replica, "read", [
                (chunk.token, ref.chunk_id, offset, self.piece_size) for offset in offsets])
        except errors.InvalidArgument:
            raise errors.ChunkCorrupt(f"chunk {ref.chunk_id} is shorter than recorded") from None
        pieces = [data for data, _size in answers]
        if any(len(piece) != min(self.piece_size, ref.length - offset)
               for piece, offset in zip(pieces, offsets, strict=True)):
            raise errors.ChunkCorrupt(f"chunk {ref.chunk_id} is shorter than recorded")
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def load_chunk(self, chunk: ReadChunk, use_cache: bool = True) -> bytes:
        """The bytes of one ReadChunk, verified; raises DataLost if no replica has them."""
        ref = chunk.ref
        cache = self.cache if use_cache else None
        if cache is not None:
            cached = cache.get(ref)
            if cached is not None:
                return cached

        def whole(replica: Replica) -> bytes:
            data = self._fetch(chunk, replica)
            if len(data) != ref.length or chunks.crc(data) != ref.crc:
                raise errors.ChunkCorrupt(f"chunk {ref.chunk_id} fails its checksum")
            return data
        data = self._from_a_replica(chunk, whole)
        if cache is not None:
            cache.put(ref, data)
        return data

    def load_blocks(self, chunk: ReadChunk, first_block: int, count: int) -> bytes:
        """Blocks ``first_block`` .. ``+ count - 1`` of one ReadChunk (the last one short at
        the chunk's end), each checked against the CRC32C its worker stored at upload;
        raises DataLost if no replica has them."""
        ref = chunk.ref
        start = first_block * BLOCK_SIZE
        expected = min(ref.length, start + count * BLOCK_SIZE) - start
        if expected <= 0:
            raise errors.InvalidArgument(f"chunk {ref.chunk_id}: no block {first_block}")

        def blocks(replica: Replica) -> bytes:
            data, crcs, length = self.workers.call(replica, "read_blocks", chunk.token,
                                                   ref.chunk_id, first_block, count)
            if length != ref.length or len(data) != expected or \
                    chunks.first_bad_block(data, crcs) is not None:  # crcs: of these blocks
                raise errors.ChunkCorrupt(f"chunk {ref.chunk_id} fails its checksum")
            return bytes(data)
        return self._from_a_replica(chunk, blocks)

    def _from_a_replica(self, chunk: ReadChunk, fetch: Callable[[Replica], bytes]) -> bytes:
        """``fetch(replica)`` from each replica in turn (the preferred first) until one gives
        bytes that verify: a corrupt copy is reported, a missing or unreachable one skipped.
        Raises DataLost when none does."""
        ref = chunk.ref
        problems = []
        for replica in self.workers.order(chunk.replicas):
            try:
                return fetch(replica)
            except errors.ChunkCorrupt as exc:
                problems.append(f"{replica.worker_id}: corrupt")
                log.error("chunk %d on worker %s: %s; trying another copy", ref.chunk_id,
                          replica.worker_id, exc)
                self._report_bad(ref.chunk_id, replica.worker_id)
            except (errors.WorkerUnavailable, errors.ChunkMissing, errors.StaleToken) as exc:
                problems.append(f"{replica.worker_id}: {exc}")
        detail = "; ".join(problems) or "no live replica"
        log.error("chunk %d: every replica failed (%s)", ref.chunk_id, detail)
        raise errors.DataLost(f"chunk {ref.chunk_id} cannot be read from any replica ({detail})")

    def _report_bad(self, chunk_id: int, worker_id: str) -> None:
        """Ask the master to have the worker re-check its copy (it drops nothing on this)."""
        try:
            self.master.call("report_bad", chunk_id, worker_id)
        except errors.DfsError as exc:
            log.warning("could not report bad chunk %d: %s", chunk_id, exc)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.reservations.release()

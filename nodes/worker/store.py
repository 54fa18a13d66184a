"""The chunk files of one worker, and what it has not told the metadata servers yet.

On disk (all created when missing)::

    DATA/chunks/<id>       primary copies          DATA/chunks/<id>.crc   block CRCs
    DATA/backups/<id>      backup copies           DATA/backups/<id>.crc
    DATA/tmp/              uploads in progress (cleared at start)

Every directory is 0700 and every file 0600 (dfs.fsutil), whatever the umask: chunk data
is its owners' alone, even against other local users.

A chunk is complete when its data file exists: the ``.crc`` file is renamed into place
first, the data file last, both after an fsync (nodes/worker/uploads.py). Every read
checks the CRC32C of each 64 KiB block it touches; a mismatch raises ChunkCorrupt and no
byte of it leaves.

Thread safety: any thread may call any method. ``ChunkStore.lock`` guards the staging
table, the counters (``used``, ``busy``) and the report feeds; file I/O runs outside it,
and two uploads of the same chunk cannot interleave (a new one at offset 0 aborts the old).
A partial upload that gets no piece for ``upload_idle`` seconds is dropped (its descriptor
closed, its temp file removed) by the ``upload-expiry`` Task, started with the first upload:
an abandoned upload must not hold a descriptor forever.
"""

from __future__ import annotations

import array
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from dfs import chunks, errors
from dfs.config import BLOCK_SIZE, MIB, WorkerConfig, default
from dfs.fsutil import private_dir
from nodes.tasks import Task
from nodes.worker.uploads import Upload

log = logging.getLogger(__name__)

Kind = Literal["chunks", "backups"]
KINDS: tuple[Kind, ...] = ("chunks", "backups")
ChunkKey = tuple[int, Kind]
"""(chunk id, kind): one replica on this worker, as reported to the metadata servers."""

QUARANTINE = "quarantine"  # DATA/quarantine/<id>.<kind>[.crc]: corrupt copies, kept a while
MAX_PIECE = 16 * MIB  # the most bytes one read or write call may carry
MAX_CHUNK = 64 * MIB  # the largest chunk size a cluster may have (until the master says)
SCRUB_PIECE = MIB  # bytes read at a time when verifying a whole chunk (a BLOCK_SIZE multiple)


def as_kind(value: object) -> Kind:
    """``value`` as a replica kind, or InvalidArgument."""
    for kind in KINDS:
        if type(value) is str and value == kind:
            return kind
    raise errors.InvalidArgument(f"kind must be one of {KINDS}")


class Changes(NamedTuple):
    """What one metadata server has not been told yet."""

    added: tuple[ChunkKey, ...]
    removed: tuple[ChunkKey, ...]
    bad: tuple[ChunkKey, ...]
    """Replicas that failed their checksum here (found by a read or the scrubber)."""


@dataclass
class _Feed:
    added: list[ChunkKey] = field(default_factory=list)
    removed: list[ChunkKey] = field(default_factory=list)
    bad: list[ChunkKey] = field(default_factory=list)


def _gone(chunk_id: int) -> errors.ChunkMissing:
    return errors.ChunkMissing(f"chunk {chunk_id} is not on this worker")


class ChunkStore:
    """The chunk files of one worker and what it has not told the master yet."""

    def __init__(self, data_dir: str, capacity: int,
                 upload_idle: float = default(WorkerConfig, "upload_idle"),
                 clock: Callable[[], float] = time.monotonic,
                 reserve: int = default(WorkerConfig, "disk_reserve")) -> None:
        """``capacity``: bytes this store may use; 0 means the free space of its disk.
        ``upload_idle``: seconds a partial upload may wait for its next piece.
        ``reserve``: bytes of the disk left free (WorkerConfig.disk_reserve)."""
        self.data_dir = data_dir
        self.capacity = capacity
        self.reserve = reserve
        self.upload_idle = upload_idle
        self.clock = clock
        self.lock = threading.Lock()
        self.dirs: dict[Kind, str] = {kind: os.path.join(data_dir, kind) for kind in KINDS}
        self.tmp_dir = os.path.join(data_dir, "tmp")
        self.quarantine_dir = os.path.join(data_dir, QUARANTINE)
        for path in (data_dir, *self.dirs.values(), self.tmp_dir, self.quarantine_dir):
            private_dir(path)
        shutil.rmtree(self.tmp_dir)
        private_dir(self.tmp_dir)
        self.staging: dict[ChunkKey, Upload] = {}
        self.expiry = Task("upload-expiry", self.expire_uploads, max(0.1, upload_idle / 2))
        self._expiry_started = False
        self.used = 0
        self.feeds: dict[str, _Feed] = {}  # reporter name -> what it has not been told
        self.busy = 0  # data calls in progress (the load reported in heartbeats)
        self.chunk_size = MAX_CHUNK  # until the master says
        for chunk_id, kind in self.inventory():
            self.used += os.path.getsize(self.path(chunk_id, kind))
        for name in os.listdir(self.quarantine_dir):  # kept corrupt copies take room too
            if not name.endswith(".crc"):
                with contextlib.suppress(FileNotFoundError):
                    self.used += os.path.getsize(os.path.join(self.quarantine_dir, name))

    def path(self, chunk_id: int, kind: Kind) -> str:
        return os.path.join(self.dirs[kind], str(chunk_id))

    def inventory(self) -> list[ChunkKey]:
        """Every complete replica here; a data file without its ``.crc`` is a torn write
        and is removed. A chunk deleted meanwhile (the listing saw its data file, a delete
        then removed both) is simply not there: no error."""
        found: list[ChunkKey] = []
        for kind, directory in self.dirs.items():
            for name in os.listdir(directory):
                if name.isdigit():
                    if os.path.exists(os.path.join(directory, name + ".crc")):
                        found.append((int(name), kind))
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(directory, name))
        return found

    def locate(self, chunk_id: int) -> tuple[Kind, str]:
        for kind in KINDS:
            path = self.path(chunk_id, kind)
            if os.path.exists(path):
                return kind, path
        raise _gone(chunk_id)

    def free(self) -> int:
        """Bytes new chunks may still take here (what heartbeats report)."""
        with self.lock:
            return self._free()

    def _free(self) -> int:
        """``free()`` with the lock held: the disk's free space less the reserve and less
        what the uploads in progress will still write; with a ``capacity``, no more than
        it leaves once those uploads are stored."""
        stats = os.statvfs(self.data_dir)
        staged = self.staging.values()
        room = stats.f_bavail * stats.f_frsize - self.reserve - sum(
            u.total - u.written for u in staged)
        if self.capacity:
            room = min(room, self.capacity - self.used - sum(u.total for u in staged))
        return max(0, room)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Counts a data call in ``busy`` while it runs."""
        with self.lock:
            self.busy += 1
        try:
            yield
        finally:
            with self.lock:
                self.busy -= 1

    # --- writing ---------------------------------------------------------------------

    def write(self, chunk_id: int, kind: Kind, offset: int, data: bytes, total: int,
              crc: int) -> bool:
        """Store one piece of a chunk; the last piece makes the chunk complete.
        -> True once the whole chunk is durable."""
        key = (chunk_id, kind)
        with self.lock:
            upload = self.staging.get(key)
            if offset == 0:
                if upload is not None:
                    del self.staging[key]
                    upload.abort()
                room = self._free()
                if total > room:
                    log.info("chunk %d refused: %d bytes free here, it needs %d", chunk_id,
                             room, total)
                    raise errors.NoSpace(f"worker is full ({room} bytes free, the chunk "
                                         f"needs {total})")
                try:
                    upload = Upload(os.path.join(self.tmp_dir, f"{chunk_id}.{kind}"), total,
                                    self.clock())
                except OSError as exc:
                    if errors.is_no_space(exc):
                        raise errors.NoSpace("worker disk is full") from None
                    raise
                self.staging[key] = upload
                if not self._expiry_started:
                    self._expiry_started = True
                    self.expiry.start()
            elif upload is None or upload.written != offset:
                raise errors.InvalidArgument(f"chunk {chunk_id}: piece at unexpected offset")
            upload.touched = self.clock()  # a piece in progress is never idle
        try:
            upload.add(data)
            if upload.written < total:
                return False
            with self.lock:
                self.staging.pop(key, None)
            self._finish(upload, chunk_id, kind, crc)
            return True
        except OSError as exc:
            self._drop_upload(key, upload)
            if errors.is_no_space(exc):
                log.warning("disk full while storing chunk %d (%s): upload dropped",
                            chunk_id, kind)
                raise errors.NoSpace("worker disk is full") from None
            raise
        except errors.DfsError:
            self._drop_upload(key, upload)
            raise

    def expire_uploads(self) -> int:
        """Drop the partial uploads that got no piece for ``upload_idle`` seconds (their
        client gave up or went away). -> how many."""
        now = self.clock()
        with self.lock:
            idle = [(key, upload) for key, upload in self.staging.items()
                    if now - upload.touched > self.upload_idle]
            for key, _upload in idle:
                del self.staging[key]
        for _key, upload in idle:
            upload.abort()
        if idle:
            log.info("dropped %d partial upload(s) idle for over %.0f s", len(idle),
                     self.upload_idle)
        return len(idle)

    def close(self) -> None:
        """Stop the expiry task and drop every partial upload."""
        self.expiry.stop()
        with self.lock:
            staged, self.staging = list(self.staging.values()), {}
        for upload in staged:
            upload.abort()

    def _drop_upload(self, key: ChunkKey, upload: Upload) -> None:
        with self.lock:
            if self.staging.get(key) is upload:
                del self.staging[key]
        upload.abort()

    def _finish(self, upload: Upload, chunk_id: int, kind: Kind, crc: int) -> None:
        upload.commit(chunk_id, crc, self.path(chunk_id, kind))
        with self.lock:
            self.used += upload.total
            for feed in self.feeds.values():
                feed.added.append((chunk_id, kind))

    # --- reading ---------------------------------------------------------------------

    def block_crcs(self, path: str) -> array.array[int]:
        with open(path + ".crc", "rb") as f:
            return array.array("I", f.read())

    def read(self, chunk_id: int, offset: int, length: int) -> tuple[bytes, int]:
        """-> (up to ``length`` bytes from ``offset``, chunk length): the blocks covering
        the range, each checksum-verified (``read_blocks``), sliced."""
        kind, path = self.locate(chunk_id)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise _gone(chunk_id) from None
        if offset < 0 or length < 0 or offset > size:
            raise errors.InvalidArgument(f"chunk {chunk_id}: offset {offset} outside 0..{size}")
        if length > MAX_PIECE:
            raise errors.InvalidArgument(f"read of {length} bytes exceeds {MAX_PIECE}")
        end = min(size, offset + length)
        first_block = offset // BLOCK_SIZE
        # whole blocks only: a CRC covers a block, so a read ending inside one reads it all
        count = -(-end // BLOCK_SIZE) - first_block
        if count == 0:  # an empty range on a block boundary touches no block
            return b"", size
        data, _crcs, size = self._verified_blocks(chunk_id, kind, path, first_block, count)
        start = first_block * BLOCK_SIZE
        return data[offset - start:end - start], size

    def read_blocks(self, chunk_id: int, first_block: int,
                    count: int) -> tuple[bytes, tuple[int, ...], int]:
        """-> (blocks ``first_block`` .. ``first_block + count - 1`` of the chunk, the last
        one short at its end; their CRC32Cs as stored at upload; the chunk's length), each
        block verified first: a reader checks the bytes it got against the CRCs, end to end,
        without loading the whole chunk."""
        if first_block < 0 or count <= 0 or count * BLOCK_SIZE > MAX_PIECE:
            raise errors.InvalidArgument(f"blocks {first_block}+{count}: out of range")
        kind, path = self.locate(chunk_id)
        return self._verified_blocks(chunk_id, kind, path, first_block, count)

    def _verified_blocks(self, chunk_id: int, kind: Kind, path: str, first_block: int,
                         count: int) -> tuple[bytes, tuple[int, ...], int]:
        """``read_blocks`` of the replica at ``path``, with no limit on ``count``; a block
        that fails its CRC raises ChunkCorrupt and no byte leaves; a replica deleted, moved or
        quarantined since it was located raises ChunkMissing, as one never there does."""
        try:
            crcs = self.block_crcs(path)
            f = open(path, "rb")
        except FileNotFoundError:
            raise _gone(chunk_id) from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if first_block * BLOCK_SIZE >= max(size, 1):
                raise errors.InvalidArgument(f"chunk {chunk_id}: block {first_block} is past "
                                             f"its end ({size} bytes)")
            f.seek(first_block * BLOCK_SIZE)
            data = f.read(count * BLOCK_SIZE)
        bad = chunks.first_bad_block(data, crcs, BLOCK_SIZE, first_block)
        if bad is not None:
            log.error("chunk %d (%s) block %d fails its checksum", chunk_id, kind, bad)
            raise errors.ChunkCorrupt(f"chunk {chunk_id} is corrupt on this worker")
        return data, tuple(crcs[first_block:first_block + -(-len(data) // BLOCK_SIZE)]), size

    def verify(self, chunk_id: int, kind: Kind,
               pace: Callable[[int], object] | None = None) -> bool | None:
        """Re-read a whole replica and check every block's CRC. -> True if good, False if
        corrupt, None if it is gone (deleted meanwhile). ``pace(nbytes)`` is called after
        each piece read (the scrubber sleeps there to keep to its rate)."""
        path = self.path(chunk_id, kind)
        try:
            crcs = self.block_crcs(path)
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if len(crcs) != (size + BLOCK_SIZE - 1) // BLOCK_SIZE:
                    return False
                block = 0
                while True:
                    data = f.read(SCRUB_PIECE)
                    if not data:
                        return True
                    if chunks.first_bad_block(data, crcs, BLOCK_SIZE, block) is not None:
                        return False
                    block += (len(data) + BLOCK_SIZE - 1) // BLOCK_SIZE
                    if pace is not None:
                        pace(len(data))
        except FileNotFoundError:
            return None

    # --- removing and reporting ------------------------------------------------------

    def delete(self, chunk_id: int, kind: Kind) -> None:
        self._remove(chunk_id, kind, keep_bytes=False)

    def _remove(self, chunk_id: int, kind: Kind, keep_bytes: bool) -> None:
        """The store forgets a replica (the metadata servers are told). ``keep_bytes``: its
        files were linked elsewhere (quarantine), so its room stays used."""
        path = self.path(chunk_id, kind)
        try:
            size = os.path.getsize(path)  # ``used`` counts data files, not checksums
            os.unlink(path)
        except FileNotFoundError:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".crc")
        with self.lock:
            if not keep_bytes:
                self.used -= size
            for feed in self.feeds.values():
                feed.removed.append((chunk_id, kind))

    def quarantine(self, chunk_id: int, kind: Kind) -> str | None:
        """Move a corrupt copy out of the store without deleting its bytes (the master asks
        only once another copy is served): hard links into DATA/quarantine first, then the
        store forgets the copy as for a delete. Its room stays counted in ``used`` until
        ``expire_quarantine`` deletes it. -> where it is kept (None: it was gone)."""
        source = self.path(chunk_id, kind)
        target = os.path.join(self.quarantine_dir, f"{chunk_id}.{kind}")
        for suffix in (".crc", ""):  # the data file last, as the store writes them
            staged = os.path.join(self.tmp_dir, f"quarantine.{chunk_id}.{kind}{suffix}")
            try:
                os.link(source + suffix, staged)
            except FileNotFoundError:
                return None  # gone meanwhile: nothing to keep, nothing kept is touched
            if suffix == "":
                self._unlink_kept(target)  # an older copy kept under this name
            os.replace(staged, target + suffix)
        self._remove(chunk_id, kind, keep_bytes=True)
        return target

    def expire_quarantine(self, max_age: float, now: float | None = None) -> int:
        """Delete the quarantined copies kept longer than ``max_age`` seconds (counted from
        the quarantine: a hard link sets the file's ctime). -> how many files."""
        now = time.time() if now is None else now
        removed = 0
        for name in os.listdir(self.quarantine_dir):
            path = os.path.join(self.quarantine_dir, name)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue
            if now - info.st_ctime > max_age and self._unlink_kept(path):
                removed += 1
        if removed:
            log.info("deleted %d quarantined file(s) kept over %.0f s", removed, max_age)
        return removed

    def _unlink_kept(self, path: str) -> bool:
        try:
            size = 0 if path.endswith(".crc") else os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            return False
        with self.lock:
            self.used -= size
        return True

    def report_bad(self, chunk_id: int, kind: Kind) -> None:
        """A replica here failed its checksum: tell every metadata server."""
        with self.lock:
            for feed in self.feeds.values():
                if (chunk_id, kind) not in feed.bad:
                    feed.bad.append((chunk_id, kind))

    def take_changes(self, feed: str) -> Changes:
        """What changed since ``feed`` (one per metadata server) last asked."""
        with self.lock:
            pending = self.feeds.get(feed, _Feed())
            self.feeds[feed] = _Feed()
        return Changes(tuple(pending.added), tuple(pending.removed), tuple(pending.bad))

    def give_back(self, feed: str, changes: Changes) -> None:
        """A heartbeat failed: report these again next time."""
        with self.lock:
            pending = self.feeds.setdefault(feed, _Feed())
            pending.added[:0] = changes.added
            pending.removed[:0] = changes.removed
            pending.bad[:0] = changes.bad

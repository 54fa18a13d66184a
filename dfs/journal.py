"""Durable metadata: a JSON snapshot plus a JSON-lines journal, with group commit.

``cache-metadata/saved-files.json`` is the namespace at sequence number ``seq``, written
atomically (temp file, fsync, rename, fsync of the directory): compact JSON, one inode per
line (``encode``). ``journal.jsonl`` holds one entry per line (``Record.to_line``: the
entry's JSON with its ``seq`` and epoch ``ep``). Start-up loads the snapshot and replays the
entries with a larger ``seq`` from ``journal.sealed.jsonl`` (if any) and ``journal.jsonl``.

Writing is in two steps (group commit):

- ``write(lines)`` appends under the master's metadata lock, in order, into the page cache
  (no fsync). It fails cleanly with NoSpace, leaving the file as it was, so the caller
  applies nothing: the journal and memory always agree.
- ``sync_to(seq)`` is called outside that lock by every thread that must wait for ``seq``:
  one of them runs ``fdatasync`` for all that was written so far, the others wait for it
  (so concurrent mutations share one fsync).

Room on disk: the journal keeps ``reserve`` bytes allocated beyond its end
(``fallocate(FALLOC_FL_KEEP_SIZE)``, where the file system can). An ordinary entry is
refused (NoSpace) when the disk has less than ``reserve`` bytes free, or that reserve
cannot be kept; ``essential`` entries (those that free space or keep the cluster running:
the caller decides) are written whatever the free space, into the reserve, so a full disk
can still be cleaned up from the cluster. Once space is back, the next ordinary entry
finds room again: nothing to restart. The reserve is never missing: a seal gives the new
journal its reserve before the sealed one gives its own back (and does not seal when the
disk cannot), and a snapshot that empties the journal takes it again.

Snapshots off the request path (dfs/compact.py, started by nodes/master/snapshots.py):
``seal()`` (lock held, one fsync) renames the journal to ``journal.sealed.jsonl`` and starts
a new one; a child process folds snapshot + sealed journal into ``saved-files.json.new``;
``adopt_compacted`` puts it in place and drops the sealed journal. A failure (ENOSPC) only
leaves the sealed journal there, loaded as usual at start: nothing is ever lost by it.
``snapshot(ns)`` and ``install(data, seq)`` replace the snapshot at once (shutdown, a
standby receiving the leader's namespace); they make a running compaction's result stale
(``generation``).

A kill -9 can leave a torn last line: it was never fsynced, so never acknowledged, and
``load`` cuts it off. A crash between writing a snapshot and dropping the journal leaves
entries the snapshot already holds: replay skips them by ``seq``.

Thread safety: ``write``, ``seal``, ``load`` under the master's metadata lock (one writer);
``sync_to`` from any thread; ``cond`` guards the file descriptor against being swapped
while an fsync runs on it.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import secrets
import threading
from collections.abc import Sequence
from typing import Any

from dfs import errors, metrics
from dfs.fsutil import fsync_dir, private_dir, write_atomic
from dfs.namespace.entries import Json, Record
from dfs.namespace.model import Namespace

log = logging.getLogger(__name__)

SNAPSHOT = "saved-files.json"
JOURNAL = "journal.jsonl"
SEALED = "journal.sealed.jsonl"
NEXT = "journal.next.jsonl"  # a seal's new journal until it is renamed journal.jsonl
FULL = (errno.ENOSPC, errno.EDQUOT)
UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE: allocate blocks past the end, the size stays


def _libc_fallocate() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (AttributeError, OSError):
        return None  # not Linux: the free-space check serves instead
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    fn.restype = ctypes.c_int
    return fn


_FALLOCATE = _libc_fallocate()


def preallocate(fd: int, offset: int, length: int) -> None:
    """Allocate ``length`` bytes of disk from ``offset`` without changing the file's size
    (raises OSError: ENOSPC, or one of UNSUPPORTED where the file system cannot)."""
    if _FALLOCATE is None:
        raise OSError(errno.ENOSYS, "fallocate is not available")
    if _FALLOCATE(fd, _KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _give_back_reserve(path: str) -> None:
    """A journal written no more gives the disk back what it held past its end (a
    truncation to its own size frees the blocks allocated past it)."""
    try:
        os.truncate(path, os.path.getsize(path))
    except OSError as exc:  # room that stays taken until the compaction drops the file
        log.info("journal: could not give back the sealed journal's reserve: %s", exc)


def encode(data: Json) -> bytes:
    """A snapshot's bytes: compact JSON (the C encoder), each top-level key and each inode
    on its own line, so that it stays readable with grep and less."""
    def dump(value: object) -> str:
        return json.dumps(value, separators=(",", ":"))
    lines = [f"{dump(key)}:{dump(value)}" for key, value in data.items() if key != "inodes"]
    inodes = ",\n".join(dump(inode) for inode in data.get("inodes", ()))
    return ("{" + ",\n".join(lines) + ',\n"inodes":[\n' + inodes + "\n]}\n").encode()


def replay(path: str, ns: Namespace, last: bool) -> tuple[int, int]:
    """Apply the entries of journal file ``path`` that ``ns`` lacks. The ``last`` file may
    end in a torn line (cut off by the caller). -> (entries applied, bytes of whole lines)."""
    applied = good_bytes = 0
    if not os.path.exists(path):
        return 0, 0
    with open(path, "rb") as f:
        for line in f:
            try:
                record = Record.from_line(line)
            except ValueError:
                log.warning("journal: cutting off a torn last entry (never acknowledged)")
                break
            if not line.endswith(b"\n"):
                log.warning("journal: cutting off an unterminated last entry")
                break
            good_bytes += len(line)
            if record.seq <= ns.seq:
                continue
            ns.apply(record)
            applied += 1
    if not last and good_bytes != os.path.getsize(path):
        log.error("journal: %s ends in a torn entry before later ones", path)
    return applied, good_bytes


def read_snapshot(directory: str) -> Namespace:
    path = os.path.join(directory, SNAPSHOT)
    if not os.path.exists(path):
        return Namespace()
    with open(path, "rb") as f:
        return Namespace.from_json(json.load(f))


class Journal:
    def __init__(self, directory: str, reserve: int = 1 << 20) -> None:
        self.directory = directory
        self.reserve = reserve
        self.snapshot_path = os.path.join(directory, SNAPSHOT)
        self.journal_path = os.path.join(directory, JOURNAL)
        self.sealed_path = os.path.join(directory, SEALED)
        self.next_path = os.path.join(directory, NEXT)
        self.cond = threading.Condition()
        self._fd = -1
        self._syncing = False
        self.end = 0  # bytes in journal.jsonl
        self.allocated = 0  # bytes of disk it holds (>= end: the reserve past its end)
        self.can_preallocate = True
        self.written_seq = 0  # the last entry written (page cache)
        self.synced_seq = 0  # the last entry fsynced
        self.fsyncs = 0  # fdatasync calls made for writes (entries / fsyncs: the grouping)
        self.broken = ""  # why nothing more can be made durable (an fsync failed)
        self.low_space = False  # the last ordinary entry found no room
        self.entries_since_snapshot = 0
        self.snapshot_bytes = 0
        self.generation = 0  # bumped whenever the snapshot is replaced in this process
        self.instance = secrets.token_hex(4)  # names our compactions' results (not a
        # child left running by an earlier process of this server)

    def load(self) -> Namespace:
        """-> Namespace rebuilt from snapshot + journal (empty if there is neither)."""
        private_dir(self.directory)  # every name and key hash is in there
        for name in os.listdir(self.directory):
            if name.startswith(SNAPSHOT + ".") or name == NEXT:  # a temp file, a
                os.unlink(os.path.join(self.directory, name))  # compaction never adopted,
                # or a seal cut short (its journal never written)
        ns = read_snapshot(self.directory)
        exists = os.path.exists(self.snapshot_path)
        self.snapshot_bytes = os.path.getsize(self.snapshot_path) if exists else 0
        replayed, _ = replay(self.sealed_path, ns, last=False)
        more, good_bytes = replay(self.journal_path, ns, last=True)
        if os.path.exists(self.journal_path):
            with open(self.journal_path, "r+b") as f:
                f.truncate(good_bytes)
        self.entries_since_snapshot = more
        self.written_seq = self.synced_seq = ns.seq
        log.info("metadata loaded: snapshot and %d journal entries, at entry %d",
                 replayed + more, ns.seq)
        return ns

    def _open(self) -> int:
        if self._fd < 0:
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                         | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
            self._fd = fd
            self.end = self.allocated = os.fstat(fd).st_size
        return self._fd

    # --- writing -------------------------------------------------------------------------

    def write(self, lines: Sequence[str], last_seq: int, essential: bool = False) -> None:
        """Append journal lines ending with entry ``last_seq`` (metadata lock held): not
        durable until ``sync_to``. Raises NoSpace (nothing written) when there is no room:
        for an ordinary entry, when the reserve past the end cannot be kept."""
        if self.broken:
            raise errors.Unavailable(f"metadata journal: {self.broken}")
        fd = self._open()
        data = "".join(line + "\n" for line in lines).encode()
        if not essential:
            self._make_room(fd, len(data))
        start = self.end
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            os.ftruncate(fd, start)  # as it was: the caller applies nothing
            self.end = self.allocated = start
            if exc.errno in FULL:
                raise self._no_space() from None
            raise errors.Unavailable(f"metadata journal: {exc}") from None
        self.end = start + len(data)
        self.allocated = max(self.allocated, self.end)
        self.written_seq = last_seq
        self.entries_since_snapshot += len(lines)

    def _no_space(self) -> errors.NoSpace:
        if not self.low_space:
            log.warning("metadata disk full (%s): refusing changes but deletions until "
                        "space is freed; reads go on", self.directory)
            self.low_space = True
        return errors.NoSpace(f"the metadata server's disk is full ({self.directory}): "
                              "changes are refused until space is freed")

    def _make_room(self, fd: int, size: int) -> None:
        """An ordinary entry of ``size`` bytes: the disk must have ``reserve`` bytes free
        besides it, and ``reserve`` bytes stay allocated past the journal's end."""
        st = os.fstatvfs(fd)
        if st.f_bavail * st.f_frsize < self.reserve + size:
            raise self._no_space()
        if self.can_preallocate and self.allocated - self.end < self.reserve + size:
            want = 2 * self.reserve + size
            try:
                preallocate(fd, self.end, want)
                self.allocated = self.end + want
            except OSError as exc:
                if exc.errno in FULL:
                    raise self._no_space() from None
                if exc.errno not in UNSUPPORTED:
                    raise errors.Unavailable(f"metadata journal: {exc}") from None
                self.can_preallocate = False  # the free-space check alone, then
        self._space_back()

    def _space_back(self) -> None:
        if self.low_space:
            log.info("metadata disk: room for the journal again, changes accepted")
            self.low_space = False

    def sync_to(self, seq: int) -> None:
        """Return once entry ``seq`` (and all before it) is fsynced; call without the
        metadata lock. Raises Unavailable if the journal cannot be made durable."""
        if self.synced_seq >= seq:
            return
        with self.cond:
            while self.synced_seq < seq:
                if self.broken:
                    raise errors.Unavailable(f"metadata journal: {self.broken}")
                if self._syncing:
                    self.cond.wait()
                    continue
                self._syncing = True
                target, fd = self.written_seq, self._fd
                self.cond.release()
                failed: OSError | None = None
                try:
                    with metrics.JOURNAL_FSYNC.time():
                        os.fdatasync(fd)
                    self.fsyncs += 1
                except OSError as exc:
                    failed = exc
                finally:
                    self.cond.acquire()
                    self._syncing = False
                    self.cond.notify_all()
                if failed is not None:
                    self.broken = f"fsync failed: {failed}"
                    log.error("metadata journal: %s; no change is acknowledged until a "
                              "snapshot is written", self.broken)
                    raise errors.Unavailable(f"metadata journal: {self.broken}")
                self.synced_seq = max(self.synced_seq, target)

    def append(self, records: list[Record]) -> None:
        """Write records and fsync them (tests and tools: one caller, no lock)."""
        self.write([r.to_line() for r in records], records[-1].seq if records else
                   self.written_seq, essential=True)
        self.sync_to(self.written_seq)

    def _quiet(self) -> None:
        """cond held: wait until no fsync runs on the current descriptor."""
        while self._syncing:
            self.cond.wait()

    # --- snapshots -------------------------------------------------------------------------

    def seal(self) -> None:
        """Metadata lock held: make journal.jsonl the sealed journal (fsynced first) and
        start a new one, for a compaction to fold in. The new journal holds its reserve
        before the sealed one gives its own back (it is never written again), so a
        deletion finds room at every moment; when the disk cannot give the new journal
        its reserve, nothing is sealed. Raises NoSpace/Unavailable (before the rename:
        nothing changed)."""
        with self.cond:
            self._quiet()
            fresh, reserved = self._open_next()
            try:
                if self._fd >= 0:
                    os.fdatasync(self._fd)
                    self.synced_seq = self.written_seq
                sealing = os.path.exists(self.journal_path)
                if sealing:
                    os.replace(self.journal_path, self.sealed_path)
            except OSError as exc:
                self._drop_next(fresh)
                raise self._error(exc) from None
            if self._fd >= 0:  # the sealed journal: never written again
                os.close(self._fd)
                self._fd = -1
            self.end = self.allocated = 0
            self.entries_since_snapshot = 0
            try:
                if sealing:
                    fsync_dir(self.directory)  # sealed for good before a new journal.jsonl
                    _give_back_reserve(self.sealed_path)
                os.replace(self.next_path, self.journal_path)
                self._fd, self.allocated = fresh, reserved
                fsync_dir(self.directory)
            except OSError as exc:  # without a new journal, the next write starts one
                if self._fd != fresh:
                    self._drop_next(fresh)
                raise self._error(exc) from None

    def _open_next(self) -> tuple[int, int]:
        """The journal a seal starts, beside the current one, holding ``reserve`` bytes
        where the file system can. -> (descriptor, bytes allocated). Raises NoSpace (and
        leaves nothing behind) when the disk has not that much room."""
        try:
            fd = os.open(self.next_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                         | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._error(exc) from None
        try:
            os.fchmod(fd, 0o600)
            if self.can_preallocate and self.reserve > 0:
                try:
                    preallocate(fd, 0, self.reserve)
                    return fd, self.reserve
                except OSError as exc:
                    if exc.errno not in UNSUPPORTED:
                        raise
                    self.can_preallocate = False  # the free-space check alone, then
            return fd, 0
        except OSError as exc:
            self._drop_next(fd)
            raise self._error(exc) from None

    def _drop_next(self, fd: int) -> None:
        os.close(fd)
        try:
            os.unlink(self.next_path)
        except FileNotFoundError:
            pass

    def _error(self, exc: OSError) -> errors.DfsError:
        return (self._no_space() if exc.errno in FULL
                else errors.Unavailable(f"metadata journal: {exc}"))

    def has_sealed(self) -> bool:
        return os.path.exists(self.sealed_path)

    def compacted_name(self, generation: int) -> str:
        """The file a compaction started at ``generation`` writes (dfs/compact.py)."""
        return f"{SNAPSHOT}.{self.instance}-{generation}.new"

    def adopt_compacted(self, generation: int) -> bool:
        """The child's snapshot (of snapshot + sealed journal) replaces ours, unless ours
        was replaced meanwhile (``generation``). -> True if adopted."""
        path = os.path.join(self.directory, self.compacted_name(generation))
        with self.cond:
            if generation != self.generation or not os.path.exists(path):
                if os.path.exists(path):
                    os.unlink(path)
                return False
            os.replace(path, self.snapshot_path)
            fsync_dir(self.directory)
            os.unlink(self.sealed_path)
            fsync_dir(self.directory)
            self.snapshot_bytes = os.path.getsize(self.snapshot_path)
            return True

    def snapshot(self, ns: Namespace) -> None:
        """Write saved-files.json for ``ns`` now (lock held: shutdown, tests), then start
        an empty journal. Raises NoSpace (the journal is kept) when the disk is full."""
        self.install(encode(ns.to_json()), ns.seq)

    def install(self, data: bytes, seq: int) -> None:
        """``data`` (a snapshot at entry ``seq``) becomes the snapshot; the journals are
        emptied. Lock held. Raises NoSpace/Unavailable, keeping what was there."""
        with self.cond:
            self._quiet()
            self.generation += 1  # a compaction running now is of an older state
            try:
                write_atomic(self.snapshot_path, data)
            except OSError as exc:
                tmp = self.snapshot_path + ".tmp"
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise (self._no_space() if exc.errno in FULL
                       else errors.Unavailable(f"snapshot: {exc}")) from None
            try:  # the snapshot holds every entry now: the journals may go
                if os.path.exists(self.sealed_path):
                    os.unlink(self.sealed_path)
                if self._fd >= 0:
                    os.ftruncate(self._fd, 0)
                    os.fdatasync(self._fd)
                elif os.path.exists(self.journal_path):
                    os.truncate(self.journal_path, 0)
            except OSError as exc:  # replay skips what the snapshot holds: nothing lost
                log.warning("journal: could not be emptied after a snapshot: %s", exc)
            self.end = self.allocated = 0
            self._keep_reserve()  # the truncation gave it back: deletions need it
            self.written_seq = self.synced_seq = seq
            self.broken = ""  # whatever was written is in the snapshot now
            self.entries_since_snapshot = 0
            self.snapshot_bytes = len(data)

    def _keep_reserve(self) -> None:
        """Best effort, lock held: an emptied open journal takes its reserve again (the
        next ordinary entry would, but a deletion on a full disk needs it before)."""
        if self._fd < 0 or not self.can_preallocate or self.reserve <= 0:
            return
        try:
            preallocate(self._fd, 0, self.reserve)
            self.allocated = self.reserve
        except OSError as exc:
            log.info("journal: no reserve after the snapshot yet: %s", exc)

    def read_tail(self, after_seq: int) -> list[Record] | None:
        """Journal records with seq > after_seq (for a standby catching up), or None if
        the journal no longer reaches back that far."""
        records = []
        for path in (self.sealed_path, self.journal_path):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    records += [Record.from_line(line) for line in f if line.endswith(b"\n")]
        if records and records[0].seq > after_seq + 1:
            return None
        return [r for r in records if r.seq > after_seq]

    def close(self) -> None:
        with self.cond:
            self._quiet()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

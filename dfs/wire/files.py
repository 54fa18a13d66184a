"""The wire records of the namespace and of a file's data: entries and their attributes,
chunks and where they are, a file's layout, write targets, what a commit names, the trash,
file locks; each with its ``_to_wire``/``_from_wire``. dfs.wire re-exports every name.

The comment above each pair of functions gives the tuple layout.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from dfs.wire.base import Wire


class Stat(NamedTuple):
    """A namespace entry as clients see it."""

    ino: int
    kind: str  # "d" directory, "f" file, "l" symlink, "p" fifo, "s" socket, "c"/"b" device
    mode: int  # the 12 permission bits only (the kind says the type)
    owner: str  # the owner's name, to show (its uid's number if no user has that uid)
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int
    stored: int = 0  # bytes stored (the chunks' lengths, one copy): holes cost nothing
    uid: int = 0  # POSIX owner and group ids, as the mount shows them
    gid: int = 0
    rdev: int = 0  # a device's number
    xattrs: int = 0  # XATTR_USER | XATTR_SECURITY: namespaces it has extended attributes in

    @property
    def is_dir(self) -> bool:
        return self.kind == "d"


XATTR_USER, XATTR_SECURITY = 1, 2
"""Stat.xattrs bits: the inode has ``user.*`` / ``security.*`` attributes (names anyone who
reaches it may list), so a mount answers "none" for the others without asking. Whether it
has ``trusted.*`` ones is never said: only the superuser may know."""


class DirEntry(NamedTuple):
    name: str
    stat: Stat


class ChunkRef(NamedTuple):
    """One chunk of a file: ids are never reused, so (chunk_id, version) names its bytes.

    ``chunk_index`` is its place in the file: it holds the bytes from ``chunk_index *
    chunk_size`` on, and may be shorter than ``chunk_size`` (the rest of that chunk reads
    as zeros). A file's chunk list is sparse: its refs in ascending index order, each index
    at most once; an index with no ref is a hole, which costs nothing and reads as zeros."""

    chunk_id: int
    version: int
    length: int
    crc: int
    chunk_index: int


class Replica(NamedTuple):
    worker_id: str
    host: str
    port: int
    kind: str  # "chunks" (primary copy) or "backups"


class ReadChunk(NamedTuple):
    ref: ChunkRef
    replicas: tuple[Replica, ...]  # primary first
    token: str


class FileLayout(NamedTuple):
    """What a reader needs: attributes plus every stored chunk (ascending index; holes are
    left out) with its replicas and token."""

    stat: Stat
    chunk_size: int
    chunks: tuple[ReadChunk, ...]


class WriteTarget(NamedTuple):
    chunk_id: int
    version: int
    replicas: tuple[Replica, ...]  # primary first
    token: str  # allows writing this chunk
    read_token: str  # allows reading it back before the file is committed


class WrittenChunk(NamedTuple):
    """A chunk the client stored, with the workers that acknowledged it."""

    ref: ChunkRef
    stored_on: tuple[tuple[str, str], ...]  # (worker id, kind); empty for a chunk the file had


class PutResult(NamedTuple):
    """The answer to a put or a commit: the file's new attributes."""

    stat: Stat
    under_replicated: int  # chunks stored with fewer copies than wanted


class TrashEntry(NamedTuple):
    trash_id: str
    path: str  # where the file was (a restore puts it back there)
    size: int
    deleted_at: float  # Unix seconds
    expires: float  # its chunks are freed after this


# Stat: (ino, kind, mode, owner, size, atime_ns, mtime_ns, ctime_ns, nlink, stored bytes)

def stat_to_wire(stat: Stat) -> Wire:
    return tuple(stat)


def stat_from_wire(data: Wire) -> Stat:
    return Stat(*data)


# directory listing: one JSON text, [[name, [stat]], ...]; stat_many's answer: [stat or
# null, ...]. As tuples, rpyc's brine takes every entry and field apart one by one on both
# sides: 1.2 s for a listing of 50,000 entries, 0.14 s as JSON (json is C, and exact for
# any int; its ASCII escapes keep names with surrogates). Tuples are still read.

def entries_to_wire(entries: list[DirEntry] | tuple[DirEntry, ...]) -> Wire:
    return json.dumps(entries, separators=(",", ":"))


def entries_from_wire(data: Wire) -> list[DirEntry]:
    items = json.loads(data) if isinstance(data, str) else data
    return [DirEntry(name, Stat(*stat)) for name, stat in items]


def stats_to_wire(stats: list[Stat | None]) -> Wire:
    return json.dumps(stats, separators=(",", ":"))


def stats_from_wire(data: Wire) -> list[Stat | None]:
    items = json.loads(data) if isinstance(data, str) else data
    return [None if st is None else Stat(*st) for st in items]


# replicas: ((worker id, host, port, kind), ...)

def replicas_to_wire(replicas: tuple[Replica, ...] | list[Replica]) -> Wire:
    return tuple(tuple(r) for r in replicas)


def replicas_from_wire(data: Wire) -> tuple[Replica, ...]:
    return tuple(Replica(*r) for r in data)


# layout: (stat, chunk size, ((chunk ref, replicas, read token), ...)); a chunk ref is
# (chunk id, version, length, crc, chunk index)

def layout_to_wire(layout: FileLayout) -> Wire:
    return (tuple(layout.stat), layout.chunk_size,
            tuple((tuple(c.ref), replicas_to_wire(c.replicas), c.token) for c in layout.chunks))


def layout_from_wire(data: Wire) -> FileLayout:
    stat, chunk_size, chunks = data
    return FileLayout(Stat(*stat), chunk_size, tuple(
        ReadChunk(ChunkRef(*ref), replicas_from_wire(replicas), token)
        for ref, replicas, token in chunks))


# write targets: ((chunk id, version, replicas, write token, read token), ...)

def targets_to_wire(targets: list[WriteTarget] | tuple[WriteTarget, ...]) -> Wire:
    return tuple((t.chunk_id, t.version, replicas_to_wire(t.replicas), t.token, t.read_token)
                 for t in targets)


def targets_from_wire(data: Wire) -> list[WriteTarget]:
    return [WriteTarget(cid, ver, replicas_from_wire(reps), token, read_token)
            for cid, ver, reps, token, read_token in data]


# written chunks: ((chunk ref, ((worker id, kind), ...)), ...)

def written_to_wire(written: list[WrittenChunk] | tuple[WrittenChunk, ...]) -> Wire:
    return tuple((tuple(w.ref), tuple(tuple(s) for s in w.stored_on)) for w in written)


def written_from_wire(data: Wire) -> list[WrittenChunk]:
    return [WrittenChunk(ChunkRef(*ref), tuple((str(wid), str(kind)) for wid, kind in stored))
            for ref, stored in data]


def written_from_read(chunk: ReadChunk, new: bool) -> WrittenChunk:
    """The commit record of a ReadChunk: with its replicas if ``new``, else bare."""
    stored = tuple((r.worker_id, r.kind) for r in chunk.replicas) if new else ()
    return WrittenChunk(chunk.ref, stored)


# put / commit answer: (stat, under-replicated chunks)

def put_result_to_wire(result: PutResult) -> Wire:
    return tuple(result.stat), result.under_replicated


def put_result_from_wire(data: Wire) -> PutResult:
    stat, under = data
    return PutResult(Stat(*stat), under)


# trash: ((trash id, path, size, deleted at, expires), ...), newest first; times are floats

def trash_to_wire(entries: list[TrashEntry] | tuple[TrashEntry, ...]) -> Wire:
    return tuple((e.trash_id, e.path, e.size, float(e.deleted_at), float(e.expires))
                 for e in entries)


def trash_from_wire(data: Wire) -> list[TrashEntry]:
    return [TrashEntry(*item) for item in data]


LOCK_EOF = 1 << 63
"""A lock range's end when it runs to the end of the file, however long it grows."""


class LockRange(NamedTuple):
    start: int
    end: int  # exclusive; LOCK_EOF: to the end of the file
    type: str  # "r" shared, "w" exclusive


class LockAnswer(NamedTuple):
    """The leader's answer to a lock request (nodes/master/locks.py)."""

    granted: bool  # for lock_renew: whether the leader knows the session
    holder: LockRange | None  # the other owner's lock in the way
    holder_pid: int  # its process, when it is the asking session's own; else 0
    grace: float  # > 0: the leader's grace period after a failover: ask again then
    lease: float  # seconds a session's locks outlive its last call
    version: int  # the highest version's ``held`` is the current one
    held: tuple[LockRange, ...]  # the owner's ranges on the file after the request


# lock answer: (granted, (start, end, type) | None, pid, grace, lease, version, (range, ...))

def lock_answer_to_wire(a: LockAnswer) -> Wire:
    return (a.granted, None if a.holder is None else tuple(a.holder), a.holder_pid,
            float(a.grace), float(a.lease), a.version, tuple(tuple(r) for r in a.held))


def lock_answer_from_wire(data: Wire) -> LockAnswer:
    granted, holder, pid, grace, lease, version, held = data
    return LockAnswer(bool(granted), None if holder is None else LockRange(*holder), pid,
                      grace, lease, version, tuple(LockRange(*r) for r in held))

"""What crosses rpyc: only plain tuples of str/bytes/int/float/bool/None.

rpyc sends those by value; anything else (lists, dicts, named tuples, dataclasses,
bytearray, memoryview) becomes a remote proxy costing one round trip per attribute. So
every service returns ``..._to_wire(...)`` of the records below and every caller rebuilds
them with ``..._from_wire``. This module is the one place the wire format is decided: the
comment above each pair of functions gives the tuple layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

# What arrives from rpyc: plain tuples whose layout the ``..._from_wire`` functions know.
Wire = Any


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


class WorkerStatus(NamedTuple):
    worker_id: str
    host: str
    port: int
    alive: bool
    chunks: int
    used: int
    free: int
    load: int
    seconds_since_heartbeat: float


class PutResult(NamedTuple):
    """The answer to a put or a commit: the file's new attributes."""

    stat: Stat
    under_replicated: int  # chunks stored with fewer copies than wanted


class StatFs(NamedTuple):
    """The whole cluster's capacity, after replication."""

    total: int  # bytes
    free: int  # bytes
    chunk_size: int
    files: int  # inodes


class UserUsage(NamedTuple):
    """A user, what they hold and their limits (dfs/namespace/usage.py, quota.py)."""

    name: str
    admin: bool
    uid: int
    bytes: int  # stored in their files, trash included (one copy)
    inodes: int
    pending_bytes: int  # reserved by uploads not yet committed
    quota_bytes: int | None  # None: no limit
    quota_inodes: int | None
    gid: int = 0  # the primary group
    groups: tuple[int, ...] = ()  # supplementary groups


def usage_from_wire(data: Wire) -> UserUsage:
    name, admin, uid, used, inodes, pending, quota_bytes, quota_inodes, *ids = data
    gid, groups = (ids[0], tuple(ids[1])) if ids else (uid, ())
    return UserUsage(str(name), bool(admin), int(uid), int(used), int(inodes), int(pending),
                     None if quota_bytes is None else int(quota_bytes),
                     None if quota_inodes is None else int(quota_inodes), int(gid),
                     tuple(int(g) for g in groups))


class TrashEntry(NamedTuple):
    trash_id: str
    path: str  # where the file was (a restore puts it back there)
    size: int
    deleted_at: float  # Unix seconds
    expires: float  # its chunks are freed after this


FSCK_FIXABLE = ("under", "corrupt", "orphan")  # problem kinds a repair can fix


class FsckProblem(NamedTuple):
    kind: str  # "missing", "under", "corrupt" or "orphan"
    chunk_id: int
    worker_id: str  # the worker holding the bad or orphan copy ("" for missing/under)
    path: str  # the file the chunk belongs to ("" for an orphan)


class FsckReport(NamedTuple):
    files: int
    chunks: int
    workers: int  # workers scanned
    unreachable: tuple[str, ...]  # workers that could not be scanned
    problems: tuple[FsckProblem, ...]
    repairs: int  # repairs scheduled (with repair=True)

    @property
    def clean(self) -> bool:
        return not self.problems and not self.unreachable


class FsckResult(NamedTuple):
    """Where an fsck job is: "running", "done" (with its report) or "failed" (a message)."""

    state: str
    report: FsckReport | None = None
    message: str = ""


@dataclass(frozen=True)
class ClusterStatus:
    """`dfs status`: the answering server and what it knows of the cluster."""

    leader: str  # the answering server's id
    epoch: int
    address: str  # "host:port" of the answering server
    workers: tuple[WorkerStatus, ...]
    under_replicated: int  # chunks with fewer copies than wanted
    files: int  # inodes
    standby: str  # the standby's state, e.g. "in sync" or "stale from entry N"
    lease_holders: tuple[str, ...]  # voters whose lease the server holds
    space_warning: str = ""  # a line when free space is low ("" when it is not)
    web: str = ""  # the answering server's status page, "http://host:port/" ("": none)


class Event(NamedTuple):
    """One line of the master's audit log (nodes/master/events.py, `dfs events`)."""

    event_id: int  # increasing, never reused by that server: the cursor of a page
    time: float  # Unix seconds
    user: str  # who: a user, "worker:ID", "" for the master's own work or no one yet
    address: str  # where from: the connection's address ("" for the master's own work)
    op: str  # what was asked: the method ("mkdir", "login", ...) or "(master)"
    detail: str  # its arguments that name things: paths, user names, sizes, never secrets
    entry: str  # the journal entry it committed ("mkdir #42"), "" for a login
    outcome: str  # "ok", or for a login "refused"


# Stat: (ino, kind, mode, owner, size, atime_ns, mtime_ns, ctime_ns, nlink, stored bytes)

def stat_to_wire(stat: Stat) -> Wire:
    return tuple(stat)


def stat_from_wire(data: Wire) -> Stat:
    return Stat(*data)


# directory listing: ((name, stat), ...)

def entries_to_wire(entries: list[DirEntry] | tuple[DirEntry, ...]) -> Wire:
    return tuple((e.name, tuple(e.stat)) for e in entries)


def entries_from_wire(data: Wire) -> list[DirEntry]:
    return [DirEntry(name, Stat(*stat)) for name, stat in data]


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


# workers: ((worker id, host, port, alive, chunks, used, free, load, seconds since heartbeat),
# ...)

def workers_to_wire(workers: list[WorkerStatus] | tuple[WorkerStatus, ...]) -> Wire:
    return tuple(tuple(w) for w in workers)


def workers_from_wire(data: Wire) -> list[WorkerStatus]:
    return [WorkerStatus(*w) for w in data]


# statfs: (total bytes, free bytes, chunk size, files)

def statfs_to_wire(statfs: StatFs) -> Wire:
    return tuple(statfs)


def statfs_from_wire(data: Wire) -> StatFs:
    return StatFs(*data)


# status: (server id, epoch, "host:port", workers, under-replicated chunks, files,
# standby state, (lease holder, ...))

def status_to_wire(status: ClusterStatus) -> Wire:
    return (status.leader, status.epoch, status.address, workers_to_wire(status.workers),
            status.under_replicated, status.files, status.standby, tuple(status.lease_holders),
            status.space_warning, status.web)


def status_from_wire(data: Wire) -> ClusterStatus:
    leader, epoch, address, workers, under, files, standby, holders, *rest = data
    return ClusterStatus(leader, epoch, address, tuple(workers_from_wire(workers)), under,
                         files, standby, tuple(holders), str(rest[0]) if rest else "",
                         str(rest[1]) if len(rest) > 1 else "")


# events page: (((event id, time, user, address, op, detail, entry, outcome), ...), cursor);
# the cursor is the last event id looked at: ask again with it for what came after

def events_to_wire(events: list[Event], cursor: int) -> Wire:
    return tuple(tuple(e) for e in events), cursor


def events_from_wire(data: Wire) -> tuple[list[Event], int]:
    events, cursor = data
    return [Event(int(i), float(t), str(u), str(a), str(o), str(d), str(e), str(r))
            for i, t, u, a, o, d, e, r in events], int(cursor)


# trash: ((trash id, path, size, deleted at, expires), ...), newest first; times are floats

def trash_to_wire(entries: list[TrashEntry] | tuple[TrashEntry, ...]) -> Wire:
    return tuple((e.trash_id, e.path, e.size, float(e.deleted_at), float(e.expires))
                 for e in entries)


def trash_from_wire(data: Wire) -> list[TrashEntry]:
    return [TrashEntry(*item) for item in data]


# fsck report: (files, chunks, workers scanned, (unreachable worker, ...),
# ((kind, chunk id, worker id or "", path or ""), ...), repairs scheduled)
# fsck result: ("running", None) | ("done", report) | ("failed", message)

def fsck_report_to_wire(report: FsckReport) -> Wire:
    return (report.files, report.chunks, report.workers, tuple(report.unreachable),
            tuple(tuple(p) for p in report.problems), report.repairs)


def fsck_report_from_wire(data: Wire) -> FsckReport:
    files, chunks, workers, unreachable, problems, repairs = data
    return FsckReport(files, chunks, workers, tuple(unreachable),
                      tuple(FsckProblem(*p) for p in problems), repairs)


def fsck_result_to_wire(result: FsckResult) -> Wire:
    if result.state == "done" and result.report is not None:
        return "done", fsck_report_to_wire(result.report)
    if result.state == "failed":
        return "failed", result.message
    return "running", None


def fsck_result_from_wire(data: Wire) -> FsckResult:
    state, value = data
    if state == "done":
        return FsckResult("done", fsck_report_from_wire(value))
    if state == "failed":
        return FsckResult("failed", message=str(value))
    return FsckResult("running")


class WorkerMember(NamedTuple):
    """`dfs workers list`: one worker as the leader knows it (nodes/master/membership.py)."""

    worker_id: str
    host: str
    port: int
    state: str  # "alive", "dead", "draining", "drained" or "dead, draining"
    chunks: int
    used: int
    free: int
    voter: bool  # in the electorate (DESIGN section 5)
    seconds_since_heartbeat: float  # -1: not heard from since this server started


# workers list: ((worker id, host, port, state, chunks, used, free, voter, seconds), ...)

def members_to_wire(members: list[WorkerMember]) -> Wire:
    return tuple(tuple(m) for m in members)


def members_from_wire(data: Wire) -> list[WorkerMember]:
    return [WorkerMember(*m) for m in data]


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


def plain(value: object) -> object:
    """Deep-convert lists/dicts to tuples of pairs so they cross by value (for small dicts)."""
    if isinstance(value, dict):
        return tuple((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value

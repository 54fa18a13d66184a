"""The wire records of the cluster and its administration: `dfs status` and capacity, the
workers, users and their quotas, fsck jobs, the audit log; each with its
``_to_wire``/``_from_wire``. dfs.wire re-exports every name.

The comment above each pair of functions gives the tuple layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from dfs.wire.base import Wire


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

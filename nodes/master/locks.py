"""File locks held at the leader: ``flock`` and POSIX (``fcntl``) byte-range locks, so two
mounts (two machines) exclude each other (DESIGN section 7).

What is locked: ranges of an inode, ``[start, end)`` with ``end`` LOCK_EOF for "to the end
of the file, however long it grows", shared ("r") or exclusive ("w"). Two kinds that never
conflict with each other, as on a local Linux file system: "posix" (fcntl/lockf: byte
ranges) and "flock" (always the whole file).

Who holds a lock, its *owner*: (kind, session, owner id). A session is one client's (one
mount process's) random id, bound to the DFS user that first used it; the owner id is the
kernel's: for POSIX locks FUSE's ``lock_owner`` (one per process: every fd of the file is
the same owner, and closing any of them releases the process's locks), for flock the open
file's handle (one per open file description). An owner's own ranges never conflict with
each other: a new request replaces what it overlaps, splitting ranges and merging touching
ones of the same type (POSIX), so upgrading and downgrading are one request.

Leases: every call of a session renews it; a session holding locks renews them every
``lease / 4`` seconds (dfs.client.locks). A session silent for longer than the lease (a
mount killed -9, a machine gone) loses all its locks: ``expire`` runs before every request.

Failover: the table is in the leader's memory only, never journaled. A leader that starts
serving (each new term, each start) begins with an empty table and a grace period of one
lease, NFSv4-style: during it, holders that knew their locks re-assert them (``reclaim``),
and every new request is answered "grace: ask again", so nobody can take a lock that a
holder from before the failover is about to reclaim. (No grace in a term that began before
the cluster was initialised: no earlier leader can have served a lock, as the first
worker's Init is durable on both metadata servers before any request is answered.) A
client reclaims only while its own lease, counted from when it sent its last answered
call, has not run out: after that it must assume the old leader gave its locks away.
After the grace, reclaims are refused.

Bounds: ranges per session (MAX_RANGES) and in all (MAX_TOTAL_RANGES), sessions per user
and in all (MAX_SESSIONS_*), so a user's sessions cannot fill the leader's memory:
past them a request fails with ENOLCK. Waiting (F_SETLKW, flock without LOCK_NB) happens in
``Locks.wait``, at most ``wait`` seconds per call; the client asks again.

``LockTable`` is pure (time comes in as ``now``); ``Locks`` puts it behind its own
condition variable (never the metadata lock) and resets it per term. Thread-safe: ``Locks``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from dfs import errors
from dfs.wire import LOCK_EOF, LockRange

READ, WRITE, UNLOCK = "r", "w", "u"
KINDS = ("posix", "flock")
MAX_RANGES = 1024
"""Ranges one session may hold in all (every owner, every file)."""
MAX_TOTAL_RANGES = 200_000
MAX_SESSIONS_PER_USER = 16
MAX_SESSIONS = 4096

Ranges = tuple[LockRange, ...]
Holder = tuple[str, int]  # (user name, the user's stable id): who a session belongs to
Key = tuple[str, str, int]  # (kind, session, owner id)


def replace(held: Ranges, start: int, end: int, kind: str) -> Ranges:
    """An owner's ranges after it asks for ``[start, end)`` as ``kind`` (READ, WRITE or
    UNLOCK): what it held there is replaced (split where the new range cuts it), and
    touching or overlapping ranges of the same type become one. -> sorted, disjoint."""
    cut: list[LockRange] = []
    for r in held:
        if r.end <= start or r.start >= end:
            cut.append(r)
            continue
        if r.start < start:
            cut.append(LockRange(r.start, start, r.type))
        if r.end > end:
            cut.append(LockRange(end, r.end, r.type))
    if kind != UNLOCK:
        cut.append(LockRange(start, end, kind))
    cut.sort()
    merged: list[LockRange] = []
    for r in cut:
        if merged and merged[-1].type == r.type and merged[-1].end >= r.start:
            last = merged[-1]
            merged[-1] = LockRange(last.start, max(last.end, r.end), r.type)
        else:
            merged.append(r)
    return tuple(merged)


def clash(held: Ranges, start: int, end: int, kind: str) -> LockRange | None:
    """The first of another owner's ranges that ``[start, end)`` as ``kind`` conflicts
    with: they overlap and one of them is exclusive. None: no conflict."""
    for r in held:
        if r.start < end and start < r.end and WRITE in (kind, r.type):
            return r
    return None


class Result(NamedTuple):
    """What a request got (dfs.wire.LockAnswer without the lease)."""

    granted: bool
    holder: LockRange | None = None  # what stands in the way
    holder_pid: int = 0  # its process, when it is the asking session's own
    grace: float = 0.0  # > 0: in the grace period; ask again (reclaims excepted)
    version: int = 0  # the table's change counter after the request
    held: Ranges = ()  # the owner's ranges on the inode after the request


@dataclass
class _Owned:
    ranges: Ranges = ()
    pid: int = 0  # the process that asked last (F_GETLK reports it to its own mount)


@dataclass
class _Session:
    holder: Holder
    seen: float
    count: int = 0  # ranges held in all
    keys: set[tuple[int, str, int]] = field(default_factory=set)  # (ino, kind, owner)


class LockTable:
    """``version`` counts changes from ``term << 40``: a later leader's answers order after
    an earlier one's (terms only grow), so a client keeps the latest it was told."""

    def __init__(self, lease: float, now: float, term: int = 0, grace: bool = True) -> None:
        self.lease = lease
        self.by_ino: dict[int, dict[Key, _Owned]] = {}
        self.sessions: dict[str, _Session] = {}
        self.version = term << 40
        self.total = 0  # ranges held in all
        self.grace_until = now + lease if grace else now

    def grace_left(self, now: float) -> float:
        return max(0.0, self.grace_until - now)

    # --- sessions ---------------------------------------------------------------------

    def _session(self, sid: str, holder: Holder, now: float) -> _Session:
        """The session ``sid`` of ``holder``, made if new (within the bounds), renewed."""
        session = self.sessions.get(sid)
        if session is None:
            mine = sum(1 for s in self.sessions.values() if s.holder == holder)
            if mine >= MAX_SESSIONS_PER_USER or len(self.sessions) >= MAX_SESSIONS:
                raise errors.LockLost("too many lock sessions: each mount holds one")
            session = self.sessions[sid] = _Session(holder, now)
        elif session.holder != holder:
            raise errors.NotPermitted("that lock session belongs to another user")
        session.seen = now
        return session

    def renew(self, sid: str, holder: Holder, now: float) -> bool:
        """The session is still alive. -> whether this table knows it (False: its locks
        are gone, as after a failover or its lease running out)."""
        session = self.sessions.get(sid)
        if session is None:
            return False
        if session.holder != holder:
            raise errors.NotPermitted("that lock session belongs to another user")
        session.seen = now
        return True

    def expire(self, now: float) -> int:
        """Drop every session silent for longer than the lease. -> how many."""
        gone = [sid for sid, s in self.sessions.items() if now - s.seen > self.lease]
        for sid in gone:
            self._drop_session(sid)
        return len(gone)

    def _drop_session(self, sid: str) -> None:
        session = self.sessions.pop(sid)
        for ino, kind, owner in list(session.keys):
            self._set(session, sid, kind, ino, owner, ())

    # --- locks ------------------------------------------------------------------------

    def _set(self, session: _Session, sid: str, kind: str, ino: int, owner: int,
             ranges: Ranges, pid: int | None = None) -> None:
        """An owner's ranges on ``ino`` become ``ranges`` (the bookkeeping, no checks)."""
        key = (kind, sid, owner)
        owners = self.by_ino.setdefault(ino, {})
        owned = owners.get(key)
        before = len(owned.ranges) if owned is not None else 0
        session.count += len(ranges) - before
        self.total += len(ranges) - before
        if ranges:
            owned = owners.setdefault(key, _Owned())
            owned.ranges = ranges
            if pid is not None:
                owned.pid = pid
            session.keys.add((ino, kind, owner))
        else:
            owners.pop(key, None)
            session.keys.discard((ino, kind, owner))
            if not owners:
                del self.by_ino[ino]
        self.version += 1

    def _held(self, sid: str, kind: str, ino: int, owner: int) -> Ranges:
        owned = self.by_ino.get(ino, {}).get((kind, sid, owner))
        return owned.ranges if owned is not None else ()

    def _conflict(self, sid: str, kind: str, ino: int, owner: int, start: int, end: int,
                  want: str) -> Result | None:
        """The first other owner's lock in the way, as a refusal; None if there is none."""
        for (k, other_sid, other), owned in self.by_ino.get(ino, {}).items():
            if k != kind or (other_sid, other) == (sid, owner):
                continue
            found = clash(owned.ranges, start, end, want)
            if found is not None:
                pid = owned.pid if other_sid == sid else 0
                return Result(False, found, pid, 0.0, self.version,
                              self._held(sid, kind, ino, owner))
        return None

    def lock(self, sid: str, holder: Holder, kind: str, ino: int, owner: int, start: int,
             end: int, want: str, pid: int, now: float, reclaim: bool = False) -> Result:
        """Ask for ``[start, end)`` of ``ino`` as ``want`` (READ, WRITE; UNLOCK always
        succeeds). ``reclaim``: a lock held before a failover, asserted again within the
        grace period (refused with LockLost after it, or if another holds it)."""
        grace = self.grace_left(now)
        if want != UNLOCK:
            if reclaim and not grace:
                raise errors.LockLost("the grace period after a failover is over: locks "
                                      "held before it are lost")
            if grace and not reclaim:
                return Result(False, None, 0, grace, self.version,
                              self._held(sid, kind, ino, owner))
        elif sid not in self.sessions:
            if grace:  # the session may be about to reclaim what this would unlock
                return Result(False, None, 0, grace, self.version)
            return Result(True, version=self.version)  # nothing held: nothing to unlock
        session = self._session(sid, holder, now)
        try:
            if want != UNLOCK:
                refused = self._conflict(sid, kind, ino, owner, start, end, want)
                if refused is not None:
                    if reclaim:
                        raise errors.LockLost("a lock held before the failover was "
                                              "reclaimed by another holder")
                    return refused
            held = self._held(sid, kind, ino, owner)
            after = replace(held, start, end, want)
            grows = len(after) - len(held)
            if session.count + grows > MAX_RANGES:
                raise errors.LockLost(f"a lock session may hold at most {MAX_RANGES} ranges")
            if grows > 0 and self.total + grows > MAX_TOTAL_RANGES:
                raise errors.LockLost("the leader's lock table is full")
            self._set(session, sid, kind, ino, owner, after, pid)
            return Result(True, version=self.version, held=after)
        finally:
            self._forget_if_empty(sid)

    def test(self, sid: str, kind: str, ino: int, owner: int, start: int, end: int,
             want: str, now: float) -> Result:
        """F_GETLK: would ``want`` on ``[start, end)`` be granted? Changes nothing."""
        grace = self.grace_left(now)
        if grace:
            return Result(False, None, 0, grace, self.version)
        refused = self._conflict(sid, kind, ino, owner, start, end, want)
        return refused or Result(True, version=self.version,
                                 held=self._held(sid, kind, ino, owner))

    def release(self, sid: str, holder: Holder, now: float, kind: str = "", ino: int = 0,
                owner: int = 0) -> Result:
        """Release an owner's every lock on ``ino`` (a close: flush or release), or with
        ``kind`` "" every lock of the session (an unmount)."""
        session = self.sessions.get(sid)
        if session is None:
            return Result(True, version=self.version)
        if session.holder != holder:
            raise errors.NotPermitted("that lock session belongs to another user")
        if not kind:
            self._drop_session(sid)
            return Result(True, version=self.version)
        session.seen = now
        if self._held(sid, kind, ino, owner):
            self._set(session, sid, kind, ino, owner, ())
        self._forget_if_empty(sid)
        return Result(True, version=self.version)

    def _forget_if_empty(self, sid: str) -> None:
        """A session holding nothing is forgotten: only sessions with locks count."""
        session = self.sessions.get(sid)
        if session is not None and not session.keys:
            del self.sessions[sid]


class Locks:
    """The leader's LockTable behind its own condition variable (never the metadata
    lock): a fresh table, with its grace period, whenever the term we lead in changes."""

    def __init__(self, lease: float, clock: Callable[[], float]) -> None:
        self.lease = lease
        self.clock = clock
        self.changed = threading.Condition()
        self.term: int | None = None
        self.table = LockTable(lease, clock())

    def _current(self, term: int, now: float, grace: bool = True) -> LockTable:
        """Lock held: the table of ``term``, with the silent sessions' locks expired."""
        if term != self.term:
            self.term = term
            self.table = LockTable(self.lease, now, term, grace)
        if self.table.expire(now):
            self.changed.notify_all()
        return self.table

    def begin(self, term: int, initialised: bool) -> None:
        """We have just won ``term``: its table, with a grace period only if the namespace
        was initialised before (decided here, at the win, not at the next tick: a tick
        after the first worker's Init would give a cluster's first term a grace period)."""
        with self.changed:
            self._current(term, self.clock(), grace=initialised)

    def tick(self, term: int | None, initialised: bool = True) -> None:
        """The master-locks task (nodes/master/main.py): a new term's table and its grace
        period start when we start leading, not at the first request; silent sessions'
        locks are freed even when nobody asks. ``term``: None while we do not serve;
        ``initialised``: whether the namespace is (no grace in a term that began before)."""
        if term is None:
            return
        with self.changed:
            self._current(term, self.clock(), grace=initialised)

    def run(self, term: int, request: Callable[[LockTable, float], Result]) -> Result:
        """``request(table, now)`` once; waiters are woken if it changed something."""
        with self.changed:
            table = self._current(term, self.clock())
            before = table.version
            result = request(table, self.clock())
            if table.version != before:
                self.changed.notify_all()
            return result

    def wait(self, term: int, request: Callable[[LockTable, float], Result],
             seconds: float) -> Result:
        """``request`` until it is granted, or is refused for anything but another
        holder's lock, or ``seconds`` pass (a grace answer returns at once)."""
        with self.changed:
            deadline = self.clock() + seconds
            woken = True
            while True:
                now = self.clock()
                table = self._current(term, now)
                before = table.version
                result = request(table, now)
                if table.version != before:
                    self.changed.notify_all()
                if result.granted or result.holder is None or not woken or now >= deadline:
                    return result
                woken = self.changed.wait(deadline - now)  # False: the time is up

    def renew(self, term: int, sid: str, holder: Holder) -> tuple[bool, float]:
        """-> (whether the session is known, seconds of grace left)."""
        with self.changed:
            now = self.clock()
            table = self._current(term, now)
            return table.renew(sid, holder, now), table.grace_left(now)


__all__ = ["KINDS", "LOCK_EOF", "LockTable", "Locks", "READ", "Result", "UNLOCK", "WRITE",
           "clash", "replace"]

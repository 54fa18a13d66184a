"""The master's lock endpoints: flock and POSIX byte-range locks held at the leader for
every mount (the table, its leases and its grace period: nodes/master/locks.py; the
client's side: dfs/client/locks.py; the mount's: mount/locks.py).

Each request names its lock session (one per mount process, bound to the user that first
used it), the lock's kind ("posix" or "flock"), the file by inode (an open file may have
been renamed), the owner id, the range and the type ("r", "w", "u"). A lock on a file is
asked for only on a file the caller can reach (as ``commit``: an inode it cannot reach is
answered as one that does not exist); unlocking and releasing never are. Answers:
dfs.wire.LockAnswer. Waiting happens here, at most MAX_WAIT seconds per call, outside the
metadata lock; the client asks again.
"""

from __future__ import annotations

import re

from dfs import errors, wire
from nodes.master.locks import KINDS, LOCK_EOF, UNLOCK, Holder, LockTable, Result
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect

MAX_WAIT = 2.0
"""Seconds one call may wait for a lock held by another (the client's call timeout is
longer: ClientConfig.master_timeout)."""
SESSION_ID = re.compile(r"[0-9a-f]{16,64}")
MAX_OWNER = (1 << 64) - 1
MAX_PID = (1 << 31) - 1
LOCK_TYPES = ("r", "w", "u")


def _checked(session: object, kind: object, ino: object, owner: object) -> tuple[str, str,
                                                                                int, int]:
    sid = expect(session, str, "lock session")
    if not SESSION_ID.fullmatch(sid):
        raise errors.InvalidArgument("a lock session is 16 to 64 hex digits")
    kind = expect(kind, str, "lock kind")
    if kind not in KINDS:
        raise errors.InvalidArgument(f"lock kind must be one of {', '.join(KINDS)}")
    ino, owner = expect(ino, int, "inode"), expect(owner, int, "lock owner")
    if not (0 < ino < LOCK_EOF and 0 <= owner <= MAX_OWNER):
        raise errors.InvalidArgument("inode or lock owner out of range")
    return sid, kind, ino, owner


def _range(kind: str, start: object, end: object, want: object) -> tuple[int, int, str]:
    start, end = expect(start, int, "lock start"), expect(end, int, "lock end")
    want = expect(want, str, "lock type")
    if want not in LOCK_TYPES:
        raise errors.InvalidArgument("lock type must be r, w or u")
    if not 0 <= start < end <= LOCK_EOF:
        raise errors.InvalidArgument("a lock range needs 0 <= start < end <= LOCK_EOF")
    if kind == "flock" and (start, end) != (0, LOCK_EOF):
        raise errors.InvalidArgument("flock locks the whole file")
    return start, end, want


class LockEndpoints(Session):
    """The exposed methods for file locks."""

    def _lock_caller(self, ino: int | None) -> tuple[Holder, int]:
        """Who asks (the session's owner: the logged-in user) and the term we lead in;
        with ``ino``, the caller must reach that file. Metadata lock held only here."""
        with self.state.lock:
            user = self._serving()
            if ino is not None:
                inode = self.state.ns.inodes.get(ino)
                if inode is None or not self.state.ns.reachable(user, ino):
                    raise errors.FileNotFound("no such file (deleted while open?)")
            return (self._me(), self.serial), self.state.leadership.term

    def _answer(self, result: Result) -> wire.Wire:
        if not self.state.serving():  # we may have stopped leading while it waited
            raise errors.NotLeader("not the leader any more", self.state.leader_address())
        return wire.lock_answer_to_wire(wire.LockAnswer(
            result.granted, result.holder, result.holder_pid, result.grace,
            self.state.locks.lease, result.version, result.held))

    @boundary
    def exposed_lock(self, session: object, kind: object, ino: object, owner: object,
                     start: object, end: object, want: object, pid: object = 0,
                     wait: object = 0.0, reclaim: object = False) -> wire.Wire:
        """Lock (or unlock: ``want`` "u") ``[start, end)`` of file ``ino`` for ``owner``
        of ``session``, waiting up to ``wait`` seconds (at most MAX_WAIT) while another
        owner's lock is in the way. ``reclaim``: a lock held before a failover, asserted
        in the new leader's grace period. -> wire.LockAnswer."""
        sid, kind, ino, owner = _checked(session, kind, ino, owner)
        start, end, want = _range(kind, start, end, want)
        pid = expect(pid, int, "pid")
        seconds = expect(wait, (int, float), "wait")
        reclaim = expect(reclaim, bool, "reclaim")
        if not (0 <= pid <= MAX_PID and seconds >= 0):
            raise errors.InvalidArgument("pid or wait out of range")
        holder, term = self._lock_caller(None if want == UNLOCK else ino)

        def request(table: LockTable, now: float) -> Result:
            return table.lock(sid, holder, kind, ino, owner, start, end, want, pid, now,
                              reclaim)
        return self._answer(self.state.locks.wait(term, request, min(seconds, MAX_WAIT)))

    @boundary
    def exposed_lock_test(self, session: object, kind: object, ino: object, owner: object,
                          start: object, end: object, want: object) -> wire.Wire:
        """F_GETLK: would this lock be granted now? -> wire.LockAnswer (``holder``: the
        lock in the way)."""
        sid, kind, ino, owner = _checked(session, kind, ino, owner)
        start, end, want = _range(kind, start, end, want)
        if want == UNLOCK:
            raise errors.InvalidArgument("test a lock as r or w")
        _holder, term = self._lock_caller(ino)
        return self._answer(self.state.locks.run(
            term, lambda table, now: table.test(sid, kind, ino, owner, start, end, want, now)))

    @boundary
    def exposed_lock_release(self, session: object, kind: object = "", ino: object = 1,
                             owner: object = 0) -> wire.Wire:
        """Release every lock of ``owner`` on file ``ino`` (a close), or with ``kind`` ""
        every lock of the session (an unmount). -> wire.LockAnswer."""
        if kind == "":
            sid, which, ino, owner = _checked(session, KINDS[0], 1, 0)
            which = ""
        else:
            sid, which, ino, owner = _checked(session, kind, ino, owner)
        holder, term = self._lock_caller(None)
        return self._answer(self.state.locks.run(
            term, lambda table, now: table.release(sid, holder, now, which, ino, owner)))

    @boundary
    def exposed_lock_renew(self, session: object) -> wire.Wire:
        """Keep the session's locks alive. -> wire.LockAnswer: ``granted`` whether the
        leader knows the session (False after a failover or a lapsed lease: in a grace
        period, ``grace`` > 0, the client may reclaim what it held)."""
        sid, _kind, _ino, _owner = _checked(session, KINDS[0], 1, 0)
        holder, term = self._lock_caller(None)
        known, grace = self.state.locks.renew(term, sid, holder)
        return self._answer(Result(known, grace=grace))

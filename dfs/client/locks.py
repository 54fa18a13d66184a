"""A client's file locks at the leader: one lock session per client (per mount process).

    locks = LockSession(client)
    answer = locks.lock("posix", ino, owner, 0, 100, "w", wait=1.0)  # granted, or who holds it
    locks.release("posix", ino, owner)                              # a close
    locks.close()                                                   # an unmount

The leader keeps the table (nodes/master/locks.py: ranges, owners, leases, the grace
period after a failover); this side keeps the session alive and remembers what it holds:

- **Record**: for each (kind, inode, owner), the ranges the leader last said it holds,
  taken from granted answers only, the highest ``version`` winning (answers to concurrent
  requests of one owner may arrive out of order). A close of a file this client holds no
  lock on (the common case) sends nothing.
- **Lease**: while anything is held, a thread renews the session every quarter of the
  lease the leader gave. The record counts as valid until ``lease`` after the *sending* of
  the last call the leader answered: the leader forgets a session a lease after it last
  *heard* from it, so the client always gives up first. A client that finds its lease run
  out (a paused or cut-off mount) drops its record, says so in its log, and starts a new
  session: its locks may already be someone else's.
- **Failover**: a leader that does not know the session (a new leader) answers the renewal
  with its grace period; the client then reclaims every range it holds, before anyone else
  may lock anything. Unlocks and reclaims never run at the same time (``removing``), so an
  unlock cannot be undone by a reclaim sent before it.

Thread-safe: ``guard`` protects the record and is never held during a call.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dfs import errors, wire
from dfs.wire import LockAnswer, LockRange

if TYPE_CHECKING:
    from dfs.client.client import DfsClient

log = logging.getLogger(__name__)

Key = tuple[str, int, int]  # (kind, inode, owner id)
FIRST_LEASE = 4.0  # seconds assumed until the leader has said its lock lease
MIN_RENEW = 0.2


class _Held:
    __slots__ = ("version", "ranges", "pid")

    def __init__(self, version: int, ranges: tuple[LockRange, ...], pid: int) -> None:
        self.version = version
        self.ranges = ranges
        self.pid = pid


class LockSession:
    def __init__(self, client: DfsClient, clock: Callable[[], float] = time.monotonic,
                 renew_in_background: bool = True) -> None:
        self.client = client
        self.clock = clock
        self.guard = threading.Lock()
        self.removing = threading.Lock()  # unlocks and releases vs. a reclaim
        self.id = secrets.token_hex(16)
        self.held: dict[Key, _Held] = {}
        self.flying: dict[Key, int] = {}  # requests sent and not yet answered, per key
        self.lease = FIRST_LEASE
        self.confirmed = clock()  # when the last call the leader answered was sent
        self.background = renew_in_background
        self.renewer: threading.Thread | None = None
        self.wake = threading.Event()
        self.stopped = False

    # --- requests ---------------------------------------------------------------------

    def lock(self, kind: str, ino: int, owner: int, start: int, end: int, want: str,
             pid: int = 0, wait: float = 0.0, via: DfsClient | None = None) -> LockAnswer:
        """Ask for ``[start, end)`` of ``ino`` as ``want`` ("r", "w"; "u" unlocks),
        waiting at the leader up to ``wait`` seconds while another owner holds it.
        ``via``: the client to ask through (an admin mount's view of the caller).
        -> the leader's LockAnswer (not granted: ``holder`` in the way, or ``grace``)."""
        args = (kind, ino, owner, start, end, want, pid, float(wait), False)
        if want != "u":
            return self._request(via, (kind, ino, owner), pid, "lock", *args)
        if not self.holds(kind, ino, owner):
            return LockAnswer(True, None, 0, 0.0, self.lease, 0, ())
        with self.removing:
            return self._request(via, (kind, ino, owner), pid, "lock", *args)

    def test(self, kind: str, ino: int, owner: int, start: int, end: int, want: str,
             via: DfsClient | None = None) -> LockAnswer:
        """F_GETLK: would it be granted? (``holder``: the lock in the way.)"""
        return self._call(via, "lock_test", self.id, kind, ino, owner, start, end, want)

    def release(self, kind: str, ino: int, owner: int, via: DfsClient | None = None) -> None:
        """Drop every lock ``owner`` holds on ``ino`` (a close). Sends nothing when this
        client holds none there and asks for none."""
        if not self.holds(kind, ino, owner):
            return
        with self.removing:
            self._request(via, (kind, ino, owner), 0, "lock_release", kind, ino, owner)

    def holds(self, kind: str, ino: int, owner: int) -> bool:
        """Does ``owner`` hold (or ask for) any lock on ``ino`` here?"""
        key = (kind, ino, owner)
        with self.guard:
            return key in self.held or key in self.flying

    def _request(self, via: DfsClient | None, key: Key, pid: int, method: str,
                 *args: object) -> LockAnswer:
        with self.guard:
            self._check_lease()
            sid = self.id
            self.flying[key] = self.flying.get(key, 0) + 1
        sent = self.clock()
        try:
            answer = self._call(via, method, sid, *args)
        finally:
            with self.guard:
                self.flying[key] -= 1
                if not self.flying[key]:
                    del self.flying[key]
        with self.guard:
            if sid == self.id:
                self._learn(key, answer, sent, pid)
        if answer.grace:
            self.wake.set()  # a new leader: reclaim what we hold now, not at the next renewal
        return answer

    def _call(self, via: DfsClient | None, method: str, *args: object) -> LockAnswer:
        return wire.lock_answer_from_wire((via or self.client).master.call(method, *args))

    def _learn(self, key: Key, answer: LockAnswer, sent: float, pid: int) -> None:
        """Guard held: what a granted answer says the owner holds now."""
        if answer.lease:
            self.lease = answer.lease
        if not answer.granted:
            return
        self.confirmed = max(self.confirmed, sent)
        known = self.held.get(key)
        if known is not None and known.version > answer.version:
            return  # an older answer overtaken by a newer one
        if answer.held:
            self.held[key] = _Held(answer.version, answer.held, pid or (known.pid if known
                                                                        else 0))
        else:
            self.held.pop(key, None)
        if self.held and self.background and self.renewer is None and not self.stopped:
            self.renewer = threading.Thread(target=self._renew_loop, name="dfs-lock-renew",
                                            daemon=True)
            self.renewer.start()

    # --- the lease ----------------------------------------------------------------------

    def _check_lease(self) -> None:
        """Guard held: a record older than the lease is not to be trusted any more."""
        if self.held and self.clock() - self.confirmed > self.lease:
            self._lost("the lock lease ran out before it could be renewed")

    def _lost(self, why: str) -> None:
        """Guard held: forget every lock and start a new session."""
        if self.held:
            log.warning("%d file lock(s) lost: %s; they may be someone else's now",
                        len(self.held), why)
        self.held.clear()
        self.id = secrets.token_hex(16)

    def renew(self) -> None:
        """Keep the session's locks alive (the renewal thread calls this); reclaim them
        if the leader does not know the session but is in its grace period."""
        with self.guard:
            self._check_lease()
            if not self.held:
                return
            sid = self.id
        sent = self.clock()
        try:
            answer = self._call(None, "lock_renew", sid)
        except errors.DfsError as exc:
            log.info("lock renewal failed (%s); trying again", exc)
            return
        with self.guard:
            if sid != self.id:
                return
            self.lease = answer.lease or self.lease
            if answer.granted:
                self.confirmed = max(self.confirmed, sent)
                return
            if not answer.grace:
                self._lost("the leader no longer knows this mount's lock session")
                return
            # the old leader cannot have freed them only while our lease still runs
            self._check_lease()
            if sid != self.id:
                return
        self._reclaim(sid, sent)

    def _reclaim(self, sid: str, sent: float) -> None:
        """Assert every held range again at a new leader (within its grace period)."""
        with self.removing:
            with self.guard:
                if sid != self.id:
                    return
                todo = [(key, h.ranges, h.pid) for key, h in self.held.items()]
            reclaimed = 0
            for (kind, ino, owner), ranges, pid in todo:
                try:
                    for r in ranges:
                        self._request(None, (kind, ino, owner), pid, "lock", kind, ino,
                                      owner, r.start, r.end, r.type, pid, 0.0, True)
                    reclaimed += len(ranges)
                except errors.DfsError as exc:
                    with self.guard:
                        self.held.pop((kind, ino, owner), None)
                    log.warning("a file lock (inode %d) could not be reclaimed: %s", ino,
                                exc)
            with self.guard:
                self.confirmed = max(self.confirmed, sent)
        log.info("reclaimed %d file lock range(s) at the new leader", reclaimed)

    def _renew_loop(self) -> None:
        while not self.stopped:
            self.wake.wait(max(MIN_RENEW, self.lease / 4))
            self.wake.clear()
            if self.stopped:
                return
            try:
                self.renew()
            except Exception:  # the loop must go on: a renewal missed is a lease at risk
                log.exception("lock renewal failed")

    def close(self) -> None:
        """Release every lock of the session (an unmount) and stop renewing."""
        self.stopped = True
        self.wake.set()
        with self.guard:
            held, self.held = bool(self.held), {}
            sid = self.id
        if held:
            try:
                self._call(None, "lock_release", sid, "")
            except errors.DfsError as exc:  # the lease frees them soon anyway
                log.info("could not release the file locks at unmount: %s", exc)

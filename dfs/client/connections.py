"""Connections from a client to the metadata servers and the workers.

``MasterLink.call(name, *args)`` runs one request on the leader: it takes an authenticated
connection from a small pool (rpyc connections are not shared between threads here), and
on a dead connection or NotLeader tries the other addresses with backoff (dfs.retry) until
the failover deadline, then raises MasterUnavailable. A "no active workers" answer is
asked again for up to ``no_workers_wait`` (a master that has just restarted gives it until
the workers have reported again; the request was refused before anything changed, so
asking again is safe), then raised as it is. ``WorkerLinks.call(replica, ...)`` does the
same for a worker without retries: the caller decides what to do with another replica.

Errors that cross rpyc arrive as their DfsError class with the remote traceback glued to
``str()``; ``clean()`` gives back a plain instance so users see one line.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import rpyc

from dfs import errors, rpc
from dfs.config import Address
from dfs.retry import WORKER_SUSPECT_SECONDS, Backoff, Clock, RetryPolicy, Sleep
from dfs.wire import Replica

log = logging.getLogger(__name__)

POOL_SIZE = 8
SUSPECT_SECONDS = 10.0
# Requests that must not take effect twice: each carries a request id, kept the same across
# retries, so a retry after a failover gets the first attempt's answer, not FileExists.
ONCE_ONLY = frozenset({"mkdir", "create", "symlink", "mknod", "link", "unlink", "rmdir", "rename",
                       "trash_move", "setxattr", "removexattr"})
# The schedule between rounds over the metadata servers; each call sets its deadline.
FAILOVER = RetryPolicy(deadline=None)

E = TypeVar("E", bound=BaseException)


def check_utf8(text: str) -> None:
    """Names cross the wire as UTF-8: a name of other bytes (the mount passes them on as
    surrogate escapes) is refused here, with one errno (EINVAL), before anything is sent."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InvalidPath(f"{text!r} is not valid UTF-8: DFS names and symlink "
                                 "targets are UTF-8") from None


def clean(exc: E) -> E:
    """A fresh DfsError of the same class as a remote one, without the remote traceback."""
    if getattr(exc, "_remote_tb", None) is None:
        return exc
    # rpyc raises a subclass of the same name that carries the remote traceback
    cls = type(exc)
    parent = cls.__mro__[1]
    base = cast("type[E]", parent) if cls.__name__ == parent.__name__ else cls
    fresh = base.__new__(base)
    fresh.args = exc.args
    for name in ("leader",):
        if hasattr(exc, name):
            setattr(fresh, name, getattr(exc, name))
    return fresh


class _Pool:
    """Idle connections to one address; a connection is used by one thread at a time."""

    def __init__(self) -> None:
        self.idle: list[rpyc.Connection] = []
        self.lock = threading.Lock()

    def take(self) -> rpyc.Connection | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give(self, conn: rpyc.Connection) -> None:
        with self.lock:
            if len(self.idle) < POOL_SIZE and not conn.closed:
                self.idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            rpc.hard_close(conn)


@dataclass
class _Round:
    """What one pass over the metadata servers gave: an answer, or the last failure."""

    answered: bool = False
    result: Any = None
    last: BaseException | None = None
    no_workers: errors.NoActiveWorkers | None = None
    """Set when a server said "no active workers" and none served the request."""


class MasterLink:
    def __init__(self, masters: Sequence[Address], user: str | None, key: str | None,
                 timeout: float, failover_deadline: float, no_workers_wait: float,
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self.masters = list(masters)
        self.user = user
        self.key = key
        self.timeout = timeout
        self.failover_deadline = failover_deadline
        self.failover = FAILOVER.within(failover_deadline)
        self.no_workers_wait = no_workers_wait
        self.clock = clock
        self.sleep = sleep
        self.pools = {address: _Pool() for address in self.masters}
        self.preferred = 0  # index of the address that answered last
        self.suspects: dict[int, float] = {}  # index -> until when it counts as not answering
        self.admin = False
        self.act_as: tuple[int, int, tuple[int, ...]] | None = None
        """(uid, gid, groups) an admin key acts as: set on every connection at login."""

    def _login(self, address: Address) -> rpyc.Connection:
        """A connection logged in as our user (anonymous when there is no user yet)."""
        conn = rpc.connect(*address, timeout=self.timeout)
        if self.user is None or self.key is None:
            return conn
        try:
            _name, self.admin = rpc.login(conn, "login", self.user, self.key)
            if self.act_as is not None:
                rpc.call(conn, "act_as", *self.act_as)
            return conn
        except BaseException:
            conn.close()
            raise

    def _attempt(self, address: Address, name: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        pool = self.pools[address]
        conn = pool.take() or self._login(address)
        try:
            result = rpc.call(conn, name, *args, **kwargs)
        except errors.DfsError:
            pool.give(conn)
            raise
        except BaseException:
            rpc.hard_close(conn)
            raise
        pool.give(conn)
        return result

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``name(*args, **kwargs)`` on the leader. -> its wire answer (dfs.wire rebuilds it)."""
        for value in (*args, *kwargs.values()):
            if type(value) is str:
                check_utf8(value)
            elif type(value) is tuple:  # names in one call (stat_many)
                for item in value:
                    if type(item) is str:
                        check_utf8(item)
        if name in ONCE_ONLY:
            kwargs["rid"] = uuid.uuid4().hex
        failover = self.failover.start(self.clock, self.sleep)
        no_workers: Backoff | None = None
        while True:
            outcome = self._round(name, args, kwargs)
            if outcome.answered:
                return outcome.result
            if outcome.no_workers is not None:
                if no_workers is None:  # its own window, within what is left of the deadline
                    left = failover.remaining()
                    window = self.no_workers_wait if left is None else min(self.no_workers_wait,
                                                                           left)
                    no_workers = FAILOVER.within(window).start(self.clock, self.sleep)
                if not no_workers.wait():
                    raise outcome.no_workers from None
            elif not failover.wait():
                raise self._gave_up(outcome.last) from None

    def _round(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Round:
        """Try each address once, the likely leader first."""
        outcome = _Round()
        for index in self._order():
            address = self.masters[index]
            try:
                outcome.result = self._attempt(address, name, args, kwargs)
                outcome.answered = True
                self.preferred = index
                self.suspects.pop(index, None)
                return outcome
            except errors.NotLeader as exc:
                outcome.last = clean(exc)
                self._follow_hint(getattr(exc, "leader", ""))
            except errors.NoActiveWorkers as exc:
                # definite unless another server serves the request in this round
                outcome.no_workers = clean(exc)
                outcome.last = outcome.no_workers
            except errors.Unavailable as exc:
                outcome.last = clean(exc)
                self._suspect(index)
            except errors.DfsError as exc:
                raise clean(exc) from None
            except rpc.TRANSPORT_ERRORS as exc:
                outcome.last = exc
                self._suspect(index)
        return outcome

    def _gave_up(self, last: BaseException | None) -> BaseException:
        """The error for a call that found no leader within the failover deadline."""
        where = ", ".join(f"{h}:{p}" for h, p in self.masters)
        if isinstance(last, errors.NotLeader):
            return errors.MasterUnavailable(
                f"no metadata server at {where} is leading after "
                f"{self.failover_deadline:.0f}s (a leader needs leases from a majority "
                "of the workers and the other metadata server)")
        if isinstance(last, errors.DfsError):
            return last
        return errors.MasterUnavailable(
            f"no metadata server answered at {where} within "
            f"{self.failover_deadline:.0f}s ({last})")

    def _order(self) -> list[int]:
        """Addresses to try this round: the last good one first, and none that just failed
        to answer unless all did (a dead or paused server costs a timeout per try)."""
        now = self.clock()
        count = len(self.masters)
        order = [(self.preferred + step) % count for step in range(count)]
        answering = [i for i in order if self.suspects.get(i, 0) <= now]
        return answering or order

    def _suspect(self, index: int) -> None:
        self.pools[self.masters[index]].clear()
        self.suspects[index] = self.clock() + SUSPECT_SECONDS
        if index == self.preferred:
            self.preferred = (index + 1) % len(self.masters)

    def _follow_hint(self, leader: str) -> None:
        """A NotLeader answer may name the leader: try that address first next."""
        for index, (host, port) in enumerate(self.masters):
            if leader == f"{host}:{port}" or leader.endswith(f":{port}") and host in (
                    "127.0.0.1", "localhost"):
                self.preferred = index
                self.suspects.pop(index, None)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.clear()


class WorkerLinks:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pools: dict[Address, _Pool] = {}
        self.lock = threading.Lock()
        self.suspects: dict[Address, float] = {}  # worker -> until when it is tried last

    def _pool(self, address: Address) -> _Pool:
        with self.lock:
            return self.pools.setdefault(address, _Pool())

    def call(self, replica: Replica, name: str, *args: Any) -> Any:
        """One call on a worker; transport failures become WorkerUnavailable. A pooled
        connection that fails in transport is retried once on a fresh one: workers close
        connections left idle (nodes/server_limits.py), and a worker that is really gone
        refuses the fresh connection at once. A worker that failed so is suspect for a
        while (``order`` puts it last), so each read does not wait for it again."""
        address = (replica.host, replica.port)
        pool = self._pool(address)
        pooled = pool.take()
        if pooled is not None:
            try:
                return self._answered(address, self._call_on(pool, pooled, replica, name,
                                                             args))
            except errors.WorkerUnavailable:
                pass  # most likely closed by the worker while idle: once more, afresh
        try:
            conn = rpc.connect(*address, timeout=self.timeout)
            return self._answered(address, self._call_on(pool, conn, replica, name, args))
        except errors.Unavailable as exc:
            with self.lock:
                self.suspects[address] = time.monotonic() + WORKER_SUSPECT_SECONDS
            if isinstance(exc, errors.WorkerUnavailable):
                raise
            raise errors.WorkerUnavailable(f"worker {replica.worker_id}: {exc}") from None

    def call_each(self, replica: Replica, name: str, calls: Sequence[tuple[Any, ...]]
                  ) -> list[Any]:
        """``name(*args)`` for each ``args`` of ``calls``, in order: the first through
        ``call`` (so a stale pooled connection is replaced, and what the first call checks,
        room or token, fails before more is sent), the others sent on one connection
        without waiting for each answer (a worker serves one connection's calls in turn):
        the pieces of a chunk then travel while the worker stores the ones before. -> the
        answers; raises the first failure, after every answer is in."""
        if not calls:
            return []
        answers = [self.call(replica, name, *calls[0])]
        if len(calls) == 1:
            return answers
        address = (replica.host, replica.port)
        pool = self._pool(address)
        conn = pool.take()
        if conn is None:
            try:
                conn = rpc.connect(*address, timeout=self.timeout)
            except errors.Unavailable as exc:
                raise errors.WorkerUnavailable(f"worker {replica.worker_id}: {exc}") from None
        failed: errors.DfsError | None = None
        try:
            pending = [rpc.call_async(conn, name, *args, timeout=self.timeout)
                       for args in calls[1:]]
            for result in pending:
                try:
                    answers.append(result.value)
                except errors.DfsError as exc:
                    failed = failed or clean(exc)
        except rpc.TRANSPORT_ERRORS as exc:
            rpc.hard_close(conn)
            pool.clear()
            raise errors.WorkerUnavailable(
                f"worker {replica.worker_id} at {replica.host}:{replica.port}: {exc!r}") from None
        except BaseException:
            rpc.hard_close(conn)
            raise
        pool.give(conn)
        if failed is not None:
            raise failed
        return answers

    def _answered(self, address: Address, result: Any) -> Any:
        if address in self.suspects:
            with self.lock:
                self.suspects.pop(address, None)
        return result

    def order(self, replicas: Sequence[Replica]) -> list[Replica]:
        """``replicas`` with the ones that failed lately last (still tried, if all did)."""
        now = time.monotonic()
        with self.lock:
            late = {a for a, until in self.suspects.items() if until > now}
        return sorted(replicas, key=lambda r: (r.host, r.port) in late)

    @staticmethod
    def _call_on(pool: _Pool, conn: rpyc.Connection, replica: Replica, name: str,
                 args: tuple[Any, ...]) -> Any:
        try:
            result = rpc.call(conn, name, *args)
        except errors.DfsError as exc:
            pool.give(conn)
            raise clean(exc) from None
        except rpc.TRANSPORT_ERRORS as exc:
            rpc.hard_close(conn)
            pool.clear()
            raise errors.WorkerUnavailable(
                f"worker {replica.worker_id} at {replica.host}:{replica.port}: {exc!r}") from None
        except BaseException:
            rpc.hard_close(conn)
            raise
        pool.give(conn)
        return result

    def close(self) -> None:
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.clear()

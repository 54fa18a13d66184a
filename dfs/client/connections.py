"""Connections from a client to the metadata servers and the workers.

``MasterLink.call(name, *args)`` runs one request on the leader: it takes an authenticated
connection from a small pool (rpyc connections are not shared between threads here), and
on a dead connection or NotLeader tries the other addresses with backoff until the
failover deadline, then raises MasterUnavailable. ``WorkerLinks.call(replica, ...)``
does the same for a worker without retries: the caller decides what to do with another
replica.

Errors that cross rpyc arrive as their DfsError class with the remote traceback glued to
``str()``; ``clean()`` gives back a plain instance so users see one line.
"""

import logging
import threading
import time
import uuid

from dfs import errors, rpc

log = logging.getLogger(__name__)

POOL_SIZE = 8
SUSPECT_SECONDS = 10.0
# Requests that must not take effect twice: each carries a request id, kept the same across
# retries, so a retry after a failover gets the first attempt's answer, not FileExists.
ONCE_ONLY = frozenset({"mkdir", "create", "symlink", "link", "unlink", "rmdir", "rename"})


def clean(exc):
    """A fresh DfsError of the same class as a remote one, without the remote traceback."""
    cls = type(exc)
    if getattr(exc, "_remote_tb", None) is None:
        return exc
    base = cls.__mro__[1] if cls.__name__ == cls.__mro__[1].__name__ else cls
    fresh = base.__new__(base)
    fresh.args = exc.args
    for name in ("leader",):
        if hasattr(exc, name):
            setattr(fresh, name, getattr(exc, name))
    return fresh


class _Pool:
    """Idle connections to one address; a connection is used by one thread at a time."""

    def __init__(self):
        self.idle = []
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give(self, conn):
        with self.lock:
            if len(self.idle) < POOL_SIZE and not conn.closed:
                self.idle.append(conn)
                return
        conn.close()

    def clear(self):
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            rpc.hard_close(conn)


class MasterLink:
    def __init__(self, masters, user, key, timeout=30.0, failover_deadline=60.0):
        self.masters = list(masters)
        self.user = user
        self.key = key
        self.timeout = timeout
        self.failover_deadline = failover_deadline
        self.pools = {address: _Pool() for address in self.masters}
        self.preferred = 0  # index of the address that answered last
        self.suspects = {}  # index -> until when it counts as not answering
        self.admin = False

    def _login(self, address):
        """A connection logged in as our user (anonymous when there is no user yet)."""
        conn = rpc.connect(*address, timeout=self.timeout)
        if self.user is None:
            return conn
        try:
            _name, self.admin = rpc.login(conn, "login", self.user, self.key)
            return conn
        except BaseException:
            conn.close()
            raise

    def _attempt(self, address, name, args, kwargs):
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

    def call(self, name, *args, **kwargs):
        if name in ONCE_ONLY:
            kwargs["rid"] = uuid.uuid4().hex
        deadline = time.monotonic() + self.failover_deadline
        backoff = 0.05
        last = None
        while True:
            no_workers = None
            for index in self._order():
                address = self.masters[index]
                try:
                    result = self._attempt(address, name, args, kwargs)
                    self.preferred = index
                    self.suspects.pop(index, None)
                    return result
                except errors.NotLeader as exc:
                    last = clean(exc)
                    self._follow_hint(getattr(exc, "leader", ""))
                except errors.NoActiveWorkers as exc:
                    # definite unless another server serves the request in this round
                    no_workers = last = clean(exc)
                except errors.Unavailable as exc:
                    last = clean(exc)
                    self._suspect(index)
                except errors.DfsError as exc:
                    raise clean(exc) from None
                except rpc.TRANSPORT_ERRORS as exc:
                    last = exc
                    self._suspect(index)
            if no_workers is not None:
                raise no_workers from None
            if time.monotonic() + backoff > deadline:
                where = ", ".join(f"{h}:{p}" for h, p in self.masters)
                if isinstance(last, errors.NotLeader):
                    raise errors.MasterUnavailable(
                        f"no metadata server at {where} is leading after "
                        f"{self.failover_deadline:.0f}s (a leader needs leases from a majority "
                        "of the workers and the other metadata server)") from None
                if isinstance(last, errors.DfsError):
                    raise last from None
                raise errors.MasterUnavailable(
                    f"no metadata server answered at {where} within "
                    f"{self.failover_deadline:.0f}s ({last})") from None
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _order(self):
        """Addresses to try this round: the last good one first, and none that just failed
        to answer unless all did (a dead or paused server costs a timeout per try)."""
        now = time.monotonic()
        count = len(self.masters)
        order = [(self.preferred + step) % count for step in range(count)]
        answering = [i for i in order if self.suspects.get(i, 0) <= now]
        return answering or order

    def _suspect(self, index):
        self.pools[self.masters[index]].clear()
        self.suspects[index] = time.monotonic() + SUSPECT_SECONDS
        if index == self.preferred:
            self.preferred = (index + 1) % len(self.masters)

    def _follow_hint(self, leader):
        """A NotLeader answer may name the leader: try that address first next."""
        for index, (host, port) in enumerate(self.masters):
            if leader == f"{host}:{port}" or leader.endswith(f":{port}") and host in (
                    "127.0.0.1", "localhost"):
                self.preferred = index
                self.suspects.pop(index, None)

    def close(self):
        for pool in self.pools.values():
            pool.clear()


class WorkerLinks:
    def __init__(self, timeout=30.0):
        self.timeout = timeout
        self.pools = {}
        self.lock = threading.Lock()

    def _pool(self, address):
        with self.lock:
            return self.pools.setdefault(address, _Pool())

    def call(self, replica, name, *args):
        """One call on a worker; transport failures become WorkerUnavailable."""
        address = (replica.host, replica.port)
        pool = self._pool(address)
        try:
            conn = pool.take() or rpc.connect(*address, timeout=self.timeout)
        except errors.Unavailable as exc:
            raise errors.WorkerUnavailable(f"worker {replica.worker_id}: {exc}") from None
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

    def close(self):
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.clear()

"""rpyc links from a metadata server to its voters and to the other metadata server.

Every call is signed with the voter secret (derived from the join token) so only a
metadata server of this cluster can ask for leases, votes, stale marks or replication, and
carries a fresh nonce so a captured call cannot be played again (nodes/replay.py).
A link keeps one connection and reconnects after a failure; calls are bounded by a short
timeout so a paused (SIGSTOP) peer costs one timeout, never a hang. Any transport failure
becomes dfs.errors.Unavailable. One thread at a time per link (a lock around the call).

Two channels: voter calls go through one exposed ``voter(method, args, stamp, mac)`` on
workers and metadata servers alike (``serve_voter_call``); journal replication has its own
exposed methods on the metadata server (``peer_ping``, ``peer_replicate``,
``peer_install``; nodes/master/cluster_service.py), each checked by ``verify_peer_call``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import rpyc
from rpyc.core import consts

from dfs import auth, errors, rpc
from nodes.master.voter import Answer, Voter
from nodes.replay import check_signed_call
from nodes.rpcserver import expect

# Not (yet) MasterConfig fields: the lengths of one network call between the servers.
VOTER_TIMEOUT = 1.0
REPLICATION_TIMEOUT = 2.0  # a standby slower than this is marked stale, not waited for
INSTALL_TIMEOUT = 10.0  # a whole snapshot

PeerAnswer = tuple[str, int]  # ("ok" | "gap" | "old", a sequence number or an epoch)


class Link:
    """One voter (a worker, or the other metadata server), reached over rpyc."""

    def __init__(self, host: str, port: int, secret: bytes, to: str,
                 timeout: float = VOTER_TIMEOUT) -> None:
        """``to``: the node's id (a worker id, or the other server's role): signed into
        every call, so the call is good for that node only."""
        self.address = (host, port)
        self.secret = secret
        self.to = to
        self.timeout = timeout
        self.conn: rpyc.Connection | None = None
        self.call_lock = threading.Lock()

    def _call(self, remote: str, args: tuple[object, ...], timeout: float | None) -> object:
        """``remote(*args)`` on the other end, within ``timeout`` (else the link's)."""
        with self.call_lock:
            try:
                conn = self._connected()
                conn._config["sync_request_timeout"] = timeout or self.timeout
                return rpc.call(conn, remote, *args)
            except (*rpc.TRANSPORT_ERRORS, OSError) as exc:
                raise self._lost(exc) from None

    def _send(self, remote: str, args: tuple[object, ...]) -> Callable[[], object]:
        """``remote(*args)`` sent now, the answer taken later: -> what waits for it (within
        the link's timeout), to be called once; the link serves no other call until then."""
        self.call_lock.acquire()
        try:
            conn = self._connected()
            answer = conn.async_request(consts.HANDLE_CALLATTR, conn.root, remote, args, (),
                                        timeout=self.timeout)
        except BaseException as exc:
            failure = self._lost(exc) if isinstance(exc, (*rpc.TRANSPORT_ERRORS, OSError)) \
                else exc
            self.call_lock.release()
            raise failure from None

        def wait() -> object:
            try:
                return answer.value
            except (*rpc.TRANSPORT_ERRORS, OSError) as exc:
                raise self._lost(exc) from None
            finally:
                self.call_lock.release()
        return wait

    def _connected(self) -> rpyc.Connection:
        """call_lock held: the connection, made (and introduced) if there is none."""
        if self.conn is None or self.conn.closed:
            self.conn = rpc.connect(*self.address, timeout=self.timeout,
                                    connect_timeout=min(self.timeout, 2.0))
            self._introduce(self.conn)
        return self.conn

    def _lost(self, exc: BaseException) -> errors.Unavailable:
        """call_lock held: a transport failure; the connection is dropped."""
        self.close_locked()
        return errors.Unavailable(f"{self.address[0]}:{self.address[1]}: {exc!r}")

    def _introduce(self, conn: rpyc.Connection) -> None:
        """A fresh connection's first call (lock held). Voter calls are small: none needed."""

    def _voter(self, method: str, *args: object) -> Answer:
        stamp, mac = auth.sign_voter_call(self.secret, method, args, self.to)
        granted, epoch = _pair(self._call("voter", (method, args, stamp, mac), None))
        return expect(granted, bool, "granted"), expect(epoch, int, "epoch")

    def close_locked(self) -> None:
        if self.conn is not None:
            rpc.hard_close(self.conn)
            self.conn = None

    def close(self) -> None:
        with self.call_lock:
            self.close_locked()

    # the Voter interface (nodes.master.voter.Voter)
    def lease(self, epoch: int, leader: str) -> Answer:
        return self._voter("lease", epoch, leader)

    def vote(self, epoch: int, candidate: str) -> Answer:
        return self._voter("vote", epoch, candidate)

    def mark_stale(self, epoch: int, server: str, from_seq: int) -> Answer:
        return self._voter("mark_stale", epoch, server, from_seq)

    def clear_stale(self, epoch: int, server: str) -> Answer:
        return self._voter("clear_stale", epoch, server)


class PeerLink(Link):
    """The other metadata server: a voter, and the standby we replicate to."""

    def __init__(self, host: str, port: int, secret: bytes, to: str) -> None:
        super().__init__(host, port, secret, to, timeout=REPLICATION_TIMEOUT)

    def _peer(self, method: str, args: tuple[object, ...],
              timeout: float | None = None) -> PeerAnswer:
        stamp, mac = auth.sign_voter_call(self.secret, method, args, self.to)
        answer, value = _pair(self._call(method, (*args, stamp, mac), timeout))
        return expect(answer, str, "answer"), expect(value, int, "sequence number or epoch")

    def _introduce(self, conn: rpyc.Connection) -> None:
        """A signed ping first: the other server accepts only small frames from a connection
        that has not proved itself yet (nodes/server_limits.py), and a snapshot is big."""
        stamp, mac = auth.sign_voter_call(self.secret, "peer_ping", (), self.to)
        conn._config["sync_request_timeout"] = VOTER_TIMEOUT
        rpc.call(conn, "peer_ping", stamp, mac)

    def ping(self) -> PeerAnswer:
        """Is the other server there and answering? -> ("ok", its last entry)."""
        return self._peer("peer_ping", (), timeout=VOTER_TIMEOUT)

    def replicate(self, epoch: int, entries: tuple[str, ...]) -> PeerAnswer:
        """entries: journal lines (JSON). -> ("ok" | "gap" | "old", seq or epoch)."""
        return self._peer("peer_replicate", (epoch, entries))

    def replicate_async(self, epoch: int,
                        entries: tuple[str, ...]) -> Callable[[], PeerAnswer]:
        """``replicate`` sent now: -> what waits for its answer (call it once, soon: the
        link is busy until then). The leader fsyncs its own journal in between."""
        args = (epoch, entries)
        stamp, mac = auth.sign_voter_call(self.secret, "peer_replicate", args, self.to)
        wait = self._send("peer_replicate", (*args, stamp, mac))

        def answer() -> PeerAnswer:
            answer, value = _pair(wait())
            return expect(answer, str, "answer"), expect(value, int, "sequence number or epoch")
        return answer

    def install(self, epoch: int, snapshot: bytes) -> PeerAnswer:
        """snapshot: the namespace's JSON. -> ("ok" | "old", seq or epoch)."""
        return self._peer("peer_install", (epoch, snapshot), timeout=INSTALL_TIMEOUT)


def _pair(answer: object) -> tuple[object, object]:
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise errors.InvalidArgument(f"unexpected answer {answer!r}")
    return answer[0], answer[1]


VOTER_METHODS = ("lease", "vote", "mark_stale", "clear_stale")


def serve_voter_call(secret: bytes, voter: Voter, me: str, method: object, args: object,
                     stamp: object, mac: object) -> Answer:
    """The receiving side of a voter call to node ``me``: check the signature, then run the
    method on ``voter``. Used by both workers and metadata servers."""
    check_signed_call(secret, str(method), args, stamp, mac, me)
    if not isinstance(args, tuple):
        raise errors.InvalidArgument("voter call arguments must be a tuple")
    if method not in VOTER_METHODS:
        raise errors.InvalidArgument(f"unknown voter call {method!r}")
    answer: Answer = getattr(voter, str(method))(*args)
    return answer


def verify_peer_call(secret: bytes, me: str, method: str, args: tuple[object, ...],
                     stamp: object, mac: object) -> None:
    """The receiving side of a peer call to ``me``: only the other metadata server of this
    cluster may replicate to us, each call once (raises AuthenticationFailed)."""
    check_signed_call(secret, method, args, stamp, mac, me)

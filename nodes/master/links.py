"""rpyc links from a metadata server to its voters and to the other metadata server.

Every call is signed with the voter secret (derived from the join token) so only a
metadata server of this cluster can ask for leases, votes, stale marks or replication.
A link keeps one connection and reconnects after a failure; calls are bounded by a short
timeout so a paused (SIGSTOP) peer costs one timeout, never a hang. Any transport failure
becomes dfs.errors.Unavailable. One thread at a time per link (a lock around the call).
"""

import threading

from dfs import auth, errors, rpc

VOTER_TIMEOUT = 1.0
REPLICATION_TIMEOUT = 2.0  # a standby slower than this is marked stale, not waited for
INSTALL_TIMEOUT = 10.0  # a whole snapshot


class Link:
    def __init__(self, host, port, secret, timeout=VOTER_TIMEOUT):
        self.address = (host, port)
        self.secret = secret
        self.timeout = timeout
        self.conn = None
        self.call_lock = threading.Lock()

    def _signed(self, method, *args, timeout=None):
        stamp, mac = auth.sign_voter_call(self.secret, method, args)
        with self.call_lock:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = rpc.connect(*self.address, timeout=self.timeout,
                                            connect_timeout=min(self.timeout, 2.0))
                self.conn._config["sync_request_timeout"] = timeout or self.timeout
                return rpc.call(self.conn, "voter", method, args, stamp, mac)
            except errors.DfsError:
                raise
            except (*rpc.TRANSPORT_ERRORS, OSError) as exc:
                self.close_locked()
                raise errors.Unavailable(f"{self.address[0]}:{self.address[1]}: {exc!r}") \
                    from None

    def close_locked(self):
        if self.conn is not None:
            rpc.hard_close(self.conn)
            self.conn = None

    def close(self):
        with self.call_lock:
            self.close_locked()

    # the Voter interface (nodes.master.voter.Voter)
    def lease(self, epoch, leader):
        return tuple(self._signed("lease", epoch, leader))

    def vote(self, epoch, candidate):
        return tuple(self._signed("vote", epoch, candidate))

    def mark_stale(self, epoch, server, from_seq):
        return tuple(self._signed("mark_stale", epoch, server, from_seq))

    def clear_stale(self, epoch, server):
        return tuple(self._signed("clear_stale", epoch, server))


class PeerLink(Link):
    """The other metadata server: a voter, and the standby we replicate to."""

    def __init__(self, host, port, secret):
        super().__init__(host, port, secret, timeout=REPLICATION_TIMEOUT)

    def replicate(self, epoch, entries):
        """entries: tuple of JSON strings. -> ("ok" | "gap" | "old", seq or epoch)."""
        return tuple(self._signed("replicate", epoch, entries))

    def ping(self):
        """Is the other server there and answering? -> ("ok", its last entry)."""
        return tuple(self._signed("ping", timeout=VOTER_TIMEOUT))

    def install(self, epoch, snapshot):
        return tuple(self._signed("install", epoch, snapshot, timeout=INSTALL_TIMEOUT))


VOTER_METHODS = ("lease", "vote", "mark_stale", "clear_stale")
PEER_METHODS = ("replicate", "install", "ping")


def serve_voter_call(secret, voter, method, args, stamp, mac, extra=None):
    """The receiving side: check the signature, then run the method on ``voter`` (or on
    ``extra`` for the peer-only methods). Used by both workers and metadata servers."""
    auth.verify_voter_call(secret, method, args, stamp, mac)
    if not isinstance(args, tuple):
        raise errors.InvalidArgument("voter call arguments must be a tuple")
    if method in VOTER_METHODS:
        return getattr(voter, method)(*args)
    if extra is not None and method in PEER_METHODS:
        return extra(method, *args)
    raise errors.InvalidArgument(f"unknown voter call {method!r}")

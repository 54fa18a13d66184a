"""Signed calls between the nodes of a cluster are accepted once (issue 9).

A voter, peer or fsck call carries (stamp, "nonce:mac") from dfs.auth.sign_voter_call. The
signature and the stamp's window prove a metadata server of this cluster made it, for this
receiver (the node id is signed: a call to one worker is refused by every other); the nonce
proves it is not a copy: every receiver (worker or metadata server) remembers the nonces it
accepted until their stamp leaves the window, and refuses one seen before.

Memory is bounded: at most ``cap`` nonces. When more valid calls arrive within one window
(far beyond what honest servers send), the oldest are forgotten and the cache then refuses
every call stamped no later than the newest one it forgot: it may refuse an honest late
call (the servers retry), never accept a replay.

One cache per process (``SEEN``): a process is one node, and in tests that run several
nodes in one process a nonce is still never reused (each call signs a fresh one).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

from dfs import auth
from dfs.errors import AuthenticationFailed

# Honest servers send a few hundred signed calls a second at most (one replication call
# per commit group, leases, fsck): 30 s of those fit; ~200 bytes a nonce, ~13 MB at most.
SEEN_CAP = 65536


class SeenNonces:
    """The nonces accepted within the last ``window`` seconds of ``clock``. Thread-safe."""

    def __init__(self, window: float = auth.VOTER_WINDOW, cap: int = SEEN_CAP,
                 clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.cap = cap
        self.clock = clock
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.by_stamp: list[tuple[float, str]] = []  # a heap: the oldest stamp first
        self.floor = float("-inf")  # calls stamped at or before it may have been forgotten

    def __len__(self) -> int:
        with self.lock:
            return len(self.seen)

    def admit(self, nonce: str, stamp: float, now: float) -> None:
        """Record ``nonce`` (its call signed at ``stamp``), or raise AuthenticationFailed if
        it was accepted before (or may have been, past the cap)."""
        with self.lock:
            while self.by_stamp and self.by_stamp[0][0] < now - self.window:
                self.seen.discard(heapq.heappop(self.by_stamp)[1])  # refused as too old now
            if nonce in self.seen:
                raise AuthenticationFailed("replayed call")
            if stamp <= self.floor:
                raise AuthenticationFailed("replayed call (or older than every call the "
                                           "replay cache still remembers)")
            self.seen.add(nonce)
            heapq.heappush(self.by_stamp, (stamp, nonce))
            while len(self.seen) > self.cap:
                oldest, forgotten = heapq.heappop(self.by_stamp)
                self.seen.discard(forgotten)
                self.floor = max(self.floor, oldest)


SEEN = SeenNonces()


def check_signed_call(secret: bytes, method: str, args: object, stamp: object, mac: object,
                      me: str, seen: SeenNonces = SEEN) -> None:
    """The one check of a signed call's receiver ``me`` (its node id): signed by this
    cluster for ``me``, within the window, and never accepted before. Raises
    AuthenticationFailed."""
    now = seen.clock()
    signed_at, nonce = auth.verify_voter_call(secret, method, args, stamp, mac, me, now=now)
    seen.admit(nonce, signed_at, now)

"""What one voter promises, and remembers across restarts (DESIGN section 5).

Every worker is a voter, and so is each metadata server for the other one. A voter:

- grants a *lease* to the leader of the highest epoch it has seen, for ``lease`` seconds of
  its own clock, and refuses anything from an older epoch (the reply carries the newer
  epoch, so an old leader learns it must step down);
- grants one *vote* per epoch, only for an epoch above every epoch it has seen, only once
  its lease to another leader has expired, and never to a candidate marked stale;
- keeps the leader's marks "server X is stale from entry i" until the leader clears them.

The highest epoch, the last epoch voted in and the stale marks are written to a small JSON
file (atomically, fsynced) before the answer leaves, so a restart keeps the promises. A
voter that had granted leases before a restart does not vote until one lease period has
passed since it started: it may have forgotten a lease it granted.

Not thread-safe by itself: callers hold ``Voter.lock``. Time comes from ``clock``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

from dfs.config import MasterConfig, default
from dfs.fsutil import write_atomic

Answer = tuple[bool, int]  # (granted, the highest epoch this voter knows)


class Voter:
    def __init__(self, path: str, clock: Callable[[], float],
                 lease: float = default(MasterConfig, "lease")) -> None:
        self.path = path
        self.clock = clock
        self.lease_seconds = lease
        self.lock = threading.RLock()
        self.epoch = 0  # the highest epoch seen
        self.voted_epoch = 0  # the last epoch this voter gave its vote in
        self.stale: dict[str, int] = {}  # server id -> first journal entry it lacks
        self.granted_before = False
        self.holder: str | None = None  # the server holding our lease
        self.expiry = 0.0  # when that lease ends, on our clock
        self.leading = False  # set by this node's own Leadership: a leader votes for no one
        self._load()
        self.started = clock()

    def _load(self) -> None:
        if not self.path or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            data = json.load(f)
        self.epoch = data["epoch"]
        self.voted_epoch = data["voted_epoch"]
        self.stale = data["stale"]
        self.granted_before = data.get("granted_before", False)

    def _save(self) -> None:
        if self.path:
            data = {"epoch": self.epoch, "voted_epoch": self.voted_epoch, "stale": self.stale,
                    "granted_before": self.granted_before}
            write_atomic(self.path, json.dumps(data).encode())

    def lease_running(self, now: float, other_than: str | None = None) -> bool:
        """True while a lease this voter granted to someone other than ``other_than`` runs."""
        return self.holder is not None and self.holder != other_than and now < self.expiry

    def lease(self, epoch: int, leader: str) -> Answer:
        """-> (granted, highest epoch known)."""
        with self.lock:
            if epoch < self.epoch:
                return False, self.epoch
            changed = epoch > self.epoch or not self.granted_before
            self.epoch = epoch
            self.granted_before = True
            if changed:
                self._save()
            self.holder, self.expiry = leader, self.clock() + self.lease_seconds
            return True, self.epoch

    def vote(self, epoch: int, candidate: str) -> Answer:
        """-> (granted, highest epoch known)."""
        with self.lock:
            now = self.clock()
            if (epoch <= self.epoch or epoch <= self.voted_epoch or self.leading
                    or self.lease_running(now, other_than=candidate)
                    or candidate in self.stale
                    or (self.granted_before and now < self.started + self.lease_seconds)):
                return False, max(self.epoch, self.voted_epoch)
            self.epoch = self.voted_epoch = epoch
            self.granted_before = True
            self._save()
            self.holder, self.expiry = candidate, now + self.lease_seconds
            return True, epoch

    def vote_for_self(self, epoch: int) -> bool:
        """A candidate spends its own vote for ``epoch`` first: it can then vote for no
        one else in that epoch, so two candidates can never both win it."""
        with self.lock:
            if epoch <= self.voted_epoch or epoch <= self.epoch:
                return False
            self.voted_epoch = epoch
            self._save()
            return True

    def won(self, epoch: int) -> None:
        with self.lock:
            self.epoch = max(self.epoch, epoch)
            self._save()

    def mark_stale(self, epoch: int, server: str, from_seq: int) -> Answer:
        with self.lock:
            if epoch < self.epoch:
                return False, self.epoch
            if server not in self.stale or epoch > self.epoch:
                self.stale.setdefault(server, from_seq)  # the earliest missing entry counts
                self.epoch = epoch
                self._save()
            return True, self.epoch

    def clear_stale(self, epoch: int, server: str) -> Answer:
        with self.lock:
            if epoch < self.epoch:
                return False, self.epoch
            if server in self.stale:
                del self.stale[server]
                self._save()
            return True, self.epoch

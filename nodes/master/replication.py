"""Synchronous replication from the leader to its standby (DESIGN section 5).

Leader side, ``Replicator.replicate(records)`` runs inside the leader's commit, after its
own journal write and before the change is applied or acknowledged:

- standby in sync: send the entries, wait for its fsynced ack;
- standby unreachable, behind, or refusing: first record "standby stale from entry i" on a
  majority of the standby's electorate (Leadership.mark_standby_stale); only then go on
  alone. If even that fails, the entry is not acknowledged (Unavailable) and the leader
  steps down: it cannot prove it still leads.

``sync()`` (called by its own thread while the standby is out of sync) sends a full
snapshot of the namespace under the metadata lock and clears the stale marks; then the
standby is in sync again. A snapshot is simpler than a journal tail and always right,
also for an old leader whose journal holds entries nobody acknowledged.

Standby side, ``Standby``: the peer calls (nodes/master/cluster_service.py) write to the
standby's own journal/snapshot with an fsync before answering.

Entries travel as journal lines (``Record.to_line`` / ``Record.from_line``), snapshots as
the namespace's JSON.

Thread-safety: the leader calls ``replicate`` with the metadata lock held; ``sync`` takes it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from dfs import errors
from dfs.namespace.entries import Json, Record
from dfs.namespace.model import Namespace
from nodes.master.election import LEADER, VoterLink
from nodes.master.links import PeerAnswer
from nodes.master.voter import Voter

log = logging.getLogger(__name__)


class Peer(Protocol):
    """The standby as the leader reaches it (nodes.master.links.PeerLink)."""

    def ping(self) -> PeerAnswer: ...
    def replicate(self, epoch: int, entries: tuple[str, ...]) -> PeerAnswer: ...
    def install(self, epoch: int, snapshot: bytes) -> PeerAnswer: ...


class LeaderSide(Protocol):
    """What replication needs of the leader's election state (election.Leadership)."""

    @property
    def epoch(self) -> int: ...
    def serving(self, now: float) -> bool: ...
    def step_down(self, epoch: int) -> None: ...
    def mark_standby_stale(self, from_seq: int) -> bool: ...
    def clear_standby_stale(self, only: set[str] | None = None) -> set[str]: ...


class Replicator:
    def __init__(self, peer: Peer | None, peer_id: str | None, leadership: LeaderSide,
                 lock: threading.RLock, clock: Callable[[], float],
                 snapshot: Callable[[], Json]) -> None:
        """``snapshot()``: the namespace as applied so far, as JSON (lock held)."""
        self.peer = peer  # None when there is no standby
        self.peer_id = peer_id
        self.leadership = leadership
        self.lock = lock
        self.clock = clock
        self.snapshot = snapshot
        self.in_sync = False
        self.marked_from: int | None = None  # the entry the standby is marked stale from
        self.uncleared: set[str] = set()  # voters that may still hold a stale mark we lifted

    def describe(self) -> str:
        if self.peer is None:
            return "no standby"
        if self.in_sync:
            return "in sync"
        return f"stale from entry {self.marked_from}" if self.marked_from else "catching up"

    def reset(self) -> None:
        """A new term: nothing is known about the standby yet."""
        self.in_sync = False
        self.marked_from = None
        self.uncleared = set()

    def replicate(self, records: Sequence[Record]) -> None:
        """Leader, metadata lock held: put ``records`` (already in our journal, not yet
        applied) on the standby, or mark it stale first. Raises if neither is possible."""
        if self.peer is None:
            return
        first = records[0].seq
        if not self.in_sync and self.marked_from is None:
            try:  # a standby that is there (say, just started) is simply brought in sync
                self._install_locked(self.peer)
            except errors.NotLeader:
                raise
            except errors.DfsError as exc:
                log.info("standby cannot be synced now (%s)", exc)
        if self.in_sync:
            try:
                answer, value = self.peer.replicate(self.leadership.epoch,
                                                    tuple(r.to_line() for r in records))
                if answer == "ok":
                    return
                if answer == "old":
                    self.leadership.step_down(value)
                    raise errors.NotLeader("a newer leader exists")
                log.warning("standby is behind (at entry %s): marking it stale", value)
            except errors.NotLeader:
                raise
            except errors.Unavailable as exc:
                log.warning("standby unreachable (%s): marking it stale from entry %d", exc, first)
            self.in_sync = False
        if self.marked_from is None:
            if not self.leadership.mark_standby_stale(first):
                self.leadership.step_down(self.leadership.epoch)
                raise errors.Unavailable("lost contact with a majority of voters: retry")
            self.marked_from = first

    def tell_new_voter(self, link: VoterLink) -> bool:
        """A worker about to become a voter must first hold the standby's stale mark, if
        there is one: else a stale standby could win with the newcomers' votes."""
        if self.marked_from is None or self.peer_id is None:
            return True
        try:
            granted, _epoch = link.mark_stale(self.leadership.epoch, self.peer_id,
                                              self.marked_from)
            return granted
        except errors.DfsError:
            return False

    def finish_clearing(self) -> None:
        """Retry lifting the stale mark on voters that did not hear it the first time."""
        if self.uncleared:
            self.uncleared = self.leadership.clear_standby_stale(only=self.uncleared)

    def sync(self) -> None:
        """Bring the standby up to date with a snapshot; clear the stale marks.

        A quick ping first, outside the metadata lock: a dead or paused standby must not
        hold up the clients for a snapshot's timeout."""
        if self.peer is None or self.in_sync:
            return
        self.peer.ping()
        with self.lock:
            if not self.leadership.serving(self.clock()):
                return
            self._install_locked(self.peer)

    def _install_locked(self, peer: Peer) -> None:
        """Metadata lock held: send the whole namespace as applied so far. An entry being
        committed right now is not in it yet: ``replicate`` sends it next."""
        snapshot = json.dumps(self.snapshot(), separators=(",", ":")).encode()
        answer, value = peer.install(self.leadership.epoch, snapshot)
        if answer == "old":
            self.leadership.step_down(value)
            raise errors.NotLeader("a newer leader exists")
        # Still under the lock, so nothing new is acknowledged meanwhile: the standby
        # holds every entry, and the voters hear so before we call it in sync.
        if self.marked_from is not None:
            self.uncleared = self.leadership.clear_standby_stale()
            self.marked_from = None
        self.in_sync = True
        log.info("standby in sync at entry %s", value)


# --- the standby's side ----------------------------------------------------------------------

class ReplicaStore(Protocol):
    """What the standby side needs of its metadata server (MasterState)."""

    lock: threading.RLock

    @property
    def seq(self) -> int:
        """The last entry applied."""
    def append_and_apply(self, records: Sequence[Record]) -> None:
        """Journal (fsynced) and apply ``records``; lock held."""
    def replace_namespace(self, ns: Namespace) -> None:
        """Persist ``ns`` as our snapshot and serve it from now on; lock held."""


class StandbyRole(Protocol):
    """What the standby side needs of its own election state (election.Leadership)."""

    @property
    def role(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    def step_down(self, epoch: int) -> None: ...


class Standby:
    """The leader calls us (we are its standby): ping, replicate or install."""

    def __init__(self, voter: Voter, leadership: StandbyRole, store: ReplicaStore) -> None:
        self.voter = voter
        self.leadership = leadership
        self.store = store

    def ping(self) -> PeerAnswer:
        return "ok", self.store.seq

    def _accept(self, epoch: int) -> PeerAnswer | None:
        """None if the leader of ``epoch`` may write to us, else the refusal. A leader
        hearing from a newer one steps down first."""
        if epoch < self.voter.epoch:
            return "old", self.voter.epoch
        if self.leadership.role == LEADER:
            if epoch <= self.leadership.epoch:
                return "old", self.leadership.epoch
            self.leadership.step_down(epoch)
        self.voter.epoch = max(self.voter.epoch, epoch)
        return None

    def replicate(self, epoch: int, lines: tuple[str, ...]) -> PeerAnswer:
        """Append and apply entries from the leader. -> ("ok", seq) / ("gap", seq)."""
        refused = self._accept(epoch)
        if refused is not None:
            return refused
        store = self.store
        with store.lock:
            records = [Record.from_line(line) for line in lines]
            if not records:
                return "ok", store.seq
            if records[0].seq != store.seq + 1:
                return "gap", store.seq
            store.append_and_apply(records)
            return "ok", store.seq

    def install(self, epoch: int, snapshot: bytes) -> PeerAnswer:
        """Replace our namespace with the leader's. -> ("ok", seq)."""
        refused = self._accept(epoch)
        if refused is not None:
            return refused
        ns = Namespace.from_json(json.loads(snapshot))
        with self.store.lock:
            self.store.replace_namespace(ns)
            log.info("installed the leader's snapshot at entry %d (epoch %d)", ns.seq, epoch)
            return "ok", ns.seq

"""The standby's side of replication (nodes/master/replication.py has the leader's).

The leader's peer calls (nodes/master/cluster_service.py) journal and apply under the
standby's metadata lock, whose release waits for the fsync, before answering. Entries are
journaled as the lines that came (``Record.to_line`` on the leader), not encoded again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from dfs import errors
from dfs.namespace.entries import Record
from dfs.namespace.model import Namespace
from nodes.master.election import LEADER
from nodes.master.links import PeerAnswer
from nodes.master.voter import Voter

log = logging.getLogger(__name__)


class ReplicaStore(Protocol):
    """What the standby side needs of its metadata server (MasterState)."""

    @property
    def lock(self) -> AbstractContextManager[object]:
        """The metadata lock: its release waits until what was written is fsynced."""
    @property
    def seq(self) -> int:
        """The last entry applied."""
    def append_and_apply(self, records: Sequence[Record], lines: Sequence[str]) -> None:
        """Journal ``lines`` (``records`` as journal lines) and apply ``records``; lock
        held (durable once it is released)."""
    def replace_namespace(self, ns: Namespace, snapshot: bytes) -> None:
        """Persist ``snapshot`` (the JSON of ``ns``) and serve ``ns`` from now on; lock held."""


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
        """Append and apply entries from the leader, fsynced before the answer (the lock's
        release waits for it). -> ("ok", seq) / ("gap", seq)."""
        refused = self._accept(epoch)
        if refused is not None:
            return refused
        for line in lines:  # journaled as they came: one line each
            if "\n" in line:
                raise errors.InvalidArgument("a journal line holds a line break")
        records = [Record.from_line(line) for line in lines]
        store = self.store
        with store.lock:
            if not records:
                return "ok", store.seq
            if records[0].seq != store.seq + 1:
                return "gap", store.seq
            store.append_and_apply(records, lines)
            return "ok", store.seq

    def install(self, epoch: int, snapshot: bytes) -> PeerAnswer:
        """Replace our namespace with the leader's. -> ("ok", seq)."""
        refused = self._accept(epoch)
        if refused is not None:
            return refused
        ns = Namespace.from_json(json.loads(snapshot))
        with self.store.lock:
            self.store.replace_namespace(ns, snapshot)
            log.info("installed the leader's snapshot at entry %d (epoch %d)", ns.seq, epoch)
            return "ok", ns.seq

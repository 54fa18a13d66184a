"""Synchronous replication from the leader to its standby (DESIGN section 5).

Leader side, ``Replicator.replicate(entries)`` runs inside the leader's commit, after its
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

Standby side: ``apply_replicated`` and ``install_snapshot`` write to the standby's own
journal/snapshot with an fsync before answering.

Thread-safety: the leader calls ``replicate`` with the metadata lock held; ``sync`` takes it.
"""

import json
import logging

from dfs import errors
from dfs.namespace.model import Namespace

log = logging.getLogger(__name__)


class Replicator:
    def __init__(self, state, peer):
        self.state = state
        self.peer = peer  # nodes.master.links.PeerLink, or None when there is no standby
        self.in_sync = False
        self.marked_from = None  # the entry the standby is marked stale from, if marked
        self.uncleared = set()  # voters that may still hold a stale mark we lifted

    def describe(self):
        if self.peer is None:
            return "no standby"
        if self.in_sync:
            return "in sync"
        return f"stale from entry {self.marked_from}" if self.marked_from else "catching up"

    def reset(self):
        """A new term: nothing is known about the standby yet."""
        self.in_sync = False
        self.marked_from = None
        self.uncleared = set()

    def replicate(self, entries):
        """Leader, metadata lock held: put ``entries`` (already in our journal, not yet
        applied) on the standby, or mark it stale first. Raises if neither is possible."""
        if self.peer is None:
            return
        first = entries[0]["seq"]
        if not self.in_sync and self.marked_from is None:
            try:  # a standby that is there (say, just started) is simply brought in sync
                self._install_locked()
            except errors.NotLeader:
                raise
            except errors.DfsError as exc:
                log.info("standby cannot be synced now (%s)", exc)
        if self.in_sync:
            try:
                answer, value = self.peer.replicate(
                    self.state.epoch, tuple(json.dumps(e, separators=(",", ":")) for e in entries))
                if answer == "ok":
                    return
                if answer == "old":
                    self.state.leadership.step_down(value)
                    raise errors.NotLeader("a newer leader exists")
                log.warning("standby is behind (at entry %s): marking it stale", value)
            except errors.NotLeader:
                raise
            except errors.Unavailable as exc:
                log.warning("standby unreachable (%s): marking it stale from entry %d", exc, first)
            self.in_sync = False
        if self.marked_from is None:
            if not self.state.leadership.mark_standby_stale(first):
                self.state.leadership.step_down(self.state.epoch)
                raise errors.Unavailable("lost contact with a majority of voters: retry")
            self.marked_from = first

    def tell_new_voter(self, link):
        """A worker about to become a voter must first hold the standby's stale mark, if
        there is one: else a stale standby could win with the newcomers' votes."""
        if self.marked_from is None:
            return True
        try:
            granted, _epoch = link.mark_stale(self.state.epoch, self.state.peer_id,
                                              self.marked_from)
            return granted
        except errors.DfsError:
            return False

    def finish_clearing(self):
        """Retry lifting the stale mark on voters that did not hear it the first time."""
        if self.uncleared:
            self.uncleared = self.state.leadership.clear_standby_stale(only=self.uncleared)

    def sync(self):
        """Bring the standby up to date with a snapshot; clear the stale marks.

        A quick ping first, outside the metadata lock: a dead or paused standby must not
        hold up the clients for a snapshot's timeout."""
        if self.peer is None or self.in_sync:
            return
        self.peer.ping()
        with self.state.lock:
            if not self.state.leadership.serving(self.state.clock()):
                return
            self._install_locked()

    def _install_locked(self):
        """Metadata lock held: send the whole namespace as applied so far. An entry being
        committed right now is not in it yet: ``replicate`` sends it next."""
        snapshot = json.dumps(self.state.ns.to_json(), separators=(",", ":")).encode()
        answer, value = self.peer.install(self.state.epoch, snapshot)
        if answer == "old":
            self.state.leadership.step_down(value)
            raise errors.NotLeader("a newer leader exists")
        # Still under the lock, so nothing new is acknowledged meanwhile: the standby
        # holds every entry, and the voters hear so before we call it in sync.
        if self.marked_from is not None:
            self.uncleared = self.state.leadership.clear_standby_stale()
            self.marked_from = None
        self.in_sync = True
        log.info("standby in sync at entry %s", value)


def apply_replicated(state, epoch, entries):
    """Standby: append and apply entries from the leader. -> ("ok", seq) / ("gap", seq)."""
    with state.lock:
        parsed = [json.loads(e) for e in entries]
        if not parsed:
            return "ok", state.ns.seq
        if parsed[0]["seq"] != state.ns.seq + 1:
            return "gap", state.ns.seq
        state.journal.append(parsed)
        for entry in parsed:
            state.ns.apply(entry)
            state.after_apply(entry)
        if state.journal.entries_since_snapshot >= state.config.snapshot_every:
            state.journal.snapshot(state.ns)
        return "ok", state.ns.seq


def install_snapshot(state, epoch, snapshot):
    """Standby: replace our namespace with the leader's. -> ("ok", seq)."""
    ns = Namespace.from_json(json.loads(snapshot))
    with state.lock:
        state.journal.snapshot(ns)
        state.ns = ns
        state.after_load()
        log.info("installed the leader's snapshot at entry %d (epoch %d)", ns.seq, epoch)
        return "ok", ns.seq

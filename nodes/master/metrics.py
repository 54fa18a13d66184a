"""A metadata server's gauges, read at scrape time from its state (a prometheus_client
collector): leadership and leases, the standby's lag, workers, chunks, capacity, events.

The request and journal metrics are counted as they happen (dfs/metrics.py); these are
looked up when Prometheus asks, under the metadata lock for a moment (nodes/web.py makes
each scrape at most once a second). ``tick`` (a Task of the master, every half second)
notes when the standby fell out of sync, for ``dfs_standby_lag_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nodes.master.election import LEADER, majority
from nodes.master.status_page import capacity

if TYPE_CHECKING:
    from nodes.master.state import MasterState


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class MasterCollector(Collector):
    def __init__(self, state: MasterState) -> None:
        self.state = state
        self.out_of_sync_since: float | None = None

    def tick(self) -> None:
        """Note when the standby was last seen in sync (the leader's replicator says)."""
        state = self.state
        behind = state.peer is not None and state.leadership.role == LEADER \
            and not state.replicator.in_sync
        if not behind:
            self.out_of_sync_since = None
        elif self.out_of_sync_since is None:
            self.out_of_sync_since = state.clock()

    def _lease_left(self, now: float) -> float:
        """Leader: seconds it may still serve without another renewal (the grants of a
        majority); standby: seconds left of the lease its own voter gave the leader."""
        leadership = self.state.leadership
        if leadership.role != LEADER:
            voter = self.state.voter
            return max(0.0, voter.expiry - now) if voter.holder else 0.0
        electorate = leadership.links()
        if not electorate:
            return float("inf")  # alone, no voter: never lapses
        ends = sorted((leadership.grants.get(vid, 0.0) for vid in electorate), reverse=True)
        return max(0.0, ends[majority(len(electorate)) - 1] - now)

    def collect(self) -> Iterator[Metric]:
        state = self.state
        with state.lock:
            now = state.clock()
            leading = state.leadership.role == LEADER
            yield _gauge("dfs_master_leader", "1 while this server leads and may serve",
                         1.0 if state.serving() else 0.0, {"server": state.me})
            yield _gauge("dfs_master_epoch", "The highest epoch this server knows",
                         state.epoch)
            yield _gauge("dfs_lease_remaining_seconds", "Leader: seconds it may serve "
                         "without renewing; standby: seconds left of its lease to the leader",
                         self._lease_left(now), {"role": "leader" if leading else "standby"})
            electorate = state.leadership.links()
            yield _gauge("dfs_master_voters", "Voters in the electorate", len(electorate))
            yield _gauge("dfs_master_lease_holders", "Voters whose lease this server holds",
                         sum(1 for vid in electorate
                             if state.leadership.grants.get(vid, 0.0) > now))
            yield _gauge("dfs_journal_seq", "The last journal entry applied here", state.seq)
            if leading and state.peer is not None:
                yield from self._standby(now)
            yield from self._cluster(now)
        events = state.events
        for name, doc, value in (("dfs_events_recorded", "Audit events recorded",
                                  events.recorded),
                                 ("dfs_events_dropped", "Audit events dropped (queue full "
                                  "or disk failing)", events.dropped)):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter

    def _standby(self, now: float) -> Iterator[Metric]:
        replicator = self.state.replicator
        yield _gauge("dfs_standby_in_sync", "1 while the standby holds every entry",
                     1.0 if replicator.in_sync else 0.0)
        if replicator.in_sync:
            lag = 0.0
        elif replicator.marked_from is not None:
            lag = float(self.state.seq - replicator.marked_from + 1)
        else:
            lag = float("nan")  # catching up, not marked: how far behind is not known here
        yield _gauge("dfs_standby_lag_entries", "Journal entries the standby lacks", lag)
        since = self.out_of_sync_since
        yield _gauge("dfs_standby_lag_seconds", "Seconds since the standby was last in sync",
                     0.0 if replicator.in_sync or since is None else now - since)

    def _cluster(self, now: float) -> Iterator[Metric]:
        state = self.state
        workers = state.workers.status(now)
        alive = GaugeMetricFamily("dfs_workers", "Workers known, by state", labels=["state"])
        alive.add_metric(["alive"], sum(1 for w in workers if w.alive))
        alive.add_metric(["dead"], sum(1 for w in workers if not w.alive))
        yield alive
        per_worker = {name: GaugeMetricFamily(name, doc, labels=["worker"]) for name, doc in (
            ("dfs_worker_chunks", "Chunk copies a worker reported"),
            ("dfs_worker_used_bytes", "Bytes a worker reported used"),
            ("dfs_worker_free_bytes", "Bytes a worker reported free"),
            ("dfs_worker_up", "1 while a worker is alive"))}
        for w in workers:
            for name, value in (("dfs_worker_chunks", w.chunks), ("dfs_worker_used_bytes", w.used),
                                ("dfs_worker_free_bytes", w.free),
                                ("dfs_worker_up", 1 if w.alive else 0)):
                per_worker[name].add_metric([w.worker_id], value)
        yield from per_worker.values()
        ns = state.ns
        referenced = ns.referenced_chunk_ids()
        total, free = capacity(state)
        for name, doc, value in (
                ("dfs_chunks", "Chunks of committed files (and the trash)", len(referenced)),
                ("dfs_chunks_under_replicated", "Chunks with fewer live copies than wanted",
                 state.workers.under_replicated(referenced)),
                ("dfs_chunks_pending", "Chunk ids allocated, not yet committed",
                 len(ns.pending)),
                ("dfs_capacity_bytes", "Live workers' space after replication", total),
                ("dfs_free_bytes", "Live workers' free space after replication", free),
                ("dfs_inodes", "Files, folders and links", len(ns.inodes)),
                ("dfs_users", "Registered users", len(ns.users))):
            yield _gauge(name, doc, value)

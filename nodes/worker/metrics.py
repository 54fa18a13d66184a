"""A worker's gauges, read at scrape time (a prometheus_client collector): the chunk copies
it holds, its space, its load, and the lease it grants as a voter. The bytes it receives
and sends are counted as they pass (dfs/metrics.py, in nodes/worker/service.py and node.py).

Counting the copies lists the chunk folders, so that count is taken at most every
``INVENTORY_EVERY`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nodes.worker.node import Worker

INVENTORY_EVERY = 10.0


class WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.lock = threading.Lock()
        self.counted: Counter[str] = Counter()
        self.counted_at = -INVENTORY_EVERY

    def _chunks(self) -> Counter[str]:
        with self.lock:
            now = time.monotonic()
            if now - self.counted_at >= INVENTORY_EVERY:
                self.counted = Counter(kind for _chunk_id, kind in self.worker.store.inventory())
                self.counted_at = now
            return self.counted

    def collect(self) -> Iterator[Metric]:
        store, voter = self.worker.store, self.worker.voter
        chunks = GaugeMetricFamily("dfs_worker_store_chunks", "Chunk copies stored here, by "
                                   "kind (counted every 10 s)", labels=["kind"])
        counted = self._chunks()
        for kind in sorted(store.dirs):
            chunks.add_metric([kind], counted.get(kind, 0))
        yield chunks
        for name, doc, value in (
                ("dfs_worker_store_used_bytes", "Bytes of chunk copies stored here", store.used),
                ("dfs_worker_store_free_bytes", "Bytes new chunks may still take here",
                 store.free()),
                ("dfs_worker_busy", "Data calls in progress", store.busy)):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        with voter.lock:
            epoch, holder, expiry = voter.epoch, voter.holder, voter.expiry
        gauge = GaugeMetricFamily("dfs_voter_epoch", "The highest epoch this voter knows")
        gauge.add_metric([], epoch)
        yield gauge
        lease = GaugeMetricFamily("dfs_lease_remaining_seconds", "Seconds left of the lease "
                                  "this voter granted, by holder", labels=["role", "holder"])
        lease.add_metric(["voter", holder or ""], max(0.0, expiry - voter.clock()) if holder
                         else 0.0)
        yield lease

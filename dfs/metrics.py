"""The Prometheus metrics every node process counts as it goes (prometheus_client).

One place for their names and buckets. They are created unregistered: each node builds its
own registry (``node_registry``) with these, the process collector, and its own collector
of gauges read at scrape time (nodes/master/metrics.py, nodes/worker/metrics.py), and
serves it on its HTTP port (nodes/web.py). Names start with ``dfs_``; a label's values are
fixed by the code (method names, error classes), never by a caller.

Who counts what:

- ``REQUESTS`` / ``REQUEST_ERRORS``: every exposed rpyc method of every node, at its one
  boundary (nodes/rpcserver.py ``boundary``);
- ``JOURNAL_FSYNC``: each fdatasync of a metadata server's journal (dfs/journal.py);
- ``BYTES_IN`` / ``BYTES_OUT``: chunk bytes a worker stored / served (nodes/worker).

Thread-safe (prometheus_client's own locks); nothing here takes a node's lock.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
"""Seconds: metadata calls take about a millisecond, a chunk write to two disks tens."""

REQUESTS = Histogram("dfs_request_seconds", "Time spent in each exposed rpyc method",
                     ["op"], buckets=LATENCY_BUCKETS, registry=None)
REQUEST_ERRORS = Counter("dfs_request_errors", "Exposed-method calls that raised, by error",
                         ["op", "error"], registry=None)
JOURNAL_FSYNC = Histogram("dfs_journal_fsync_seconds",
                          "Time of each fdatasync of the metadata journal (group commit)",
                          buckets=LATENCY_BUCKETS, registry=None)
BYTES_IN = Counter("dfs_worker_bytes_received", "Chunk bytes a worker received and stored",
                   ["via"], registry=None)
BYTES_OUT = Counter("dfs_worker_bytes_sent", "Chunk bytes a worker read and sent",
                    registry=None)

NODE_METRICS: tuple[Collector, ...] = (REQUESTS, REQUEST_ERRORS)
MASTER_METRICS: tuple[Collector, ...] = (JOURNAL_FSYNC,)
WORKER_METRICS: tuple[Collector, ...] = (BYTES_IN, BYTES_OUT)


def node_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A registry for one node: the request metrics, this process's CPU and memory, and
    ``collectors`` (the node's own metrics and its scrape-time collector)."""
    registry = CollectorRegistry()  # no collect() at registration: only when scraped
    for collector in (*NODE_METRICS, ProcessCollector(registry=None), *collectors):
        registry.register(collector)
    return registry

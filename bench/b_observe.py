"""What observing a node costs it (issue 13): the RPC boundary's measurements and call
context, an audit event on the request thread, and scraping a leader that holds many files.

The first table is in-process: one exposed method called ``CALLS`` times through the old
boundary (argument checks only), through today's (plus the latency histogram and the call
context), and with an audit event recorded as a commit does. The second is a real local
cluster with ``FILES`` files: how long /metrics and the status page take to make (each is
made at most once a second, so the figure is per second of scraping, not per scraper).
"""

from __future__ import annotations

import tempfile
import time
import urllib.request

from bench import common
from bench.common import Row, Table

CALLS = 100_000
FILES = 2_000


class _Service:
    user, peer, worker_id = "alice", "127.0.0.1", None


def _per_call(call: object, count: int) -> float:
    """Microseconds per call of ``call()``."""
    assert callable(call)
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def _in_process() -> Table:
    from dfs.namespace.entries import Record, Revoke
    from nodes.master.events import EventLog
    from nodes.rpcserver import _serve, boundary, plain

    log = EventLog(tempfile.mkdtemp(prefix="dfs-bench-events-"), 64 << 20)
    service = _Service()

    def bare(self: object, path: str, mode: int) -> None:
        return None

    def old(path: str, mode: int) -> None:  # checks and the error boundary, as before
        for position, value in enumerate((path, mode), 1):
            plain(value, f"mkdir: argument {position}")
        _serve(bare, "mkdir", (service, path, mode), {})

    def audited(self: object, path: str, mode: int) -> None:
        log.mutation(Record(1, 1, Revoke(name="x")))

    measured = boundary(bare)
    with_event = boundary(audited)
    # fewer audited calls: a burst far beyond any fsync-bound commit rate fills the queue
    rows: list[Row] = [
        ("boundary: argument checks only", _per_call(lambda: old("/a/b", 0o700), CALLS), "us"),
        ("boundary: + latency histogram + call context",
         _per_call(lambda: measured(service, "/a/b", 0o700), CALLS), "us"),
        ("boundary: + one audit event (a commit)",
         _per_call(lambda: with_event(service, "/a/b", 0o700), 4_000), "us")]
    log.close()
    return ("observing a call, per call (in-process)", ("what", "time", "unit"), rows)


def _fetch(url: str) -> float:
    """Seconds to get ``url`` made afresh (its cache lasts one second)."""
    time.sleep(1.1)
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as answer:
        answer.read()
    return time.perf_counter() - started


def run(workdir: str) -> list[Table]:
    tables = [_in_process()]
    with common.cluster(workdir) as (cluster, client):
        client.mkdir("/bench-observe")
        for i in range(FILES):
            client.put_bytes(f"/bench-observe/f{i}", b"x")
        with cluster.admin_client() as admin:
            url = admin.status().web
        rows: list[Row] = [(what, min(_fetch(url + path) for _ in range(3)) * 1000, "ms")
                           for what, path in (("/metrics", "metrics"), ("status page", ""))]
    tables.append((f"scraping the leader with {FILES} files (best of 3)",
                   ("page", "time to make", "unit"), rows))
    return tables

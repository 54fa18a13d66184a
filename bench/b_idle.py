"""An honest client while another holds hundreds of idle connections (issue 9, point 4).

Another local address (127.0.0.2, so the per-peer cap applies to it and not to the honest
client on 127.0.0.1) opens ``IDLE`` TCP connections to the master and to a worker and sends
nothing. Within the servers' login timeout (connections that never log in are closed after
it), the honest client's stat latency and small-file put rate are measured, and compared
with the same measures before the flood.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bench import common
from bench.common import Row, Table

if TYPE_CHECKING:
    from dfs.client import DfsClient

IDLE = 500
STATS = 1000
PUTS = 200
ATTACKER = "127.0.0.2"


@contextlib.contextmanager
def idle_connections(addresses: list[tuple[str, int]], count: int) -> Iterator[int]:
    """``count`` idle sockets spread over ``addresses``. -> how many connected."""
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            host, port = addresses[i % len(addresses)]
            s = socket.socket()
            s.settimeout(2.0)
            try:
                s.bind((ATTACKER, 0))
                s.connect((host, port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        yield len(socks)
    finally:
        for s in socks:
            s.close()


def measure(dfs: DfsClient, tag: str) -> tuple[float, float, float]:
    """-> (median stat ms, 99th percentile stat ms, 4 KiB puts per second)."""
    times = []
    for _ in range(STATS):
        started = time.perf_counter()
        dfs.stat("/probe")
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    for i in range(PUTS):
        dfs.put_bytes(f"/{tag}-{i}", b"x" * 4096)
    rate = PUTS / (time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], rate


def run(workdir: str) -> list[Table]:
    with common.cluster(workdir) as (cluster, dfs):
        dfs.put_bytes("/probe", b"probe")
        quiet = measure(dfs, "quiet")
        worker = cluster.workers[0]
        assert cluster.master is not None
        targets = [("127.0.0.1", cluster.master.port), ("127.0.0.1", worker.port)]
        with idle_connections(targets, IDLE) as held:
            flooded = measure(dfs, "flooded")
    rows: list[Row] = []
    for label, unit, i in (("stat, median", "ms", 0), ("stat, 99th percentile", "ms", 1),
                           ("put 4 KiB", "files/s", 2)):
        ratio = f"x{flooded[i] / quiet[i]:.2f}" if quiet[i] else ""
        rows.append((label, quiet[i], flooded[i], unit, ratio))
    return [(f"An honest client while {ATTACKER} holds {held} idle connections to the master "
             f"and a worker (asked for: {IDLE}; each server takes at most 256 per peer)",
             ("measure", "quiet", "flooded", "unit", "flooded/quiet"), rows)]

"""Metadata operations per op, with 1 and 4 concurrent clients (master + shadow).

Each client is its own process (its own DfsClient and interpreter, so the clients really
run at once) working in its own directory: ``COUNT`` mkdir, ``COUNT`` creates of empty
files (``DfsClient.create``: one journaled change), ``COUNT`` puts of 4 KiB
(``put_bytes``: allocate, two worker writes, one commit). Every change is durable on the
leader and the standby before it is answered.

Figures: time per op as the clients see it (median latency) and the cluster's aggregate
rate (all clients' ops / wall time). ``DFS_BENCH_META_COUNT`` and ``DFS_BENCH_META_ROUNDS``
change the counts (median over the rounds).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import threading
import time
from typing import Any

from bench import common
from bench.common import Row, Table

COUNT = int(os.environ.get("DFS_BENCH_META_COUNT", "200"))
HELD = int(os.environ.get("DFS_BENCH_META_HELD", "20000"))  # files held for the stall test
STALL_OPS = 3000
ROUNDS = int(os.environ.get("DFS_BENCH_META_ROUNDS", "1"))
CLIENTS = (1, 4)
OPS = ("mkdir", "create", "put 4 KiB")
PAYLOAD = b"m" * 4096


def _client_main(auth_file: str, op: str, base: str, count: int, barrier: Any,
                 out: Any) -> None:
    """One client process: ``count`` ops under ``base``; puts its latencies on ``out``."""
    from dfs.client import DfsClient
    try:
        client = DfsClient.from_auth_file(auth_file, cache_dir="")
    except Exception as exc:
        barrier.abort()
        out.put(f"{type(exc).__name__}: {exc}")
        return
    try:
        home = f"/home/{client.user}"  # users have a home folder (the root is the admin's)
        if client.exists(home):
            base = home + base
        try:
            client.mkdir(base)
        finally:
            barrier.wait()
        latencies = []
        for i in range(count):
            began = time.perf_counter()
            if op == "mkdir":
                client.mkdir(f"{base}/d{i}")
            elif op == "create":
                client.create(f"{base}/e{i}")
            else:
                client.put_bytes(f"{base}/f{i}", PAYLOAD)
            latencies.append(time.perf_counter() - began)
        out.put(latencies)
    except Exception as exc:  # reported by the parent
        out.put(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def measure(auth_files: list[str], op: str, prefix: str, count: int) -> tuple[float, float]:
    """Run ``len(auth_files)`` clients at once. -> (median ms per op, aggregate ops/s)."""
    latencies, rate = run_clients(auth_files, op, prefix, count)
    return statistics.median(latencies) * 1000, rate


def run_clients(auth_files: list[str], op: str, prefix: str,
                count: int) -> tuple[list[float], float]:
    """-> (every op's latency in seconds, aggregate ops/s)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(auth_files) + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_client_main,
                         args=(path, op, f"{prefix}-c{k}", count, barrier, out))
             for k, path in enumerate(auth_files)]
    for proc in procs:
        proc.start()
    try:
        began = time.perf_counter()
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass  # a client failed to start: its error is on ``out``
        began = time.perf_counter()
        results = [out.get(timeout=600) for _ in procs]
        wall = time.perf_counter() - began
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise RuntimeError(errors[0])
    latencies = [x for r in results for x in r]
    return latencies, common.per_s(len(latencies), wall)


def stalls(auth_files: list[str]) -> list[Row]:
    """mkdir latency while the master holds HELD more files (snapshots of a bigger
    namespace happen meanwhile: they must not stall requests)."""
    per_client = HELD // len(auth_files)
    run_clients(auth_files, "create", "/held", per_client)
    latencies, rate = run_clients(auth_files[:1], "mkdir", "/stall", STALL_OPS)
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return [(f"mkdir x{STALL_OPS}, {per_client * len(auth_files)} files held", ms[len(ms) // 2],
             ms[int(len(ms) * 0.99)], ms[-1], rate)]


def run(workdir: str) -> list[Table]:
    rows: list[Row] = []
    with common.cluster(workdir) as (cluster, client):
        client.close()
        auth_files = [cluster.register(f"meta{k}") for k in range(max(CLIENTS))]
        for clients in CLIENTS:
            for op in OPS:
                figures = [measure(auth_files[:clients], op,
                                   f"/r{r}-{clients}-{op.split()[0]}", COUNT)
                           for r in range(ROUNDS)]
                ms = statistics.median(f[0] for f in figures)
                rate = statistics.median(f[1] for f in figures)
                rows.append((op, clients, COUNT * clients, ms, rate))
        stall_rows = stalls(auth_files)
    return [(f"Metadata per op through DfsClient (master + shadow, every change durable on "
             f"both; median of {ROUNDS} round(s))",
             ("operation", "clients", "ops", "ms/op (median latency)", "ops/s (all clients)"),
             rows),
            ("Snapshot stalls: one client's mkdir latency with a bigger namespace (a snapshot "
             "every 1000+ changes)", ("operation", "median ms", "p99 ms", "max ms", "ops/s"),
             stall_rows)]

"""Data and metadata throughput through DfsClient, against the local disk in the same run.

Workloads (a fresh LocalCluster: master + 4 workers, 4 MiB chunks, replication 2, the
client's default settings and chunk cache):

- put of a 1 GiB random file (``DfsClient.put``) vs a local copy of it with fsync. The DFS
  stores two copies, each fsynced by its worker: twice the bytes on the same disk.
- get of it (``DfsClient.get``) cold (page cache dropped before both, when root), again
  warm, and cold with the client's chunk cache off; vs a local copy of the stored file to
  a new file (no fsync, as get).
- 2000 puts of 4 KiB (``put_bytes``) vs 2000 local files written and fsynced; reading
  them back (``read_bytes``) vs local reads.
- metadata: mkdir (journaled and fsynced by the master; local: mkdir + fsync of the
  parent), stat, listdir of a 2000-entry directory, unlink.
- memory: peak RSS of the client and the nodes during the bulk transfers.

Bulk figures are the best of ``ROUNDS`` runs (1 by default, to stay within the bench's
time budget), local and DFS interleaved. On a virtual machine the first touch of fresh
memory (new page-cache pages) can cost more than the disk itself: raise ROUNDS when the
local figures jump between runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench import common
from bench.common import MIB, Row, Table, compare
from dfs.fsutil import fsync_dir

if TYPE_CHECKING:
    from dfs.client import DfsClient
    from dfs.local.cluster import LocalCluster

BIG = 1024 * MIB
ROUNDS = 1
SMALL = 4096
SMALL_COUNT = 2000
DIRS = 1000
STATS = 1000
LISTS = 20


def versus(label: str, dfs_fn: Callable[[], object], local_fn: Callable[[], object], amount: int,
           unit: str, rounds: int = 1, before: Callable[[], object] | None = None) -> Row:
    """Time ``local_fn`` and ``dfs_fn`` (interleaved, best of ``rounds``) -> a compare row.

    ``amount`` is bytes for MB/s, a count for the per-second units; ``before()`` runs
    untimed before each timed call (e.g. dropping caches). A DFS failure becomes a
    FAILED row: the bench reports what broke and goes on.
    """
    rate = common.mb_per_s if unit == "MB/s" else common.per_s
    local_best = dfs_best = float("inf")
    error: Exception | None = None
    for _ in range(rounds):
        if before:
            before()
        seconds, _ = common.timed(local_fn)
        local_best = min(local_best, seconds)
        if error is None:
            if before:
                before()
            try:
                seconds, _ = common.timed(dfs_fn)
            except Exception as exc:
                error = exc
                continue
            dfs_best = min(dfs_best, seconds)
    if error is not None and dfs_best == float("inf"):  # the first DFS round failed
        return common.failed(label, rate(amount, local_best), unit, error)
    return compare(label, rate(amount, dfs_best), rate(amount, local_best), unit)


def remove(*paths: str) -> None:
    for path in paths:
        if os.path.exists(path):
            os.unlink(path)


def bulk(workdir: str, cluster: LocalCluster, dfs: DfsClient, src: str,
         local: str) -> tuple[list[Row], bool]:
    """put / get of the big file. -> (rows, whether caches could be dropped)."""
    rows: list[Row] = []
    big_local = os.path.join(local, "big.bin")
    back_local = os.path.join(local, "back.bin")
    got = os.path.join(workdir, "got.bin")

    def local_put() -> None:
        remove(big_local)
        common.copy_file(src, big_local, fsync=True)

    rows.append(versus("put 1 GiB (DFS: 2 copies)", lambda: dfs.put(src, "/big.bin"),
                       local_put, BIG, "MB/s", ROUNDS, before=os.sync))

    cold = common.drop_caches()
    label = "get 1 GiB, cold" if cold else "get 1 GiB (page cache NOT dropped)"

    def local_get() -> None:
        common.copy_file(big_local, back_local)
        remove(back_local)

    def dfs_get(client: DfsClient = dfs) -> None:
        client.get("/big.bin", got)
        remove(got)

    rows.append(versus(label, dfs_get, local_get, BIG, "MB/s", ROUNDS, before=common.drop_caches))
    rows.append(versus("get 1 GiB again, warm", dfs_get, local_get, BIG, "MB/s", ROUNDS))
    with cluster.client("bench", cache_dir="") as uncached:
        rows.append(versus(label + ", client cache off", lambda: dfs_get(uncached), local_get,
                           BIG, "MB/s", ROUNDS, before=common.drop_caches))
    remove(got, big_local)
    return rows, cold


def small_files(dfs: DfsClient, local: str) -> tuple[list[Row], str]:
    rows: list[Row] = []
    payloads = [os.urandom(SMALL) for _ in range(SMALL_COUNT)]
    small_local = os.path.join(local, "small")
    os.makedirs(small_local)

    def local_put() -> None:
        for i, data in enumerate(payloads):
            fd = os.open(os.path.join(small_local, f"f{i}"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def dfs_put() -> None:
        for i, data in enumerate(payloads):
            dfs.put_bytes(f"/small/f{i}", data)

    def local_read() -> None:
        for i in range(SMALL_COUNT):
            with open(os.path.join(small_local, f"f{i}"), "rb") as f:
                f.read()

    def dfs_read() -> None:
        for i in range(SMALL_COUNT):
            dfs.read_bytes(f"/small/f{i}")

    dfs.mkdir("/small")
    rows.append(versus(f"put {SMALL_COUNT} x 4 KiB (fsync)", dfs_put, local_put, SMALL_COUNT,
                       "files/s"))
    rows.append(versus(f"read {SMALL_COUNT} x 4 KiB (warm)", dfs_read, local_read, SMALL_COUNT,
                       "files/s"))
    return rows, small_local


def metadata(dfs: DfsClient, local: str, small_local: str) -> list[Row]:
    rows: list[Row] = []
    dirs_local = os.path.join(local, "dirs")
    os.makedirs(dirs_local)

    def local_mkdir() -> None:
        for i in range(DIRS):
            os.mkdir(os.path.join(dirs_local, f"d{i}"))
            fsync_dir(dirs_local)

    def dfs_mkdir() -> None:
        for i in range(DIRS):
            dfs.mkdir(f"/dirs/d{i}")

    def local_stat() -> None:
        for i in range(STATS):
            os.stat(os.path.join(small_local, f"f{i}"))

    def dfs_stat() -> None:
        for i in range(STATS):
            dfs.stat(f"/small/f{i}")

    def local_list() -> None:
        for _ in range(LISTS):
            [e.stat() for e in os.scandir(small_local)]

    def dfs_list() -> None:
        for _ in range(LISTS):
            dfs.listdir("/small")

    def local_unlink() -> None:
        for i in range(SMALL_COUNT):
            os.unlink(os.path.join(small_local, f"f{i}"))
        fsync_dir(small_local)

    def dfs_unlink() -> None:
        for i in range(SMALL_COUNT):
            dfs.rm(f"/small/f{i}")

    dfs.mkdir("/dirs")
    rows.append(versus(f"mkdir x{DIRS} (durable)", dfs_mkdir, local_mkdir, DIRS, "ops/s"))
    rows.append(versus(f"stat x{STATS}", dfs_stat, local_stat, STATS, "ops/s"))
    rows.append(versus(f"listdir {SMALL_COUNT} entries + attrs", dfs_list, local_list, LISTS,
                       "ops/s"))
    rows.append(versus(f"unlink x{SMALL_COUNT}", dfs_unlink, local_unlink, SMALL_COUNT, "ops/s"))
    return rows


def run(workdir: str) -> list[Table]:
    local = os.path.join(workdir, "local")
    os.makedirs(local)
    src = common.random_file(os.path.join(workdir, "source.bin"), BIG)
    os.sync()
    with common.cluster(workdir) as (cluster, dfs):
        nodes = common.node_pids(cluster)
        common.reset_peak_rss([os.getpid(), *nodes.values()])
        rows_data, cold = bulk(workdir, cluster, dfs, src, local)
        rows_memory: list[Row] = [("client (this process)", common.peak_rss_mib(os.getpid()))]
        rows_memory += [(name, common.peak_rss_mib(pid)) for name, pid in nodes.items()]
        os.unlink(src)
        rows_small, small_local = small_files(dfs, local)
        rows_meta = metadata(dfs, local, small_local)

    cache_note = "page cache dropped before each cold read" if cold else \
        "NOT root: page cache could not be dropped, reads are warm"
    return [
        (f"Bulk data, 1 GiB random file ({cache_note}; same disk for both"
         + (f"; best of {ROUNDS})" if ROUNDS > 1 else ")"),
         common.COMPARE_HEADER, rows_data),
        ("Small files, 4 KiB each (one client thread, one after the other)",
         common.COMPARE_HEADER, rows_small),
        ("Metadata (one client thread; local mkdir fsyncs its parent, as the master's journal)",
         common.COMPARE_HEADER, rows_meta),
        ("Memory: peak RSS during the bulk put and gets (the client's includes the bench's own"
         " 4 MiB copy buffer)", ("process", "peak RSS MiB"), rows_memory),
    ]

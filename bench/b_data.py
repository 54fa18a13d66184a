"""Data and metadata throughput through DfsClient, against the local disk in the same run.

Workloads (a fresh LocalCluster: master + 4 workers, 4 MiB chunks, replication 2, the
client's default settings and chunk cache):

- put of a 1 GiB random file (``DfsClient.put``) vs a local copy of it with fsync. The DFS
  stores two copies, each fsynced by its worker: twice the bytes on the same disk.
- get of it (``DfsClient.get``) cold (page cache dropped before both, when root) and
  again warm, vs a local copy of the stored file to a new file (no fsync, as get).
- 2000 puts of 4 KiB (``put_bytes``) vs 2000 local files written and fsynced; reading
  them back (``read_bytes``) vs local reads.
- metadata: mkdir (journaled and fsynced by the master; local: mkdir + fsync of the
  parent), stat, listdir of a 2000-entry directory, unlink.
"""

import os

from bench import common
from bench.common import MIB, Timer, compare

BIG = 1024 * MIB
SMALL = 4096
SMALL_COUNT = 2000
DIRS = 1000
STATS = 1000
LISTS = 20


def versus(label, dfs_fn, local_seconds, amount, unit):
    """Time ``dfs_fn`` and build the comparison row; a DFS failure becomes a FAILED row.

    ``amount`` is bytes for MB/s, a count for the per-second units.
    """
    rate = common.mb_per_s if unit == "MB/s" else common.per_s
    try:
        seconds, _ = common.timed(dfs_fn)
    except Exception as exc:  # the bench reports what broke and goes on
        return common.failed(label, rate(amount, local_seconds), unit, exc)
    return compare(label, rate(amount, seconds), rate(amount, local_seconds), unit)


def run(workdir):
    local = os.path.join(workdir, "local")
    os.makedirs(local)
    src = common.random_file(os.path.join(workdir, "source.bin"), BIG)
    os.sync()
    rows_data, rows_small, rows_meta = [], [], []

    with common.cluster(workdir) as (_cluster, dfs):
        big_local = os.path.join(local, "big.bin")
        back_local = os.path.join(local, "back.bin")
        got = os.path.join(workdir, "got.bin")

        # --- 1 GiB put, then get cold and warm ---------------------------------------
        with Timer() as t_local:
            common.copy_file(src, big_local, fsync=True)
        os.sync()
        rows_data.append(versus("put 1 GiB (DFS: 2 copies)", lambda: dfs.put(src, "/big.bin"),
                                t_local.seconds, BIG, "MB/s"))

        cold = common.drop_caches()
        with Timer() as t_local:
            common.copy_file(big_local, back_local)
        os.unlink(back_local)
        common.drop_caches()
        label = "get 1 GiB, cold" if cold else "get 1 GiB (page cache NOT dropped)"
        rows_data.append(versus(label, lambda: dfs.get("/big.bin", got), t_local.seconds, BIG,
                                "MB/s"))

        with Timer() as t_local:
            common.copy_file(big_local, back_local)
        os.unlink(back_local)
        rows_data.append(versus("get 1 GiB again, warm", lambda: dfs.get("/big.bin", got),
                                t_local.seconds, BIG, "MB/s"))
        for path in (got, src, big_local):
            if os.path.exists(path):
                os.unlink(path)

        # --- small files ---------------------------------------------------------------
        payloads = [os.urandom(SMALL) for _ in range(SMALL_COUNT)]
        small_local = os.path.join(local, "small")
        os.makedirs(small_local)
        with Timer() as t_local:
            for i, data in enumerate(payloads):
                fd = os.open(os.path.join(small_local, f"f{i}"), os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        dfs.mkdir("/small")

        def put_small():
            for i, data in enumerate(payloads):
                dfs.put_bytes(f"/small/f{i}", data)
        rows_small.append(versus(f"put {SMALL_COUNT} x 4 KiB (fsync)", put_small,
                                 t_local.seconds, SMALL_COUNT, "files/s"))

        with Timer() as t_local:
            for i in range(SMALL_COUNT):
                with open(os.path.join(small_local, f"f{i}"), "rb") as f:
                    f.read()

        def read_small():
            for i in range(SMALL_COUNT):
                dfs.read_bytes(f"/small/f{i}")
        rows_small.append(versus(f"read {SMALL_COUNT} x 4 KiB (warm)", read_small,
                                 t_local.seconds, SMALL_COUNT, "files/s"))

        # --- metadata ------------------------------------------------------------------
        dirs_local = os.path.join(local, "dirs")
        os.makedirs(dirs_local)
        with Timer() as t_local:
            for i in range(DIRS):
                os.mkdir(os.path.join(dirs_local, f"d{i}"))
                common.fsync_dir(dirs_local)
        dfs.mkdir("/dirs")

        def mkdirs():
            for i in range(DIRS):
                dfs.mkdir(f"/dirs/d{i}")
        rows_meta.append(versus(f"mkdir x{DIRS} (durable)", mkdirs, t_local.seconds, DIRS,
                                "ops/s"))

        with Timer() as t_local:
            for i in range(STATS):
                os.stat(os.path.join(small_local, f"f{i}"))

        def stats():
            for i in range(STATS):
                dfs.stat(f"/small/f{i}")
        rows_meta.append(versus(f"stat x{STATS}", stats, t_local.seconds, STATS, "ops/s"))

        with Timer() as t_local:
            for _ in range(LISTS):
                [e.stat() for e in os.scandir(small_local)]

        def lists():
            for _ in range(LISTS):
                dfs.listdir("/small")
        rows_meta.append(versus(f"listdir {SMALL_COUNT} entries + attrs", lists,
                                t_local.seconds, LISTS, "ops/s"))

        with Timer() as t_local:
            for i in range(SMALL_COUNT):
                os.unlink(os.path.join(small_local, f"f{i}"))
            common.fsync_dir(small_local)

        def unlinks():
            for i in range(SMALL_COUNT):
                dfs.rm(f"/small/f{i}")
        rows_meta.append(versus(f"unlink x{SMALL_COUNT}", unlinks, t_local.seconds,
                                SMALL_COUNT, "ops/s"))

    cache_note = "page cache dropped before each cold read" if cold else \
        "NOT root: page cache could not be dropped, reads are warm"
    return [
        (f"Bulk data, 1 GiB random file ({cache_note}; same disk for both)",
         common.COMPARE_HEADER, rows_data),
        ("Small files, 4 KiB each (one client thread, one after the other)",
         common.COMPARE_HEADER, rows_small),
        ("Metadata (one client thread; local mkdir fsyncs its parent, as the master's journal)",
         common.COMPARE_HEADER, rows_meta),
    ]

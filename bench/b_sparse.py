"""Sparse files and the mount's memory, through the real ``dfs mount`` (1 MiB pieces).

A fresh LocalCluster (master + 4 workers, 4 MiB chunks, replication 2), mounted with the
default write-back budget (256 MiB) and read buffers (64 MiB):

- ``truncate -s 1T`` of a new file, on the mount and on a local folder: the time, and the
  bytes the cluster's workers hold afterwards (a hole costs nothing).
- ``ftruncate`` to 1 PB, 4 KiB written at the end, fsync: time and chunk files stored.
- 2 GB written through 200 open files (10 MB each, 1 MiB writes in turn), then closed
  and deleted: the mount process's RSS idle, at its peak, after close, after delete.
"""

import os
import subprocess
import sys
import time

from bench import common
from bench.b_mount import Mount, _check_fuse
from bench.common import MIB, Timer
from dfs.local.worker_disk import chunk_file_count, worker_bytes

FILES = 200
PER_FILE = 10 * MIB
PB = 10 ** 15


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def sparse_rows(cluster, mnt, local):
    rows = []
    before = worker_bytes(cluster)
    with Timer() as t_local:
        subprocess.run(["truncate", "-s", "1T", os.path.join(local, "tera")], check=True)
    with Timer() as t_dfs:
        subprocess.run(["truncate", "-s", "1T", os.path.join(mnt, "tera")], check=True)
    rows.append(common.compare("truncate -s 1T: time", t_dfs.seconds * 1000,
                               t_local.seconds * 1000, "ms", higher_is_better=False))
    rows.append(("truncate -s 1T: bytes stored (workers, all copies)",
                 worker_bytes(cluster) - before, os.stat(os.path.join(local, "tera")).st_blocks
                 * 512, "bytes", "", ""))
    rows.append(("truncate -s 1T: st_blocks on the mount", os.stat(os.path.join(
        mnt, "tera")).st_blocks, os.stat(os.path.join(local, "tera")).st_blocks, "blocks", "",
        ""))
    files_before = chunk_file_count(cluster)
    with Timer() as t_dfs:
        fd = os.open(os.path.join(mnt, "peta"), os.O_CREAT | os.O_RDWR, 0o600)
        os.ftruncate(fd, PB)
        os.pwrite(fd, os.urandom(4096), PB - 4096)
        os.fsync(fd)
        os.close(fd)
    rows.append(("ftruncate 1 PB + 4 KiB at its end + fsync: time", t_dfs.seconds * 1000,
                 None, "ms", "", "(local disks stop at 16 TiB)"))
    rows.append(("  chunk files it added (both copies)", chunk_file_count(cluster) - files_before,
                 None, "files", "", ""))
    os.unlink(os.path.join(mnt, "tera"))
    os.unlink(os.path.join(mnt, "peta"))
    return rows


def memory_rows(mnt, pid):
    os.listdir(mnt)
    idle = rss(pid)
    blob = os.urandom(64 * MIB)
    fds = [os.open(os.path.join(mnt, f"f{i:03d}"), os.O_CREAT | os.O_WRONLY, 0o600)
           for i in range(FILES)]
    peak = idle
    started = time.perf_counter()
    for step in range(PER_FILE // MIB):
        for i, fd in enumerate(fds):
            start = (i * 13 + step) % 63 * MIB
            os.write(fd, blob[start:start + MIB])
        peak = max(peak, rss(pid))
    for fd in fds:
        os.close(fd)
    wrote = time.perf_counter() - started
    time.sleep(2.0)  # close() does not wait for FUSE's release, which frees the buffers
    closed = rss(pid)
    for i in range(FILES):
        os.unlink(os.path.join(mnt, f"f{i:03d}"))
    deleted = rss(pid)
    total = FILES * PER_FILE
    return [
        ("mount RSS, idle", idle / MIB, "MiB"),
        (f"  peak while writing {total / 1e9:.1f} GB through {FILES} open files "
         f"({common.mb_per_s(total, wrote):.0f} MB/s)", peak / MIB, "MiB"),
        ("  2 s after closing them", closed / MIB, "MiB"),
        ("  after deleting them", deleted / MIB, "MiB"),
        ("  after deleting, above idle", (deleted - idle) / MIB, "MiB"),
    ]


def run(workdir):
    _check_fuse()
    from mount import records
    local = os.path.join(workdir, "local")
    os.makedirs(local)
    with common.cluster(workdir) as (cluster, _client):
        m = Mount(os.path.join(workdir, "mnt"), os.path.join(cluster.data_dir,
                                                              "auth-bench.txt"))
        m.up()
        try:
            sparse = sparse_rows(cluster, m.path, local)
            memory = memory_rows(m.path, records.read_record(m.path)["pid"])
        finally:
            m.down()
    return [
        ("Sparse files through the mount (holes cost nothing)", common.COMPARE_HEADER, sparse),
        ("The mount's memory (write-back budget 256 MiB, read buffers 64 MiB)",
         ("figure", "value", "unit"), memory),
    ]


if __name__ == "__main__":
    sys.exit(__import__("bench.__main__", fromlist=["main"]).main(["sparse"]))

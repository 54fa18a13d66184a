"""The FUSE mount (`dfs mount`) against the local disk, in the same run, with the same tools.

A fresh LocalCluster (master + 4 workers, 4 MiB chunks, replication 2) mounted by the
real ``dfs mount`` (a detached mount process, libfuse3, no on-disk chunk cache so reads
really go to the workers). Workloads, each also run on a local folder of the same disk:

- ``dd`` write of 1 GiB, bs=1M, conv=fsync (DFS: two copies, each fsynced by a worker).
- ``dd`` read of it, cold: the DFS is unmounted and mounted again, and the page cache
  dropped (when root) before both reads.
- 2000 files of 4 KiB written one after the other (DFS: durable at close; local: fsync
  each), then ``ls -l`` of them, cold (remount + drop caches first).
- ``cp -r`` of a tree of about 4000 files and folders (part of Python's stdlib), then
  ``diff -r`` of the copy against the source.
- 1000 mkdir then 1000 rmdir (DFS: journaled and fsynced by the master; local: each
  followed by an fsync of the parent, for the same durability).
"""

import os
import shutil
import subprocess
import sys

from bench import common
from bench.common import MIB, Skip, Timer, compare
from dfs.fsutil import fsync_dir

BIG = 1024 * MIB
SMALL = 4096
SMALL_COUNT = 2000
DIRS = 1000
TREE_TARGET = 4000
STDLIB = os.path.dirname(os.__file__)


def _check_fuse():
    if not os.path.exists("/dev/fuse"):
        raise Skip("no /dev/fuse")
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        raise Skip("no fusermount3: apt-get install fuse3")
    try:
        from mount import binding
        binding.import_mfusepy()
    except Exception as exc:  # mfusepy or libfuse missing
        raise Skip(f"the mount cannot run here: {exc}") from None


class Mount:
    def __init__(self, path, auth_file):
        from mount import lifecycle
        self.lifecycle = lifecycle
        self.path = path
        self.auth_file = auth_file
        os.makedirs(path, exist_ok=True)

    def up(self):
        self.lifecycle.mount_background(self.path, self.auth_file, cache_dir="")

    def down(self):
        if self.lifecycle.is_mounted(self.path):
            self.lifecycle.unmount(self.path)

    def again(self):
        """Unmount and mount again: the kernel's page cache of the mount is gone."""
        self.down()
        self.up()


def dd(src, dst, fsync=False):
    argv = ["dd", f"if={src}", f"of={dst}", "bs=1M", "status=none"]
    if fsync:
        argv.append("conv=fsync")
    subprocess.run(argv, check=True)


def build_tree(dst):
    """Copy stdlib packages to ``dst`` until about TREE_TARGET entries. -> entries."""
    count = 0
    for name in sorted(os.listdir(STDLIB)):
        src = os.path.join(STDLIB, name)
        if name in ("site-packages", "test", "config-3.11-x86_64-linux-gnu") \
                or not os.path.isdir(src) or os.path.islink(src):
            continue
        shutil.copytree(src, os.path.join(dst, name), symlinks=True,
                        ignore=shutil.ignore_patterns("*.so"))
        count += sum(len(d) + len(f) for _r, d, f in os.walk(os.path.join(dst, name)))
        if count >= TREE_TARGET:
            break
    return count


def row(label, dfs_seconds, local_seconds, amount, unit):
    rate = common.mb_per_s if unit == "MB/s" else common.per_s
    return compare(label, rate(amount, dfs_seconds), rate(amount, local_seconds), unit)


def timed_or_failed(label, fn, local_seconds, amount, unit):
    rate = common.mb_per_s if unit == "MB/s" else common.per_s
    try:
        seconds, _ = common.timed(fn)
    except Exception as exc:  # report what broke and go on
        return common.failed(label, rate(amount, local_seconds), unit, exc), False
    return row(label, seconds, local_seconds, amount, unit), True


def run(workdir):
    _check_fuse()
    local = os.path.join(workdir, "local")
    os.makedirs(local)
    src = common.random_file(os.path.join(workdir, "source.bin"), BIG)
    tree = os.path.join(workdir, "tree")
    os.makedirs(tree)
    entries = build_tree(tree)
    os.sync()
    rows_data, rows_files = [], []

    with common.cluster(workdir) as (cluster, _client):
        auth_file = os.path.join(cluster.data_dir, "auth-bench.txt")
        m = Mount(os.path.join(workdir, "mnt"), auth_file)
        m.up()
        try:
            mnt = m.path
            # --- 1 GiB with dd -------------------------------------------------------------
            with Timer() as t_local:
                dd(src, os.path.join(local, "big.bin"), fsync=True)
            wrote, ok = timed_or_failed("dd write 1 GiB, bs=1M, fsync (DFS: 2 copies)",
                                        lambda: dd(src, os.path.join(mnt, "big.bin"), True),
                                        t_local.seconds, BIG, "MB/s")
            rows_data.append(wrote)
            if ok:
                m.again()
                cold = common.drop_caches()
                with Timer() as t_local:
                    dd(os.path.join(local, "big.bin"), "/dev/null")
                common.drop_caches()
                label = "dd read 1 GiB, cold (remounted)" if cold else \
                    "dd read 1 GiB (remounted; page cache NOT dropped)"
                rows_data.append(timed_or_failed(
                    label, lambda: dd(os.path.join(mnt, "big.bin"), "/dev/null"),
                    t_local.seconds, BIG, "MB/s")[0])
                with Timer() as t_local:
                    dd(os.path.join(local, "big.bin"), "/dev/null")
                rows_data.append(timed_or_failed(
                    "dd read 1 GiB again, warm", lambda: dd(os.path.join(mnt, "big.bin"),
                                                            "/dev/null"),
                    t_local.seconds, BIG, "MB/s")[0])
                os.unlink(os.path.join(mnt, "big.bin"))
            os.unlink(os.path.join(local, "big.bin"))
            os.unlink(src)

            # --- 2000 small files, then ls -l ------------------------------------------------
            payloads = [os.urandom(SMALL) for _ in range(SMALL_COUNT)]

            def write_small(folder, fsync):
                os.mkdir(folder)
                for i, data in enumerate(payloads):
                    with open(os.path.join(folder, f"f{i:04d}"), "wb") as f:
                        f.write(data)
                        if fsync:
                            f.flush()
                            os.fsync(f.fileno())

            with Timer() as t_local:
                write_small(os.path.join(local, "small"), True)
            rows_files.append(timed_or_failed(
                f"create {SMALL_COUNT} x 4 KiB (durable)",
                lambda: write_small(os.path.join(mnt, "small"), False),
                t_local.seconds, SMALL_COUNT, "files/s")[0])

            def ls_l(folder):
                subprocess.run(["ls", "-l", folder], check=True, stdout=subprocess.DEVNULL)

            m.again()
            common.drop_caches()
            with Timer() as t_local:
                ls_l(os.path.join(local, "small"))
            rows_files.append(timed_or_failed(
                f"ls -l of {SMALL_COUNT} files, cold", lambda: ls_l(os.path.join(mnt, "small")),
                t_local.seconds, 1, "listings/s")[0])

            # --- cp -r of a tree, diff -r --------------------------------------------------
            with Timer() as t_local:
                subprocess.run(["cp", "-r", tree, os.path.join(local, "tree")], check=True)
                subprocess.run(["sync", "-f", os.path.join(local, "tree")], check=True)
            rows_files.append(timed_or_failed(
                f"cp -r of {entries} files and folders (local: + sync)",
                lambda: subprocess.run(["cp", "-r", tree, os.path.join(mnt, "tree")],
                                       check=True),
                t_local.seconds, entries, "files/s")[0])
            with Timer() as t_local:
                subprocess.run(["diff", "-r", tree, os.path.join(local, "tree")], check=True,
                               stdout=subprocess.DEVNULL)
            rows_files.append(timed_or_failed(
                "diff -r of the copy against the source",
                lambda: subprocess.run(["diff", "-r", tree, os.path.join(mnt, "tree")],
                                       check=True, stdout=subprocess.DEVNULL),
                t_local.seconds, entries, "files/s")[0])

            # --- mkdir + rmdir -------------------------------------------------------------
            def mkdirs(folder, fsync):
                os.mkdir(folder)
                for i in range(DIRS):
                    os.mkdir(os.path.join(folder, f"d{i}"))
                    if fsync:
                        fsync_dir(folder)

            def rmdirs(folder, fsync):
                for i in range(DIRS):
                    os.rmdir(os.path.join(folder, f"d{i}"))
                    if fsync:
                        fsync_dir(folder)

            for label, fn in ((f"mkdir x{DIRS} (durable)", mkdirs),
                              (f"rmdir x{DIRS} (durable)", rmdirs)):
                with Timer() as t_local:
                    fn(os.path.join(local, "dirs"), True)
                rows_files.append(timed_or_failed(
                    label, lambda fn=fn: fn(os.path.join(mnt, "dirs"), False), t_local.seconds,
                    DIRS, "ops/s")[0])
        finally:
            m.down()

    cache_note = "page cache dropped before cold reads" if os.geteuid() == 0 else \
        "NOT root: page cache not dropped"
    return [
        (f"Mount: bulk data through dd, 1 GiB random file ({cache_note}; same disk)",
         common.COMPARE_HEADER, rows_data),
        ("Mount: files and folders (one process, one after the other, as cp and ls do)",
         common.COMPARE_HEADER, rows_files),
    ]


if __name__ == "__main__":
    sys.exit(__import__("bench.__main__", fromlist=["main"]).main(["mount"]))

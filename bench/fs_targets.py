"""The folders the file-system benchmarks (b_fs, b_fsdirs) run in, side by side.

- ``DfsTarget``: a fresh LocalCluster (master + shadow + 4 workers, default 4 MiB chunks,
  replication 2) mounted as `dfs up` mounts it: a registered user owning the root, the
  real ``dfs mount`` process (``mount_background``), the default on-disk chunk cache (kept
  under the bench's work dir instead of the user's cache folder). Its trash is off, as
  MooseFS's is set up (DFS_BENCH_FS_TRASH_HOURS=24: `dfs up`'s default): with it on, every
  rm keeps the file in the namespace for a day, and a desktop's trash monitor (gvfsd-trash)
  polling the mount's .Trash-UID has the master list the whole trash after each unlink.
- ``LocalTarget``: a folder on the same disk.
- ``MfsTarget``: the MooseFS mount that ``../shared/bench/mfs_cluster.sh`` started, when
  there is one (``find_moosefs``); its work folder gets goal 2 and no trash, as that
  script's README sets the mount up.

``cold()`` makes the next read cold, as fsbench.sh's header says: a FUSE file system is
unmounted and mounted again (the client's own caches are gone; DFS's chunk cache is
emptied too), then dirty pages are flushed and the page cache dropped (root only).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

from bench import common

if TYPE_CHECKING:
    from dfs.client import DfsClient
    from dfs.local.cluster import LocalCluster

MFS_SCRIPT = os.environ.get("MFS_CLUSTER_SH") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "shared", "bench", "mfs_cluster.sh")
USER = "bench"
UNMOUNT_RETRY = 20.0


class Target:
    """A place to run workloads: ``root`` (a folder of its own), ``cold()``, ``close()``."""

    name = ""
    root = ""
    cold_note = ""

    def cold(self) -> None:
        common.drop_caches()

    def dfs_path(self, path: str) -> str | None:
        """``path`` as the cluster names it (DFS only), for placement; else None."""
        return None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class LocalTarget(Target):
    name = "local"

    def __init__(self, workdir: str) -> None:
        self.root = os.path.join(workdir, "local")
        os.makedirs(self.root, exist_ok=True)
        self.cold_note = "drop_caches" if os.geteuid() == 0 else "page cache NOT dropped"


class DfsTarget(Target):
    name = "DFS"

    def __init__(self, workdir: str) -> None:
        from mount import lifecycle
        self.lifecycle = lifecycle
        self.cluster: LocalCluster
        hours = float(os.environ.get("DFS_BENCH_FS_TRASH_HOURS", "0"))
        self.cluster, client = common.start_cluster(  # registers USER
            workdir, trash_seconds=hours * 3600)
        self.trash_note = (f"DFS trash: {hours:g} h (rm moves files into it)" if hours else
                           "DFS trash: off, as mfs_cluster.sh's README sets MooseFS (trash time"
                           " 0); DFS_BENCH_FS_TRASH_HOURS=24 is `dfs up`'s default")
        try:
            client.close()
            self.cluster.give_root_to(USER)  # as `dfs up` does for its local user
            self.auth_file = os.path.join(self.cluster.data_dir, f"auth-{USER}.txt")
            self.admin: DfsClient = self.cluster.admin_client()
            self.mnt = os.path.join(workdir, "mnt")
            self.cache_dir = os.path.join(workdir, "chunk-cache")
            os.makedirs(self.mnt)
            self.up()
        except BaseException:
            self.cluster.stop()
            raise
        self.root = self.mnt
        self.cold_note = "remount + chunk cache emptied + drop_caches"

    def up(self) -> None:
        self.pid = self.lifecycle.mount_background(self.mnt, self.auth_file,
                                                   cache_dir=self.cache_dir)

    def down(self) -> None:
        """Unmount and wait for the mount process. A mount the kernel calls busy (seen once
        after an rm -rf of 10,000 files, no process holding it) is tried again for
        UNMOUNT_RETRY s, then detached lazily (fusermount -u -z)."""
        from dfs import errors
        from dfs.retry import poll

        def unmounted() -> bool:
            try:
                if self.lifecycle.is_mounted(self.mnt):
                    self.lifecycle.unmount(self.mnt)
                return True
            except errors.Unavailable:
                return False

        if poll(unmounted, UNMOUNT_RETRY, 0.5):
            return
        print(f"{self.mnt} busy for {UNMOUNT_RETRY:.0f} s: detaching it lazily", file=sys.stderr)
        subprocess.run(self.lifecycle.fusermount_argv(self.mnt, lazy=True), check=False)
        if not poll(lambda: not self.lifecycle.pid_alive(self.pid), 60.0, 0.5):
            os.kill(self.pid, signal.SIGKILL)  # our own mount process, by its pid

    def cold(self) -> None:
        self.down()
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        common.drop_caches()
        self.up()

    def dfs_path(self, path: str) -> str | None:
        rel = os.path.relpath(path, self.mnt)
        return "/" if rel == "." else "/" + rel

    @property
    def master_pid(self) -> int | None:
        master = self.cluster.master
        return master.pid if master is not None else None

    def close(self) -> None:
        try:
            self.down()
        finally:
            try:
                self.admin.close()
            finally:
                self.cluster.stop()


def _mountinfo() -> list[tuple[str, str, str]]:
    """[(source, mount point, fs type)] from /proc/self/mounts (octal escapes decoded)."""
    found = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    source, point, kind = (p.encode().decode("unicode_escape") for p in parts[:3])
                    found.append((source, point, kind))
    except OSError:
        pass
    return found


def is_moosefs_mount(source: str, kind: str) -> bool:
    """mfsmount names its mounts ``mfs#HOST:PORT`` (fuse) or uses type fuse.mfs."""
    return source.startswith("mfs#") or kind in ("fuse.mfs", "fuse.mfsmount")


def find_moosefs() -> tuple[str | None, str]:
    """-> (MooseFS mount point or None, a line saying what was found or why not).

    $BENCH_WORK/mnt (mfs_cluster.sh's mount) first, else any MooseFS mount."""
    mounts = {point: (source, kind) for source, point, kind in _mountinfo()}
    work = os.environ.get("BENCH_WORK")
    if work:
        point = os.path.realpath(os.path.join(work, "mnt"))
        if point in mounts and is_moosefs_mount(*mounts[point]):
            return point, f"MooseFS mounted on {point} ($BENCH_WORK/mnt)"
    others = sorted(p for p, (s, k) in mounts.items() if is_moosefs_mount(s, k))
    if others:
        return others[0], f"MooseFS mounted on {others[0]}"
    where = f"$BENCH_WORK/mnt = {work}/mnt is not a MooseFS mount" if work else \
        "$BENCH_WORK is not set and no MooseFS mount is in /proc/mounts"
    return None, (f"MooseFS column skipped: {where} (start it with ../shared/bench/"
                  "mfs_cluster.sh start && ... mount, see ../shared/bench/README.md)")


class MfsTarget(Target):
    name = "MooseFS"

    def __init__(self, mnt: str) -> None:
        self.mnt = mnt
        self.root = tempfile.mkdtemp(prefix="dfs-bench.", dir=mnt)
        for tool, value in (("mfssetgoal", "2"), ("mfssettrashtime", "0")):
            if shutil.which(tool):
                subprocess.run([tool, "-r", value, self.root], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # mfs_cluster.sh keeps everything under one folder, the mount on RD/mnt
        self.rd = os.path.dirname(mnt)
        self.remount = os.path.exists(MFS_SCRIPT) and \
            os.path.exists(os.path.join(self.rd, "etc", "mfsmount.cfg"))
        if self.remount:
            self.cold_note = "remount (mfs_cluster.sh remount) + drop_caches"
        elif not os.path.exists(MFS_SCRIPT):
            self.cold_note = (f"drop_caches only, NOT remounted: no {MFS_SCRIPT} (set "
                              "MFS_CLUSTER_SH): mfsmount's own cache may answer")
        else:
            self.cold_note = (f"drop_caches only, NOT remounted: {self.rd} is not laid out by "
                              "mfs_cluster.sh: mfsmount's own cache may answer")

    def cold(self) -> None:
        if self.remount:
            env = dict(os.environ, BENCH_WORK=self.rd, MNT=self.mnt)
            os.makedirs(os.path.join(self.rd, "logs"), exist_ok=True)
            with open(os.path.join(self.rd, "logs", "bench-remount.log"), "ab") as out:
                subprocess.run(["bash", MFS_SCRIPT, "remount"], env=env, check=True,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        common.drop_caches()


def targets(workdir: str, wanted: set[str] | None = None) -> tuple[list[Target], list[str]]:
    """Start the targets (``wanted``: a subset of dfs, local, moosefs). -> (targets, notes)."""
    wanted = wanted or {"dfs", "local", "moosefs"}
    made: list[Target] = []
    notes: list[str] = []
    try:
        if "dfs" in wanted:
            dfs = DfsTarget(workdir)
            made.append(dfs)
            notes.append(dfs.trash_note)
        if "local" in wanted:
            made.append(LocalTarget(workdir))
        if "moosefs" in wanted:
            mnt, line = find_moosefs()
            notes.append(line)
            if mnt:
                made.append(MfsTarget(mnt))
    except BaseException:
        close_all(made)
        raise
    return made, notes


def close_all(made: list[Target]) -> None:
    for target in reversed(made):
        try:
            target.close()
        except Exception as exc:  # the others are still closed
            print(f"closing {target.name}: {type(exc).__name__}: {exc}")

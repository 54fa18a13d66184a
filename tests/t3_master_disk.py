"""The master's own disk full (issue 10): its data directory on a tiny tmpfs. Changes are
refused with ENOSPC and change nothing, reads go on, deletions still work (the journal's
reserve), a snapshot that cannot be written costs nothing, and once space is back the
same master takes changes again without a restart."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from conftest import cluster_config
from helpers import fill, random_bytes

from dfs import errors
from dfs.local.cluster import LocalCluster, wait_for

TMPFS_SIZE = "8m"  # room for the journal's 1 MiB reserve (twice), snapshots and logs
RMS = 40  # deletions while the disk is full: a snapshot becomes due

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.mark.log_allows(r"metadata disk full", r"snapshot failed",
                        r"events: .*dropping events", r"no snapshot at shutdown")
def test_a_full_metadata_disk_refuses_changes_serves_reads_and_recovers(tmp_path):
    data = tmp_path / "c"
    master_dir = data / "master"
    master_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs",
                    str(master_dir)], check=True)
    try:
        config = cluster_config(data, snapshot_every=5)
        with LocalCluster(config) as cluster, cluster.client("alice") as dfs:
            payload = random_bytes(3000, seed=1)
            dfs.mkdir("/kept")
            dfs.put_bytes("/kept/f", payload)
            dfs.put_bytes("/kept/g", payload)
            for i in range(RMS):
                dfs.create(f"/kept/r{i}")
            meta = master_dir / "cache-metadata"
            log = data / "logs" / "master.log"
            filler = str(master_dir / "filler")
            fill(filler)

            with pytest.raises(errors.NoSpace) as refused:
                dfs.mkdir("/refused")
            assert refused.value.errno == errno.ENOSPC
            with pytest.raises(errors.NoSpace):
                dfs.put_bytes("/kept/new", payload)
            with pytest.raises(errors.NoSpace):
                dfs.rename("/kept/f", "/kept/moved")

            assert dfs.read_bytes("/kept/f") == payload  # reads are served
            assert sorted(e.name for e in dfs.listdir("/kept")) == \
                sorted(["f", "g"] + [f"r{i}" for i in range(RMS)])
            assert not dfs.exists("/refused")  # nothing half-applied
            dfs.rm("/kept/g")  # deletions use the journal's reserve
            for i in range(RMS):  # enough for a snapshot, which cannot be written
                dfs.rm(f"/kept/r{i}")
            wait_for(lambda: "snapshot failed" in log.read_text(), 30, "a failed snapshot")
            assert sorted(e.name for e in dfs.listdir("/kept")) == ["f"]
            with pytest.raises(errors.NoSpace):
                dfs.create("/kept/still-refused")

            os.unlink(filler)  # space is back: no restart
            dfs.mkdir("/after")
            dfs.put_bytes("/after/f", payload)
            for i in range(8):
                dfs.mkdir(f"/after/d{i}")
            wait_for(lambda: not (meta / "journal.sealed.jsonl").exists()
                     and (meta / "saved-files.json").exists(), 90, "a snapshot adopted")

        with LocalCluster(config) as cluster, cluster.client("alice") as dfs:  # restarted
            assert dfs.read_bytes("/kept/f") == payload
            assert dfs.read_bytes("/after/f") == payload
            assert not dfs.exists("/kept/g") and not dfs.exists("/refused")
            assert sorted(e.name for e in dfs.listdir("/after")) == \
                sorted(["f"] + [f"d{i}" for i in range(8)])
    finally:
        subprocess.run(["umount", str(master_dir)], check=False)

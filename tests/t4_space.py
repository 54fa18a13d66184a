"""t4: a full disk under the real mount. Every worker keeps its chunks on its own small
tmpfs (we run as root; always unmounted), so the disks really fill: an application writing
through the mount gets ENOSPC (at write or at close, never EIO), its earlier files stay
whole, and after `rm` the trash gives way (low space purges it) and writes work again."""

import contextlib
import errno
import os
import subprocess

import pytest
from conftest import cluster_config
from helpers import random_bytes, sha256, sha256_file
from t4_mount import Mounted

from dfs.config import MIB, WorkerConfig, default
from dfs.local.cluster import LocalCluster
from dfs.retry import poll

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no FUSE here")

RESERVE = default(WorkerConfig, "disk_reserve")
DISK = RESERVE + 8 * MIB  # each worker may fill 8 MiB: 4 workers, 2 copies: 16 MiB of files


@contextlib.contextmanager
def workers_on_tmpfs(config):
    """A tmpfs of DISK bytes on every worker's data dir, unmounted afterwards."""
    mounted = []
    try:
        for index in range(config.workers):
            folder = os.path.join(config.data_dir, f"worker-{index + 1}")
            os.makedirs(folder, mode=0o700)
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700",
                                   "tmpfs", folder], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
            mounted.append(folder)
        yield
    finally:
        for folder in mounted:
            subprocess.run(["umount", "-l", folder], check=False)


def write_file(path, data, block=MIB):
    """Write like `cp` does, in 1 MiB writes, then close. -> the errno it failed with."""
    try:
        with open(path, "wb") as f:
            for offset in range(0, len(data), block):
                f.write(data[offset:offset + block])
    except OSError as exc:
        return exc.errno
    return 0


@pytest.mark.log_allows(r"space is low .* purging", r"failed: .*(full|no room)",
                        r"changes lost at release: .*(full|no room)",
                        r"stored with fewer copies than wanted")  # one worker full first
def test_full_worker_disks_give_enospc_and_rm_makes_room(tmp_path):
    config = cluster_config(tmp_path / "cluster", low_space=0.3)
    with workers_on_tmpfs(config), LocalCluster(config) as cluster, \
            Mounted(cluster, tmp_path / "mnt", timeout=10.0) as mnt:
        first = random_bytes(12 * MIB, seed=1)
        assert write_file(mnt.join("first"), first) == 0
        second = random_bytes(8 * MIB, seed=2)  # more than the disks have left
        assert write_file(mnt.join("second"), second) == errno.ENOSPC
        assert sha256_file(mnt.join("first")) == sha256(first)  # what was written stays

        os.unlink(mnt.join("first"))  # to the trash; low space purges it
        os.unlink(mnt.join("second"))

        def room_again():
            return write_file(mnt.join("second"), second) == 0
        assert poll(room_again, 60.0, 0.5), "writes never worked again after rm"
        assert sha256_file(mnt.join("second")) == sha256(second)
        with cluster.client("alice") as dfs:
            assert dfs.read_bytes("/second") == second
            assert "/first" not in [t.path for t in dfs.trash_list()]  # gave way first

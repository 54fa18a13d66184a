"""t3: a cluster that runs out of space, with real processes. Workers get a small
``--capacity`` (bytes each may use), so the cluster fills in a second; a write then fails
with NoSpace (ENOSPC), `dfs status` warns, and deleting files frees the space again: the
files wait in the trash, but low space makes the leader purge it, oldest first."""

import errno
import os

import pytest
from conftest import cluster_config
from helpers import random_bytes, run_dfs

from dfs import errors
from dfs.config import MIB
from dfs.local.cluster import LocalCluster
from dfs.retry import poll

FILE = 2 * MIB  # two chunks: four copies


def put_until_full(dfs, limit=40):
    """Write FILE-sized files until the cluster refuses. -> (names stored, the refusal)."""
    stored = []
    for i in range(limit):
        try:
            dfs.put_bytes(f"/f{i}", random_bytes(FILE, seed=i))
        except errors.DfsError as exc:
            return stored, exc
        stored.append(i)
    raise AssertionError(f"{limit} files of {FILE} bytes fitted: the capacity is not enforced")


@pytest.mark.log_allows(r"space is low .* purging", r"chunk \d+ to worker .* failed")
def test_a_full_cluster_says_enospc_and_rm_frees_the_space(tmp_path):
    # 4 workers x 5 MiB, two copies of each chunk: 10 MiB of files at most
    config = cluster_config(tmp_path / "cluster", worker_capacity=5 * MIB, low_space=0.3)
    with LocalCluster(config) as cluster, cluster.client("alice") as dfs:
        stored, refusal = put_until_full(dfs)
        assert isinstance(refusal, errors.NoSpace), repr(refusal)
        assert refusal.errno == errno.ENOSPC
        assert 2 <= len(stored) <= 5, stored
        for i in stored:  # everything acknowledged is there, whole
            assert dfs.read_bytes(f"/f{i}") == random_bytes(FILE, seed=i)
        assert not dfs.exists(f"/f{len(stored)}") or dfs.stat(f"/f{len(stored)}").size == 0

        auth = os.path.join(cluster.data_dir, "auth-alice.txt")
        status = [""]

        def warns() -> bool:  # free space is as the workers' last heartbeats reported it
            status[0] = run_dfs("status", "--auth", auth).stdout
            return "space is low" in status[0]
        assert poll(warns, 30.0, 0.5), status[0]

        for i in stored:
            dfs.rm(f"/f{i}")  # to the trash: low space purges it, the oldest first

        def writes_again():
            try:
                dfs.put_bytes("/after", random_bytes(FILE, seed=99))
                return True
            except errors.NoSpace:
                return False
        assert poll(writes_again, 30.0, 0.2), "space never came back after rm"
        assert dfs.read_bytes("/after") == random_bytes(FILE, seed=99)
        # purged for room though their 24 h were not up: the oldest deleted, and only as
        # many as were needed (the newest may still be there)
        left = sorted(int(t.path[2:]) for t in dfs.trash_list())
        assert len(left) < len(stored) and left == stored[len(stored) - len(left):], left
        assert poll(lambda: "space is low" not in run_dfs("status", "--auth", auth).stdout,
                    30.0, 0.5)


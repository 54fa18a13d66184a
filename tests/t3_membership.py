"""`dfs workers list | drain | remove` on real processes: a drained worker's chunks all
move, a removed dead worker no longer counts toward the majority, and a worker holding the
last copy of a chunk is not removed."""

import os
import signal

import pytest
from conftest import TEST_CHUNK, chunk_files, cluster_config, random_bytes
from helpers import run_dfs

from dfs.local.cluster import LocalCluster, wait_for

C = TEST_CHUNK

pytestmark = pytest.mark.log_allows(r"silent for [\d.]+s: dead")


def worker_id(cluster, index):
    with open(os.path.join(cluster.worker_dir(index), "worker-id")) as f:
        return f.read().strip()


def admin_dfs(cluster, *args, check=True):
    return run_dfs("workers", *args, "--auth", cluster.admin_auth_file, check=check)


def listed(cluster):
    """{worker id: (state, chunks, voter)} from `dfs workers list` as printed."""
    rows = {}
    for line in admin_dfs(cluster, "list").stdout.splitlines()[1:]:
        cells = line.split()
        if cells and cells[0].startswith("w-"):
            rows[cells[0]] = (cells[2].rstrip(","), int(cells[-5]), cells[-2])
    return rows


def settled(cluster):
    """Every chunk at two copies, every silent worker declared dead."""
    with cluster.admin_client() as admin:
        status = admin.status()
    return status.under_replicated == 0


def put_files(dfs, count):
    files = {f"/f{i}": random_bytes(2 * C + 1000 * i, seed=i) for i in range(count)}
    for path, data in files.items():
        dfs.put_bytes(path, data)
    return files


@pytest.mark.log_allows(r"was removed from this cluster")
def test_drain_moves_every_chunk_off_then_remove(cluster, dfs):
    files = put_files(dfs, 6)
    ids = [worker_id(cluster, i) for i in range(4)]
    rows = listed(cluster)
    assert set(rows) == set(ids) and all(r == ("alive", r[1], "yes") for r in rows.values())
    index = max(range(4), key=lambda i: rows[ids[i]][1])  # the fullest worker
    target = ids[index]
    assert rows[target][1] > 0

    out = admin_dfs(cluster, "drain", target, "--wait", 120).stdout
    assert f"worker {target} is drained" in out
    assert listed(cluster)[target][:2] == ("drained", 0)
    on_disk = [chunk_files(cluster, kind) for kind in ("chunks", "backups")]
    for path, data in files.items():
        assert dfs.read_bytes(path) == data
        for chunk in dfs.layout(path).chunks:
            holders = [i for found in on_disk for i in found.get(chunk.ref.chunk_id, [])]
            assert index not in holders and len(holders) == 2, (path, holders)
    dfs.put_bytes("/after", random_bytes(3 * C, seed=99))  # nothing new goes there
    for chunk in dfs.layout("/after").chunks:
        assert all(r.worker_id != target for r in chunk.replicas)

    admin_dfs(cluster, "remove", target)
    rows = listed(cluster)
    assert target not in rows and len(rows) == 3

    def leases_without_it():
        with cluster.admin_client() as admin:
            holders = admin.status().lease_holders
        return target not in holders and len(holders) == 4  # three workers and the shadow
    wait_for(leases_without_it, 30, "the leases without the removed worker")
    # the worker still runs: it is refused, and says so once in its log
    log = os.path.join(cluster.log_dir, f"worker-{index + 1}.log")
    wait_for(lambda: "was removed from this cluster" in open(log).read(), 30,
             "the removed worker to be refused")
    assert target not in listed(cluster)
    for path, data in files.items():
        assert dfs.read_bytes(path) == data


@pytest.mark.log_allows(r"steps down to standby", r"lost its majority of voters",
                        r"standby unreachable .*: marking it stale")
def test_removing_dead_workers_keeps_a_majority_for_the_next_election(tmp_path):
    """4 workers and the shadow vote for the master (and the master for the shadow): 3 of 5
    make a majority. With workers 3 and 4 dead and then the master too, the shadow would
    hear only workers 1 and 2 of its 5 voters: no leader. Removed, they count no more."""
    with LocalCluster(cluster_config(tmp_path / "c")) as cluster:
        with cluster.client("alice", failover_deadline=60) as dfs:
            files = put_files(dfs, 4)
        for index in (3, 2):
            dead = worker_id(cluster, index)
            cluster.kill_worker(index, signal.SIGKILL)
            wait_for(lambda dead=dead: settled(cluster) and listed(cluster)[dead][0] == "dead",
                     60, f"worker {index + 1} dead and its chunks copied")
            assert "removed worker" in admin_dfs(cluster, "remove", dead).stdout
        assert set(listed(cluster)) == {worker_id(cluster, 0), worker_id(cluster, 1)}
        cluster.master.stop(signal.SIGKILL)
        wait_for(lambda: cluster.leader() is cluster.shadow, 60, "the shadow to be elected")
        with cluster.client("alice", failover_deadline=60) as dfs:
            for path, data in files.items():
                assert dfs.read_bytes(path) == data
            dfs.put_bytes("/new", b"the shadow serves")
            assert dfs.read_bytes("/new") == b"the shadow serves"


@pytest.mark.log_allows(r"removed by force", r"was removed from this cluster")
def test_a_worker_holding_the_last_copy_is_not_removed(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c", workers=2)) as cluster:
        ids = [worker_id(cluster, i) for i in range(2)]
        with cluster.client("alice") as dfs:
            before = put_files(dfs, 2)
            cluster.kill_worker(1, signal.SIGKILL)
            wait_for(lambda: listed(cluster)[ids[1]][0] == "dead", 60, "worker 2 dead")
            dfs.put_bytes("/alone", random_bytes(2 * C, seed=7))  # one copy, on worker 1
            refused = admin_dfs(cluster, "remove", ids[0], check=False)
            assert refused.returncode == 1
            message = refused.stderr.strip()
            assert len(message.splitlines()) == 1 and "Traceback" not in refused.stderr
            assert "only copy of" in message and "/alone" in message and "--force" in message
            drain = admin_dfs(cluster, "drain", ids[0], check=False)
            assert drain.returncode == 1 and "other live worker" in drain.stderr
            assert listed(cluster)[ids[0]] == ("alive", listed(cluster)[ids[0]][1], "yes")
            assert dfs.read_bytes("/alone") == random_bytes(2 * C, seed=7)
            # the dead worker held nothing that is not on worker 1 too: it may go
            admin_dfs(cluster, "remove", ids[1])
            assert set(listed(cluster)) == {ids[0]}
            for path, data in before.items():
                assert dfs.read_bytes(path) == data
            forced = admin_dfs(cluster, "remove", ids[0], "--force")
            assert forced.stderr.startswith("WARNING: removed ") and "chunk(s)" in forced.stderr
            assert f"removed worker {ids[0]}" in forced.stdout
            gone = admin_dfs(cluster, "list", check=False)  # the cluster has no worker now
            assert gone.returncode == 1 and "no active workers" in gone.stderr


@pytest.mark.log_allows(r"chunk \d+: every replica failed", r"moved since the open")
def test_a_file_opened_before_its_copies_moved_still_reads(cluster, dfs):
    """The layout a reader got at open names two workers; both copies then move (one
    worker is killed, the other drained): the read asks the master where the chunk is
    now and reads it there, no error."""
    data = random_bytes(C // 2, seed=42)
    dfs.put_bytes("/moving", data)
    with dfs.open("/moving") as f:  # the layout is taken here
        holders = {r.worker_id for chunk in f.refs.values() for r in chunk.replicas}
        assert len(holders) == 2
        ids = [worker_id(cluster, i) for i in range(4)]
        stopped, drained = sorted(holders)
        cluster.kill_worker(ids.index(stopped))
        with cluster.admin_client() as admin:
            def declared_dead():  # else its copy may be chosen as the source of repairs
                return any(w.worker_id == stopped and not w.alive
                           for w in admin.status().workers)
            wait_for(declared_dead, 30, "the killed worker to be declared dead")
            admin.workers_drain(drained)

            def moved_off():
                rows = {m.worker_id: m for m in admin.workers_list()}
                return rows[drained].chunks == 0 and settled(cluster)
            wait_for(moved_off, 60, "the drained worker's copy to move elsewhere")
        assert f.read() == data

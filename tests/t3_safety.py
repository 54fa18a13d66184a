"""Real processes: the safety nets. Deleted files wait in their owner's trash; workers
scrub their chunks in the background; `dfs fsck` finds (and repairs) what went wrong."""

import os

import pytest
from conftest import TEST_CHUNK, chunk_files, cluster_config, random_bytes
from helpers import run_dfs

from dfs import errors
from dfs.local.cluster import LocalCluster, wait_for

C = TEST_CHUNK


def _chunk_ids(dfs, path):
    return [c.ref.chunk_id for c in dfs.layout(path).chunks]


def _on_disk(cluster, cid):
    return [(i, kind) for kind in ("chunks", "backups")
            for i in chunk_files(cluster, kind).get(cid, [])]


# --- trash ----------------------------------------------------------------------------------

def test_deleted_file_is_restored_from_the_trash_with_the_same_bytes(shared_cluster):
    with shared_cluster.client("tina") as dfs:
        data = random_bytes(2 * C + 77, seed=21)
        dfs.mkdir("/tina-docs")
        dfs.put_bytes("/tina-docs/report", data)
        dfs.rm("/tina-docs/report")
        assert not dfs.exists("/tina-docs/report")
        [item] = dfs.trash_list()
        assert (item.path, item.size) == ("/tina-docs/report", len(data))
        assert item.expires > item.deleted_at
        dfs.trash_restore("/tina-docs/report")
        assert dfs.read_bytes("/tina-docs/report") == data
        assert dfs.trash_list() == []


def test_restore_onto_an_existing_path_is_a_clear_error(shared_cluster):
    with shared_cluster.client("tom") as dfs:
        dfs.put_bytes("/tom-file", b"old version")
        dfs.rm("/tom-file")
        dfs.put_bytes("/tom-file", b"new version")
        with pytest.raises(errors.FileExists, match="exists"):
            dfs.trash_restore("/tom-file")
        assert dfs.read_bytes("/tom-file") == b"new version"
        assert [t.path for t in dfs.trash_list()] == ["/tom-file"]  # still there
        dfs.rm("/tom-file")  # now two versions: the newest comes back
        dfs.trash_restore("/tom-file")
        assert dfs.read_bytes("/tom-file") == b"new version"
        with pytest.raises(errors.FileNotFound):
            dfs.trash_restore("/never-there")


def test_rm_r_trashes_every_file_and_restore_remakes_the_folders(shared_cluster):
    with shared_cluster.client("rita") as dfs:
        dfs.mkdir("/rita/a", parents=True)
        dfs.put_bytes("/rita/a/one", b"1")
        dfs.put_bytes("/rita/two", b"2")
        dfs.rm_tree("/rita")
        assert sorted(t.path for t in dfs.trash_list()) == ["/rita/a/one", "/rita/two"]
        dfs.trash_restore("/rita/a/one")
        assert dfs.read_bytes("/rita/a/one") == b"1"


def test_other_users_cannot_see_restore_or_empty_my_trash(shared_cluster):
    with shared_cluster.client("una") as una, shared_cluster.client("vic") as vic:
        una.put_bytes("/una-secret", b"private")
        una.rm("/una-secret")
        assert vic.trash_list() == []
        with pytest.raises(errors.FileNotFound):
            vic.trash_restore("/una-secret")
        assert vic.trash_empty() == 0
        assert [t.path for t in una.trash_list()] == ["/una-secret"]
        assert una.trash_empty() == 1
        assert una.trash_list() == []


def test_trash_expiry_and_empty_free_the_chunks(tmp_path):
    config = cluster_config(tmp_path / "c", workers=2, trash_seconds=3.0)
    with LocalCluster(config) as cluster, cluster.client("alice") as dfs:
        dfs.put_bytes("/short-lived", random_bytes(2 * C, seed=3))
        ids = _chunk_ids(dfs, "/short-lived")
        dfs.rm("/short-lived")
        assert [t.path for t in dfs.trash_list()] == ["/short-lived"]
        wait_for(lambda: dfs.trash_list() == [], 30, "the trashed file to expire")
        wait_for(lambda: not any(_on_disk(cluster, cid) for cid in ids), 30,
                 "the expired file's chunk files to be deleted")
        with pytest.raises(errors.FileNotFound):
            dfs.trash_restore("/short-lived")


def test_trash_survives_a_master_restart(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c", workers=2, shadow=False)) as cluster:
        with cluster.client("alice") as dfs:
            dfs.put_bytes("/keep", b"journaled")
            dfs.rm("/keep")
        cluster.restart_master()
        cluster.wait_workers(2)
        with cluster.client("alice") as dfs:
            assert [t.path for t in dfs.trash_list()] == ["/keep"]
            dfs.trash_restore("/keep")
            assert dfs.read_bytes("/keep") == b"journaled"


# --- scrubbing --------------------------------------------------------------------------------

def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def _good_copies(cluster, cid, data):
    good = []
    for i, kind in _on_disk(cluster, cid):
        try:
            with open(os.path.join(cluster.worker_dir(i), kind, str(cid)), "rb") as f:
                if f.read() == data:
                    good.append((i, kind))
        except FileNotFoundError:
            pass
    return good


@pytest.mark.log_allows(r"fails its checksum", r"is corrupt: dropping that replica")
def test_the_scrubber_finds_a_flipped_byte_and_it_is_repaired_without_a_read(tmp_path):
    config = cluster_config(tmp_path / "c", workers=3, scrub_bytes_per_second=256 * C)
    with LocalCluster(config) as cluster, cluster.client("alice") as dfs:
        data = random_bytes(C + 500, seed=31)
        dfs.put_bytes("/scrubbed", data)
        cid = _chunk_ids(dfs, "/scrubbed")[0]
        index = chunk_files(cluster, "chunks")[cid][0]
        _flip_byte(os.path.join(cluster.worker_dir(index), "chunks", str(cid)), 4321)
        assert len(_good_copies(cluster, cid, data[:C])) == 1

        def repaired():
            return len(_on_disk(cluster, cid)) == 2 and \
                len(_good_copies(cluster, cid, data[:C])) == 2
        wait_for(repaired, 60, "the scrubber to report the bad replica and a good copy to return")
        with open(os.path.join(cluster.log_dir, f"worker-{index + 1}.log")) as f:
            assert "scrub" in f.read()
        assert dfs.read_bytes("/scrubbed") == data


# --- fsck -------------------------------------------------------------------------------------

def _dfs_cli(cluster, *args):
    return run_dfs(*args, env=dict(cluster.env, DFS_AUTH=cluster.admin_auth_file), check=False)


def test_fsck_on_a_clean_cluster_says_clean_and_is_for_admins_only(shared_cluster):
    with shared_cluster.client("fay") as fay:
        fay.put_bytes("/fay-file", random_bytes(3 * C, seed=41))
        with pytest.raises(errors.NotPermitted):
            fay.fsck()
    result = _dfs_cli(shared_cluster, "fsck")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clean" in result.stdout


@pytest.mark.log_allows(r"is gone from worker .*: forgetting that replica")
def test_fsck_finds_a_deleted_replica_and_an_orphan_and_repair_fixes_both(cluster, dfs):
    data = random_bytes(2 * C, seed=51)
    dfs.put_bytes("/precious", data)
    dfs.put_bytes("/replaced", b"first version")
    [old] = _chunk_ids(dfs, "/replaced")
    dfs.put_bytes("/replaced", b"second version")  # frees the old chunk
    wait_for(lambda: not _on_disk(cluster, old), 30, "the replaced chunk to be collected")
    cid = _chunk_ids(dfs, "/precious")[0]
    (index, kind), other = _on_disk(cluster, cid)
    victim = os.path.join(cluster.worker_dir(index), kind, str(cid))
    os.unlink(victim)
    os.unlink(victim + ".crc")
    orphan_dir = os.path.join(cluster.worker_dir(index), "chunks")
    for suffix in (".crc", ""):  # a leftover nobody references (the data file last)
        good_copy = os.path.join(cluster.worker_dir(other[0]), other[1], str(cid))
        with open(good_copy + suffix, "rb") as src, \
                open(os.path.join(orphan_dir, str(old)) + suffix, "wb") as dst:
            dst.write(src.read())

    with cluster.admin_client() as admin:
        report = admin.fsck()
    kinds = {(p.kind, p.chunk_id) for p in report.problems}
    assert ("under", cid) in kinds and ("orphan", old) in kinds, report
    assert [p.path for p in report.problems if p.kind == "under"] == ["/precious"]

    result = _dfs_cli(cluster, "fsck")
    assert result.returncode == 1 and "/precious" in result.stdout, result.stdout

    result = _dfs_cli(cluster, "fsck", "--repair")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_good_copies(cluster, cid, data[:C])) == 2
    assert not _on_disk(cluster, old)
    assert dfs.read_bytes("/precious") == data

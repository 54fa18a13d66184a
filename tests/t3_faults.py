"""Real processes under faults: kill -9 of the master, dead and corrupt workers, bad input,
other users, full disks. Every acknowledged byte must survive; bad input changes nothing."""

import os
import signal
import subprocess
import threading

import pytest
from conftest import TEST_CHUNK, chunk_files, cluster_config, random_bytes, sha256

from dfs import auth, errors
from dfs.local.cluster import LocalCluster, wait_for
from dfs.namespace.inode import MAX_PATH_BYTES

C = TEST_CHUNK


def _under_replicated(cluster):
    with cluster.admin_client() as admin:
        return admin.status().under_replicated


def test_kill_9_of_the_master_during_puts_loses_nothing_acknowledged(tmp_path):
    config = cluster_config(tmp_path / "c", snapshot_every=7)
    with LocalCluster(config) as cluster, cluster.client("alice", failover_deadline=30) as dfs:
        acked = {}
        stop = threading.Event()
        failures = []

        def writer():
            i = 0
            while not stop.is_set():
                data = random_bytes(1000 + (i * 7919) % (3 * C), seed=i)
                try:
                    dfs.put_bytes(f"/k{i}", data)
                    acked[f"/k{i}"] = sha256(data)
                except errors.DfsError as exc:  # a clear error is allowed, a lost file is not
                    failures.append(exc)
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            wait_for(lambda: len(acked) >= 15, 60, "some acknowledged puts")
            meta = os.path.join(cluster.master_dir, "cache-metadata")
            # snapshots are written in the background: the kill must find one and a journal
            wait_for(lambda: os.path.exists(os.path.join(meta, "saved-files.json")), 60,
                     "a snapshot on disk")
            cluster.master.stop(signal.SIGKILL)
            in_flight = len(acked)
            cluster.master.start(cluster.env, False)
            cluster.master.wait_ready()
            cluster.wait_workers(4)
            wait_for(lambda: len(acked) >= in_flight + 10, 60, "puts after the restart")
        finally:
            stop.set()
            thread.join()
        for path, digest in acked.items():
            assert sha256(dfs.read_bytes(path)) == digest, path
        names = {e.name for e in dfs.listdir("/") if not e.stat.is_dir}  # not /home
        for name in names:  # anything not acknowledged is absent or whole, never half
            data = dfs.read_bytes("/" + name)
            i = int(name[1:])
            assert sha256(data) == sha256(random_bytes(1000 + (i * 7919) % (3 * C), seed=i))


@pytest.mark.parametrize("shadow", [False, True], ids=["lone-master", "with-shadow"])
def test_master_restart_rebuilds_from_snapshot_and_journal(tmp_path, shadow):
    config = cluster_config(tmp_path / "c", snapshot_every=5, shadow=shadow)
    with LocalCluster(config) as cluster:
        with cluster.client("alice") as dfs:
            for i in range(12):
                dfs.put_bytes(f"/f{i}", random_bytes(C + i, seed=i))
            dfs.mkdir("/dir")
            dfs.rename("/f0", "/dir/moved")
        meta = os.path.join(cluster.master_dir, "cache-metadata")
        journals = [os.path.join(meta, name) for name in ("journal.sealed.jsonl",
                                                          "journal.jsonl")]
        logged = ""  # a snapshot seals the journal; a new one starts at the next change
        for path in journals:
            if os.path.exists(path):
                with open(path) as f:
                    logged += f.read()
        assert logged.strip()  # some changes only in a journal, not in the snapshot
        cluster.restart_master(signal.SIGKILL)
        cluster.wait_workers(4)
        with cluster.client("alice") as dfs:
            assert dfs.read_bytes("/dir/moved") == random_bytes(C, seed=0)
            for i in range(1, 12):
                assert dfs.read_bytes(f"/f{i}") == random_bytes(C + i, seed=i)


@pytest.mark.log_allows(r"silent for [\d.]+s: dead")
def test_a_dead_worker_is_re_replicated_and_reads_go_on(cluster, dfs):
    files = {f"/w{i}": random_bytes(2 * C + i, seed=i) for i in range(6)}
    for path, data in files.items():
        dfs.put_bytes(path, data)
    cluster.kill_worker(0, signal.SIGKILL)
    for path, data in files.items():  # at once, before the master notices
        assert dfs.read_bytes(path) == data
    # dead first: before the master notices, the dead worker's copies still count
    wait_for(lambda: _dead_seen(cluster) and _under_replicated(cluster) == 0, 60,
             "every chunk back at 2 copies")
    live = [1, 2, 3]
    for path in files:
        for chunk in dfs.layout(path).chunks:
            holders = [i for kind in ("chunks", "backups")
                       for i in chunk_files(cluster, kind).get(chunk.ref.chunk_id, [])
                       if i in live]
            assert len(holders) == 2, (path, chunk.ref.chunk_id, holders)


def _dead_seen(cluster):
    with cluster.admin_client() as admin:
        return any(not w.alive for w in admin.status().workers)


@pytest.mark.log_allows(r"fails its checksum", r"is corrupt: dropping that replica")
def test_a_flipped_byte_is_caught_served_from_the_other_copy_and_repaired(cluster, dfs):
    data = random_bytes(C + 1000, seed=11)
    dfs.put_bytes("/victim", data)
    chunk = dfs.layout("/victim").chunks[0]
    cid = chunk.ref.chunk_id
    index = chunk_files(cluster, "chunks")[cid][0]
    path = os.path.join(cluster.worker_dir(index), "chunks", str(cid))
    with open(path, "r+b") as f:
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0x01]))
    with cluster.client("alice", cache_dir="") as fresh:  # no cache: must hit the workers
        assert fresh.read_bytes("/victim") == data
    log = open(os.path.join(cluster.log_dir, "master.log")).read()
    assert "corrupt" in log
    def repaired():
        holders = [(i, kind) for kind in ("chunks", "backups")
                   for i in chunk_files(cluster, kind).get(cid, [])]
        if len(holders) != 2:
            return False
        for i, kind in holders:
            with open(os.path.join(cluster.worker_dir(i), kind, str(cid)), "rb") as f:
                if f.read() != data[:C]:
                    return False
        return True
    wait_for(repaired, 30, "the corrupt replica to be replaced by a good copy")


@pytest.mark.log_allows(r"lost its majority of voters", r"steps down to standby",
                        r"silent for [\d.]+s: dead")
def test_no_active_workers_is_a_clear_error(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c", workers=0)) as cluster:
        with pytest.raises(errors.NoActiveWorkers, match="no active workers"):
            cluster.register("alice")
    with LocalCluster(cluster_config(tmp_path / "d", workers=1)) as cluster:
        with cluster.client("alice", failover_deadline=5) as dfs:
            dfs.put_bytes("/x", b"x")
            cluster.kill_worker(0)

            def refused():
                try:
                    dfs.listdir("/")
                except errors.NoActiveWorkers:
                    return True
                return False
            wait_for(refused, 20, "the master to refuse without workers")


def test_single_live_worker_stores_one_copy_and_says_so(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c", workers=1)) as cluster:
        with cluster.client("alice") as dfs:
            result = dfs.put_bytes("/lonely", random_bytes(2 * C, seed=1))
            assert result.under_replicated == 2
            assert dfs.read_bytes("/lonely") == random_bytes(2 * C, seed=1)


@pytest.mark.log_allows(r"failed login for")
def test_wrong_and_revoked_keys_are_refused(shared_cluster):
    from dfs.client import DfsClient
    bad = DfsClient.connect(shared_cluster.masters, "alice", auth.new_key(), cache_dir="",
                            failover_deadline=3)
    with bad, pytest.raises(errors.AuthenticationFailed):
        bad.listdir("/")
    with shared_cluster.client("mallory") as mallory:
        mallory.listdir("/")
        with shared_cluster.admin_client() as admin:
            admin.users_revoke("mallory")
        with pytest.raises(errors.AuthenticationFailed, match="revoked|wrong key"):
            mallory.listdir("/")
    with shared_cluster.client("carol") as carol:
        with pytest.raises(errors.NotPermitted, match="admin"):
            carol.users_revoke("alice")


def test_other_users_cannot_read_list_or_delete(shared_cluster):
    with shared_cluster.client("ann") as ann, shared_cluster.client("ben") as ben:
        ann.mkdir("/ann-home")
        ann.put_bytes("/ann-home/secret", b"mine")
        ann.put_bytes("/ann-top", b"mine too")
        for call in (lambda: ben.read_bytes("/ann-top"), lambda: ben.rm("/ann-top"),
                     lambda: ben.listdir("/ann-home"), lambda: ben.read_bytes("/ann-home/secret"),
                     lambda: ben.rename("/ann-top", "/stolen"),
                     lambda: ben.put_bytes("/ann-top", b"overwritten")):
            with pytest.raises((errors.PermissionDenied, errors.NotPermitted)):
                call()
        # POSIX: a name in a folder he may read is seen (its bytes are not); a private
        # folder (0700, as homes are) shows nothing
        assert "ann-top" in {e.name for e in ben.listdir("/")}
        assert ann.read_bytes("/ann-top") == b"mine too"
        ann.chmod("/ann-top", 0o644)  # shared on purpose
        assert ben.read_bytes("/ann-top") == b"mine too"
        with pytest.raises(errors.NotPermitted):  # EPERM: the sticky root, as /tmp
            ben.rm("/ann-top")  # reading is shared, deleting is not


@pytest.mark.parametrize("path, error", [
    ("/a/../etc", errors.InvalidPath),
    ("/nul\0byte", errors.InvalidPath),
    ("/" + "n" * 300, errors.NameTooLong),
    ("/" + "d/" * (MAX_PATH_BYTES // 2) + "f", errors.NameTooLong),
    ("/missing/parent/file", errors.FileNotFound),
    ("no-leading-slash", errors.InvalidPath),
])
def test_bad_paths_change_nothing(shared_dfs, path, error):
    before = shared_dfs.listdir("/")
    with pytest.raises(error):
        shared_dfs.put_bytes(path, b"data")
    with pytest.raises(error):
        shared_dfs.mkdir(path)
    assert shared_dfs.listdir("/") == before


def _tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)


def _umount(path):
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_a_full_worker_disk_sends_writes_elsewhere(tmp_path):
    data_dir = tmp_path / "c"
    full = data_dir / "worker-1"
    _tmpfs(full, "3m")
    try:
        with LocalCluster(cluster_config(data_dir)) as cluster, cluster.client("alice") as dfs:
            payload = random_bytes(24 * C, seed=5)
            dfs.put_bytes("/big", payload)
            assert dfs.read_bytes("/big") == payload
            on_full = [cid for kind in ("chunks", "backups")
                       for cid, where in chunk_files(cluster, kind).items() if 0 in where]
            assert len(on_full) <= 3  # what fits on 3 MiB; the rest went elsewhere
            with cluster.admin_client() as admin:
                assert admin.status().under_replicated == 0
    finally:
        _umount(full)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_all_disks_full_is_a_clean_error_and_changes_nothing(tmp_path):
    data_dir = tmp_path / "c"
    disks = [data_dir / f"worker-{i}" for i in (1, 2)]
    for disk in disks:
        _tmpfs(disk, "24m")  # 8 MiB of chunks: a worker keeps 16 MiB (disk_reserve)
    try:
        with LocalCluster(cluster_config(data_dir, workers=2)) as cluster, \
                cluster.client("alice") as dfs:
            with pytest.raises(errors.NoSpace):
                dfs.put_bytes("/too-big", random_bytes(20 * C, seed=6))
            assert not dfs.exists("/too-big")

            def small_put_works():  # the abandoned chunks are freed, the cluster goes on
                try:
                    dfs.put_bytes("/small", b"still fine")
                    return True
                except errors.NoSpace:
                    return False
            wait_for(small_put_works, 20, "space to be freed")
            assert dfs.read_bytes("/small") == b"still fine"
    finally:
        for disk in disks:
            _umount(disk)

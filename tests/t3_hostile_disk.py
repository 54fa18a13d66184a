"""Hostile local users and abandoned uploads on real clusters (issue 9, points 6b, 8 and the
partial uploads of 4).

- Nothing DFS keeps on disk (every node's data, the logs, the credentials, the client's
  and the mount's chunk caches, the mount records and logs) can be read by group or
  others, even when the nodes, the CLI and the mount run under umask 0.
- A cache entry planted by another user, with bytes forged to match the master's CRC32C,
  or with a "matching" checksum stored beside it, is never served through the mount.
- A forged mount record makes `dfs umount` and `dfs down` refuse with a clear error: the
  process it names lives on, the folder it names stays as it was.
- Partial uploads a user abandons are dropped after the worker's idle time: descriptors
  closed, temp files removed, the worker serving honest clients as before.
"""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import cluster_config, random_bytes, sha256
from helpers import run_dfs
from t1_private_files import OTHER_UID, forge_crc

from dfs import auth, chunks, errors, rpc, wire
from dfs.config import BLOCK_SIZE
from dfs.local.cluster import LocalCluster, wait_for
from mount import lifecycle, records

FUSE = os.path.exists("/dev/fuse") and bool(shutil.which("fusermount3")
                                            or shutil.which("fusermount"))
needs_fuse = pytest.mark.skipif(not FUSE, reason="no /dev/fuse or fusermount")
MOUNT_DEADLINE = 60.0


@pytest.fixture
def umask_zero():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The local user's cache, config and state dirs (mount records among them), for this
    test alone; the `dfs` commands run with the same environment."""
    for name in ("CACHE", "CONFIG", "STATE"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / "home" / name.lower()))
    return tmp_path / "home"


class Mount:
    """`dfs mount` of ``cluster`` as alice on ``path`` with the chunk cache in ``cache``;
    always undone (dfs umount, else a lazy unmount and a kill)."""

    def __init__(self, cluster, path, cache):
        self.path, self.cache = str(path), str(cache)
        self.auth = os.path.join(cluster.data_dir, "auth-alice.txt")
        if not os.path.exists(self.auth):
            cluster.register("alice", self.auth)
        self.pid = None

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        run_dfs("mount", self.path, "--auth", self.auth, "--cache-dir", self.cache,
                timeout=MOUNT_DEADLINE + 30)
        wait_for(lambda: os.path.ismount(self.path), MOUNT_DEADLINE, f"{self.path} to mount")
        self.pid = records.read_record(self.path)["pid"]
        return self

    def __exit__(self, *exc):
        if lifecycle.is_mounted(self.path):
            done = run_dfs("umount", self.path, check=False, timeout=lifecycle.UMOUNT_DEADLINE)
            if done.returncode != 0:
                subprocess.run(lifecycle.fusermount_argv(self.path, lazy=True),
                               capture_output=True)
        if self.pid and lifecycle.pid_alive(self.pid):
            os.kill(self.pid, 9)


def not_private(roots):
    """Every directory and file below ``roots`` that group or others may use in any way."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in [".", *dirs, *files]:
                path = os.path.normpath(os.path.join(folder, name))
                if stat.S_IMODE(os.lstat(path).st_mode) & 0o077:
                    found.append(f"{oct(stat.S_IMODE(os.lstat(path).st_mode))} {path}")
    return found


@needs_fuse
def test_nothing_on_disk_is_readable_by_others_even_under_umask_0(tmp_path, home, umask_zero):
    config = cluster_config(tmp_path / "cluster", snapshot_every=5)
    data = random_bytes(3 * 1024 * 1024 + 5)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    with LocalCluster(config) as cluster:
        with cluster.client("alice") as dfs:  # cache in DATA/cache-alice
            dfs.put_bytes("/api.bin", data)
            assert dfs.read_bytes("/api.bin") == data
        alice = os.path.join(cluster.data_dir, "auth-alice.txt")
        run_dfs("put", str(local), "/cli.bin", "--auth", alice)  # cache in the home dir
        assert run_dfs("cat", "/cli.bin", "--auth", alice, text=False).stdout == data
        for i in range(6):  # past snapshot_every: the snapshot is written too
            run_dfs("mkdir", f"/d{i}", "--auth", alice)
        with Mount(cluster, tmp_path / "mnt", tmp_path / "mount-cache") as m:
            with open(os.path.join(m.path, "api.bin"), "rb") as f:
                assert f.read() == data
            with open(os.path.join(m.path, "new.bin"), "wb") as f:
                f.write(data)
            roots = [cluster.data_dir, str(home), m.cache]
            offenders = not_private(roots)
            present = {name for root in roots for _f, _d, names in os.walk(root)
                       for name in names}
            record_files = os.listdir(records.records_dir())
    assert offenders == []
    assert present & {"journal.jsonl", "journal.sealed.jsonl"}  # (a snapshot seals it)
    for name in ("saved-files.json", "election.json", "voter.json",
                 "join-token", "admin-auth.txt", "auth-alice.txt", "cluster.json",
                 "master.log", "worker-1.log"):
        assert name in present, name  # every kind of file was there to be checked
    assert any(n.endswith(".crc") for n in present) and any(n.isdigit() for n in present)
    assert {os.path.splitext(n)[1] for n in record_files} >= {".json", ".log"}
    for cache in (os.path.join(config.data_dir, "cache-alice"), m.cache,
                  os.path.join(home, "cache", "dfs", "chunks-alice")):
        assert os.listdir(cache), cache  # each cache held entries when it was walked


def plant_over(entry, data, by_other):
    """An attacker's bytes in place of cache entry ``entry``: as another user would leave
    them (their file), or world-writable (anyone could have written them)."""
    os.unlink(entry)
    with open(entry, "wb") as f:
        f.write(data)
    if by_other:
        os.chown(entry, OTHER_UID, OTHER_UID)
    else:
        os.chmod(entry, 0o666)


@needs_fuse
@pytest.mark.log_allows(r"cache entry \S+ is damaged or not private: dropping it")
def test_a_forged_cache_entry_is_not_served_through_the_mount(cluster, tmp_path, home):
    originals = {name: random_bytes(200_000 + i, seed=i) for i, name in enumerate("abc")}
    with cluster.client("alice", cache_dir="") as dfs:
        for name, data in originals.items():
            dfs.put_bytes(f"/{name}", data)
    cache = tmp_path / "cache"
    entries = {}
    with Mount(cluster, tmp_path / "mnt", cache) as m:
        for name in originals:  # fill the cache, one entry per file
            before = set(os.listdir(cache))
            with open(os.path.join(m.path, name), "rb") as f:
                assert f.read() == originals[name]
            (entries[name],) = set(os.listdir(cache)) - before
    evil = {name: b"EVIL" + data[4:] for name, data in originals.items()}
    for name, by_other in (("a", True), ("b", False)):  # CRC32C matches the master's
        forged = forge_crc(evil[name], chunks.crc(originals[name]))
        plant_over(os.path.join(cache, entries[name]), forged, by_other)
    forged_c = os.path.join(cache, entries["c"])  # ours, private, with its own checksum
    with open(forged_c, "wb") as f:
        f.write(evil["c"])
    with open(forged_c + ".crc", "w") as f:
        f.write(str(chunks.crc(evil["c"])))
    with Mount(cluster, tmp_path / "mnt2", cache) as m:  # a new mount: no kernel page cache
        for name, data in originals.items():
            with open(os.path.join(m.path, name), "rb") as f:
                assert sha256(f.read()) == sha256(data), name
    for name in originals:  # each forged entry was dropped (a good one may replace it)
        path = os.path.join(cache, entries[name])
        assert not os.path.exists(path) or (
            os.stat(path).st_uid == os.getuid() and open(path, "rb").read() == originals[name])


@pytest.fixture
def victim(tmp_path):
    """A process and a folder that are no DFS mount: what the forged records point at."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("still here")
    proc = subprocess.Popen(["sleep", "600"])
    yield proc, str(folder)
    proc.kill()
    proc.wait()


def forge_record(mount_dir, pid, auth_file, mode=0o600, owner=None):
    path = records.record_path(mount_dir, ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "w") as f:
        json.dump({"pid": pid, "dir": os.path.realpath(mount_dir), "auth": auth_file,
                   "log": "/dev/null"}, f)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner, owner)


@needs_fuse
def test_forged_mount_records_are_refused_by_umount_and_down(cluster, tmp_path, home, victim):
    proc, folder = victim
    down_data = tmp_path / "other-cluster"  # `dfs down` of a folder the record points into
    down_data.mkdir()
    with Mount(cluster, tmp_path / "mnt", tmp_path / "cache") as m:
        honest = records.read_record(m.path)
        attacks = [  # (folder given to dfs umount, record pid, mode, owner, expected error)
            (folder, proc.pid, 0o600, None, "not your DFS mount"),
            (folder, m.pid, 0o600, None, "not your DFS mount"),  # a real mount, elsewhere
            (folder, proc.pid, 0o666, None, "not your own private file"),
            (folder, m.pid, 0o600, OTHER_UID, "not your own private file"),
            (m.path, proc.pid, 0o600, None, "not your DFS mount"),  # the real mount's record
        ]
        for target, pid, mode, owner, message in attacks:
            forge_record(target, pid, m.auth, mode, owner)
            done = run_dfs("umount", target, check=False)
            assert done.returncode == 1 and message in done.stderr, (target, done.stderr)
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        forge_record(folder, proc.pid, str(down_data / "auth.txt"))
        down = run_dfs("down", "--data", down_data, check=False)
        assert down.returncode == 0 and "not your DFS mount" in down.stderr, down.stderr
        assert "unmounted" not in down.stdout
        assert proc.poll() is None and lifecycle.pid_alive(m.pid)  # every victim lives
        assert os.listdir(folder) == ["keep.txt"] and lifecycle.is_mounted(m.path)
        with open(os.path.join(m.path, "still.txt"), "wb") as f:
            f.write(b"the mount still works")
        records.write_record(m.path, honest)  # its owner's own record again
        run_dfs("umount", m.path)  # the honest unmount goes on as before
        assert not lifecycle.is_mounted(m.path) and not lifecycle.pid_alive(m.pid)
    with cluster.client("alice") as dfs:
        assert dfs.read_bytes("/still.txt") == b"the mount still works"


# --- abandoned partial uploads ---------------------------------------------------------------

UPLOAD_IDLE = 1.0
WORKER_SCRIPT = """
import logging, sys
from dfs.config import WorkerConfig
from nodes.worker import main
logging.basicConfig(level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
data, master, token_file, ready, idle = sys.argv[1:]
with open(token_file) as f:
    token = f.read().strip()

def write_port(port):
    with open(ready + ".tmp", "w") as f:
        f.write(str(port))
    import os
    os.replace(ready + ".tmp", ready)

main.run(WorkerConfig(data_dir=data, masters=(("127.0.0.1", int(master)),), join_token=token,
                      port=0, upload_idle=float(idle)), ready=write_port)
"""


@pytest.fixture
def idle_worker_cluster(tmp_path):
    """A master and one worker whose partial uploads expire after UPLOAD_IDLE seconds
    (a WorkerConfig field the `dfs worker` command does not set)."""
    with LocalCluster(cluster_config(tmp_path / "c", workers=0, shadow=False)) as cluster:
        data = os.path.join(cluster.data_dir, "worker-idle")
        ready = os.path.join(cluster.log_dir, "worker-idle.port")
        with open(os.path.join(cluster.log_dir, "worker-idle.log"), "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, data, str(cluster.master.port),
                 cluster.token_file, ready, str(UPLOAD_IDLE)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=cluster.env)
        try:
            wait_for(lambda: os.path.exists(ready), 30, "the worker to listen")
            cluster.wait_workers(1)
            with cluster.admin_client() as admin:
                admin.chmod("/", 0o1777)  # as cluster_config's root_mode (no workers then)
            yield cluster, worker, data
        finally:
            worker.terminate()
            worker.wait(30)


def upload_fds(pid, data_dir):
    """The worker's open descriptors on temp files of uploads in progress."""
    tmp = os.path.join(data_dir, "tmp") + os.sep
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(tmp):
                found.append(fd)
        except FileNotFoundError:
            pass
    return found


def test_abandoned_partial_uploads_expire_and_free_their_descriptors(idle_worker_cluster):
    cluster, worker, data_dir = idle_worker_cluster
    with cluster.client("honest", cache_dir="") as dfs:
        dfs.put_bytes("/before", b"kept")
    _masters, name, key = auth.read_auth_file(cluster.register("mallory"))
    conn = rpc.connect("127.0.0.1", cluster.master.port)
    rpc.login(conn, "login", name, key)
    targets = wire.targets_from_wire(rpc.call(conn, "allocate", "/junk", 16, ()))
    conn.close()
    piece = random_bytes(BLOCK_SIZE)
    total = 2 * BLOCK_SIZE
    opened = []
    for target in targets:
        replica = target.replicas[0]
        link = rpc.connect(replica.host, replica.port)
        assert rpc.call(link, "write", target.token, target.chunk_id, replica.kind, 0, piece,
                        total, chunks.crc(piece * 2)) is False
        opened.append((link, target, replica))
    assert len(upload_fds(worker.pid, data_dir)) == len(targets)  # held while they wait
    wait_for(lambda: not upload_fds(worker.pid, data_dir)
             and not os.listdir(os.path.join(data_dir, "tmp")),
             UPLOAD_IDLE * 10 + 5, "the abandoned uploads to expire")
    link, target, replica = opened[0]
    with pytest.raises(errors.InvalidArgument, match="unexpected offset"):
        rpc.call(link, "write", target.token, target.chunk_id, replica.kind, BLOCK_SIZE,
                 piece, total, chunks.crc(piece * 2))
    for link, _target, _replica in opened:
        link.close()
    assert worker.poll() is None
    body = random_bytes(3 * 1024 * 1024)
    with cluster.client("honest", cache_dir="") as dfs:
        dfs.put_bytes("/after", body)
        assert dfs.read_bytes("/after") == body and dfs.read_bytes("/before") == b"kept"

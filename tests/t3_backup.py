"""`dfs backup` as a user runs it: a real watcher process over a real cluster.

Each test starts `python -m dfs.cli backup ...` as a subprocess (its log in a file), changes
the watched folder, and polls the cluster with a deadline until it holds the same bytes
(SHA-256 compared). Watchers are always stopped: SIGTERM (must exit 0), else SIGKILL at
teardown. The first tests are pure checks of the settle logic with a stepped clock.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import cluster_config
from helpers import SteppedClock, random_bytes, sha256, sha256_file

from dfs import errors
from dfs.backup.changes import ChangeQueue
from dfs.local.cluster import LocalCluster, wait_for

UPLOADED = "dfs.backup.operations: uploaded "  # the log line of each upload


# --- the settle logic, with a clock we step by hand -----------------------------------------

def test_a_growing_file_is_due_only_after_it_stays_unchanged_for_the_settle_time():
    clock, sizes = SteppedClock(), {"big": (10, 1)}
    queue = ChangeQueue(settle=1.0, stat=sizes.get, clock=clock, check_interval=0.1)
    queue.changed("big")
    for step in range(20):  # grows every 0.5 s: never still for 1 s
        assert queue.take(timeout=0) is None
        clock.now += 0.5
        sizes["big"] = (10 + step, 2 + step)
    assert queue.take(timeout=0) is None  # sees the last size
    clock.now += 0.6
    assert queue.take(timeout=0) is None  # still for 0.6 s only
    clock.now += 0.6
    op = queue.take(timeout=0)
    assert op.kind == "sync" and op.path == "big"
    queue.done()
    assert queue.idle()


def test_renames_come_before_uploads_and_pending_uploads_follow_the_file():
    clock, sizes = SteppedClock(), {"new/a": (1, 1), "b": (2, 2)}
    queue = ChangeQueue(settle=1.0, stat=sizes.get, clock=clock)
    queue.changed("old/a")
    queue.changed("b")
    queue.moved("old", "new", is_dir=True)  # the pending old/a is now new/a
    queue.deleted("b", is_dir=False, mirror=False)  # nothing to upload any more
    op = queue.take(timeout=0)
    assert (op.kind, op.path, op.dest, op.is_dir) == ("move", "old", "new", True)
    queue.done()
    assert queue.take(timeout=0) is None
    clock.now += 1.5
    assert queue.take(timeout=0).path == "new/a"
    queue.done()
    assert queue.take(timeout=0) is None and queue.idle()


# --- a real watcher ----------------------------------------------------------------------------

class Watcher:
    """One `dfs backup` process; its stdout and stderr go to ``log_path``."""

    def __init__(self, env, auth, local, remote, state, log_path, *extra):
        self.argv = [sys.executable, "-m", "dfs.cli", "backup", str(local), remote,
                     "--auth", auth, "--state", str(state), "--settle", "0.5", *extra]
        self.env = env
        self.log_path = str(log_path)
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, deadline=60):
        def seen():
            if self.process.poll() is not None:
                raise AssertionError(f"the watcher exited ({self.process.returncode}):\n"
                                     + self.log())
            return text in self.log()
        wait_for(seen, deadline, f"{text!r} in the watcher's log", interval=0.1)

    def stop(self):
        """SIGTERM, as systemd and Ctrl-C do: -> exit status (0 expected)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def watchers():
    """Start watchers with ``watchers(...)``; any still running at the end are killed."""
    started = []

    def start(*args, **kwargs):
        watcher = Watcher(*args, **kwargs).start()
        started.append(watcher)
        return watcher
    yield start
    for watcher in started:
        watcher.kill()


def alice_auth(cluster):
    return os.path.join(cluster.data_dir, "auth-alice.txt")


def local_files(root):
    found = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root).replace(os.sep, "/")] = path
    return found


def in_cluster(dfs, local_root, remote_root):
    """True once every local file is in the cluster with the same bytes."""
    files = local_files(local_root)
    listings = {}
    try:
        for rel, path in files.items():
            folder, _sep, name = rel.rpartition("/")
            if folder not in listings:
                listings[folder] = {e.name: e.stat for e in
                                    dfs.listdir(remote_root + ("/" + folder if folder else ""))}
            there = listings[folder].get(name)
            if there is None or there.size != os.path.getsize(path):
                return False
        return all(sha256(dfs.read_bytes(f"{remote_root}/{rel}")) == sha256_file(path)
                   for rel, path in files.items())
    except errors.DfsError:
        return False


def wait_in_cluster(dfs, local_root, remote_root, deadline=60):
    wait_for(lambda: in_cluster(dfs, local_root, remote_root), deadline,
             f"{local_root} to be in the cluster at {remote_root}", interval=0.3)


def inodes(dfs, remote_root, rels):
    return {rel: dfs.stat(f"{remote_root}/{rel}").ino for rel in rels}


# --- the tests -----------------------------------------------------------------------------------

def test_new_changed_and_renamed_files_then_a_restart_uploads_nothing(
        shared_cluster, shared_dfs, tmp_path, watchers):
    local, remote, state = tmp_path / "photos", "/backup/photos", tmp_path / "state.json"
    local.mkdir()
    (local / "before.txt").write_text("there before the watcher started\n")
    env = shared_cluster.env
    watcher = watchers(env, alice_auth(shared_cluster), local, remote, state,
                       tmp_path / "run1.log")
    watcher.wait_log("watching")

    (local / "a.txt").write_text("first version\n")
    (local / "sub" / "deep").mkdir(parents=True)
    (local / "sub" / "deep" / "b.bin").write_bytes(random_bytes(2 * 1024 * 1024 + 5, seed=5))
    (local / "empty").write_bytes(b"")
    wait_in_cluster(shared_dfs, local, remote)
    assert shared_dfs.stat(remote + "/a.txt").mode == 0o600  # private, like `dfs put`

    with open(local / "a.txt", "a") as f:
        f.write("second version, longer\n")
    wait_in_cluster(shared_dfs, local, remote)

    ino = shared_dfs.stat(remote + "/sub/deep/b.bin").ino
    os.rename(local / "sub" / "deep" / "b.bin", local / "sub" / "b-renamed.bin")
    wait_for(lambda: shared_dfs.exists(remote + "/sub/b-renamed.bin"), 30, "the renamed file")
    assert shared_dfs.stat(remote + "/sub/b-renamed.bin").ino == ino  # renamed, not re-sent
    assert not shared_dfs.exists(remote + "/sub/deep/b.bin")
    assert "renamed sub/deep/b.bin -> sub/b-renamed.bin" in watcher.log()

    os.rename(local / "sub", local / "moved")  # a folder: one remote rename
    wait_for(lambda: shared_dfs.exists(remote + "/moved/b-renamed.bin"), 30, "the moved folder")
    assert shared_dfs.stat(remote + "/moved/b-renamed.bin").ino == ino
    assert shared_dfs.exists(remote + "/moved/deep") and not shared_dfs.exists(remote + "/sub")

    os.unlink(local / "before.txt")  # not mirrored without --mirror-deletes
    (local / "after.txt").write_text("written after a local delete\n")
    wait_in_cluster(shared_dfs, local, remote)
    assert shared_dfs.exists(remote + "/before.txt")
    assert watcher.stop() == 0

    rels = sorted(local_files(local))
    before = inodes(shared_dfs, remote, rels)
    uploads = watcher.log().count(UPLOADED)
    assert uploads >= len(rels) + 1  # a.txt twice

    again = watchers(env, alice_auth(shared_cluster), local, remote, state, tmp_path / "run2.log")
    again.wait_log("in sync")
    assert again.stop() == 0
    assert UPLOADED not in again.log() and "0 uploaded" in again.log()
    assert inodes(shared_dfs, remote, rels) == before

    # Without its state file the watcher compares sizes and chunk CRCs: still no upload.
    os.unlink(state)
    once = subprocess.run(again.argv + ["--once"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert once.returncode == 0, once.stderr
    assert UPLOADED not in once.stderr
    assert f"0 uploaded, 0 renamed, 0 deleted, {len(rels)} found already there" in once.stderr
    assert inodes(shared_dfs, remote, rels) == before
    assert os.path.exists(state)


def test_a_large_file_written_slowly_and_a_burst_of_small_files(
        shared_cluster, shared_dfs, tmp_path, watchers):
    local, remote = tmp_path / "incoming", "/backup/incoming"
    local.mkdir()
    watcher = watchers(shared_cluster.env, alice_auth(shared_cluster), local, remote,
                       tmp_path / "state.json", tmp_path / "watcher.log")
    watcher.wait_log("watching")

    big = random_bytes(100 * 1024 * 1024, seed=100)
    piece = 5 * 1024 * 1024
    with open(local / "big.bin", "wb") as f:  # a slow writer: 20 pieces over a few seconds
        for offset in range(0, len(big), piece):
            f.write(big[offset:offset + piece])
            f.flush()
            time.sleep(0.15)
    (local / "burst").mkdir()
    rng = random.Random(7)
    for i in range(500):
        (local / "burst" / f"file-{i:03d}.txt").write_bytes(rng.randbytes(rng.randrange(1, 5000)))

    wait_in_cluster(shared_dfs, local, remote, deadline=120)
    assert sha256(shared_dfs.read_bytes(remote + "/big.bin")) == sha256(big)
    assert len(shared_dfs.listdir(remote + "/burst")) == 500
    assert watcher.stop() == 0


def test_local_deletes_are_mirrored_when_asked(shared_cluster, shared_dfs, tmp_path, watchers):
    local, remote = tmp_path / "mirror", "/backup/mirror"
    (local / "folder" / "inner").mkdir(parents=True)
    for rel in ("keep.txt", "gone.txt", "folder/x.txt", "folder/inner/y.txt"):
        (local / rel).write_text(rel)
    watcher = watchers(shared_cluster.env, alice_auth(shared_cluster), local, remote,
                       tmp_path / "state.json", tmp_path / "watcher.log", "--mirror-deletes")
    watcher.wait_log("watching")
    wait_in_cluster(shared_dfs, local, remote)

    os.unlink(local / "gone.txt")
    shutil.rmtree(local / "folder")
    wait_for(lambda: not shared_dfs.exists(remote + "/gone.txt") and
             not shared_dfs.exists(remote + "/folder"), 30, "the deletes to be mirrored")
    assert shared_dfs.exists(remote + "/keep.txt")
    assert watcher.stop() == 0


@pytest.fixture
def lone_master_cluster(tmp_path):
    """A cluster without a shadow master: stopping the master makes it unavailable."""
    with LocalCluster(cluster_config(tmp_path / "cluster", shadow=False)) as running:
        yield running


@pytest.fixture
def lone_dfs(lone_master_cluster):
    with lone_master_cluster.client("alice") as client:
        yield client


# The outage is on purpose: the watcher warns while the master is down, the restarted master
# is elected again, and uploads begun with the old epoch's chunk tokens are refused.
@pytest.mark.log_allows(r"cluster unavailable", r"is now the leader",
                        r"chunk token from old epoch")
def test_files_that_appear_while_the_cluster_is_down_arrive_when_it_is_back(
        lone_master_cluster, lone_dfs, tmp_path, watchers):
    cluster, dfs = lone_master_cluster, lone_dfs
    local, remote = tmp_path / "docs", "/docs"
    local.mkdir()
    watcher = watchers(cluster.env, alice_auth(cluster), local, remote, tmp_path / "state.json",
                       tmp_path / "watcher.log")
    watcher.wait_log("watching")
    (local / "first.txt").write_text("before the outage\n")
    wait_in_cluster(dfs, local, remote)

    cluster.master.stop()
    down_since = time.monotonic()
    (local / "during").mkdir()
    count = 0
    while time.monotonic() - down_since < 20:  # the outage lasts 20 s; files keep coming
        (local / "during" / f"note-{count}.txt").write_bytes(random_bytes(3000 + count, count))
        count += 1
        time.sleep(1)
    (local / "during" / "large.bin").write_bytes(random_bytes(3 * 1024 * 1024, seed=3))
    watcher.wait_log("cluster unavailable")
    assert watcher.process.poll() is None  # still running

    cluster.master.start(cluster.env, False)
    cluster.master.wait_ready()
    cluster.wait_workers(4)
    wait_in_cluster(dfs, local, remote, deadline=90)
    assert watcher.stop() == 0

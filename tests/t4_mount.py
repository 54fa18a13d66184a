"""t4: the real FUSE mount, through the real `dfs mount` / `dfs umount` commands.

Every mount is made by ``dfs mount`` in a subprocess (it daemonizes and returns once the
folder is live), checked with os.path.ismount under a deadline, and always undone in
teardown: ``dfs umount`` (which waits for the mount process to exit), else a lazy
unmount and SIGKILL of the recorded process. Nothing sleeps a fixed time; nothing asserts
a timing.
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import helpers
import pytest
from helpers import random_bytes, run_dfs, sha256, sha256_file

from dfs.local.cluster import wait_for
from mount import lifecycle, records

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3")
                                           or shutil.which("fusermount")),
    reason="no /dev/fuse or fusermount: FUSE is not available here")

MOUNT_DEADLINE = 60.0
STDLIB = os.path.dirname(os.__file__)
TREE_PARTS = ("email", "json", "asyncio", "unittest", "encodings", "lib2to3", "xml",
              "multiprocessing")  # about 1500 files and folders, 22 MB


def dfs_ids(mounted):
    """(uid, gid) the cluster gave the user of ``mounted``: what its files show."""
    from dfs.client import DfsClient
    with DfsClient.from_auth_file(mounted.auth, cache_dir="") as client:
        me = client.usage()
    return me.uid, me.gid


def dfs_command(*args, timeout=300, check=True, env=None):
    return run_dfs(*args, timeout=timeout, check=check, env=env)


class Mounted:
    """A live `dfs mount` of ``cluster`` as ``user`` on ``path``."""

    def __init__(self, cluster, path, user="alice", timeout=20.0):
        self.cluster = cluster
        self.path = str(path)
        self.auth = os.path.join(cluster.data_dir, f"auth-{user}.txt")
        if not os.path.exists(self.auth):
            cluster.register(user, self.auth)
        self.timeout = timeout
        self.cache_dir = ""  # no on-disk chunk cache: reads really go to the workers
        self.pid = None

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        dfs_command("mount", self.path, "--auth", self.auth, "--timeout", str(self.timeout),
                    "--cache-dir", self.cache_dir, timeout=MOUNT_DEADLINE + 30)
        wait_for(lambda: os.path.ismount(self.path), MOUNT_DEADLINE, f"{self.path} to mount")
        self.pid = records.read_record(self.path)["pid"]
        return self

    def __exit__(self, *exc):
        self.unmount()

    def join(self, *names):
        return os.path.join(self.path, *names)

    def unmount(self):
        """dfs umount; if that fails, lazy unmount and kill: never leave a mount behind."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        done = dfs_command("umount", self.path, check=False, timeout=lifecycle.UMOUNT_DEADLINE + 30)
        if done.returncode != 0 or lifecycle.is_mounted(self.path) or lifecycle.pid_alive(pid):
            subprocess.run(lifecycle.fusermount_argv(self.path, lazy=True), capture_output=True)
            if not wait_until_gone(pid, 10):
                os.kill(pid, signal.SIGKILL)
                wait_until_gone(pid, 10)
            records.remove_record(self.path, pid)
            raise AssertionError(f"dfs umount {self.path} failed: {done.stdout}{done.stderr}")


def wait_until_gone(pid, deadline):
    return lifecycle.wait_until(lambda: not lifecycle.pid_alive(pid), deadline)


@pytest.fixture(scope="module")
def shared_mount(shared_cluster, tmp_path_factory):
    with Mounted(shared_cluster, tmp_path_factory.mktemp("mnt")) as m:
        yield m


@pytest.fixture
def mounted(cluster, tmp_path):
    with Mounted(cluster, tmp_path / "mnt", timeout=10.0) as m:
        yield m


def run(command, cwd=None, timeout=600):
    done = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


# --- whole trees and big files --------------------------------------------------------------

def test_cp_r_of_a_real_tree_then_diff(shared_mount, tmp_path):
    source = tmp_path / "tree"
    source.mkdir()
    for part in TREE_PARTS:
        if os.path.isdir(os.path.join(STDLIB, part)):
            shutil.copytree(os.path.join(STDLIB, part), source / part, symlinks=True)
    count = sum(len(files) + len(dirs) for _root, dirs, files in os.walk(source))
    assert count > 1000
    target = shared_mount.join("tree")
    run(f"cp -r {source} {target}")
    run(f"diff -r {source} {target}")
    # and back out again, through a fresh look at the tree
    back = tmp_path / "back"
    run(f"cp -r {target} {back}")
    run(f"diff -r {source} {back}")
    run(f"rm -r {target}")
    assert not os.path.exists(target)


def test_256_mib_file_with_dd(shared_mount, tmp_path, shared_cluster):
    source = tmp_path / "big"
    with open(source, "wb") as f:
        for i in range(16):
            f.write(random_bytes(16 << 20, seed=i))
    want = sha256_file(source)
    target = shared_mount.join("big.bin")
    run(f"dd if={source} of={target} bs=1M conv=fsync status=none")
    assert os.path.getsize(target) == 256 << 20
    assert sha256_file(target) == want
    with shared_cluster.client("alice", cache_dir="") as other:  # the commit is in the cluster
        assert other.stat("/big.bin").size == 256 << 20
        assert sha256(other.read_bytes("/big.bin")) == want
    os.unlink(target)


# --- POSIX operations -----------------------------------------------------------------------

def test_rename_truncate_chmod_dirs_unlink_links(shared_mount):
    root = shared_mount.join("posix")
    os.mkdir(root)
    path = os.path.join(root, "a.txt")
    with open(path, "wb") as f:
        f.write(b"hello world")
    # rename, and rename over an existing file
    os.rename(path, os.path.join(root, "b.txt"))
    assert not os.path.exists(path)
    with open(os.path.join(root, "c.txt"), "wb") as f:
        f.write(b"old")
    os.rename(os.path.join(root, "b.txt"), os.path.join(root, "c.txt"))
    path = os.path.join(root, "c.txt")
    assert open(path, "rb").read() == b"hello world"
    # truncate: shrink, grow (zeros), across a chunk boundary
    os.truncate(path, 5)
    assert open(path, "rb").read() == b"hello"
    os.truncate(path, (1 << 20) + 10)
    data = open(path, "rb").read()
    assert data == b"hello" + bytes((1 << 20) + 5)
    with open(path, "r+b") as f:  # ftruncate on an open file, then write after it
        f.truncate(3)
        f.seek(0, 2)
        f.write(b"!")
    assert open(path, "rb").read() == b"hel!"
    with open(path, "wb") as f:  # O_TRUNC
        f.write(b"new")
    assert open(path, "rb").read() == b"new"
    # chmod, utimens
    os.chmod(path, 0o600)
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.utime(path, ns=(1_000_000_000_123, 2_000_000_000_456))
    st = os.stat(path)
    assert st.st_mtime_ns == 2_000_000_000_456 and st.st_atime_ns == 1_000_000_000_123
    assert st.st_uid == dfs_ids(shared_mount)[0]  # the cluster's uid of the mount's user
    # mkdir / rmdir, and a non-empty rmdir
    sub = os.path.join(root, "sub")
    mask = os.umask(0o027)
    try:
        os.mkdir(sub, 0o777)  # the requested mode and the umask decide, as on any disk
    finally:
        os.umask(mask)
    assert os.stat(sub).st_mode & 0o777 == 0o750 and os.path.isdir(sub)
    os.chmod(sub, 0o755)  # an explicit chmod shares
    assert os.stat(sub).st_mode & 0o777 == 0o755
    with open(os.path.join(sub, "x"), "wb"):
        pass
    with pytest.raises(OSError) as caught:
        os.rmdir(sub)
    assert caught.value.errno == errno.ENOTEMPTY
    os.unlink(os.path.join(sub, "x"))
    os.rmdir(sub)
    assert not os.path.exists(sub)
    # directory rename keeps its content
    os.makedirs(os.path.join(root, "d1", "inner"))
    with open(os.path.join(root, "d1", "inner", "f"), "wb") as f:
        f.write(b"deep")
    os.rename(os.path.join(root, "d1"), os.path.join(root, "d2"))
    assert open(os.path.join(root, "d2", "inner", "f"), "rb").read() == b"deep"
    assert not os.path.exists(os.path.join(root, "d1"))
    # mv -n (RENAME_NOREPLACE) keeps the target
    with open(os.path.join(root, "keep"), "wb") as f:
        f.write(b"keep me")
    with open(os.path.join(root, "other"), "wb") as f:
        f.write(b"other")
    run(f"mv -n {root}/other {root}/keep")
    assert open(os.path.join(root, "keep"), "rb").read() == b"keep me"
    # symlinks and hard links
    os.symlink("c.txt", os.path.join(root, "link"))
    assert os.readlink(os.path.join(root, "link")) == "c.txt"
    assert open(os.path.join(root, "link"), "rb").read() == b"new"
    assert os.path.islink(os.path.join(root, "link"))
    os.link(path, os.path.join(root, "hard"))
    assert os.stat(path).st_nlink == 2
    assert os.stat(path).st_ino == os.stat(os.path.join(root, "hard")).st_ino
    os.unlink(path)
    assert open(os.path.join(root, "hard"), "rb").read() == b"new"
    # errors come back as the right errno
    for call, code in ((lambda: open(os.path.join(root, "missing")), errno.ENOENT),
                       (lambda: os.mkdir(os.path.join(root, "hard")), errno.EEXIST),
                       (lambda: os.listdir(os.path.join(root, "hard")), errno.ENOTDIR),
                       (lambda: os.getxattr(os.path.join(root, "hard"), "user.x"),
                        errno.ENODATA)):  # no such attribute (xattrs: tests/t4_xattr.py)
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value.errno == code
    run(f"rm -r {root}")


def test_ls_l_of_2000_files(shared_mount):
    folder = shared_mount.join("many")
    os.mkdir(folder)
    for i in range(2000):  # empty but for a few: ls -l is the point, not writing
        with open(os.path.join(folder, f"f{i:04d}"), "wb") as f:
            if i % 500 == 6:
                f.write(b"x" * 6)
    lines = run("ls -l", cwd=folder).splitlines()
    assert lines[0].startswith("total")
    assert len(lines) == 2001
    assert lines[1].split()[-1] == "f0000" and lines[1].startswith("-rw-")
    assert sorted(os.listdir(folder)) == [f"f{i:04d}" for i in range(2000)]
    assert os.path.getsize(os.path.join(folder, "f0006")) == 6
    run(f"rm -r {folder}")


def test_df_shows_cluster_capacity(shared_mount, shared_dfs):
    total, free, _chunk, _files = shared_dfs.statfs()
    vfs = os.statvfs(shared_mount.path)
    shown = vfs.f_blocks * vfs.f_frsize
    assert total > 0 and abs(shown - total) <= max(total // 100, 1 << 20)
    out = run(f"df -B1 --output=size {shared_mount.path}").split()
    assert abs(int(out[-1]) - total) <= max(total // 100, 1 << 20)


def test_two_mounts_see_each_others_files_after_close(shared_cluster, shared_mount, tmp_path):
    folder = "exchange"
    os.mkdir(shared_mount.join(folder))
    with Mounted(shared_cluster, tmp_path / "second") as second:
        writer = ("import sys\nwith open(sys.argv[1], 'wb') as f:\n"
                  "    for i in range(5): f.write(bytes([int(sys.argv[2])]) * (300 * 1024))\n")
        procs = [subprocess.Popen([sys.executable, "-c", writer, m.join(folder, name), seed])
                 for m, name, seed in ((shared_mount, "from-one", "1"),
                                       (second, "from-two", "2"))]
        for p in procs:
            assert p.wait(timeout=120) == 0
        assert open(second.join(folder, "from-one"), "rb").read() == b"\x01" * (1500 * 1024)
        assert open(shared_mount.join(folder, "from-two"), "rb").read() == b"\x02" * (1500 * 1024)
    run(f"rm -r {shared_mount.join(folder)}")


def test_a_walk_that_outlives_the_listing_asks_for_its_stats_ahead(shared_cluster,
                                                                     shared_mount):
    """``find | xargs stat`` of a big folder takes longer than the listing's second: the
    mount then asks for the stats of the names after each miss in one call."""
    with shared_cluster.client("alice") as other:
        other.mkdir("/walked", 0o755)
        for i in range(300):
            other.create(f"/walked/f{i:03}", 0o644)
        other.put_bytes("/walked/f150", b"changed")  # one of them differs
    folder = shared_mount.join("walked")
    with shared_cluster.admin_client() as admin:
        url = admin.status().web

    def calls(samples, op):
        return helpers.metric(samples, "dfs_request_seconds_count", op=op) or 0
    cached = helpers.scrape(url)  # the page is made at most once a second: a fresh one
    before = wait_for(lambda: (page := helpers.scrape(url)) != cached and page, 30,
                      "a fresh metrics page")
    names = sorted(os.listdir(folder))  # one listdir; then the cache time runs out
    listed = time.monotonic()
    wait_for(lambda: time.monotonic() > listed + 1.5, 10, "the listing's cache time to pass")
    sizes = {name: os.stat(os.path.join(folder, name)).st_size for name in names}
    assert len(sizes) == 300 and sizes["f150"] == 7 and sizes["f000"] == 0

    cached = helpers.scrape(url)
    after = wait_for(lambda: (page := helpers.scrape(url)) != cached and page, 30,
                     "a fresh metrics page")
    asked = sum(calls(after, op) - calls(before, op) for op in ("stat", "stat_many"))
    assert asked <= 30, f"{asked} calls for 300 stats"  # one each without the look-ahead
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(folder, "never-there"))
    run(f"rm -r {folder}")


def test_open_file_sees_other_mounts_commit_on_next_open(shared_cluster, shared_mount, tmp_path):
    """Close-to-open across mounts, even while this mount keeps the file open."""
    path = shared_mount.join("shared-doc")
    with open(path, "wb") as f:
        f.write(b"version 1")
    with open(path, "rb") as keeper:  # held open all along
        with Mounted(shared_cluster, tmp_path / "second") as second:
            with open(second.join("shared-doc"), "r+b") as f:
                f.write(b"VERSION 2, longer")
        with open(path, "rb") as again:
            assert again.read() == b"VERSION 2, longer"
        keeper.seek(0)
        assert keeper.read(1) in (b"v", b"V")
    os.unlink(path)


@pytest.mark.log_allows(r"changes lost at release: .*permission denied")  # bob's write
def test_other_users_see_only_what_is_shared(shared_cluster, shared_mount, tmp_path):
    path = shared_mount.join("alice-notes")
    mask = os.umask(0o077)
    try:
        with open(path, "wb") as f:
            f.write(b"private at first")
    finally:
        os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o600  # the umask decided, as on any disk
    with Mounted(shared_cluster, tmp_path / "bob", user="bob") as bob:
        assert "alice-notes" in os.listdir(bob.path)  # a name in a folder he may read
        with pytest.raises(OSError) as caught:
            open(bob.join("alice-notes"), "rb")
        assert caught.value.errno == errno.EACCES
        os.chmod(path, 0o644)
        with open(bob.join("alice-notes"), "rb") as f:
            assert f.read() == b"private at first"
        st = os.stat(bob.join("alice-notes"))
        assert (st.st_uid, st.st_gid) == dfs_ids(shared_mount)  # alice's, not bob's
        with pytest.raises(OSError):  # shared for reading only
            with open(bob.join("alice-notes"), "r+b") as f:
                f.write(b"bob was here")
    assert open(path, "rb").read() == b"private at first"
    os.unlink(path)


def test_gio_list_and_copy(shared_mount, tmp_path):
    gio = shutil.which("gio")
    if gio is None:
        pytest.skip("gio is not installed (Debian package libglib2.0-bin)")
    source = tmp_path / "photo.bin"
    source.write_bytes(random_bytes(3 << 20, seed=7))
    folder = shared_mount.join("gio")
    os.mkdir(folder)
    env = dict(os.environ, GIO_USE_VFS="local")  # no session bus needed for local files
    subprocess.run([gio, "copy", str(source), folder], check=True, env=env, timeout=120,
                   capture_output=True)
    listing = subprocess.run([gio, "list", "-l", folder], check=True, env=env, timeout=60,
                             capture_output=True, text=True).stdout
    assert "photo.bin" in listing and str(3 << 20) in listing
    back = tmp_path / "back.bin"
    subprocess.run([gio, "copy", os.path.join(folder, "photo.bin"), str(back)], check=True,
                   env=env, timeout=120, capture_output=True)
    assert back.read_bytes() == source.read_bytes()
    run(f"rm -r {folder}")


# --- faults and lifecycle (a cluster of their own) ----------------------------------------------

@pytest.mark.log_allows(r"silent for [\d.]+s: dead")  # the worker it kills, on a slow day
def test_read_survives_a_killed_worker(cluster, mounted):
    data = random_bytes(24 << 20, seed=3)
    with cluster.client("alice") as dfs:
        dfs.put_bytes("/victim.bin", data)
    got = bytearray()
    with open(mounted.join("victim.bin"), "rb") as f:
        got += f.read(2 << 20)
        cluster.kill_worker(0)
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            got += block
    assert sha256(bytes(got)) == sha256(data)


@pytest.mark.log_allows(r"chunk \d+ to worker \S+ failed",
                        r"silent for [\d.]+s: dead")  # the worker it kills
def test_write_survives_a_killed_worker(cluster, mounted):
    data = random_bytes(24 << 20, seed=4)
    with open(mounted.join("written.bin"), "wb") as f:
        f.write(data[:8 << 20])
        cluster.kill_worker(1)
        f.write(data[8 << 20:])
    assert sha256_file(mounted.join("written.bin")) == sha256(data)
    with cluster.client("alice", cache_dir="") as dfs:
        assert sha256(dfs.read_bytes("/written.bin")) == sha256(data)


@pytest.mark.log_allows(r"chunk \d+ to worker \S+ failed", r"flush /lost.bin failed",
                        r"/lost.bin: changes lost at release")
def test_close_reports_a_failed_upload(cluster, tmp_path):
    with Mounted(cluster, tmp_path / "mnt", timeout=3.0) as m:
        with open(m.join("ok"), "wb") as f:
            f.write(b"fine")
        for index in range(len(cluster.workers)):
            cluster.kill_worker(index)
        with pytest.raises(OSError) as caught, open(m.join("lost.bin"), "wb") as f:
            f.write(random_bytes(3 << 20, seed=5))
        # EIO or ETIMEDOUT; the master currently answers ENOSPC when no worker is alive
        assert caught.value.errno in (errno.EIO, errno.ETIMEDOUT, errno.ENOSPC)
        with cluster.client("alice") as dfs:  # nothing half-written was committed
            assert dfs.stat("/lost.bin").size == 0


def test_master_restart_under_the_mount(cluster, mounted):
    with open(mounted.join("before"), "wb") as f:
        f.write(b"written before")
    cluster.restart_master()
    # The restarted master learns where chunks are from the workers' reports: until they
    # have re-registered, a read finds no replica (EIO). Reported to the master's owner.
    cluster.wait_workers(len(cluster.workers))
    assert open(mounted.join("before"), "rb").read() == b"written before"
    with open(mounted.join("after"), "wb") as f:
        f.write(b"written after")
    assert sorted(os.listdir(mounted.path)) == ["after", "before", "home"]
    with cluster.client("alice") as dfs:
        assert dfs.read_bytes("/after") == b"written after"


@pytest.mark.log_allows(r"failed: (no metadata server at .* is leading|cannot reach )")
def test_master_down_fails_in_bounded_time_then_recovers(cluster, tmp_path):
    with Mounted(cluster, tmp_path / "mnt", timeout=3.0) as m:
        with open(m.join("kept"), "wb") as f:
            f.write(b"kept")
        for node in cluster.metadata_nodes:  # none left to take over (a shadow that did
            node.stop(signal.SIGKILL)  # would answer ENOENT, rightly)
        probe = ("import os, sys\ntry:\n    os.stat(sys.argv[1])\nexcept OSError as e:\n"
                 "    print(e.errno)\nelse:\n    print('ok')\n")
        done = subprocess.run([sys.executable, "-c", probe, m.join("not-cached")],
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.strip() not in ("", "ok", str(errno.ENOENT))
        for node in cluster.metadata_nodes:
            node.start(cluster.env, cluster.detach)
        for node in cluster.metadata_nodes:
            node.wait_ready()
        cluster.wait_workers(len(cluster.workers))  # see test_master_restart_under_the_mount
        assert open(m.join("kept"), "rb").read() == b"kept"
        with open(m.join("new"), "wb") as f:
            f.write(b"new")
        assert os.path.exists(m.join("new"))


def test_unmount_while_idle_leaves_no_process(cluster, tmp_path):
    m = Mounted(cluster, tmp_path / "mnt")
    with m:
        pid = m.pid
        assert lifecycle.pid_alive(pid)
        os.listdir(m.path)
    assert not lifecycle.pid_alive(pid)
    assert not os.path.ismount(m.path)
    assert records.read_record(m.path) is None
    done = dfs_command("umount", m.path, check=False)
    assert done.returncode == 1 and "not mounted" in done.stderr


def test_foreground_mount_ends_when_unmounted(cluster, tmp_path):
    folder = str(tmp_path / "fg")
    os.mkdir(folder)
    auth = cluster.register("carol")
    proc = subprocess.Popen([*helpers.DFS, "mount", folder, "--foreground", "--auth", auth],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: os.path.ismount(folder) or proc.poll() is not None, MOUNT_DEADLINE,
                 f"{folder} to mount")
        assert os.path.ismount(folder), proc.stdout.read()
        with open(os.path.join(folder, "x"), "wb") as f:
            f.write(b"x")
        dfs_command("umount", folder)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            subprocess.run(lifecycle.fusermount_argv(folder, lazy=True), capture_output=True)
            proc.kill()
            proc.wait()
    assert not os.path.ismount(folder)


def test_mount_errors_are_one_line(cluster, tmp_path):
    auth = cluster.register("bob")
    done = dfs_command("mount", str(tmp_path / "missing"), "--auth", auth, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    done = dfs_command("umount", str(tmp_path), check=False)
    assert done.returncode == 1 and "not mounted" in done.stderr


def test_dfs_up_mounts_and_dfs_down_unmounts(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("DFS_AUTH", None)
    data, folder = str(tmp_path / "cluster"), str(tmp_path / "mnt")
    up = dfs_command("up", "--data", data, "--base-port", "0", "--mount", folder, env=env)
    try:
        assert f"mounted on {folder}" in up.stdout
        wait_for(lambda: os.path.ismount(folder), MOUNT_DEADLINE, f"{folder} to mount")
        with open(os.path.join(folder, "hello.txt"), "wb") as f:
            f.write(b"hello, mount\n")
        listing = dfs_command("ls", "/", "--auth", os.path.join(data, "auth.txt"), env=env)
        assert "hello.txt" in listing.stdout
    finally:
        down = dfs_command("down", "--data", data, env=env, check=False)
        if os.path.ismount(folder):
            subprocess.run(lifecycle.fusermount_argv(folder, lazy=True), capture_output=True)
    assert down.returncode == 0 and f"unmounted {folder}" in down.stdout, down.stderr
    assert not os.path.ismount(folder)


def test_kill_9_of_the_leader_while_copying_into_the_mount(cluster, tmp_path):
    """Files copied in through the mount while the leader dies: every file whose close
    returned is intact afterwards, and the copy carries on through the failover."""
    import threading
    with Mounted(cluster, tmp_path / "mnt", timeout=60.0) as mnt:
        written = {}
        failures = []
        stop = threading.Event()

        def copier():
            i = 0
            while not stop.is_set():
                data = random_bytes(1000 + (i * 7919) % 200_000, seed=i)
                try:
                    with open(mnt.join(f"copy{i}"), "wb") as f:
                        f.write(data)
                    written[f"copy{i}"] = sha256(data)  # close returned: acknowledged
                except OSError as exc:
                    failures.append(exc)
                i += 1

        thread = threading.Thread(target=copier)
        thread.start()
        try:
            wait_for(lambda: len(written) >= 10 or failures, 60, "copies before the kill")
            leader = wait_for(cluster.leader, 30, "a leader")
            leader.stop(signal.SIGKILL)
            count = len(written)
            wait_for(lambda: len(written) >= count + 10 or failures, 90, "copies after the kill")
        finally:
            stop.set()
            thread.join()
        assert not failures, failures
        for name, digest in written.items():
            assert sha256_file(mnt.join(name)) == digest, name
    with cluster.client("alice", cache_dir="") as dfs:
        for name, digest in written.items():
            assert sha256(dfs.read_bytes("/" + name)) == digest, name

"""t4: the mount's log is kept (appended, rotated, still there after unmount), `dfs mount`
and `dfs status` say where it is, and a mount whose process was killed (kill -9: what the
OOM killer does) is found and cleaned up by the next `dfs mount` or `dfs umount` of its
folder, which says where its log is."""

import errno
import os
import signal
import subprocess
import sys

import pytest
from helpers import run_dfs
from t4_mount import MOUNT_DEADLINE, Mounted, wait_until_gone

from dfs.local.cluster import wait_for
from dfs.retry import poll
from mount import lifecycle, records

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no FUSE here")


def mount(cluster, folder, user="alice"):
    auth = os.path.join(cluster.data_dir, f"auth-{user}.txt")
    if not os.path.exists(auth):
        cluster.register(user, auth)
    done = run_dfs("mount", folder, "--auth", auth, "--cache-dir", "",
                   timeout=MOUNT_DEADLINE + 30)
    wait_for(lambda: os.path.ismount(folder), MOUNT_DEADLINE, f"{folder} to mount")
    return done.stdout


@pytest.fixture
def folder(tmp_path):
    """A mount point, never left mounted: whatever the test did, a lazy unmount and a kill
    of the recorded mount process at the end."""
    path = str(tmp_path / "mnt")
    os.mkdir(path)
    yield path
    record = records.read_record(path)
    if lifecycle.is_mounted(path):
        subprocess.run(lifecycle.fusermount_argv(path, lazy=True), capture_output=True)
    if record and lifecycle.pid_alive(record["pid"]):
        os.kill(record["pid"], signal.SIGKILL)
    if record:
        records.remove_record(path, record["pid"])


def stat_errno(path):
    """The errno of stat(path) in a child process (a dead mount must not hang this one)."""
    probe = ("import os, sys\ntry:\n    os.stat(sys.argv[1])\nexcept OSError as e:\n"
             "    print(e.errno)\nelse:\n    print(0)\n")
    done = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True,
                          timeout=60)
    return int(done.stdout.strip())


def kill_mount(folder):
    pid = records.read_record(folder)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until_gone(pid, 30)
    # "Transport endpoint is not connected" once the kernel has seen the last thread go
    assert poll(lambda: stat_errno(folder) == errno.ENOTCONN, 30, 0.1)
    return pid


def test_the_log_is_named_kept_after_unmount_and_appended_to(cluster, folder):
    log = records.log_path(folder)
    out = mount(cluster, folder)
    assert f"its log: {log}" in out
    status = run_dfs("status", "--auth", os.path.join(cluster.data_dir, "auth-alice.txt"))
    assert folder in status.stdout and log in status.stdout and "running" in status.stdout
    run_dfs("umount", folder)
    with open(log) as f:
        first = f.read()
    assert f"{folder} unmounted: mount process" in first  # the mount's own last words
    with Mounted(cluster, folder):
        pass
    with open(log) as f:
        both = f.read()
    assert both.startswith(first) and both.count(" unmounted: mount process ") == 2


def test_a_killed_mount_is_cleaned_up_by_the_next_mount(cluster, folder):
    mount(cluster, folder)
    with open(os.path.join(folder, "kept"), "wb") as f:
        f.write(b"written before the kill")
    pid = kill_mount(folder)
    auth = os.path.join(cluster.data_dir, "auth-alice.txt")
    status = run_dfs("status", "--auth", auth).stdout
    assert f"DEAD: dfs umount {folder}" in status, status
    out = mount(cluster, folder)  # `dfs mount` of the same folder: cleans up, says so, mounts
    log = records.log_path(folder)
    assert f"process {pid} is gone" in out and f"Its log: {log}" in out
    with open(os.path.join(folder, "kept"), "rb") as f:
        assert f.read() == b"written before the kill"
    run_dfs("umount", folder)
    with open(log) as f:
        text = f.read()
    assert f"the mount process {pid} of {folder} had died" in text
    assert "unmounted by dfs mount" in text


def test_a_killed_mount_is_cleaned_up_by_dfs_umount(cluster, folder):
    mount(cluster, folder)
    pid = kill_mount(folder)
    done = run_dfs("umount", folder)
    log = records.log_path(folder)
    assert f"process {pid} is gone" in done.stdout and f"Its log: {log}" in done.stdout
    assert not lifecycle.is_mounted(folder) and records.read_record(folder) is None
    assert os.path.isdir(folder) and os.listdir(folder) == []  # an ordinary folder again
    done = run_dfs("umount", folder, check=False)
    assert done.returncode == 1 and "not mounted" in done.stderr


ROTATION = """
import logging, os, sys
from mount import logfile
logfile.ROTATE_BYTES = 2000
logfile.log_to(sys.argv[1])
for i in range(100):
    logging.getLogger("t").info("line %d %s", i, "x" * 40)
os.write(2, b"written to fd 2 after the rollovers\\n")
print("and to stdout", flush=True)
"""


def test_the_log_rotates_and_stdout_stderr_follow_it(tmp_path):
    log = str(tmp_path / "m.log")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", ROTATION, log], check=True, cwd=root, timeout=60)
    assert os.path.getsize(log) <= 2000 + 200 and os.path.getsize(log + ".1") <= 2000 + 200
    assert not os.path.exists(log + ".2")  # one older file kept, no more
    with open(log) as f:
        text = f.read()
    assert "line 99" in text and "written to fd 2" in text and "and to stdout" in text
    assert oct(os.stat(log).st_mode & 0o777) == "0o600"

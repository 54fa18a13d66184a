"""t4: file locks through two real mounts of one cluster (two `dfs mount` processes, as two
machines would have): flock (util-linux `flock`) and fcntl byte-range locks (Python's
fcntl.lockf / F_GETLK) in one mount exclude the other's; a lock goes when its process
exits, when any fd of the file is closed (POSIX), and when the holder's whole mount is
killed -9 (its lease at the leader lapses). A blocked wait ends with EINTR on a signal.

Locks are held by small agent processes (AGENT below), one per mount, told what to do on
stdin: each answer is a line. Nothing sleeps a fixed time; waits poll with deadlines.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
from conftest import cluster_config
from t4_mount import Mounted, pytestmark, wait_until_gone  # noqa: F401 (skip without FUSE)

from dfs.local.cluster import LocalCluster
from dfs.retry import poll
from mount import lifecycle, records
from mount.locks import MAX_WAITERS

LOCK_LEASE = 3.0
DEADLINE = 60.0

AGENT = r"""
import errno, fcntl, os, signal, struct, sys
path = sys.argv[1]
fds = [os.open(path, os.O_RDWR)]
FL = "hhqqi4x"
TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK}
NAMES = {fcntl.F_RDLCK: "r", fcntl.F_WRLCK: "w"}
OPS = {"ex": fcntl.LOCK_EX, "sh": fcntl.LOCK_SH, "un": fcntl.LOCK_UN}

def on_alarm(signum, frame):
    raise InterruptedError("alarm")

signal.signal(signal.SIGALRM, on_alarm)
print("ready", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    try:
        if cmd == "lockf":  # lockf OP[nb] START LEN
            op = OPS[args[0][:2]] | (fcntl.LOCK_NB if args[0].endswith("nb") else 0)
            fcntl.lockf(fds[0], op, int(args[2]), int(args[1]))
        elif cmd == "flock":  # flock OP[nb]
            op = OPS[args[0][:2]] | (fcntl.LOCK_NB if args[0].endswith("nb") else 0)
            fcntl.flock(fds[0], op)
        elif cmd == "getlk":  # getlk r|w START LEN
            arg = struct.pack(FL, TYPES[args[0]], 0, int(args[1]), int(args[2]), 0)
            got = fcntl.fcntl(fds[0], fcntl.F_GETLK, arg)
            kind, _w, start, length, pid = struct.unpack(FL, got)
            print("unlocked" if kind == fcntl.F_UNLCK else f"{NAMES[kind]} {start} {length} {pid}",
                  flush=True)
            continue
        elif cmd == "alarm_lockf":  # a blocking lockf that a signal interrupts
            signal.alarm(int(args[0]))
            fcntl.lockf(fds[0], fcntl.LOCK_EX, 0, 0)
            signal.alarm(0)
        elif cmd == "open":  # one more fd of the same file
            fds.append(os.open(path, os.O_RDWR))
        elif cmd == "close_last":
            os.close(fds.pop())
        print("ok", flush=True)
    except InterruptedError:
        print("interrupted", flush=True)
    except OSError as exc:
        print(f"busy {errno.errorcode.get(exc.errno, exc.errno)}", flush=True)
"""


class Agent:
    """A process holding ``path`` open in a mount, locking what it is told."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", AGENT, path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self._line() == "ready"

    def _line(self):
        line = self.proc.stdout.readline().strip()
        assert line, f"the agent died (exit {self.proc.poll()})"
        return line

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def until(agent, command, answer="ok"):
    """Ask ``command`` again until it answers ``answer`` (a release reaches the leader
    just after the close that made it): -> whether it did within the deadline."""
    return poll(lambda: agent.ask(command) == answer, DEADLINE, 0.1) is not None


@pytest.fixture(scope="module")
def lock_cluster(tmp_path_factory):
    config = cluster_config(tmp_path_factory.mktemp("locks"), lock_lease=LOCK_LEASE)
    with LocalCluster(config) as running:
        yield running


@pytest.fixture(scope="module")
def mounts(lock_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("mounts")
    with Mounted(lock_cluster, base / "a") as a, Mounted(lock_cluster, base / "b") as b:
        yield a, b


@pytest.fixture
def shared_file(mounts, request):
    a, b = mounts
    name = request.node.name[:60] + ".lock"
    with open(a.join(name), "wb") as f:
        f.write(b"x" * 1000)
    assert poll(lambda: os.path.exists(b.join(name)), DEADLINE, 0.1)
    return a.join(name), b.join(name)


def flock_n(path, *options):
    """`flock -n [OPTIONS] PATH true` -> its exit status (1: the lock is held elsewhere)."""
    return subprocess.run(["flock", "-n", *options, path, "true"], timeout=DEADLINE).returncode


# --- flock -------------------------------------------------------------------------------

def test_flock_in_one_mount_excludes_flock_in_the_other(shared_file):
    in_a, in_b = shared_file
    holder = subprocess.Popen(["flock", "-x", in_a, "-c", "echo locked; read line"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert flock_n(in_b) == 1
        assert flock_n(in_b, "-s") == 1
        waiter = subprocess.Popen(["flock", "-x", in_b, "-c", "echo got it"],
                                  stdout=subprocess.PIPE, text=True)
        assert flock_n(in_b) == 1  # still held: the waiter cannot have it yet
        assert waiter.poll() is None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(DEADLINE) == 0
        out, _ = waiter.communicate(timeout=DEADLINE)  # it gets the lock once it is free
        assert waiter.returncode == 0 and out.strip() == "got it"
        assert poll(lambda: flock_n(in_b) == 0, DEADLINE, 0.1)
    finally:
        holder.kill()
        holder.wait(30)


def test_flock_w_gives_up_after_its_timeout_through_the_interrupt(shared_file):
    in_a, in_b = shared_file
    with Agent(in_a) as one:
        assert one.ask("flock ex") == "ok"
        # `flock -w` is a blocking flock ended by a timer's signal: EINTR from the mount
        done = subprocess.run(["flock", "-w", "1", in_b, "true"], timeout=DEADLINE,
                              capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        assert one.ask("flock un") == "ok"
        assert subprocess.run(["flock", "-w", "30", in_b, "true"], timeout=DEADLINE
                              ).returncode == 0


def test_shared_flocks_coexist_and_exclude_an_exclusive_one(shared_file):
    in_a, in_b = shared_file
    with Agent(in_a) as one, Agent(in_b) as two:
        assert one.ask("flock sh") == "ok"
        assert two.ask("flock shnb") == "ok"
        assert subprocess.run(["flock", "-n", "-x", in_a, "true"]).returncode == 1
        assert one.ask("flock exnb") == "busy EAGAIN"  # an upgrade waits for the other reader
        assert two.ask("flock un") == "ok"
        assert one.ask("flock exnb") == "ok"
        assert two.ask("flock shnb") == "busy EAGAIN"


def test_a_flock_goes_when_its_holder_process_is_killed(shared_file):
    in_a, in_b = shared_file
    holder = Agent(in_a)
    assert holder.ask("flock ex") == "ok"
    assert flock_n(in_b) == 1
    holder.kill()
    assert poll(lambda: flock_n(in_b) == 0, DEADLINE, 0.1)


@pytest.mark.log_allows(r"lock requests are waiting in this mount")
def test_waiters_beyond_the_mount_s_places_get_enolck_and_the_mount_answers(shared_file,
                                                                          mounts):
    in_a, in_b = shared_file
    extra = 3
    with Agent(in_a) as one:
        assert one.ask("flock ex") == "ok"
        waiters = [subprocess.Popen(["flock", "-x", in_b, "true"], stderr=subprocess.PIPE)
                   for _ in range(MAX_WAITERS + extra)]
        try:
            assert poll(lambda: sum(w.poll() is not None for w in waiters) >= extra,
                        DEADLINE, 0.1)
            assert os.listdir(mounts[1].path)  # FUSE threads are left for everything else
            assert flock_n(in_b) == 1
            assert one.ask("flock un") == "ok"
            codes = [w.wait(DEADLINE) for w in waiters]
            assert codes.count(0) == MAX_WAITERS and len(codes) - codes.count(0) == extra
        finally:
            for w in waiters:
                w.kill()
                w.wait(30)


# --- fcntl byte ranges ------------------------------------------------------------------

def test_fcntl_byte_ranges_exclude_across_mounts_and_split_when_unlocked(shared_file):
    in_a, in_b = shared_file
    with Agent(in_a) as one, Agent(in_b) as two:
        assert one.ask("lockf ex 0 100") == "ok"
        assert two.ask("lockf exnb 50 10") in ("busy EAGAIN", "busy EACCES")
        assert two.ask("lockf exnb 100 10") == "ok"  # the next byte is free
        assert two.ask("getlk w 0 10") == "w 0 100 0"  # the holder is on another machine
        assert two.ask("getlk r 200 10") == "unlocked"
        assert one.ask("lockf un 40 20") == "ok"  # now held: [0, 40) and [60, 100)
        assert two.ask("lockf exnb 45 10") == "ok"
        assert two.ask("lockf exnb 30 5") in ("busy EAGAIN", "busy EACCES")
        assert two.ask("getlk w 60 1") == "w 60 40 0"
        assert one.ask("lockf exnb 45 1") in ("busy EAGAIN", "busy EACCES")


def test_fcntl_shared_locks_and_a_whole_file_lock(shared_file):
    in_a, in_b = shared_file
    with Agent(in_a) as one, Agent(in_b) as two:
        assert one.ask("lockf sh 0 0") == "ok"  # to the end of the file, however long
        assert two.ask("lockf shnb 10 10") == "ok"
        assert two.ask("lockf exnb 1000000 1") in ("busy EAGAIN", "busy EACCES")
        assert two.ask("getlk w 1000000 1") == "r 0 0 0"


def test_closing_any_fd_of_the_file_releases_the_process_s_fcntl_locks(shared_file):
    in_a, in_b = shared_file
    with Agent(in_a) as one, Agent(in_b) as two:
        assert one.ask("lockf ex 0 0") == "ok"
        assert one.ask("open") == "ok"
        assert two.ask("lockf exnb 0 1") in ("busy EAGAIN", "busy EACCES")
        assert one.ask("close_last") == "ok"  # another fd than the one that locked
        assert until(two, "lockf exnb 0 1")


def test_a_fcntl_lock_goes_when_its_process_exits(shared_file):
    in_a, in_b = shared_file
    with Agent(in_b) as two:
        holder = Agent(in_a)
        assert holder.ask("lockf ex 0 0") == "ok"
        assert two.ask("lockf exnb 0 0") in ("busy EAGAIN", "busy EACCES")
        holder.kill()
        assert until(two, "lockf exnb 0 0")


def test_a_blocked_fcntl_wait_is_granted_at_release_or_interrupted_by_a_signal(shared_file):
    in_a, in_b = shared_file
    with Agent(in_a) as one, Agent(in_b) as two:
        assert one.ask("lockf ex 0 0") == "ok"
        assert two.ask("alarm_lockf 1") == "interrupted"  # EINTR, not a hang
        two.proc.stdin.write("lockf ex 0 0\n")  # blocks until the holder lets go
        two.proc.stdin.flush()
        assert one.ask("lockf un 0 0") == "ok"
        assert two._line() == "ok"
        assert one.ask("lockf exnb 0 1") in ("busy EAGAIN", "busy EACCES")


class AdminMount(Mounted):
    """`dfs mount` with the cluster's admin key (a trusted host's): each caller as itself."""

    def __init__(self, cluster, path):
        self.cluster, self.path, self.auth = cluster, str(path), cluster.admin_auth_file
        self.timeout, self.cache_dir, self.pid = 20.0, "", None


def test_processes_of_other_uids_on_two_admin_mounts_exclude_each_other(lock_cluster):
    base = tempfile.mkdtemp(prefix="dfs-locks-")  # a folder every uid may pass through
    os.chmod(base, 0o755)
    try:
        with AdminMount(lock_cluster, os.path.join(base, "one")) as one, \
                AdminMount(lock_cluster, os.path.join(base, "two")) as two:
            with open(one.join("uids.lock"), "wb"):
                pass
            os.chmod(one.join("uids.lock"), 0o666)
            holder = subprocess.Popen(["flock", "-x", one.join("uids.lock"), "-c",
                                       "echo locked; read line"], user=2001, group=2001,
                                      cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
            try:
                assert holder.stdout.readline().strip() == "locked"

                def flock_as(uid):
                    return subprocess.run(["flock", "-n", two.join("uids.lock"), "true"],
                                          user=uid, group=uid, cwd="/",
                                          timeout=DEADLINE).returncode
                assert flock_as(2002) == 1 and flock_as(0) == 1
                holder.stdin.write("\n")
                holder.stdin.flush()
                assert holder.wait(DEADLINE) == 0
                assert poll(lambda: flock_as(2002) == 0, DEADLINE, 0.1)
            finally:
                holder.kill()
                holder.wait(30)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- a mount that dies ------------------------------------------------------------------

@pytest.mark.log_allows(r"lock")
def test_the_locks_of_a_mount_killed_9_go_when_its_lease_lapses(lock_cluster, mounts,
                                                               tmp_path):
    _a, b = mounts
    doomed = Mounted(lock_cluster, tmp_path / "doomed")
    doomed.__enter__()
    holder = None
    try:
        with open(doomed.join("doomed.lock"), "wb") as f:
            f.write(b"y")
        in_b = b.join("doomed.lock")
        assert poll(lambda: os.path.exists(in_b), DEADLINE, 0.1)
        holder = subprocess.Popen(["flock", "-x", doomed.join("doomed.lock"), "-c",
                                   "echo locked; read line"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        with Agent(in_b) as two:
            assert two.ask("flock exnb") == "busy EAGAIN"
            os.kill(doomed.pid, signal.SIGKILL)  # its holder stays alive, its fd open
            assert wait_until_gone(doomed.pid, 30)
            assert until(two, "flock exnb")  # within about a lock lease
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(30)
        subprocess.run(lifecycle.fusermount_argv(doomed.path, lazy=True), capture_output=True)
        records.remove_record(doomed.path, doomed.pid)

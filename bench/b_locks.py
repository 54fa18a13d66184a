"""File locks through the real ``dfs mount`` against the local disk, in the same run.

Every lock and unlock through the mount is one call to the leader (nodes/master/locks.py),
so two machines exclude each other; a close of a file holding no lock costs none. A fresh
LocalCluster (master + shadow + 4 workers), two mounts of it (as two machines would), and
a local folder of the same disk; each workload in a child process:

- ``fcntl.lockf`` of one byte, exclusive then unlocked, COUNT times (F_SETLK).
- ``fcntl.flock`` LOCK_EX then LOCK_UN, COUNT times.
- two processes, one per mount (local: two processes), taking turns on one exclusive lock,
  blocking (F_SETLKW), ROUNDS times each: the hand-over from one machine to the other.
- SQLite: TRANSACTIONS transactions of one INSERT each (journal_mode DELETE: its locks,
  and a commit of the journal and the database at each), then PRAGMA integrity_check.
"""

import os
import subprocess
import sys

from bench import common
from bench.b_mount import Mount, _check_fuse
from bench.common import Timer, compare

COUNT = 1000
ROUNDS = 200
TRANSACTIONS = 100

LOCKF = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
for _ in range(int(sys.argv[2])):
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
"""
FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
for _ in range(int(sys.argv[2])):
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd, fcntl.LOCK_UN)
"""
TURNS = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
for _ in range(int(sys.argv[2])):
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
    os.pwrite(fd, b"x", 8)  # not a lock: keeps the holder busy for a moment
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
"""
SQLITE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER, s TEXT)")
for i in range(int(sys.argv[2])):
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES (?, ?)", (i, "row %d" % i))
    db.execute("COMMIT")
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
"""


def _child(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)])


def _timed(script, path, count):
    with Timer() as t:
        child = _child(script, path, count)
        if child.wait() != 0:
            raise RuntimeError(f"the workload failed (exit {child.returncode})")
    return t.seconds


def _turns(path_one, path_two):
    with Timer() as t:
        children = [_child(TURNS, path_one, ROUNDS), _child(TURNS, path_two, ROUNDS)]
        if any(c.wait() != 0 for c in children):
            raise RuntimeError("a turn-taking workload failed")
    return t.seconds


def _rows(mnt_a, mnt_b, local):
    rows = []
    for label, script, count, unit in (
            (f"lockf 1 byte + unlock, x{COUNT}", LOCKF, COUNT, "pairs/s"),
            (f"flock LOCK_EX + LOCK_UN, x{COUNT}", FLOCK, COUNT, "pairs/s")):
        here = _timed(script, os.path.join(local, "l"), count)
        try:
            there = _timed(script, os.path.join(mnt_a, "l"), count)
            rows.append(compare(label, common.per_s(count, there), common.per_s(count, here),
                                unit))
        except Exception as exc:  # a failure is a row, not a crash of the whole bench
            rows.append(common.failed(label, common.per_s(count, here), unit, exc))
    label = f"2 processes take turns on a lock, {ROUNDS} each (2 mounts)"
    here = _turns(os.path.join(local, "t"), os.path.join(local, "t"))
    try:
        open(os.path.join(mnt_a, "t"), "wb").close()
        there = _turns(os.path.join(mnt_a, "t"), os.path.join(mnt_b, "t"))
        rows.append(compare(label, common.per_s(2 * ROUNDS, there),
                            common.per_s(2 * ROUNDS, here), "locks/s"))
    except Exception as exc:
        rows.append(common.failed(label, common.per_s(2 * ROUNDS, here), "locks/s", exc))
    label = f"SQLite: {TRANSACTIONS} transactions of 1 INSERT (journal DELETE)"
    here = _timed(SQLITE, os.path.join(local, "db.sqlite"), TRANSACTIONS)
    try:
        there = _timed(SQLITE, os.path.join(mnt_a, "db.sqlite"), TRANSACTIONS)
        rows.append(compare(label, common.per_s(TRANSACTIONS, there),
                            common.per_s(TRANSACTIONS, here), "tx/s"))
    except Exception as exc:
        rows.append(common.failed(label, common.per_s(TRANSACTIONS, here), "tx/s", exc))
    return rows


def run(workdir):
    _check_fuse()
    local = os.path.join(workdir, "local")
    os.makedirs(local)
    with common.cluster(workdir) as (cluster, _client):
        auth_file = os.path.join(cluster.data_dir, "auth-bench.txt")
        one = Mount(os.path.join(workdir, "mnt-a"), auth_file)
        two = Mount(os.path.join(workdir, "mnt-b"), auth_file)
        one.up()
        try:
            two.up()
            try:
                rows = _rows(one.path, two.path, local)
            finally:
                two.down()
        finally:
            one.down()
    return [("File locks: through the mount (held at the leader) vs the local disk",
             common.COMPARE_HEADER, rows)]

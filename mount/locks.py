"""The mount's file locks: FUSE's ``lock`` (fcntl, lockf: POSIX byte ranges) and ``flock``
operations, held at the leader through the mount's one lock session (dfs.client.locks;
the table: nodes/master/locks.py), so two mounts, on two machines, exclude each other.

What libfuse3 gives (mount.binding passes it on): ``lock(cmd, struct flock, lock_owner)``
with cmd F_GETLK, F_SETLK or F_SETLKW, the range already made absolute (l_whence SEEK_SET,
l_len 0: to the end of the file), ``lock_owner`` one id per process (its open files
table); ``flock(fh, op)`` with LOCK_SH, LOCK_EX or LOCK_UN, and LOCK_NB not to wait.

- **Owners**: POSIX locks belong to (session, lock_owner): every fd of a process is one
  owner, so its ranges merge and split, and closing *any* fd of the file releases them
  (libfuse turns each flush into an F_UNLCK of the whole file for that owner). flock
  locks belong to (session, file handle): one per open file description, shared by dup
  and fork, released at the last close (``released``, from FUSE's release).
- **Waiting** (F_SETLKW, flock without LOCK_NB) never sits in one long call: each call
  waits at most WAIT_SLICE seconds at the leader, then the mount asks again, and between
  calls it checks whether the kernel interrupted the request (the process got a signal):
  then it answers EINTR. A mount's FUSE threads are few (libfuse3's default is 10), so
  at most MAX_WAITERS requests wait at once; one more gets ENOLCK, and the mount stays
  responsive whatever its processes wait for.
- **F_GETLK** reports the conflicting range and type; its pid is the holder's only when
  it is a process of this mount (libfuse answers those from its own table first), else 0:
  a pid on another machine means nothing here.
- A leader in its grace period after a failover answers "ask again": requests wait it
  out (a non-blocking one too, as NFSv4 clients do), interruptibly.

Not done: deadlock detection (EDEADLK) across mounts; open file description locks
(F_OFD_SETLK) work, but are released at unmount or when the lease lapses, not at their
last close (FUSE tells only flock's owner at release); lock conflicts between flock and
fcntl (none, as on local Linux file systems, unlike NFS).

Thread-safe: the session has its own lock; ``waiters`` is a semaphore.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable
from typing import Any

from dfs import errors
from dfs.client.client import DfsClient
from dfs.client.locks import LockSession
from dfs.wire import LOCK_EOF, LockAnswer

WAIT_SLICE = 1.0
"""Seconds one call waits at the leader for a lock held by another (then it is asked again)."""
MAX_WAITERS = 5
GRACE_POLL = 0.25  # seconds between tries while the leader is in its grace period
TYPES = {fcntl.F_RDLCK: "r", fcntl.F_WRLCK: "w", fcntl.F_UNLCK: "u"}
FCNTL_TYPE = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK}

Attempt = Callable[[float], LockAnswer]  # wait seconds -> the leader's answer


def never_interrupted() -> bool:
    """The ``interrupted`` of a mount without libfuse's fuse_interrupted (and of tests)."""
    return False


class MountLocks:
    def __init__(self, session: LockSession,
                 interrupted: Callable[[], bool] = never_interrupted,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self.session = session
        self.interrupted = interrupted  # set by mount.binding.serve: fuse_interrupted
        self.sleep = sleep
        self.waiters = threading.BoundedSemaphore(MAX_WAITERS)

    # --- fcntl / lockf ------------------------------------------------------------------

    def fcntl(self, client: DfsClient, ino: int, cmd: int, fl: Any, owner: int) -> None:
        """F_GETLK (fills ``fl``), F_SETLK, F_SETLKW on ``ino`` for ``owner``; raises
        WouldBlock (EAGAIN), Interrupted (EINTR), LockLost (ENOLCK) or InvalidArgument."""
        want = TYPES.get(fl.l_type)
        start, length = int(fl.l_start), int(fl.l_len)
        if want is None or start < 0 or length < 0 or start >= LOCK_EOF:
            raise errors.InvalidArgument("bad lock range or type")
        end = LOCK_EOF if length == 0 else min(start + length, LOCK_EOF)
        pid = max(0, int(fl.l_pid))
        if cmd == fcntl.F_GETLK:
            if want == "u":
                raise errors.InvalidArgument("F_GETLK needs a read or write lock")
            answer = self._until_answered(
                lambda _wait: self.session.test("posix", ino, owner, start, end, want,
                                                via=client), blocking=False)
            if answer.granted or answer.holder is None:
                fl.l_type = fcntl.F_UNLCK
                return
            holder = answer.holder
            fl.l_type = FCNTL_TYPE[holder.type]
            fl.l_start = holder.start
            fl.l_len = 0 if holder.end >= LOCK_EOF else holder.end - holder.start
            fl.l_pid = answer.holder_pid
            return
        if cmd not in (fcntl.F_SETLK, fcntl.F_SETLKW):
            raise errors.InvalidArgument(f"lock command {cmd} is not supported")
        self._granted(lambda wait: self.session.lock(
            "posix", ino, owner, start, end, want, pid, wait, via=client),
            blocking=cmd == fcntl.F_SETLKW)

    # --- flock -------------------------------------------------------------------------

    def flock(self, client: DfsClient, ino: int, fh: int, op: int) -> None:
        kinds = {fcntl.LOCK_SH: "r", fcntl.LOCK_EX: "w", fcntl.LOCK_UN: "u"}
        want = kinds.get(op & ~fcntl.LOCK_NB)
        if want is None:
            raise errors.InvalidArgument(f"bad flock operation {op}")
        self._granted(lambda wait: self.session.lock(
            "flock", ino, fh, 0, LOCK_EOF, want, 0, wait, via=client),
            blocking=not op & fcntl.LOCK_NB)

    def released(self, client: DfsClient, ino: int, fh: int) -> None:
        """The last close of open file ``fh``: its flock lock goes."""
        self.session.release("flock", ino, fh, via=client)

    def close(self) -> None:
        self.session.close()

    # --- waiting -----------------------------------------------------------------------

    def _granted(self, attempt: Attempt, blocking: bool) -> None:
        answer = self._until_answered(attempt, blocking)
        if not answer.granted:
            raise errors.WouldBlock("another holder's lock is in the way")

    def _until_answered(self, attempt: Attempt, blocking: bool) -> LockAnswer:
        """Ask until the answer is final: granted, or (not ``blocking``) refused for a
        holder's lock. Waits (a leader's grace period, a blocking request) take one of
        MAX_WAITERS places and end with EINTR when the kernel interrupts the request."""
        answer = attempt(0.0)
        if not self._must_wait(answer, blocking):
            return answer
        if not self.waiters.acquire(blocking=False):
            raise errors.LockLost(f"more than {MAX_WAITERS} lock requests are waiting in "
                                  "this mount")
        try:
            while self._must_wait(answer, blocking):
                if self.interrupted():
                    raise errors.Interrupted("interrupted while waiting for a lock")
                if answer.grace:
                    self.sleep(min(answer.grace, GRACE_POLL))
                    answer = attempt(0.0)
                else:
                    answer = attempt(WAIT_SLICE)
            return answer
        finally:
            self.waiters.release()

    @staticmethod
    def _must_wait(answer: LockAnswer, blocking: bool) -> bool:
        return not answer.granted and (answer.grace > 0 or blocking)

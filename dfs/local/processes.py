"""Node processes of a local cluster: start one, wait until it listens, stop it.

Every node is started as ``python -m dfs.cli ROLE ... --ready-file F``: it writes its real
port to F once it listens, and start-up polls for that file with a deadline (never a fixed
sleep). A node can also be known by pid only (one `dfs up` left running): then it is
signalled and polled, not waited for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

from dfs import errors
from dfs.fsutil import open_private, private_dir
from dfs.retry import poll

T = TypeVar("T")

START_DEADLINE = 30.0
STOP_DEADLINE = 10.0
POLL_INTERVAL = 0.05
TAIL_LINES = 20


def wait_for(condition: Callable[[], T | None], deadline: float, what: str,
             interval: float = POLL_INTERVAL) -> T:
    """Poll ``condition()`` every ``interval`` seconds until it returns something truthy
    (returned) or ``deadline`` seconds pass (errors.Unavailable naming ``what``)."""
    result = poll(condition, deadline, interval)
    if not result:
        raise errors.Unavailable(f"timed out after {deadline:.0f}s waiting for {what}")
    return result


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)  # our child: reap it if it exited
        return done == 0
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")


def tail(path: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log ('' if unreadable)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _since(path: str, offset: int) -> list[str]:
    """The lines of a log written from ``offset`` on ([] if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Node:
    """One node process: how to start it, and the process once started."""

    def __init__(self, name: str, args: list[str], data_dir: str, port: int,
                 log_dir: str) -> None:
        self.name = name
        self.args = args
        self.data_dir = data_dir
        self.port = port
        self.log_path = os.path.join(log_dir, name + ".log")
        self.ready_file = os.path.join(log_dir, name + ".port")
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.wrapper: list[str] = []  # run through this (dfs.local.hosts: ip netns exec NS)
        self.log_start = 0  # the log's size when it was last started: what is new is its own

    def start(self, env: dict[str, str], detach: bool) -> None:
        """Start it (``detach``: in its own session, so it outlives this process)."""
        try:
            os.unlink(self.ready_file)
        except FileNotFoundError:
            pass
        argv = [*self.wrapper, sys.executable, "-m", "dfs.cli", *self.args,
                "--data", self.data_dir, "--port", str(self.port), "--ready-file", self.ready_file]
        private_dir(self.data_dir)  # before the node: it may run under any umask
        with open_private(self.log_path, "ab") as log:
            self.log_start = log.tell()
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env,
                                            start_new_session=detach)
        self.pid = self.process.pid

    def wait_ready(self, deadline: float = START_DEADLINE) -> int:
        """Wait until it listens. -> its port (the real one when it was started on 0)."""
        def ready() -> int:
            if self.process is not None and self.process.poll() is not None:
                raise self._start_failure()
            try:
                with open(self.ready_file) as f:
                    port = int(f.read().strip() or 0)
            except (FileNotFoundError, ValueError):
                return 0
            if port:
                os.unlink(self.ready_file)  # read once: not left beside the private logs
            return port
        self.port = wait_for(ready, deadline, f"{self.name} to listen")
        return self.port

    def _start_failure(self) -> errors.DfsError:
        """The node exited at start: its own one-line reason (the `dfs` command's "dfs: ..."
        line in its log) if it gave one, else the end of its log."""
        said = [line.removeprefix("dfs: ") for line in _since(self.log_path, self.log_start)
                if line.startswith("dfs: ")]
        if said and errors.AddressInUse.SAYS in said[-1]:
            return errors.AddressInUse(f"{self.name}: {said[-1]}")
        if said:
            return errors.Unavailable(f"{self.name} did not start: {said[-1]} "
                                      f"(log: {self.log_path})")
        return errors.Unavailable(f"{self.name} exited at start; see {self.log_path}:\n"
                                  + tail(self.log_path))

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def send_signal(self, sig: int) -> None:
        if self.pid is not None and self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal it and wait until it is gone; SIGKILL when it takes too long."""
        self.send_signal(sig)
        try:
            wait_for(lambda: not self.alive(), STOP_DEADLINE, f"{self.name} to stop")
        except errors.Unavailable:
            self.send_signal(signal.SIGKILL)
            wait_for(lambda: not self.alive(), STOP_DEADLINE, f"{self.name} to die")
        if self.process is not None:
            self.process.wait()

"""The mount's log (kept, appended to, rotated) and mounts whose process died.

Each mounted folder has one log in the user's cache dir (``records.log_path``), kept across
mounts and after unmount. `dfs mount` starts the mount process with its output appended to
that file; the process then logs there through ``MountLogHandler``, a RotatingFileHandler
(past ROTATE_BYTES the file becomes ``.log.1``, replacing the older one), whose file is also
made its stdout and stderr (again after each rollover), so what does not pass through
logging lands there too: a C library's message, the traceback faulthandler writes when the
process crashes.

A mount killed by SIGKILL or the kernel's OOM killer writes nothing more, and its folder
stays mounted with nobody serving it ("Transport endpoint is not connected"). The next
`dfs mount`, `dfs umount` (or `dfs up`, `dfs down`) of that folder finds its record naming
a process that is gone (``dead_mount``), unmounts the folder, notes that in the log and says
where the log is (``clean_dead``). `dfs status` lists the mounts of this machine (``known``).
"""

from __future__ import annotations

import faulthandler
import io
import logging
import os
import subprocess
import sys
import time
from logging.handlers import RotatingFileHandler
from typing import NamedTuple

from dfs import errors
from dfs.fsutil import open_private
from mount import records

ROTATE_BYTES = 8 * 1024 * 1024
BACKUPS = 1  # DIR.log and DIR.log.1
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MountLogHandler(RotatingFileHandler):
    """The mount process's log: rotated, private (0600), and its stdout and stderr too."""

    def __init__(self, path: str) -> None:
        super().__init__(path, maxBytes=ROTATE_BYTES, backupCount=BACKUPS, encoding="utf-8")
        self._adopt()

    def _open(self) -> io.TextIOWrapper:
        open_private(self.baseFilename, "ab").close()  # created 0600 before it is opened
        return super()._open()

    def doRollover(self) -> None:
        super().doRollover()
        self._adopt()

    def _adopt(self) -> None:
        """The log's file becomes fds 1 and 2: output that bypasses logging goes there."""
        if self.stream is None:
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        fd = self.stream.fileno()
        os.dup2(fd, 1)
        os.dup2(fd, 2)


def log_to(path: str, debug: bool = False) -> None:
    """This process (a mount) logs to ``path`` from now on, INFO and up (DEBUG with
    ``debug``); a fatal crash writes its traceback there too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = MountLogHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    faulthandler.enable()  # writes to fd 2: the log, whatever rollovers come


def note(mount_dir: str, text: str) -> None:
    """Append a line to the log of ``mount_dir`` (said by `dfs mount`/`umount`, not by
    the mount process)."""
    with records.open_log(mount_dir) as log:
        log.write(f"--- {time.ctime()}: {text}\n".encode())


class Mount(NamedTuple):
    """A mount this machine has a record of (`dfs status`)."""

    dir: str
    pid: int
    alive: bool
    log: str


def known() -> list[Mount]:
    """The caller's mounts on this machine, from their records (one not believed is left
    out: `dfs umount` says why)."""
    found = []
    for path in records.all_records():
        try:
            record = records.load(path)
            if record is not None:
                alive = records.check_pid(record, record["dir"]) is not None
                found.append(Mount(record["dir"], record["pid"], alive,
                                   record.get("log") or records.log_path(record["dir"])))
        except errors.DfsError:
            continue
    return found


def dead_mount(mount_dir: str) -> records.MountRecord | None:
    """The record of ``mount_dir`` if it names a mount process that is gone (killed, out of
    memory): None when there is no record or its process runs."""
    record = records.read_record(mount_dir)
    if record is None or records.check_pid(record, mount_dir) is not None:
        return None
    return record


def clean_dead(mount_dir: str, mounted: bool, unmount_argv: list[str],
               lazy_argv: list[str], by: str) -> str | None:
    """If the mount process of ``mount_dir`` died: unmount the folder it left behind (lazily
    if something still uses it), note it in the log, forget the record. ``mounted``: whether
    the folder is still mounted; ``by``: the command doing this. -> a line for the user, or
    None if the folder's mount was not dead."""
    record = dead_mount(mount_dir)
    if record is None:
        return None
    log = record.get("log") or records.log_path(mount_dir)
    if mounted:
        for argv in (unmount_argv, lazy_argv):
            if subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0:
                break
    note(mount_dir, f"the mount process {record['pid']} of {mount_dir} had died (killed, or "
                    f"out of memory?){'; unmounted by ' + by if mounted else ''}")
    records.remove_record(mount_dir, record["pid"])
    return (f"the mount of {mount_dir} had died (its process {record['pid']} is gone: killed, "
            f"or out of memory?){'; unmounted it' if mounted else ''}. Its log: {log}")

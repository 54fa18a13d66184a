"""Mount records: where `dfs umount` and `dfs down` find a mount's process and log.

One JSON file per mounted folder (named by a hash of its real path) in the user's cache
dir, written by the mount process when it starts and removed when it ends; next to it the
mount's log, kept across mounts (appended to; the previous one is kept as ``.log.1`` once
it passes LOG_ROTATE_BYTES).

`dfs umount` and `dfs down` (perhaps run as root) act on what a record says: they signal
its pid and unmount its folder. So records are private (0600 in a 0700 folder, whatever
the umask), and one is believed only if it is a plain file owned by the caller that no one
else may write, it names the folder it is filed under, and its pid, while alive, really
is a DFS mount process of that folder run by the caller (``check_pid``). Anything else is
refused with PermissionDenied.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import BinaryIO, TypedDict

from dfs import errors, paths
from dfs.fsutil import open_private, private_dir, write_atomic


class MountRecord(TypedDict):
    pid: int
    dir: str  # the mounted folder (real path)
    auth: str  # the auth file it mounted with (absolute)
    log: str  # the mount process's log file


def records_dir() -> str:
    import platformdirs
    return os.path.join(platformdirs.user_cache_dir(paths.APP), "mounts")


def record_path(mount_dir: str, suffix: str) -> str:
    key = hashlib.sha256(os.path.realpath(mount_dir).encode()).hexdigest()[:16]
    return os.path.join(records_dir(), key + suffix)


def log_path(mount_dir: str) -> str:
    return record_path(mount_dir, ".log")


def load(path: str) -> MountRecord | None:
    """The record in file ``path`` if it can be believed; None if there is none (or it is
    unreadable JSON: a torn write); PermissionDenied if it is not the caller's own, private
    record of the folder it is filed under."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise errors.PermissionDenied(f"mount record {path}: {exc.strerror}") from None
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
                or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            raise errors.PermissionDenied(
                f"mount record {path} is not your own private file: refusing to act on it")
        try:
            record = json.loads(f.read())
        except ValueError:
            return None
    if (not isinstance(record, dict) or type(record.get("pid")) is not int
            or not isinstance(record.get("dir"), str) or not isinstance(record.get("auth"), str)
            or record_path(record["dir"], ".json") != path):
        raise errors.PermissionDenied(f"mount record {path} is malformed or names another "
                                      "folder: refusing to act on it")
    found: MountRecord = record  # type: ignore[assignment]  # its fields checked above
    return found


def read_record(mount_dir: str) -> MountRecord | None:
    """The record of the mount process serving ``mount_dir``, or None (see ``load``)."""
    return load(record_path(mount_dir, ".json"))


def all_records() -> list[str]:
    """The paths of every record file (each to be read with ``load``)."""
    try:
        names = os.listdir(records_dir())
    except FileNotFoundError:
        return []
    return [os.path.join(records_dir(), name) for name in sorted(names)
            if name.endswith(".json")]


def check_pid(record: MountRecord, mount_dir: str) -> int | None:
    """The record's pid if that process runs and is the caller's DFS mount of
    ``mount_dir`` (its command line is ``... dfs.cli ... mount DIR``); None if it has
    exited; PermissionDenied if it is another process, which must not be signalled."""
    pid = record["pid"]
    proc = f"/proc/{pid}"
    if pid <= 1:
        raise errors.PermissionDenied(f"mount record of {mount_dir} names pid {pid}: refusing")
    if not os.path.isdir("/proc/self"):
        return pid  # no /proc (macOS): nothing more to check
    try:
        with open(f"{proc}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        owner = os.stat(proc).st_uid
        cwd = os.readlink(f"{proc}/cwd")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise errors.PermissionDenied(f"cannot check process {pid}: {exc.strerror}") from None
    if not argv:
        return None  # a zombie: it has exited
    target = os.path.realpath(mount_dir)
    program = any(a == "dfs.cli" or os.path.basename(a) == "dfs" for a in argv[:3])
    serves = any(os.path.normpath(os.path.join(cwd, a)) == target
                 or (not a.startswith("-") and os.path.realpath(os.path.join(cwd, a)) == target)
                 for a in argv)
    if owner != os.geteuid() or not program or "mount" not in argv or not serves:
        raise errors.PermissionDenied(
            f"the mount record of {mount_dir} names process {pid}, which is not your DFS "
            f"mount of that folder: refusing to stop it (remove {record_path(mount_dir, '.json')}"
            " if the record is stale)")
    return pid


def write_record(mount_dir: str, record: MountRecord) -> None:
    private_dir(records_dir())
    write_atomic(record_path(mount_dir, ".json"), json.dumps(record).encode())


def open_log(mount_dir: str) -> BinaryIO:
    """The mount's log, opened for appending (private, like the records)."""
    private_dir(records_dir())
    return open_private(log_path(mount_dir), "ab")


def remove_record(mount_dir: str, pid: int | None) -> None:
    """Remove the record of ``mount_dir`` if it is the one of process ``pid``."""
    try:
        record = read_record(mount_dir)
    except errors.PermissionDenied:
        return  # not ours to remove
    if record is not None and record.get("pid") == pid:
        try:
            os.unlink(record_path(mount_dir, ".json"))
        except FileNotFoundError:
            pass


LOG_ROTATE_BYTES = 8 * 1024 * 1024


def rotate_log(mount_dir: str) -> None:
    """Before a mount appends to its log: a log grown past LOG_ROTATE_BYTES becomes
    ``.log.1`` (replacing the older one), so logs are kept but never grow without bound."""
    path = log_path(mount_dir)
    try:
        if os.stat(path).st_size > LOG_ROTATE_BYTES:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass

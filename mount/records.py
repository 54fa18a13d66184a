"""Mount records: where `dfs umount` and `dfs down` find a mount's process and log.

One JSON file per mounted folder (named by a hash of its real path) in the user's cache
dir, written by the mount process when it starts and removed when it ends; next to it the
mount's log, kept across mounts (appended to; the previous one is kept as ``.log.1`` once
it passes LOG_ROTATE_BYTES).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TypedDict

from dfs import paths


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


def read_record(mount_dir: str) -> MountRecord | None:
    """The record of the mount process serving ``mount_dir``, or None."""
    try:
        with open(record_path(mount_dir, ".json")) as f:
            record: MountRecord = json.load(f)
            return record
    except (FileNotFoundError, ValueError):
        return None


def all_records() -> list[MountRecord]:
    try:
        names = os.listdir(records_dir())
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(records_dir(), name)) as f:
                    found.append(json.load(f))
            except (OSError, ValueError):
                pass
    return found


def write_record(mount_dir: str, record: MountRecord) -> None:
    from dfs.fsutil import write_atomic
    os.makedirs(records_dir(), exist_ok=True)
    write_atomic(record_path(mount_dir, ".json"), json.dumps(record).encode())


def remove_record(mount_dir: str, pid: int | None) -> None:
    """Remove the record of ``mount_dir`` if it is the one of process ``pid``."""
    record = read_record(mount_dir)
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

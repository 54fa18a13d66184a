"""Durable file writes: what survives a crash is the old file or the new one."""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    """Make the names in directory ``path`` (a rename, a new file) survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Write bytes to ``path`` so that a crash leaves the old or the new file, never half."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")

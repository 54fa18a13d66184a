"""Files on disk: durable writes (a crash leaves the old file or the new one) and private
files (what DFS keeps locally is its owner's alone).

Every directory DFS keeps data in is 0700 and every file it writes 0600, whatever the
process umask (the mount runs with umask 0): files are created with an explicit mode and
``fchmod``-ed, directories ``chmod``-ed after ``mkdir`` (its mode is masked by the umask
and ignored for a directory that exists).
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, cast

from dfs import errors

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_FLAGS = {"wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
          "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
          "xb": os.O_WRONLY | os.O_CREAT | os.O_EXCL}


def create_dirs(path: str) -> str:
    """The missing directories of ``path`` are made 0700; existing ones are left as they
    are (the folder of a file the user named, such as ``--out FILE``). -> ``path``."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        create_dirs(os.path.dirname(path))
        try:
            os.mkdir(path, PRIVATE_DIR)
            os.chmod(path, PRIVATE_DIR)
        except FileExistsError:
            pass  # made meanwhile by another process
    return path


def private_dir(path: str) -> str:
    """Make ``path`` a directory of DFS data: created (with missing parents) if needed, mode
    0700 even if it existed. One that belongs to another user is refused: its owner could
    read or plant what we keep there. -> ``path``."""
    create_dirs(path)
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise errors.PermissionDenied(f"{path} belongs to another user (uid {st.st_uid}): "
                                      "refusing to keep DFS data there")
    if stat.S_IMODE(st.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def open_private(path: str, mode: str = "wb") -> BinaryIO:
    """Open ``path`` for writing (``mode``: "wb", "ab" or "xb") as a file only its owner
    can read: mode 0600 if created, and set to 0600 if it existed. Never follows a symlink."""
    fd = os.open(path, _FLAGS[mode] | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        return cast(BinaryIO, os.fdopen(fd, mode))
    except BaseException:
        os.close(fd)
        raise


def is_private(st: os.stat_result) -> bool:
    """True if a file with this ``stat`` is ours and no one else may read or write it."""
    return (st.st_uid == os.geteuid() and stat.S_ISREG(st.st_mode)
            and not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def fsync_dir(path: str) -> None:
    """Make the names in directory ``path`` (a rename, a new file) survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Write bytes to ``path`` (a private file, 0600) so that a crash leaves the old or the
    new file, never half."""
    tmp = f"{path}.tmp"
    with open_private(tmp) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")

"""What `dfs backup` has put in the cluster, remembered across restarts.

One JSON file per (local folder, remote folder, masters, user), in the user's state dir
(``~/.local/state/dfs/backup/`` on Linux) unless ``--state FILE`` names another. It maps
each relative path (``/``-separated) to the local size and mtime of the bytes uploaded,
their SHA-256, and the inode the cluster gave the file::

    {"version": 1, "local_dir": "/home/ann/Photos", "remote_dir": "/photos",
     "masters": "10.0.0.1:18861", "user": "ann",
     "files": {"2024/cat.jpg": {"size": 81234, "mtime_ns": 1717..., "sha256": "9f..",
                                "ino": 42}}}

Invariant: an entry is written only after the cluster acknowledged the upload (or a
checksum comparison showed the cluster already holds those bytes), so an entry never
claims more than the cluster has. Saving is batched (at most every ``flush_interval``
seconds, when the watcher goes idle, and at stop): a crash may forget the last second of
entries, never invent one; a forgotten entry costs a checksum comparison against the
cluster's chunk CRCs at the next start, not a re-upload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import platformdirs

from dfs.backup.changes import Signature
from dfs.fsutil import create_dirs, write_atomic
from dfs.paths import APP

log = logging.getLogger(__name__)

VERSION = 1


class FileRecord(NamedTuple):
    """One uploaded file: the local (size, mtime_ns) seen when its bytes were read."""

    size: int
    mtime_ns: int
    sha256: str
    ino: int

    @property
    def signature(self) -> Signature:
        return (self.size, self.mtime_ns)


def default_state_path(local_dir: str, remote_dir: str, masters: str, user: str) -> str:
    """A file name unique to this (local dir, remote dir, masters, user)."""
    identity = json.dumps([os.path.abspath(local_dir), remote_dir, masters, user])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    name = os.path.basename(os.path.abspath(local_dir).rstrip(os.sep)) or "root"
    return os.path.join(platformdirs.user_state_dir(APP), "backup", f"{name}-{digest}.json")


class StateStore:
    """The JSON state file and its in-memory copy.

    Thread-safe: one lock guards the dict; the uploader thread records and forgets, the main
    thread reads during scans. ``flush`` serialises under the lock and writes outside it.
    """

    def __init__(self, path: str, local_dir: str, remote_dir: str, masters: str, user: str,
                 flush_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.identity = {"local_dir": os.path.abspath(local_dir), "remote_dir": remote_dir,
                         "masters": masters, "user": user}
        self.flush_interval = flush_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._files: dict[str, FileRecord] = {}
        self._dirty = False
        self._last_flush = clock()

    # --- load and save ------------------------------------------------------------------

    def load(self) -> bool:
        """Read the file if there is one. -> True if it was there and readable."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            log.info("no state file yet (%s): files already in the cluster are recognised "
                     "by their checksums", self.path)
            return False
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state file %s (%s): files already in the cluster "
                        "are recognised by their checksums", self.path, exc)
            return False
        if data.get("version") != VERSION or any(data.get(k) != v
                                                 for k, v in self.identity.items()):
            log.warning("state file %s is for another folder or cluster; ignoring it", self.path)
            return False
        files: dict[str, FileRecord] = {}
        for rel, entry in data.get("files", {}).items():
            try:
                files[rel] = FileRecord(int(entry["size"]), int(entry["mtime_ns"]),
                                        str(entry["sha256"]), int(entry["ino"]))
            except (KeyError, TypeError, ValueError):
                log.debug("state: dropping malformed entry %r", rel)
        with self._lock:
            self._files = files
        log.debug("state: %d files from %s", len(files), self.path)
        return True

    def flush(self) -> None:
        """Write the state now if anything changed (atomically: old or new file, never half)."""
        with self._write_lock:
            with self._lock:
                if not self._dirty:
                    return
                files = {rel: r._asdict() for rel, r in sorted(self._files.items())}
                self._dirty = False
                self._last_flush = self._clock()
            data = dict(version=VERSION, **self.identity, files=files)
            try:
                create_dirs(os.path.dirname(self.path) or ".")
                write_atomic(self.path, json.dumps(data, indent=1).encode())
            except OSError as exc:
                with self._lock:
                    self._dirty = True
                log.warning("could not save the backup state to %s: %s", self.path, exc)

    def flush_if_due(self) -> None:
        with self._lock:
            due = self._dirty and self._clock() - self._last_flush >= self.flush_interval
        if due:
            self.flush()

    # --- entries ------------------------------------------------------------------------

    def get(self, rel: str) -> FileRecord | None:
        with self._lock:
            return self._files.get(rel)

    def record(self, rel: str, record: FileRecord) -> None:
        with self._lock:
            self._files[rel] = record
            self._dirty = True

    def forget(self, rel: str) -> None:
        with self._lock:
            if self._files.pop(rel, None) is not None:
                self._dirty = True

    def rename(self, src: str, dst: str, is_dir: bool = False) -> None:
        """Move one entry, or (is_dir) every entry under ``src/``, to the new name."""
        with self._lock:
            if not is_dir:
                if src in self._files:
                    self._files[dst] = self._files.pop(src)
                    self._dirty = True
                return
            prefix = src + "/"
            for rel in [r for r in self._files if r.startswith(prefix)]:
                self._files[dst + "/" + rel[len(prefix):]] = self._files.pop(rel)
                self._dirty = True

    def under(self, rel: str) -> dict[str, FileRecord]:
        """{path: record} of the entries inside directory ``rel`` ('' is the root)."""
        prefix = rel + "/" if rel else ""
        with self._lock:
            return {r: v for r, v in self._files.items() if r.startswith(prefix)}

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

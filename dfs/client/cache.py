"""The client's bounded on-disk chunk cache.

Keyed by ``chunk_id-version``: chunk ids are never reused, so a cached chunk can never be
stale; nothing needs invalidating. Entries are written to a unique temp name and renamed
into place. When the cache grows past ``max_bytes`` the least recently used entries go.

The cache is its user's alone: the directory 0700 and every entry 0600 (dfs.fsutil),
whatever the umask (the mount runs with 0), so another local user can neither read a
private file from it nor plant bytes in it. What it serves is checked each time against
the length and CRC32C of the ChunkRef the master handed out for this read (nothing stored
beside the data is trusted), and only from a regular file that is ours and private: any
other entry is dropped, not served.

Thread-safe: many threads read and fill it at once (parallel downloads, the mount).
``lock`` guards the size count; one thread evicts at a time (``evicting``); every file
operation tolerates another thread having removed the file first.
"""

from __future__ import annotations

import logging
import os
import threading

from dfs import chunks
from dfs.fsutil import is_private, open_private, private_dir
from dfs.wire import ChunkRef

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp"


class ChunkCache:
    def __init__(self, directory: str, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.evicting = threading.Lock()
        private_dir(directory)
        self.size = 0
        for entry in os.scandir(directory):
            if TEMP_MARK in entry.name:
                self._unlink(entry.path)  # left by a crash
            elif not is_private(entry.stat(follow_symlinks=False)):
                self._unlink(entry.path)  # not ours, or others could write it: untrusted
            else:
                self.size += self._size(entry.path)

    def _path(self, chunk_id: int, version: int) -> str:
        return os.path.join(self.directory, f"{chunk_id}-{version}")

    @staticmethod
    def _size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def _unlink(path: str) -> int:
        """Remove ``path``; -> its size, or 0 if another thread removed it first."""
        try:
            size = os.stat(path).st_size
            os.unlink(path)
            return size
        except FileNotFoundError:
            return 0
        except OSError as exc:  # a directory where an entry should be: never served anyway
            log.warning("cannot remove cache entry %s: %s", path, exc)
            return 0

    def get(self, ref: ChunkRef) -> bytes | None:
        """The cached bytes of ``ref`` if they match its length and CRC, else None."""
        path = self._path(ref.chunk_id, ref.version)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError:  # a symlink (ELOOP) or worse: never ours
            log.warning("cache entry %s is not a plain file: dropping it", path)
            self._forget(path)
            return None
        with open(fd, "rb") as f:
            private = is_private(os.fstat(f.fileno()))
            data = f.read(ref.length + 1) if private else b""
        if not private or len(data) != ref.length or chunks.crc(data) != ref.crc:
            log.warning("cache entry %s is damaged or not private: dropping it", path)
            self._forget(path)
            return None
        try:
            os.utime(path)  # mark as recently used
        except FileNotFoundError:
            pass
        return data

    def put(self, ref: ChunkRef, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        path = self._path(ref.chunk_id, ref.version)
        if os.path.exists(path):
            return  # another thread cached it already: do not count it twice
        tmp = f"{path}{TEMP_MARK}{threading.get_ident()}"
        try:
            with open_private(tmp) as f:
                f.write(data)
            with self.lock:  # rename and count together, or two threads count it twice
                replaced = self._size(path)
                os.replace(tmp, path)
                self.size += len(data) - replaced
                over = self.size > self.max_bytes
        except OSError as exc:  # a full cache disk must not fail the read
            log.warning("cannot cache chunk %d: %s", ref.chunk_id, exc)
            self._unlink(tmp)
            return
        if over:
            self._evict()

    def _forget(self, path: str) -> None:
        with self.lock:
            self.size -= self._unlink(path)

    def _evict(self) -> None:
        """Make room. A put that finds another thread evicting leaves the work to it, so the
        evicting thread checks again after each pass: nothing added meanwhile stays over."""
        while True:
            if not self.evicting.acquire(blocking=False):
                return  # another thread is already making room (and will check again)
            try:
                removed = self._evict_pass()
            finally:
                self.evicting.release()
            with self.lock:
                if self.size <= self.max_bytes or not removed:
                    return

    def _evict_pass(self) -> int:
        """Remove the least recently used entries down to 90% of the budget. -> how many."""
        entries: list[tuple[float, str]] = []
        for entry in os.scandir(self.directory):
            if TEMP_MARK in entry.name:
                continue  # being written by another thread
            try:
                entries.append((entry.stat().st_mtime, entry.path))
            except FileNotFoundError:
                continue
        removed = 0
        for _mtime, path in sorted(entries):
            with self.lock:
                if self.size <= self.max_bytes * 0.9:
                    break
            self._forget(path)
            removed += 1
        return removed

"""The client's bounded on-disk chunk cache.

Keyed by ``chunk_id-version``: chunk ids are never reused, so a cached chunk can never be
stale; nothing needs invalidating. Entries are written atomically and re-checked against
the chunk's CRC32C when read (a damaged cache file is dropped, not served). When the
cache grows past ``max_bytes`` the least recently used entries go.

Thread-safe: one lock around the size accounting; file writes use unique temp names.
"""

import logging
import os
import threading

from dfs import chunks

log = logging.getLogger(__name__)


class ChunkCache:
    def __init__(self, directory, max_bytes):
        self.directory = directory
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)
        self.size = sum(e.stat().st_size for e in os.scandir(directory) if e.is_file())

    def _path(self, chunk_id, version):
        return os.path.join(self.directory, f"{chunk_id}-{version}")

    def get(self, ref):
        path = self._path(ref.chunk_id, ref.version)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if len(data) != ref.length or chunks.crc(data) != ref.crc:
            log.warning("cache entry %s is damaged: dropping it", path)
            self._remove(path)
            return None
        os.utime(path)  # mark as recently used
        return data

    def put(self, ref, data):
        if len(data) > self.max_bytes:
            return
        path = self._path(ref.chunk_id, ref.version)
        tmp = f"{path}.tmp{threading.get_ident()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:  # a full cache disk must not fail the read
            log.warning("cannot cache chunk %d: %s", ref.chunk_id, exc)
            self._remove(tmp)
            return
        with self.lock:
            self.size += len(data)
            over = self.size > self.max_bytes
        if over:
            self._evict()

    def _remove(self, path):
        try:
            size = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            return
        with self.lock:
            self.size -= size

    def _evict(self):
        entries = sorted((e for e in os.scandir(self.directory) if e.is_file()),
                         key=lambda e: e.stat().st_mtime)
        for entry in entries:
            with self.lock:
                if self.size <= self.max_bytes * 0.9:
                    return
            self._remove(entry.path)

"""Is a local file already in the cluster? Checksums of what is read and what is there.

Used when the state does not know a file (first run, lost state file): the remote file's
size and chunk CRC32Cs are compared with the local bytes, so nothing is uploaded twice.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, BinaryIO

from dfs import chunks, errors
from dfs.backup.state import FileRecord
from dfs.backup.tree import Tree, signature
from dfs.config import MIB

if TYPE_CHECKING:
    from dfs.client import DfsClient

READ_SIZE = MIB


class HashingReader:
    """A file wrapper for DfsClient.put_stream: hashes what is read, notes a short read."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.rewind()

    def rewind(self) -> None:
        self.f.seek(0)
        self.sha = hashlib.sha256()
        self.short = False

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) < n:
            self.short = True
        self.sha.update(data)
        return data


def file_sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(READ_SIZE):
            sha.update(data)
    return sha.hexdigest()


def same_as_remote(client: DfsClient, tree: Tree, rel: str,
                   st: os.stat_result) -> FileRecord | None:
    """Without a state entry: compare with the remote file's size and chunk CRC32Cs.

    -> a FileRecord if the cluster holds exactly these bytes, else None."""
    remote = tree.remote(rel)
    try:
        remote_stat = client.stat(remote)
        if remote_stat.kind != "f" or remote_stat.size != st.st_size:
            return None
        layout = client.layout(remote)
    except (errors.FileNotFound, errors.NotADirectory, errors.PermissionDenied):
        return None
    sha = hashlib.sha256()
    pos = 0  # the remote file is sparse: between its chunks the local bytes must be zeros
    with open(tree.local(rel), "rb") as f:
        if signature(os.fstat(f.fileno())) != signature(st):
            return None
        for chunk in layout.chunks:
            start = chunk.ref.chunk_index * layout.chunk_size
            if not _zeros_next(f, start - pos, sha):
                return None
            data = f.read(chunk.ref.length)
            if len(data) != chunk.ref.length or chunks.crc(data) != chunk.ref.crc:
                return None
            sha.update(data)
            pos = start + len(data)
        if not _zeros_next(f, remote_stat.size - pos, sha) or f.read(1):
            return None
    return FileRecord(st.st_size, st.st_mtime_ns, sha.hexdigest(), remote_stat.ino)


def _zeros_next(f: BinaryIO, count: int, sha: hashlib._Hash) -> bool:
    """Are the next ``count`` bytes of ``f`` all zeros (a hole of the remote file)?"""
    while count > 0:
        data = f.read(min(count, READ_SIZE))
        if not data or not chunks.is_zero(data):
            return False
        sha.update(data)
        count -= len(data)
    return True

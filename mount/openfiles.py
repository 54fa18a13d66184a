"""The mount's table of open files: one DfsFile per inode, shared by all its handles.

Every open handle of one inode shares one DfsFile (writes buffered per chunk, full chunks
uploaded in the background, next chunk prefetched on sequential reads), so every handle
and a getattr of the open file see its current content and size.

Thread-safe: ``guard`` protects the tables and is never held during an RPC; each DfsFile
has its own lock.
"""

from __future__ import annotations

import threading

from dfs.client.client import DfsClient, PutResult
from dfs.client.files import DfsFile
from dfs.wire import FileLayout, Stat, WrittenChunk

Version = tuple[int, int]  # (mtime_ns, size)


def version_of(stat: Stat) -> Version:
    return stat.mtime_ns, stat.size


class Committer:
    """What a DfsFile sees as its client (dfs.client.files.FileClient): the real one,
    but commit() keeps the new Stat."""

    def __init__(self, client: DfsClient) -> None:
        self._client = client
        self.config = client.config
        self.transfer = client.transfer
        self.chunk_pool = client.chunk_pool
        self.write_budget = client.write_budget
        self.read_buffers = client.read_buffers
        self.renewer = client.renewer
        self.stat: Stat | None = None

    def use(self, client: DfsClient) -> None:
        """Commit as ``client`` from now on: on an admin's mount, the caller who writes now
        (one DfsFile serves every handle of an inode, whoever opened it first)."""
        self._client = client

    def commit(self, ino: int, written: list[WrittenChunk], size: int) -> PutResult:
        result = self._client.commit(ino, written, size)
        self.stat = result.stat
        return result

    def layout(self, path: str) -> FileLayout:
        return self._client.layout(path)


class OpenFile:
    """One DfsFile shared by every open handle of an inode in this mount.

    ``version`` is the (mtime, size) its content was read or committed at: an open that
    finds the file changed by another client meanwhile, and this one clean, swaps in a
    fresh DfsFile (close-to-open holds across mounts even while the file stays open)."""

    __slots__ = ("file", "ino", "path", "refs", "client", "version")

    def __init__(self, dfs_file: DfsFile, client: Committer, version: Version) -> None:
        self.file = dfs_file
        self.client = client
        self.ino: int = dfs_file.ino
        self.path: str = dfs_file.path
        self.refs = 0
        self.version = version


class OpenFiles:
    """Handle numbers -> OpenFile, and inode -> OpenFile; also hands out directory handles."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.handles: dict[int, OpenFile] = {}
        self.by_ino: dict[int, OpenFile] = {}
        self.next_fh = 1

    def new_fh(self) -> int:
        with self.guard:
            return self._new_fh()

    def _new_fh(self) -> int:
        fh = self.next_fh
        self.next_fh += 1
        return fh

    def get(self, fh: int) -> OpenFile | None:
        return self.handles.get(fh)

    def of_inode(self, ino: int) -> OpenFile | None:
        return self.by_ino.get(ino)

    def register(self, dfs_file: DfsFile, committer: Committer,
                 stat: Stat) -> tuple[int, str | None]:
        """Share ``dfs_file`` as the open file of its inode: the one already open if it is
        current or busy, else this one. -> (a new handle number, the path of a stale clean
        file that was replaced, or None: the kernel may still hold its pages)."""
        old = None
        with self.guard:
            of = self.by_ino.get(dfs_file.ino)
            if of is None:
                of = self.by_ino[dfs_file.ino] = OpenFile(dfs_file, committer, version_of(stat))
            elif of.version != version_of(stat):  # changed elsewhere since it was opened
                current = of.file
                if current.lock.acquire(blocking=False):  # busy: a write may be under way
                    try:
                        if not current.dirty and not current.uploads:  # nothing unsaved
                            old = current
                            of.file, of.client, of.version = (dfs_file, committer,
                                                              version_of(stat))
                    finally:
                        current.lock.release()
            of.refs += 1
            fh = self._new_fh()
            self.handles[fh] = of
        if old is None:
            return fh, None
        old.close()  # clean: closing it sends nothing
        return fh, of.path

    def drop(self, fh: int) -> OpenFile | None:
        """Forget handle ``fh``. -> its OpenFile if that was the inode's last handle."""
        with self.guard:
            of = self.handles.pop(fh, None)
            if of is None:
                return None
            of.refs -= 1
            if of.refs > 0:
                return None
            del self.by_ino[of.ino]
        return of

    def renamed(self, old: str, new: str) -> None:
        """``old`` (a file or a folder) is now called ``new``."""
        prefix = old.rstrip("/") + "/"
        with self.guard:
            for of in self.by_ino.values():
                if of.path == old or of.path.startswith(prefix):
                    of.path = new + of.path[len(old):]
                    of.file.path = of.path  # later chunk allocations name the new path

    def exchanged(self, a: str, b: str) -> None:
        """``a`` and ``b`` swapped places (RENAME_EXCHANGE): what was below one is below
        the other."""
        with self.guard:
            for of in self.by_ino.values():
                for old, new in ((a, b), (b, a)):
                    if of.path == old or of.path.startswith(old.rstrip("/") + "/"):
                        of.path = new + of.path[len(old):]
                        of.file.path = of.path
                        break

    def take_all(self) -> list[OpenFile]:
        """Empty the tables (unmount). -> every file that was open."""
        with self.guard:
            remaining = list(self.by_ino.values())
            self.handles.clear()
            self.by_ino.clear()
        return remaining

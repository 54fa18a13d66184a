"""The FUSE operations on open files: open, create, read, write, lseek, truncate, flush,
fsync, release, and the file locks taken through a handle (lock, flock).

``FileOperations`` is a mixin of ``DfsOperations`` (mount.ops, which documents what the
mount does): mfusepy registers callbacks by method name, so these live on the one
operations object. Every open handle of an inode shares one DfsFile (mount.openfiles);
flush, fsync and release commit and wait, and a failure is returned as its errno (the
policy: mount.errnos).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any

from dfs import errors, wire
from dfs.client.client import READ, WRITE, DfsClient
from dfs.client.files import DfsFile
from mount import binding
from mount.attrcache import AttrCache
from mount.errnos import TOLD_AT_FLUSH, FuseError, operation
from mount.locks import MountLocks
from mount.memory import HEAP
from mount.openfiles import Committer, OpenFile, OpenFiles, version_of

log = logging.getLogger("mount.ops")  # the operations' log, wherever they are defined

OPEN_ACCESS = {os.O_RDONLY: READ, os.O_WRONLY: WRITE, os.O_RDWR: READ | WRITE}
MODE_BITS = 0o7777  # what a mode may ask for (the kernel applied the umask already)


class FileOperations:
    """The open-file operations; the state they use is DfsOperations' (set in its
    ``__init__``), declared here for the type checker."""

    files: OpenFiles
    attrs: AttrCache
    chunk_size: int
    file_locks: MountLocks
    kernel_forget: binding.KernelForget
    trace: bool

    if TYPE_CHECKING:  # DfsOperations': the caller's client, and a Stat through the cache
        @property
        def client(self) -> DfsClient: ...

        def _stat(self, path: str) -> wire.Stat: ...

    def _register(self, dfs_file: DfsFile, committer: Committer, stat: wire.Stat) -> int:
        """Share ``dfs_file`` as its inode's open file. -> a new handle number."""
        fh, stale = self.files.register(dfs_file, committer, stat)
        if stale is not None:
            self.kernel_forget(stale)  # the kernel may hold the replaced file's pages
        return fh

    def _open_existing(self, path: str, want: int) -> int:
        """Open ``path`` for ``want`` (READ and/or WRITE: the master checks it, as open(2))."""
        if self._stat(path).kind == "d":
            raise FuseError(errno.EISDIR)
        known = self.attrs.last_known(path)
        committer = Committer(self.client)
        layout = self.client.layout(path, want)
        self.attrs.put(path, layout.stat)
        if known is not None and version_of(known) != version_of(layout.stat):
            self.kernel_forget(path)  # changed elsewhere within the last second
        return self._register(DfsFile(committer, path, layout, writable=True), committer,
                              layout.stat)

    def _handle(self, fh: int) -> OpenFile:
        of = self.files.get(fh)
        if of is None:
            raise FuseError(errno.EBADF)
        return of

    def _commit(self, of: OpenFile) -> None:
        dirty = of.file.dirty
        of.file.flush()
        if dirty and of.client.stat is not None:
            of.version = version_of(of.client.stat)
            self.attrs.put(of.path, of.client.stat)

    @operation
    def open(self, path: str, flags: int) -> int:
        want = OPEN_ACCESS.get(flags & os.O_ACCMODE, READ | WRITE)
        fh = self._open_existing(path, want | (WRITE if flags & os.O_TRUNC else 0))
        if flags & os.O_TRUNC:  # libfuse3 asks for atomic O_TRUNC: no setattr comes first
            of = self._handle(fh)
            of.client.use(self.client)
            # committed by the flush at close, with what is written; an empty file too (its
            # mtime and ctime change, as POSIX says of O_TRUNC)
            of.file.truncate(0)
        return fh

    @operation
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        try:
            st = self.client.create(path, mode & MODE_BITS)
        except errors.FileExists:
            if flags & os.O_EXCL:
                raise
            return self.open(path, flags)
        self.attrs.added(path, st)
        committer = Committer(self.client)
        layout = wire.FileLayout(st, self.chunk_size, ())
        return self._register(DfsFile(committer, path, layout, writable=True), committer, st)

    @operation
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        data: bytes = self._handle(fh).file.pread(offset, size)
        return data

    @operation
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        of = self._handle(fh)
        of.client.use(self.client)  # the commit acts as who wrote last (admin mount)
        written: int = of.file.pwrite(offset, data)
        return written

    @operation
    def lseek(self, path: str, offset: int, whence: int, fh: int) -> int:
        """SEEK_DATA, SEEK_HOLE (the kernel answers the other whences itself)."""
        of = self._handle(fh)
        if whence == os.SEEK_DATA:
            return of.file.seek_data(offset)
        if whence == os.SEEK_HOLE:
            return of.file.seek_hole(offset)
        raise FuseError(errno.EINVAL)

    @operation
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        # mfusepy passes no handle on libfuse3, so ftruncate arrives here by path too.
        of = self._handle(fh) if fh is not None else None
        if of is None:
            st = self._stat(path)
            of = self.files.of_inode(st.ino)
        if of is not None:
            of.client.use(self.client)
            of.file.truncate(length)
            self._commit(of)
            return 0
        temp = self._open_existing(path, WRITE)
        try:
            of = self._handle(temp)
            of.file.truncate(length)
            self._commit(of)
        finally:
            done = self.files.drop(temp)
            if done is not None:
                done.file.close()
        return 0

    @operation
    def flush(self, path: str, fh: int) -> None:
        self._commit(self._handle(fh))

    @operation
    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self._commit(self._handle(fh))

    @operation
    def release(self, path: str, fh: int) -> int:
        closing = self.files.get(fh)  # its flock goes even if other handles share the file
        if closing is not None:
            self._unlock_at_release(closing.ino, fh)
        of = self.files.drop(fh)
        if of is not None:
            try:
                of.file.close()
            except errors.DfsError as exc:  # flush already reported it to the closer
                told = exc.errno in TOLD_AT_FLUSH  # full, over quota, not allowed: expected
                log.log(logging.INFO if told else logging.ERROR,
                        "%s: changes lost at release: %s", of.path, exc.message)
            if not self.files.by_ino:  # nothing open: freed buffers go back to the system
                HEAP.freed(self.client.write_budget.released + self.client.read_buffers.released)
        return 0

    # --- file locks (mount.locks) ---------------------------------------------------------------

    @operation
    def lock(self, path: str, fh: int, cmd: int, lock: Any, lock_owner: int | None = None
             ) -> int:
        """fcntl/lockf: F_GETLK, F_SETLK, F_SETLKW; ``lock_owner``: the process's (libfuse3,
        through mount.binding; without it, the handle: a per-open-file owner)."""
        owner = fh if lock_owner is None else lock_owner
        self.file_locks.fcntl(self.client, self._handle(fh).ino, cmd,
                              getattr(lock, "contents", lock), owner)
        return 0

    @operation
    def flock(self, path: str, fh: int, op: int) -> int:
        self.file_locks.flock(self.client, self._handle(fh).ino, fh, op)
        return 0

    def _unlock_at_release(self, ino: int, fh: int) -> None:
        try:
            self.file_locks.released(self.client, ino, fh)
        except errors.DfsError as exc:  # its lease ends it if the leader cannot be told
            log.warning("flock of inode %d not released at close: %s", ino, exc.message)

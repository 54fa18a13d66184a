"""The FUSE operations: a thin adapter of DfsClient, one client call per operation.

Layers: the kernel -> libfuse's multithreaded loop (mount.binding) -> ``DfsOperations``
(this module; errno chosen in ``operation``) -> ``dfs.client.DfsClient``. Nothing in
``dfs/`` imports this module.

What the mount adds to the client, and nothing more:

- **Errors**: every operation goes through the ``operation`` decorator. A DfsError becomes
  its ``errno`` (ENOENT, EACCES, ... ; an unreachable master is ETIMEDOUT, a lost or
  unreadable chunk EIO); anything else is a bug: logged once with its traceback, EIO.
  Waiting out a failover or "no active workers" (a master that has just restarted,
  before the workers report again) is the client's retry policy, up to the timeout.
- **Attributes**: readdir is one ``listdir`` RPC. On libfuse3 it answers the kernel's
  READDIRPLUS with every entry's attributes (mount.binding), so ``ls -l`` sends no lookups
  at all; the entries also fill a 1 s cache (mount.attrcache) for the getattrs that follow.
  The kernel is told the same 1 s for attributes and entries. The mount's own changes
  update the cache at once; other clients' changes show within about a second; names are
  never cached as missing, so a file another client has just closed can always be opened.
- **Close-to-open across mounts**: every open asks the master for the file's layout. If
  its mtime or size differ from what this mount last told the kernel, the kernel's
  cached attributes and pages of that file are dropped (``kernel_forget``), and an
  open file that is clean here takes the new content; so a reader always sees what a
  writer elsewhere closed before the open, not just a second later.
- **Open files** (mount.openfiles): every open handle of one inode shares one DfsFile.
  flush (every close), fsync and release commit and wait: a failed upload or commit is
  returned as an error (EIO), never dropped. getattr of an open file shows its current
  size. The page cache is kept across opens only while the file's mtime and size are
  unchanged (``auto_cache``).
- **Owners and modes** are POSIX: attributes show the cluster's uid and gid numbers (as
  NFS); new entries get the requested mode (the kernel applied the umask); chown and
  chmod pass numbers to the master, which decides with dfs/namespace/access.py. A normal
  key acts as its DFS user for every caller (no allow_other: only the local user who
  mounted reaches it); an admin key's mount is allow_other + default_permissions and acts
  as each calling process (``callers``: mount.callers, one client view per uid/groups).
  Open rights are checked at open for what the open asks (a file created 0444 is
  written through its descriptor); a shared open file commits as whoever wrote last;
  on a user's mount access(2) is answered for the key's user (``access``).
- **Trash**: the mount serves ``TrashOperations`` (mount.trashops), this class plus a
  virtual ``/.Trash-UID``: the user's DFS trash as the freedesktop trash, so a desktop's
  Delete, Restore and Empty Trash are ``dfs trash`` calls.
- **Sparse files, memory**: st_blocks counts the bytes stored (holes cost nothing); lseek
  answers SEEK_DATA/SEEK_HOLE. Open files share one write-back budget and read buffers
  (dfs.client.memory, ``--write-back``); freed memory goes back once none is open.
- **Timeouts**: the client is made with ``--timeout`` as both its per-call timeout and its
  failover deadline, so with a node unreachable an operation fails after about that long
  (ETIMEDOUT/EIO) instead of hanging, and works again as soon as the node is back.
- **Special files, rename flags** (mount.special): mknod makes fifos, sockets and device
  nodes (metadata at the master; the pipe or socket is the local kernel's); renameat2's
  RENAME_NOREPLACE and RENAME_EXCHANGE are decided atomically by the master.
- **File locks** (mount.locks): flock and fcntl/lockf byte-range locks are held at the
  leader, so mounts on two machines exclude each other; a dead mount's go after its lease.
- **Extended attributes** (mount.xattrs): user.*, trusted.* (the superuser's) and
  security.*, kept by the master with ext4's rules and limits; a get in a namespace the
  inode's (cached) Stat says is empty answers ENODATA without a round trip.

Threads: libfuse's loop threads call ``DfsOperations``; the client's pools upload and
prefetch. The open-file table has its own lock (never held during an RPC), each DfsFile
its own, the AttrCache its own.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import posixpath
import stat as stat_mod
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from dfs import errors, wire
from dfs.client.client import READ, WRITE, DfsClient
from dfs.client.files import DfsFile
from dfs.client.locks import LockSession
from dfs.namespace.access import Owned, permitted
from mount import binding, special
from mount.attrcache import AttrCache
from mount.callers import Callers, OwnUser
from mount.locks import MountLocks
from mount.memory import HEAP
from mount.openfiles import Committer, OpenFile, OpenFiles, version_of
from mount.xattrs import Xattrs

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0  # attribute/entry cache, ours and the kernel's
STATFS_BLOCK = 4096
NAME_MAX = 255
OPEN_ACCESS = {os.O_RDONLY: READ, os.O_WRONLY: WRITE, os.O_RDWR: READ | WRITE}
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
TOLD_AT_FLUSH = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                           errno.EFBIG})  # a close's failures the application saw
MODE_BITS = 0o7777  # what a mode may ask for (the kernel applied the umask already)
NO_ID = (1 << 32) - 1  # (uid_t) -1: "unchanged" in chown
KIND_BITS = special.KIND_BITS
QUIET_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EACCES, errno.EPERM,
                errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENAMETOOLONG, errno.ENXIO,
                errno.EFBIG, errno.ENODATA, errno.ERANGE, errno.E2BIG, errno.EOPNOTSUPP,
                errno.EAGAIN, errno.EINTR}

Attrs = dict[str, int]  # what mfusepy turns into a struct stat (st_* fields)
Listing = list[tuple[str, Attrs]]  # a directory's (name, attributes), . and .. first
P = ParamSpec("P")
R = TypeVar("R")


class FuseError(OSError):
    """Raised by an operation to return ``errno`` to the kernel."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


def operation(func: Callable[Concatenate[DfsOperations, str, P], R]
              ) -> Callable[Concatenate[DfsOperations, str, P], R]:
    """The one place errors become errnos (and, with --debug, each call is timed):
    a DfsError becomes its errno, anything else EIO."""
    name = func.__name__

    @functools.wraps(func)
    def run(self: DfsOperations, path: str, *args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter() if self.trace else 0.0
        try:
            return func(self, path, *args, **kwargs)
        except FuseError:
            raise
        except errors.DfsError as exc:
            code = exc.errno
            if code in QUIET_ERRNOS:
                log.debug("%s %s: %s", name, path, exc.message)
            else:
                log.warning("%s %s failed: %s", name, path, exc.message)
            raise FuseError(code) from None
        except Exception:
            log.exception("unexpected error in %s %s: returning EIO", name, path)
            raise FuseError(errno.EIO) from None
        finally:
            if self.trace:
                log.debug("%s %s: %.2f ms", name, path, (time.perf_counter() - started) * 1000)
    return run


class DfsOperations:
    """The FUSE operations. Names of attributes must not be FUSE operation names (mfusepy
    would register them as callbacks): hence ``files``, ``dir_lists``; ``entries`` and
    ``listing`` are helpers for mount.binding, not operations."""

    use_ns = True

    def __init__(self, client: DfsClient, cache_seconds: float = CACHE_SECONDS,
                 uid: int | None = None, gid: int | None = None) -> None:
        self.base_client = client
        self.callers: Callers | None = None  # an admin's mount: act as each caller
        self.own = OwnUser(client)  # a user's mount: the ids its key acts as (access)
        self.user: str = client.user
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.cache_seconds = cache_seconds
        # another name of a hard-linked inode changed: the kernel drops what it holds of it
        self.attrs = AttrCache(cache_seconds, on_stale=lambda path: self.kernel_forget(path))
        self.files = OpenFiles()
        self.dir_lists: dict[int, Listing | None] = {}  # fh of an open directory -> entries()
        self.chunk_size: int = client.chunk_size
        self.trace = log.isEnabledFor(logging.DEBUG)
        # drop the kernel's cached attrs and pages of a path: set by mount.lifecycle.run
        self.kernel_forget: binding.KernelForget = binding.forget_nothing
        self.xattrs = Xattrs(self)  # the extended attributes' ops (mount.xattrs)
        self.file_locks = MountLocks(LockSession(client))  # flock, fcntl (mount.locks)

    @property
    def client(self) -> DfsClient:
        """The client to ask for this request: on an admin's mount, a view acting as the
        calling process (mount.callers); else the mount's own, acting as its DFS user."""
        return self.base_client if self.callers is None else self.callers.client()

    # --- set-up and tear-down ----------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        binding.configure(conn, config, self.cache_seconds)

    def destroy(self, path: str) -> None:
        for of in self.files.take_all():
            try:
                of.file.close()
            except errors.DfsError as exc:
                log.error("%s: could not save on unmount: %s", of.path, exc.message)
        self.file_locks.close()
        if self.callers is not None:
            self.callers.close()
        self.base_client.close()

    # --- attributes ---------------------------------------------------------------------------

    def _attrs(self, st: wire.Stat) -> Attrs:
        uid, gid = st.uid, st.gid  # the cluster's numbers, as NFS shows them
        size, stored = st.size, st.stored
        of = self.files.of_inode(st.ino)
        if of is not None:
            size, stored = of.file.size, of.file.stored()
        return {"st_ino": st.ino, "st_mode": KIND_BITS[st.kind] | st.mode,
                "st_nlink": st.nlink, "st_uid": uid, "st_gid": gid, "st_size": size,
                "st_blocks": (stored + 511) // 512, "st_blksize": binding.IO_SIZE,
                "st_atime": st.atime_ns, "st_mtime": st.mtime_ns, "st_ctime": st.ctime_ns,
                "st_rdev": st.rdev}

    def _stat(self, path: str) -> wire.Stat:
        st = self.attrs.get(path)
        if st is None:
            st = self.client.stat(path)
            self.attrs.put(path, st)
        return st

    @operation
    def getattr(self, path: str, fh: int | None = None) -> Attrs:
        return self._attrs(self._stat(path))

    @operation
    def access(self, path: str, amode: int) -> int:
        """access(2), asked only on a user's mount (an admin's has default_permissions and
        the kernel answers): the POSIX rules for the user the key acts as."""
        attrs = self.getattr(path)
        want = amode & (os.R_OK | os.W_OK | os.X_OK)  # the same bits as access.R, W, X
        node = Owned(attrs["st_uid"], attrs["st_gid"], attrs["st_mode"] & 0o7777,
                     stat_mod.S_ISDIR(attrs["st_mode"]))
        if want and not permitted(self.own.cred(), node, want):
            raise FuseError(errno.EACCES)
        return 0

    @operation
    def readdir(self, path: str, fh: int) -> list[tuple[str, Attrs, int]]:
        return [(name, {"st_mode": attrs["st_mode"], "st_ino": attrs["st_ino"]}, 0)
                for name, attrs in self.entries(path)]

    @operation
    def entries(self, path: str) -> Listing:
        """[(name, attributes)] of a directory, . and .. first: one listdir RPC.

        Plain readdir passes on names, kinds and inode numbers; readdirplus
        (mount.binding) the full attributes, so ``ls -l`` needs no lookup per name."""
        listed = self.client.listdir(path)
        self.attrs.put_listing(path, listed)
        here = self.attrs.get(path)
        up = self.attrs.get(posixpath.dirname(path) or "/")
        # An entry with inode 0 is skipped by readdir(3): give . and .. real numbers.
        found: Listing = [
            (".", {"st_mode": stat_mod.S_IFDIR, "st_ino": here.ino if here else 1}),
            ("..", {"st_mode": stat_mod.S_IFDIR, "st_ino": up.ino if up else 1})]
        found.extend((e.name, self._attrs(e.stat)) for e in listed)
        return found

    @operation
    def opendir(self, path: str) -> int:
        fh = self.files.new_fh()
        self.dir_lists[fh] = None
        return fh

    @operation
    def releasedir(self, path: str, fh: int) -> int:
        self.dir_lists.pop(fh, None)
        return 0

    @operation
    def listing(self, path: str, fh: int, offset: int) -> Listing:
        """entries() of an open directory, read at offset 0 and kept for the next pages."""
        found = self.dir_lists.get(fh) if offset else None
        if found is None:
            found = self.entries(path)
            if fh in self.dir_lists:
                self.dir_lists[fh] = found
        return found

    @operation
    def statfs(self, path: str) -> dict[str, int]:
        total, free, _chunk_size, files = self.client.statfs()
        spare_inodes = 1 << 32
        return {"f_bsize": STATFS_BLOCK, "f_frsize": STATFS_BLOCK,
                "f_blocks": total // STATFS_BLOCK, "f_bfree": free // STATFS_BLOCK,
                "f_bavail": free // STATFS_BLOCK, "f_files": files + spare_inodes,
                "f_ffree": spare_inodes, "f_favail": spare_inodes, "f_namemax": NAME_MAX}

    # --- namespace -------------------------------------------------------------------------------

    @operation
    def mkdir(self, path: str, mode: int) -> None:
        self.attrs.added(path, self.client.mkdir(path, mode & MODE_BITS))

    @operation
    def rmdir(self, path: str) -> None:
        self.client.rmdir(path)
        self.attrs.removed(path)

    @operation
    def unlink(self, path: str) -> None:
        self.client.rm(path)
        self.attrs.removed(path)

    @operation
    def mknod(self, path: str, mode: int, dev: int) -> None:
        self.attrs.added(path, special.mknod(self.client, path, mode, dev))

    @operation
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        self.client.rename(old, new, flags)  # NOREPLACE, EXCHANGE: atomic at the master
        special.renamed(self.attrs, self.files, old, new, flags)
        return 0

    @operation
    def symlink(self, path: str, target: str) -> None:
        self.attrs.added(path, self.client.symlink(path, target))

    @operation
    def readlink(self, path: str) -> str:
        target: str = self.client.readlink(path)
        return target

    @operation
    def link(self, path: str, existing: str) -> None:
        st = self.client.link(existing, path)
        self.attrs.added(path, st)
        self.attrs.put(existing, st)  # its nlink went up

    @operation
    def chmod(self, path: str, mode: int) -> None:
        self.attrs.put(path, self.client.chmod(path, mode & 0o7777))

    @operation
    def chown(self, path: str, uid: int | None, gid: int | None) -> int:
        owner, group = (None if i is None or i < 0 or i == NO_ID else i for i in (uid, gid))
        if owner is None and group is None:
            return 0
        self.attrs.put(path, self.client.chown(path, owner, group))
        return 0

    @operation
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        now = time.time_ns()
        atime, mtime = times if times is not None else (UTIME_NOW, UTIME_NOW)
        to_now = atime == mtime == UTIME_NOW  # `touch`: write permission is enough
        atime_ns, mtime_ns = (None if t == UTIME_OMIT else now if t == UTIME_NOW else int(t)
                              for t in (atime, mtime))
        if atime_ns is None and mtime_ns is None:
            return 0
        st = self._stat(path)
        of = self.files.of_inode(st.ino)
        if of is not None and of.file.dirty:
            self._commit(of)  # else the commit at close would set mtime to "now" (cp -p)
        if to_now:
            self.attrs.put(path, self.client.utimens(path, to_now=True))
        else:
            self.attrs.put(path, self.client.utimens(path, atime_ns, mtime_ns))
        return 0

    # --- open files ------------------------------------------------------------------------------

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

    # --- extended attributes (mount.xattrs; mfusepy handles sizes and ERANGE) ------------------

    @operation
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return self.xattrs.get(path, name)

    @operation
    def listxattr(self, path: str) -> list[str]:
        return self.xattrs.names(path)

    @operation
    def setxattr(self, path: str, name: str, value: bytes, options: int,
                 position: int = 0) -> int:
        self.xattrs.set(path, name, value, options)
        return 0

    @operation
    def removexattr(self, path: str, name: str) -> int:
        self.xattrs.remove(path, name)
        return 0

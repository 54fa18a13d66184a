"""The FUSE operations: a thin adapter of DfsClient, one client call per operation.

Layers: the kernel -> libfuse's multithreaded loop (mount.binding) -> ``DfsOperations``
(this module, with the open-file operations of mount.fileops; errno chosen once, in
mount.errnos' ``operation``) -> ``dfs.client.DfsClient``. Nothing in ``dfs/`` imports
this module.

What the mount adds to the client, and nothing more:

- **Errors**: every operation goes through the ``operation`` decorator (mount.errnos). A
  DfsError becomes its ``errno`` (ENOENT, EACCES, ... ; an unreachable master is
  ETIMEDOUT, a lost or unreadable chunk EIO); anything else is a bug: logged once with its
  traceback, EIO. Waiting out a failover or "no active workers" (a master that has just
  restarted, before the workers report again) is the client's retry policy, up to the
  timeout.
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
- **Open files** (mount.fileops, mount.openfiles): every open handle of one inode shares
  one DfsFile. flush (every close), fsync and release commit and wait: a failed upload or
  commit is returned as an error (EIO), never dropped. getattr of an open file shows its
  current size. The page cache is kept across opens only while the file's mtime and size
  are unchanged (``auto_cache``).
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
import logging
import os
import posixpath
import stat as stat_mod
import time
from typing import Any

from dfs import errors, wire
from dfs.client.client import DfsClient
from dfs.client.locks import LockSession
from dfs.namespace.access import Owned, permitted
from dfs.namespace.rules import MAX_STAT_MANY
from mount import binding, special
from mount.attrcache import AttrCache
from mount.callers import Callers, OwnUser
from mount.errnos import FuseError, operation
from mount.fileops import MODE_BITS, FileOperations
from mount.locks import MountLocks
from mount.openfiles import OpenFiles
from mount.xattrs import Xattrs

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0  # attribute/entry cache, ours and the kernel's
STATFS_BLOCK = 4096
NAME_MAX = 255
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
NO_ID = (1 << 32) - 1  # (uid_t) -1: "unchanged" in chown
KIND_BITS = special.KIND_BITS

Attrs = dict[str, int]  # what mfusepy turns into a struct stat (st_* fields)
Listing = list[tuple[str, Attrs]]  # a directory's (name, attributes), . and .. first


class DfsOperations(FileOperations):
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
        if st is not None:
            return st
        ahead = self.attrs.ahead(path, MAX_STAT_MANY)
        if ahead is None:
            folder, _, name = path.rpartition("/")
            if not name:  # the root
                st = self.client.stat(path)
            else:
                # the kernel looks every name up before it creates one, so a stat that
                # misses is common: as a one-name stat_many it answers None instead of an
                # error packed across rpyc (measured a third cheaper; hits cost the same)
                got = self.client.stat_many(folder or "/", [name])[0]
                if got is None:
                    raise errors.FileNotFound(f"{path}: no such file or directory")
                st = got
            self.attrs.put(path, st)
            return st
        # a name of a big folder listed lately: the names after it are likely next
        folder = posixpath.dirname(path)
        found = self.client.stat_many(folder, ahead)
        self.attrs.put_many(folder, [wire.DirEntry(name, got) for name, got
                                     in zip(ahead, found, strict=True) if got is not None])
        if found[0] is None:
            raise errors.FileNotFound(f"{path}: no such file or directory")
        return found[0]

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

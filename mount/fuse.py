"""The FUSE mount: a thin adapter of DfsClient on mfusepy (libfuse3, libfuse2 fallback).

    dfs mount ~/dfs            # returns once the folder is live; the mount runs detached
    dfs umount ~/dfs           # unmounts and waits until the mount process has exited

Layers: the kernel -> libfuse's multithreaded loop -> ``DfsOperations`` (this module: one
client call per operation, errno chosen in ``operation``) -> ``dfs.client.DfsClient``.
Nothing in ``dfs/`` imports this module.

What the mount adds to the client, and nothing more:

- **Errors**: every operation goes through the ``operation`` decorator. A DfsError becomes
  its ``errno`` (ENOENT, EACCES, ... ; an unreachable master is ETIMEDOUT, a lost or
  unreadable chunk EIO); anything else is a bug: logged once with its traceback, EIO.
  "No active workers" (a master that has just restarted, before the workers report
  again) is retried up to the timeout.
- **Attributes**: readdir is one ``listdir`` RPC. On libfuse3 it answers the kernel's
  READDIRPLUS with every entry's attributes (``_Fuse``), so ``ls -l`` sends no lookups at
  all; the entries also fill a 1 s cache (mount.attrcache) for the getattrs that follow.
  The kernel is told the same 1 s for attributes and entries. The mount's own changes
  update the cache at once; other clients' changes show within about a second; names are
  never cached as missing, so a file another client has just closed can always be opened.
- **Close-to-open across mounts**: every open asks the master for the file's layout. If
  its mtime or size differ from what this mount last told the kernel, the kernel's
  cached attributes and pages of that file are dropped (fuse_invalidate_path), and an
  open file that is clean here takes the new content; so a reader always sees what a
  writer elsewhere closed before the open, not just a second later.
- **Open files**: every open handle of one inode shares one DfsFile (writes buffered per
  chunk, full chunks uploaded in the background, next chunk prefetched on sequential
  reads). flush (every close), fsync and release commit and wait: a failed upload or
  commit is returned as an error (EIO), never dropped. getattr of an open file shows its
  current size. The page cache is kept across opens only while the file's mtime and size
  are unchanged (``auto_cache``).
- **Owners**: DFS users are names. Entries owned by the mounting DFS user show with the
  uid/gid of the process that mounted; entries owned by another DFS user show as the
  local account of the same name if there is one, else as nobody/nogroup. ``chown`` maps
  back the same way (the mounting uid -> the mounting DFS user, another uid -> the DFS
  user named like that local account; only DFS admins may give files away). DFS has no
  groups: a group change is accepted and ignored, so ``cp -a`` and ``rsync -a`` work.
- **Modes**: as everywhere in DFS, new files and folders are private to their owner
  (the group and other bits of the requested mode are dropped, whatever the umask); an
  explicit ``chmod`` shares them ("other" means every other DFS user). ``cp -p``,
  ``cp -a`` and ``rsync -a`` chmod explicitly, so they share what was shared locally.
- **Timeouts**: the client is made with ``--timeout`` as both its per-call timeout and its
  failover deadline, so with a node unreachable an operation fails after about that long
  (ETIMEDOUT/EIO) instead of hanging, and works again as soon as the node is back.
- **Not supported**: extended attributes (libfuse answers ENOSYS once and the kernel then
  returns ENOTSUP/EOPNOTSUPP without asking again), device files, fifos and sockets
  (mknod: ENOSYS), RENAME_EXCHANGE (EINVAL; RENAME_NOREPLACE, as ``mv -n`` uses, is
  honoured by a check before the rename), file locks across mounts (local to this
  machine).

Speed notes (measured with mfusepy on libfuse3): ``max_write``/``max_readahead`` are set
in ``init_with_config`` (libfuse3 rejects them as -o options) so writes arrive in 1 MiB
pieces; after mounting, the mount's bdi ``read_ahead_kb`` is raised so reads arrive in
1 MiB pieces too (root only; otherwise 128 KiB). Checksums are computed by crc32c, which
releases the GIL: a CPU-busy Python thread in this process slows every FUSE call.

Threads: libfuse's loop threads call ``DfsOperations``; the client's pools upload and
prefetch. ``DfsOperations.guard`` protects the handle tables (never held during an RPC);
each DfsFile has its own lock; the AttrCache has its own.
"""

import errno
import functools
import hashlib
import json
import logging
import os
import posixpath
import shutil
import signal
import stat as stat_mod
import subprocess
import sys
import threading
import time

from dfs import auth, errors, paths, wire
from dfs.client.files import DfsFile
from mount.attrcache import AttrCache

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0  # attribute/entry/negative cache, ours and the kernel's
IO_SIZE = 1024 * 1024  # max_write, max_readahead, bdi read_ahead_kb
STATFS_BLOCK = 4096
NAME_MAX = 255
DEFAULT_TIMEOUT = 30.0
MOUNT_DEADLINE = 60.0  # `dfs mount` waits this long for the folder to go live
UMOUNT_DEADLINE = 120.0  # `dfs umount` waits this long for the mount process to exit
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
NOBODY = 65534
NEW_MODE_BITS = 0o1700  # new files and folders are private, whatever the umask: chmod shares
KIND_BITS = {"d": stat_mod.S_IFDIR, "f": stat_mod.S_IFREG, "l": stat_mod.S_IFLNK}
QUIET_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EACCES, errno.EPERM,
                errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENAMETOOLONG}


class FuseError(OSError):
    """Raised by an operation to return ``errno`` to the kernel."""

    def __init__(self, code):
        super().__init__(code, os.strerror(code))


def operation(func):
    """The one place errors become errnos (and, with --debug, each call is timed)."""
    name = func.__name__

    @functools.wraps(func)
    def run(self, path, *args):
        if not self.trace:
            return _call(self, func, name, path, args)
        started = time.perf_counter()
        try:
            return _call(self, func, name, path, args)
        finally:
            log.debug("%s %s: %.2f ms", name, path, (time.perf_counter() - started) * 1000)
    return run


def _call(self, func, name, path, args):
    """Run one operation; a DfsError becomes its errno, anything else EIO.

    NoActiveWorkers is retried up to the mount's timeout: a master that has just restarted
    answers it until the workers have reported again (a heartbeat or two), and the
    request was refused before anything changed, so asking again is safe.
    """
    deadline = None
    backoff = 0.05
    while True:
        try:
            return func(self, path, *args)
        except FuseError:
            raise
        except errors.NoActiveWorkers as exc:
            now = time.monotonic()
            deadline = deadline or now + self.retry_seconds
            if now < deadline:
                time.sleep(min(backoff, deadline - now))
                backoff = min(backoff * 2, 1.0)
                continue
            log.warning("%s %s failed: %s", name, path, exc.message)
            raise FuseError(exc.errno) from None
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


class _Committer:
    """What a DfsFile sees as its client: the real one, but commit() keeps the new Stat."""

    def __init__(self, client):
        self._client = client
        self.stat = None

    def __getattr__(self, name):
        return getattr(self._client, name)

    def commit(self, ino, written, size):
        result = self._client.commit(ino, written, size)
        self.stat = result.stat
        return result


class OpenFile:
    """One DfsFile shared by every open handle of an inode in this mount.

    ``version`` is the (mtime, size) its content was read or committed at: an open that
    finds the file changed by another client meanwhile, and this one clean, swaps in a
    fresh DfsFile (close-to-open holds across mounts even while the file stays open)."""

    __slots__ = ("file", "ino", "path", "refs", "client", "version")

    def __init__(self, dfs_file, client, version):
        self.file = dfs_file
        self.client = client
        self.ino = dfs_file.ino
        self.path = dfs_file.path
        self.refs = 0
        self.version = version


def _version(stat):
    return stat.mtime_ns, stat.size


class DfsOperations:
    """The FUSE operations. Names of attributes must not be FUSE operation names (mfusepy
    would register them as callbacks): hence ``guard``, ``handles``, ``by_ino``,
    ``dir_lists``; ``entries`` and ``listing`` are helpers for ``_Fuse``, not operations."""

    use_ns = True

    def __init__(self, client, cache_seconds=CACHE_SECONDS, uid=None, gid=None):
        self.client = client
        self.user = client.user
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.cache_seconds = cache_seconds
        self.attrs = AttrCache(cache_seconds)
        self.guard = threading.Lock()
        self.handles = {}  # fh -> OpenFile
        self.by_ino = {}  # ino -> OpenFile
        self.dir_lists = {}  # fh of an open directory -> its entries() once read
        self.next_fh = 1
        self.chunk_size = client.chunk_size
        self.trace = log.isEnabledFor(logging.DEBUG)
        self.retry_seconds = client.config.failover_deadline
        self.owner_ids = {}  # DFS owner name -> (uid, gid)
        self.kernel_forget = lambda path: None  # set by run(): drop the kernel's cached attrs

    # --- set-up and tear-down ----------------------------------------------------------------

    def init_with_config(self, conn, config):
        if conn is not None:
            conn.max_write = IO_SIZE
            conn.max_readahead = IO_SIZE
            conn.max_background = 64
            conn.congestion_threshold = 48
        if config is not None:  # libfuse3 only
            config.use_ino = 1
            config.readdir_ino = 1
            config.entry_timeout = self.cache_seconds
            config.attr_timeout = self.cache_seconds
            config.negative_timeout = 0  # a name another client just created is seen at once
            config.auto_cache = 1
            config.kernel_cache = 0
            config.direct_io = 0
            config.hard_remove = 0  # unlink of an open file: libfuse renames it, as local fs do

    def destroy(self, path):
        with self.guard:
            remaining = list(self.by_ino.values())
            self.handles.clear()
            self.by_ino.clear()
        for of in remaining:
            try:
                of.file.close()
            except errors.DfsError as exc:
                log.error("%s: could not save on unmount: %s", of.path, exc.message)
        self.client.close()

    # --- attributes ---------------------------------------------------------------------------

    def _owner_ids(self, owner):
        if owner == self.user:
            return self.uid, self.gid
        ids = self.owner_ids.get(owner)
        if ids is None:
            import pwd
            try:
                entry = pwd.getpwnam(owner)
                ids = (entry.pw_uid, entry.pw_gid)
            except KeyError:
                ids = (NOBODY, NOBODY)
            self.owner_ids[owner] = ids
        return ids

    def _attrs(self, st):
        uid, gid = self._owner_ids(st.owner)
        size = st.size
        of = self.by_ino.get(st.ino)
        if of is not None:
            size = of.file.size
        return {"st_ino": st.ino, "st_mode": KIND_BITS[st.kind] | st.mode,
                "st_nlink": st.nlink, "st_uid": uid, "st_gid": gid, "st_size": size,
                "st_blocks": (size + 511) // 512, "st_blksize": IO_SIZE,
                "st_atime": st.atime_ns, "st_mtime": st.mtime_ns, "st_ctime": st.ctime_ns}

    def _stat(self, path):
        st = self.attrs.get(path)
        if st is None:
            st = self.client.stat(path)
            self.attrs.put(path, st)
        return st

    @operation
    def getattr(self, path, fh=None):
        return self._attrs(self._stat(path))

    @operation
    def readdir(self, path, fh):
        return [(name, {"st_mode": attrs["st_mode"], "st_ino": attrs["st_ino"]}, 0)
                for name, attrs in self.entries(path)]

    @operation
    def entries(self, path):
        """[(name, attributes)] of a directory, . and .. first: one listdir RPC.

        Plain readdir passes on names, kinds and inode numbers; readdirplus (``_Fuse``)
        the full attributes, so ``ls -l`` needs no lookup per name at all."""
        listed = self.client.listdir(path)
        self.attrs.put_listing(path, listed)
        here = self.attrs.get(path)
        up = self.attrs.get(posixpath.dirname(path) or "/")
        # An entry with inode 0 is skipped by readdir(3): give . and .. real numbers.
        found = [(".", {"st_mode": stat_mod.S_IFDIR, "st_ino": here.ino if here else 1}),
                 ("..", {"st_mode": stat_mod.S_IFDIR, "st_ino": up.ino if up else 1})]
        found.extend((e.name, self._attrs(e.stat)) for e in listed)
        return found

    @operation
    def opendir(self, path):
        with self.guard:
            fh = self.next_fh
            self.next_fh += 1
            self.dir_lists[fh] = None
        return fh

    @operation
    def releasedir(self, path, fh):
        self.dir_lists.pop(fh, None)
        return 0

    @operation
    def listing(self, path, fh, offset):
        """entries() of an open directory, read at offset 0 and kept for the next pages."""
        found = self.dir_lists.get(fh) if offset else None
        if found is None:
            found = self.entries(path)
            if fh in self.dir_lists:
                self.dir_lists[fh] = found
        return found

    @operation
    def statfs(self, path):
        total, free, _chunk_size, files = self.client.statfs()
        spare_inodes = 1 << 32
        return {"f_bsize": STATFS_BLOCK, "f_frsize": STATFS_BLOCK,
                "f_blocks": total // STATFS_BLOCK, "f_bfree": free // STATFS_BLOCK,
                "f_bavail": free // STATFS_BLOCK, "f_files": files + spare_inodes,
                "f_ffree": spare_inodes, "f_favail": spare_inodes, "f_namemax": NAME_MAX}

    # --- namespace -------------------------------------------------------------------------------

    @operation
    def mkdir(self, path, mode):
        self.attrs.added(path, self.client.mkdir(path, mode & NEW_MODE_BITS))

    @operation
    def rmdir(self, path):
        self.client.rmdir(path)
        self.attrs.removed(path)

    @operation
    def unlink(self, path):
        self.client.rm(path)
        self.attrs.removed(path)

    @operation
    def rename(self, old, new, flags=0):
        if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise FuseError(errno.EINVAL)
        if flags & RENAME_NOREPLACE:  # `mv -n`: checked here, so not atomic against others
            try:
                self.client.stat(new)
            except errors.FileNotFound:
                pass
            else:
                raise FuseError(errno.EEXIST)
        self.client.rename(old, new)
        self.attrs.moved(old, new)
        prefix = old.rstrip("/") + "/"
        with self.guard:
            for of in self.by_ino.values():
                if of.path == old or of.path.startswith(prefix):
                    of.path = new + of.path[len(old):]
                    of.file.path = of.path  # later chunk allocations name the new path

    @operation
    def symlink(self, path, target):
        self.attrs.added(path, self.client.symlink(path, target))

    @operation
    def readlink(self, path):
        return self.client.readlink(path)

    @operation
    def link(self, path, existing):
        st = self.client.link(existing, path)
        self.attrs.added(path, st)
        self.attrs.put(existing, st)  # its nlink went up

    @operation
    def chmod(self, path, mode):
        self.attrs.put(path, self.client.chmod(path, mode & 0o7777))

    @operation
    def chown(self, path, uid, gid):
        if uid is None or uid < 0:
            return 0  # a group change only: DFS has no groups
        if uid == self.uid:
            owner = self.user
        else:
            import pwd
            try:
                owner = pwd.getpwuid(uid).pw_name
            except KeyError:
                raise FuseError(errno.EINVAL) from None
        self.attrs.put(path, self.client.chown(path, owner))
        return 0

    @operation
    def utimens(self, path, times=None):
        now = time.time_ns()
        atime, mtime = times if times is not None else (now, now)
        atime, mtime = (None if t == UTIME_OMIT else now if t == UTIME_NOW else int(t)
                        for t in (atime, mtime))
        if atime is None and mtime is None:
            return 0
        st = self._stat(path)
        of = self.by_ino.get(st.ino)
        if of is not None and of.file.dirty:
            self._commit(of)  # else the commit at close would set mtime to "now" (cp -p)
        self.attrs.put(path, self.client.utimens(path, atime, mtime))
        return 0

    # --- open files ------------------------------------------------------------------------------

    def _register(self, dfs_file, committer, stat):
        """Share ``dfs_file`` as the open file of its inode: the one already open if it is
        current or busy, else this one. -> a new handle number."""
        old = None
        with self.guard:
            of = self.by_ino.get(dfs_file.ino)
            if of is None:
                of = self.by_ino[dfs_file.ino] = OpenFile(dfs_file, committer, _version(stat))
            elif of.version != _version(stat):  # changed elsewhere since it was opened
                current = of.file
                if current.lock.acquire(blocking=False):  # busy: a write may be under way
                    try:
                        if not current.dirty and not current.uploads:  # nothing unsaved
                            old = current
                            of.file, of.client, of.version = dfs_file, committer, _version(stat)
                    finally:
                        current.lock.release()
            of.refs += 1
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = of
        if old is not None:
            old.close()  # clean: closing it sends nothing
            self.kernel_forget(of.path)  # the kernel may hold its pages
        return fh

    def _open_existing(self, path):
        if self._stat(path).kind == "d":
            raise FuseError(errno.EISDIR)
        known = self.attrs.last_known(path)
        committer = _Committer(self.client)
        layout = self.client.layout(path)
        self.attrs.put(path, layout.stat)
        if known is not None and _version(known) != _version(layout.stat):
            self.kernel_forget(path)  # changed elsewhere within the last second
        return self._register(DfsFile(committer, path, layout, writable=True), committer,
                              layout.stat)

    def _handle(self, fh):
        of = self.handles.get(fh)
        if of is None:
            raise FuseError(errno.EBADF)
        return of

    def _commit(self, of):
        dirty = of.file.dirty
        of.file.flush()
        if dirty and of.client.stat is not None:
            of.version = _version(of.client.stat)
            self.attrs.put(of.path, of.client.stat)

    def _drop(self, fh):
        with self.guard:
            of = self.handles.pop(fh, None)
            if of is None:
                return None
            of.refs -= 1
            if of.refs > 0:
                return None
            del self.by_ino[of.ino]
        return of

    @operation
    def open(self, path, flags):
        fh = self._open_existing(path)
        if flags & os.O_TRUNC:  # libfuse3 asks for atomic O_TRUNC: no setattr comes first
            of = self._handle(fh)
            if of.file.size:
                of.file.truncate(0)  # committed by the flush at close, with what is written
        return fh

    @operation
    def create(self, path, mode, flags=0):
        try:
            st = self.client.create(path, mode & NEW_MODE_BITS)
        except errors.FileExists:
            if flags & os.O_EXCL:
                raise
            return self.open(path, flags)
        self.attrs.added(path, st)
        committer = _Committer(self.client)
        layout = wire.FileLayout(st, self.chunk_size, ())
        return self._register(DfsFile(committer, path, layout, writable=True), committer, st)

    @operation
    def read(self, path, size, offset, fh):
        return self._handle(fh).file.pread(offset, size)

    @operation
    def write(self, path, data, offset, fh):
        return self._handle(fh).file.pwrite(offset, data)

    @operation
    def truncate(self, path, length, fh=None):
        # mfusepy passes no handle on libfuse3, so ftruncate arrives here by path too.
        of = self._handle(fh) if fh is not None else None
        if of is None:
            st = self._stat(path)
            of = self.by_ino.get(st.ino)
            if of is None and st.size == length:
                return 0  # nothing changes: POSIX leaves the times alone too
        if of is not None:
            of.file.truncate(length)
            self._commit(of)
            return 0
        temp = self._open_existing(path)
        try:
            of = self._handle(temp)
            of.file.truncate(length)
            self._commit(of)
        finally:
            done = self._drop(temp)
            if done is not None:
                done.file.close()
        return 0

    @operation
    def flush(self, path, fh):
        self._commit(self._handle(fh))

    @operation
    def fsync(self, path, datasync, fh):
        self._commit(self._handle(fh))

    @operation
    def release(self, path, fh):
        of = self._drop(fh)
        if of is not None:
            try:
                of.file.close()
            except errors.DfsError as exc:  # flush already reported it to the closer
                log.error("%s: changes lost at release: %s", of.path, exc.message)
        return 0


def _fuse_class(mfusepy):
    """mfusepy's FUSE with readdirplus on libfuse3.

    libfuse3 asks for names *with* attributes (the kernel's READDIRPLUS); mfusepy 3.1
    passes on only kinds and inode numbers, and libfuse 3.14 drops the attributes of a
    listing filled at offset 0 anyway, so the kernel would look every name up again.
    Here each page is filled at real offsets (index + 1 into the listing, kept per open
    directory), which makes libfuse hand the attributes to the kernel: ``ls -l`` of a
    big folder is one listdir RPC and a few FUSE calls. Everything else is mfusepy's."""
    import ctypes
    if mfusepy.fuse_version_major != 3:
        return mfusepy.FUSE

    class _Fuse(mfusepy.FUSE):
        def rename_fuse_3(self, old, new, flags):
            # mfusepy drops the flags: `mv -n` (RENAME_NOREPLACE) would replace the target
            return self.operations.rename(old.decode(self.encoding, self.errors),
                                          new.decode(self.encoding, self.errors), flags)

        def readdir_fuse_3(self, path, buf, filler, offset, fip, flags):
            found = self.operations.listing(path.decode(self.encoding, self.errors),
                                            fip.contents.fh, offset)
            plus = flags & READDIR_PLUS
            st = mfusepy.c_stat()
            for index in range(offset, len(found)):
                name, attrs = found[index]
                ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
                mfusepy.set_st_attrs(st, attrs, use_ns=True)
                fill = FILL_DIR_PLUS if plus and name not in (".", "..") else 0
                if filler(buf, name.encode(self.encoding, self.errors), st, index + 1,
                          fill) != 0:
                    break  # the kernel's buffer is full: it asks again from index + 1
            return 0
    return _Fuse


def _kernel_forget(mfusepy):
    """-> forget(path): make the kernel drop its cached attributes and pages of ``path``
    (libfuse3's fuse_invalidate_path), so an open sees what another client committed
    within the attribute timeout: close-to-open holds across mounts. No-op on libfuse2."""
    import ctypes
    invalidate = getattr(mfusepy._libfuse, "fuse_invalidate_path", None)
    if mfusepy.fuse_version_major != 3 or invalidate is None:
        return lambda path: None
    invalidate.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    invalidate.restype = ctypes.c_int

    def forget(path):
        fuse_ptr = mfusepy._libfuse.fuse_get_context().contents.fuse
        result = invalidate(fuse_ptr, path.encode("utf-8", "surrogateescape"))
        if result not in (0, -errno.ENOENT):
            log.debug("fuse_invalidate_path %s: %s", path, os.strerror(-result))
    return forget


RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCHANGE = 2
READDIR_PLUS = 1  # enum fuse_readdir_flags
FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags


# --- mount records: where `dfs umount` and `dfs down` find a mount's process -------------

def records_dir():
    import platformdirs
    return os.path.join(platformdirs.user_cache_dir(paths.APP), "mounts")


def _record_path(mount_dir, suffix):
    key = hashlib.sha256(os.path.realpath(mount_dir).encode()).hexdigest()[:16]
    return os.path.join(records_dir(), key + suffix)


def read_record(mount_dir):
    """{"pid", "dir", "auth", "log"} of the mount process serving ``mount_dir``, or None."""
    try:
        with open(_record_path(mount_dir, ".json")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def all_records():
    try:
        names = os.listdir(records_dir())
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(records_dir(), name)) as f:
                    found.append(json.load(f))
            except (OSError, ValueError):
                pass
    return found


def _write_record(mount_dir, record):
    from dfs.fsutil import write_atomic
    os.makedirs(records_dir(), exist_ok=True)
    write_atomic(_record_path(mount_dir, ".json"), json.dumps(record).encode())


def _remove_record(mount_dir, pid):
    record = read_record(mount_dir)
    if record is not None and record.get("pid") == pid:
        try:
            os.unlink(_record_path(mount_dir, ".json"))
        except FileNotFoundError:
            pass


def _unescape_mountinfo(text):
    return text.encode().decode("unicode_escape") if "\\" in text else text


def mount_device(mount_dir):
    """"major:minor" of the file system mounted on ``mount_dir`` (Linux), or None."""
    target = os.path.realpath(mount_dir)
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):  # the last mount on a path is the visible one
        fields = line.split()
        if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
            return fields[2]
    return None


def is_mounted(mount_dir):
    """True if something is mounted on ``mount_dir``; never touches the mount itself."""
    if os.path.exists("/proc/self/mountinfo"):
        return mount_device(mount_dir) is not None
    return os.path.ismount(mount_dir)


def pid_alive(pid):
    from dfs.local.cluster import pid_alive as alive
    return bool(pid) and alive(pid)


def wait_until(condition, deadline, interval=0.05):
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(interval)
    return True


def _raise_read_ahead(mount_dir):
    """Let the kernel read ahead IO_SIZE on this mount (reads then come 1 MiB at a time)."""
    if not wait_until(lambda: is_mounted(mount_dir), MOUNT_DEADLINE, 0.02):
        return
    device = mount_device(mount_dir)
    try:
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
            f.write(str(IO_SIZE // 1024))
    except OSError as exc:
        log.debug("cannot raise read-ahead on %s (%s): reads stay at 128 KiB", mount_dir, exc)


# --- running the mount ------------------------------------------------------------------------

def _mfusepy():
    """Import mfusepy on libfuse3 when present, else libfuse2."""
    if "FUSE_LIBRARY_NAME" not in os.environ and sys.platform.startswith("linux"):
        from ctypes.util import find_library
        if find_library("fuse3"):
            os.environ["FUSE_LIBRARY_NAME"] = "fuse3"
    try:
        import mfusepy
    except ImportError:
        raise errors.NotSupported("the mount needs mfusepy: pip install 'dfs[mount]'") from None
    except (OSError, AttributeError) as exc:
        raise errors.NotSupported(f"libfuse is missing or unusable ({exc}): install fuse3 "
                                  "(apt-get install fuse3), macFUSE or WinFsp") from None
    return mfusepy


def make_client(auth_file, timeout, cache_dir=None):
    from dfs.client import DfsClient
    options = {"timeout": timeout, "failover_deadline": timeout}
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    return DfsClient.from_auth_file(auth_file, **options)


def run(mount_dir, auth_file, timeout=DEFAULT_TIMEOUT, cache_dir=None, debug=False):
    """Serve ``mount_dir`` in this process until it is unmounted."""
    mfusepy = _mfusepy()
    mount_dir = os.path.realpath(mount_dir)
    client = make_client(auth_file, timeout, cache_dir)
    try:
        client.statfs()  # fail now, with a clear message, if the cluster cannot be reached
        ops = DfsOperations(client)
        ops.kernel_forget = _kernel_forget(mfusepy)
    except BaseException:
        client.close()
        raise
    options = {"fsname": "dfs", "subtype": "dfs", "default_permissions": True}
    if os.getuid() == 0:
        options["allow_other"] = True
    if debug:
        options["debug"] = True
    os.umask(0)  # the kernel has already applied the caller's umask to every mode
    pid = os.getpid()
    _write_record(mount_dir, {"pid": pid, "dir": mount_dir, "auth": os.path.abspath(auth_file),
                              "log": _record_path(mount_dir, ".log")})
    threading.Thread(target=_raise_read_ahead, args=(mount_dir,), name="dfs-readahead",
                     daemon=True).start()
    log.info("mounting %s on %s as %s", client.config.masters, mount_dir, client.user)
    try:
        _fuse_class(mfusepy)(ops, mount_dir, foreground=True, raw_fi=False, **options)
    except RuntimeError as exc:
        raise errors.Unavailable(f"mounting {mount_dir} failed ({exc}); is it a folder you "
                                 "own, and is /dev/fuse usable?") from None
    finally:
        _remove_record(mount_dir, pid)
    return 0


def _child_env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def _tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def mount_background(mount_dir, auth_file=None, timeout=DEFAULT_TIMEOUT, cache_dir=None,
                     debug=False):
    """Start a detached mount process; return its pid once ``mount_dir`` is live."""
    mount_dir = os.path.realpath(mount_dir)
    auth_file = os.path.abspath(auth_file or paths.default_auth_file())
    _check_mountable(mount_dir, auth_file)
    log_path = _record_path(mount_dir, ".log")
    os.makedirs(records_dir(), exist_ok=True)
    argv = [sys.executable, "-m", "dfs.cli", *(["--debug"] if debug else []), "mount",
            mount_dir, "--foreground", "--auth", auth_file, "--timeout", str(timeout)]
    if cache_dir is not None:
        argv += ["--cache-dir", cache_dir]
    with open(log_path, "wb") as out:
        out.write(f"--- {time.ctime()}: {' '.join(argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=_child_env(), cwd="/",
                                 start_new_session=True)
    end = time.monotonic() + MOUNT_DEADLINE + timeout
    while not is_mounted(mount_dir):
        if child.poll() is not None:
            raise errors.Unavailable(f"the mount of {mount_dir} exited at start; "
                                     f"see {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > end:
            child.terminate()
            raise errors.Unavailable(f"{mount_dir} was not mounted after {MOUNT_DEADLINE:.0f}s;"
                                     f" see {log_path}")
        time.sleep(0.02)
    return child.pid


def _check_mountable(mount_dir, auth_file):
    if os.name == "nt":  # WinFsp creates the folder (or drive) itself
        if os.path.exists(mount_dir):
            raise errors.FileExists(f"{mount_dir} exists: WinFsp mounts on a new folder or drive")
    elif not os.path.isdir(mount_dir):
        raise errors.FileNotFound(f"mount point {mount_dir} is not an existing folder")
    if is_mounted(mount_dir):
        raise errors.FileExists(f"{mount_dir} is already mounted (dfs umount {mount_dir})")
    if not os.path.exists(auth_file):
        raise errors.FileNotFound(f"no auth file {auth_file}: run `dfs register NAME` or "
                                  "`dfs up` first, or pass --auth")
    auth.read_auth_file(auth_file)


def _fusermount_argv(mount_dir, lazy=False):
    for tool in ("fusermount3", "fusermount"):
        path = shutil.which(tool)
        if path:
            return [path, "-u", *(["-z"] if lazy else []), mount_dir]
    return ["umount", *(["-l"] if lazy else []), mount_dir]


def unmount(mount_dir, deadline=UMOUNT_DEADLINE):
    """Unmount ``mount_dir`` and wait until its mount process has exited."""
    mount_dir = os.path.realpath(mount_dir)
    record = read_record(mount_dir)
    pid = record.get("pid") if record else None
    mounted = is_mounted(mount_dir)
    if not mounted and not pid_alive(pid):
        if record:
            _remove_record(mount_dir, pid)
        raise errors.InvalidArgument(f"{mount_dir} is not mounted")
    if mounted:
        done = subprocess.run(_fusermount_argv(mount_dir), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        if done.returncode != 0 and is_mounted(mount_dir):
            message = (done.stderr or done.stdout).strip().splitlines()
            raise errors.Unavailable(f"cannot unmount {mount_dir}: "
                                     f"{message[-1] if message else 'unmount failed'}")
    if pid and not wait_until(lambda: not pid_alive(pid), deadline):
        log.warning("mount process %d did not exit after unmount: stopping it", pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not wait_until(lambda: not pid_alive(pid), 10.0):
            raise errors.Unavailable(f"mount process {pid} for {mount_dir} does not exit")
    _remove_record(mount_dir, pid)
    try:
        os.unlink(_record_path(mount_dir, ".log"))  # kept only when a mount went wrong
    except FileNotFoundError:
        pass


# --- the CLI's entry points (dfs/cli.py calls these) ----------------------------------------------

def cmd_mount(args):
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT
    cache_dir = getattr(args, "cache_dir", None)
    auth_file = os.path.abspath(args.auth or paths.default_auth_file())
    if args.foreground:
        mount_dir = os.path.realpath(args.dir)
        _check_mountable(mount_dir, auth_file)
        return run(mount_dir, auth_file, timeout, cache_dir, args.debug)
    mount_background(args.dir, auth_file, timeout, cache_dir, args.debug)
    print(f"mounted DFS on {os.path.realpath(args.dir)} (dfs umount {args.dir} to unmount)")
    return 0


def cmd_umount(args):
    unmount(args.dir)
    return 0


def mount_for_up(mount_dir, auth_file):
    """`dfs up`: mount the local cluster on ``mount_dir`` (made if missing). -> exit status.

    A failure to mount is reported on one line but leaves the cluster running."""
    mount_dir = os.path.realpath(os.path.expanduser(mount_dir))
    if is_mounted(mount_dir):
        print(f"{mount_dir} is already mounted")
        return 0
    try:
        os.makedirs(mount_dir, exist_ok=True)
        mount_background(mount_dir, auth_file)
    except (errors.DfsError, OSError) as exc:
        message = exc.message if isinstance(exc, errors.DfsError) else str(exc)
        print(f"dfs: the cluster is up but mounting {mount_dir} failed: "
              f"{message.splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"mounted on {mount_dir}: open it in your file manager, copy files in and out; "
          f"dfs umount {mount_dir} unmounts it")
    return 0


def unmount_for_down(data_dir):
    """`dfs down`: unmount every mount of the cluster in ``data_dir``. -> dirs unmounted.

    A mount belongs to that cluster if its auth file lives in ``data_dir``."""
    prefix = os.path.realpath(data_dir).rstrip(os.sep) + os.sep
    done = []
    for record in all_records():
        if os.path.realpath(record.get("auth", "")).startswith(prefix):
            try:
                unmount(record["dir"])
                done.append(record["dir"])
            except errors.DfsError as exc:
                print(f"dfs: {exc.message}", file=sys.stderr)
    return done


__all__ = ["DfsOperations", "cmd_mount", "cmd_umount", "mount_background", "unmount",
           "is_mounted", "read_record", "run"]

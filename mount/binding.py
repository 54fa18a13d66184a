"""Everything that knows mfusepy's and libfuse's internals, and nothing else.

mfusepy ships no type information: its objects (the module, FUSE, fuse_conn_info,
fuse_config, ctypes callbacks) are ``Any`` here, and only here.

Speed notes (measured with mfusepy on libfuse3): ``max_write``/``max_readahead`` are set
in ``init_with_config`` (libfuse3 rejects them as -o options) so writes arrive in 1 MiB
pieces; after mounting, the mount's bdi ``read_ahead_kb`` is raised so reads arrive in
1 MiB pieces too (root only; otherwise 128 KiB). Checksums are computed by crc32c, which
releases the GIL: a CPU-busy Python thread in this process slows every FUSE call.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dfs import errors

if TYPE_CHECKING:
    from mount.ops import DfsOperations

log = logging.getLogger(__name__)

IO_SIZE = 1024 * 1024  # max_write, max_readahead, bdi read_ahead_kb
RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCHANGE = 2
READDIR_PLUS = 1  # enum fuse_readdir_flags
FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags
CAPABILITY = b"security.capability"

KernelForget = Callable[[str], None]


def import_mfusepy() -> Any:
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


def configure(conn: Any, config: Any, cache_seconds: float) -> None:
    """libfuse's connection and config settings (``init_with_config``; config: libfuse3 only)."""
    if conn is not None:
        conn.max_write = IO_SIZE
        conn.max_readahead = IO_SIZE
        conn.max_background = 64
        conn.congestion_threshold = 48
    if config is not None:
        config.use_ino = 1
        config.readdir_ino = 1
        config.entry_timeout = cache_seconds
        config.attr_timeout = cache_seconds
        config.negative_timeout = 0  # a name another client just created is seen at once
        config.auto_cache = 1
        config.kernel_cache = 0
        config.direct_io = 0
        config.hard_remove = 0  # unlink of an open file: libfuse renames it, as local fs do


def fuse_class(mfusepy: Any) -> Any:
    """mfusepy's FUSE with readdirplus on libfuse3.

    libfuse3 asks for names *with* attributes (the kernel's READDIRPLUS); mfusepy 3.1
    passes on only kinds and inode numbers, and libfuse 3.14 drops the attributes of a
    listing filled at offset 0 anyway, so the kernel would look every name up again.
    Here each page is filled at real offsets (index + 1 into the listing, kept per open
    directory), which makes libfuse hand the attributes to the kernel: ``ls -l`` of a
    big folder is one listdir RPC and a few FUSE calls. Everything else is mfusepy's."""
    if mfusepy.fuse_version_major != 3:
        return mfusepy.FUSE
    stat_size = ctypes.sizeof(mfusepy.c_stat)

    class _Fuse(mfusepy.FUSE):
        operations: DfsOperations
        encoding: str
        errors: str

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            # mfusepy drops the flags: `mv -n` (RENAME_NOREPLACE) would replace the target
            return self.operations.rename(old.decode(self.encoding, self.errors),
                                          new.decode(self.encoding, self.errors), flags)

        def create(self, path: bytes, mode: int, fip: Any) -> int:
            # mfusepy inspects the operation's signature on every create (a tenth of the
            # mount's CPU for small files): ours always takes the flags
            fi = fip.contents
            fi.fh = self.operations.create(path.decode(self.encoding, self.errors), mode,
                                           fi.flags)
            return 0

        def getxattr(self, path: bytes, name: bytes, value: Any, size: int, *args: Any) -> int:
            # the kernel asks for security.capability before every write(2): a tenth of the
            # mount's GIL time in a sequential write went to answering ENODATA through the
            # operation's exceptions; the cached Stat usually knows without them
            if name == CAPABILITY and self.operations.xattrs.no_capability(
                    path.decode(self.encoding, self.errors)):
                return -errno.ENODATA
            return int(super().getxattr(path, name, value, size, *args))

        def lseek(self, path: bytes | None, offset: int, whence: int, fip: Any) -> int:
            # mfusepy 3.1 declares libfuse3's lseek but has no wrapper for it: SEEK_DATA and
            # SEEK_HOLE would fall back to "all data"
            name = "" if path is None else path.decode(self.encoding, self.errors)
            return self.operations.lseek(name, offset, whence, fip.contents.fh)

        def lock(self, path: bytes | None, fip: Any, cmd: int, lock: Any) -> int:
            # mfusepy passes only the handle: POSIX locks need the owner (one per process)
            name = "" if path is None else path.decode(self.encoding, self.errors)
            return self.operations.lock(name, fip.contents.fh, cmd, lock.contents,
                                        fip.contents.lock_owner)

        def fgetattr(self, path: bytes | None, buf: Any, fip: Any) -> int:
            # mfusepy's, with fill_stat for its set_st_attrs (every lookup and getattr)
            ctypes.memset(buf, 0, stat_size)
            attrs = self.operations.getattr(
                "" if path is None else path.decode(self.encoding, self.errors),
                fip.contents.fh if fip else None)
            fill_stat(buf.contents, attrs)
            return 0

        def readdir_fuse_3(self, path: bytes, buf: Any, filler: Any, offset: int, fip: Any,
                           flags: int) -> int:
            found = self.operations.listing(path.decode(self.encoding, self.errors),
                                            fip.contents.fh, offset)
            plus = flags & READDIR_PLUS
            st = mfusepy.c_stat()
            for index in range(offset, len(found)):
                name, attrs = found[index]
                ctypes.memset(ctypes.byref(st), 0, stat_size)
                fill_stat(st, attrs)
                fill = FILL_DIR_PLUS if plus and name not in (".", "..") else 0
                if filler(buf, name.encode(self.encoding, self.errors), st, index + 1,
                          fill) != 0:
                    break  # the kernel's buffer is full: it asks again from index + 1
            return 0
    return _Fuse


TIMESPECS = {"st_atime": "st_atimespec", "st_mtime": "st_mtimespec",
             "st_ctime": "st_ctimespec"}


def fill_stat(st: Any, attrs: dict[str, int]) -> None:
    """mfusepy's set_st_attrs for the attributes ops gives (times in ns), without its
    probing of each key: 4.7 -> 0.8 us an entry, paid per listed name and per lookup."""
    for key, value in attrs.items():
        spec = TIMESPECS.get(key)
        if spec is None:
            setattr(st, key, value)
        else:
            times = getattr(st, spec)
            times.tv_sec, times.tv_nsec = divmod(value, 1_000_000_000)


def kernel_forget(mfusepy: Any) -> KernelForget:
    """-> forget(path): make the kernel drop its cached attributes and pages of ``path``
    (libfuse3's fuse_invalidate_path), so an open sees what another client committed
    within the attribute timeout: close-to-open holds across mounts. No-op on libfuse2."""
    invalidate = getattr(mfusepy._libfuse, "fuse_invalidate_path", None)
    if mfusepy.fuse_version_major != 3 or invalidate is None:
        return forget_nothing
    invalidate.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    invalidate.restype = ctypes.c_int

    def forget(path: str) -> None:
        fuse_ptr = mfusepy._libfuse.fuse_get_context().contents.fuse
        result = invalidate(fuse_ptr, path.encode("utf-8", "surrogateescape"))
        if result not in (0, -errno.ENOENT):
            log.debug("fuse_invalidate_path %s: %s", path, os.strerror(-result))
    return forget


def interrupt_check(mfusepy: Any) -> Callable[[], bool]:
    """-> interrupted(): has the kernel interrupted the request this FUSE thread serves
    (its process got a signal)? libfuse's fuse_interrupted; a lock wait then ends (EINTR)."""
    check = getattr(mfusepy._libfuse, "fuse_interrupted", None)
    if check is None:
        return lambda: False
    check.argtypes = ()
    check.restype = ctypes.c_int
    return lambda: bool(check())


def forget_nothing(path: str) -> None:
    """The kernel_forget of a mount without fuse_invalidate_path (and of tests)."""


def raise_read_ahead(device: str | None, mount_dir: str) -> None:
    """Let the kernel read ahead IO_SIZE on the mount of ``device`` ("major:minor"): reads
    then come 1 MiB at a time."""
    try:
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
            f.write(str(IO_SIZE // 1024))
    except OSError as exc:
        log.debug("cannot raise read-ahead on %s (%s): reads stay at 128 KiB", mount_dir, exc)


def serve(mfusepy: Any, ops: DfsOperations, mount_dir: str,
          options: dict[str, str | bool]) -> None:
    """Run libfuse's multithreaded loop on ``mount_dir`` until it is unmounted."""
    ops.file_locks.interrupted = interrupt_check(mfusepy)
    try:
        fuse_class(mfusepy)(ops, mount_dir, foreground=True, raw_fi=False, **options)
    except RuntimeError as exc:
        raise errors.Unavailable(f"mounting {mount_dir} failed ({exc}); is it a folder you "
                                 "own, and is /dev/fuse usable?") from None

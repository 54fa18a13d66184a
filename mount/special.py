"""The mount's special files and rename flags (mount.ops dispatches here).

- **Special files**: ``mknod`` makes a fifo, a unix socket or a device node as a
  metadata-only inode at the master (dfs.namespace.rules.mknod: devices only for the
  superuser, so only on an admin's mount and by root). The pipe of a fifo and the endpoint
  of a bound socket are the local kernel's objects on that inode, as on NFS or any FUSE
  file system: the kernel never sends a FUSE open, read or write for them (it gives a
  fifo its pipe and a socket inode ENXIO on open), so two processes on this machine
  talk through them, and processes on two machines do not (each kernel has its own
  pipe). Device nodes are never opened through the mount: FUSE mounts are ``nodev``.
- **Rename flags**: renameat2's RENAME_NOREPLACE and RENAME_EXCHANGE go to the master,
  which decides them atomically (dfs.namespace.rules.rename); here only the mount's own
  tables follow (attributes dropped for both names, open files swapped).
"""

from __future__ import annotations

import stat as stat_mod

from dfs import errors, wire
from dfs.client.client import DfsClient
from mount.attrcache import AttrCache
from mount.openfiles import OpenFiles

RENAME_EXCHANGE = 2  # linux/fs.h (also mount.binding's)
KIND_BITS = {"d": stat_mod.S_IFDIR, "f": stat_mod.S_IFREG, "l": stat_mod.S_IFLNK,
             "p": stat_mod.S_IFIFO, "s": stat_mod.S_IFSOCK, "c": stat_mod.S_IFCHR,
             "b": stat_mod.S_IFBLK}
MKNOD_KINDS = {bits: kind for kind, bits in KIND_BITS.items() if kind not in ("d", "l")}


def mknod(client: DfsClient, path: str, mode: int, dev: int) -> wire.Stat:
    """mknod(2) of ``path`` with the file type and permission bits of ``mode`` (the umask
    applied by the kernel already) and device number ``dev`` (devices only). -> its stat."""
    kind = MKNOD_KINDS.get(stat_mod.S_IFMT(mode) or stat_mod.S_IFREG)
    if kind is None:
        raise errors.InvalidArgument(f"mknod of an unknown file type {mode:#o}")
    if kind == "f":  # the kernel sends CREATE for open(O_CREAT); mknod(2) itself comes here
        return client.create(path, mode & 0o7777)
    return client.mknod(path, kind, mode & 0o7777, dev if kind in ("c", "b") else 0)


def renamed(attrs: AttrCache, files: OpenFiles, old: str, new: str, flags: int) -> None:
    """After the master renamed ``old`` to ``new`` (with ``flags``): what the mount knows
    follows. An exchange swaps the open files of the two names."""
    attrs.moved(old, new)
    if flags & RENAME_EXCHANGE:
        files.exchanged(old, new)
    else:
        files.renamed(old, new)

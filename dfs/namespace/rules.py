"""The file-system rules of the tree, as pure functions.

Each rule takes the namespace, the calling user, the request's arguments and the time (and
any config value it needs), checks everything POSIX asks, and returns the journal entry
that makes the change, or raises the DfsError that says why not. Nothing here changes the
namespace or reads a clock: the master commits what a rule returns (nodes/master/*_service.py).
The rules for the trash, for file data and for users are in rules_trash.py, rules_data.py
and rules_users.py.

The caller is a ``Cred`` (uid, gid, groups: dfs/namespace/access.py), and access is POSIX:
the owner, group or other bits of the mode, whichever class the caller falls in first; the
superuser (uid 0) passes. Every directory on a path must be searchable (x). Creating or
removing a name needs w+x on its directory; in a sticky directory (mode 1000) only the
owner of the entry or of the directory (or the superuser) removes or replaces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

from dfs import errors
from dfs.namespace import access, quota, rules_trash
from dfs.namespace.access import Cred
from dfs.namespace.entries import (
    Create,
    Entry,
    Exchange,
    Link,
    Mkdir,
    Mknod,
    Rename,
    SetAttr,
    Symlink,
    Unlink,
)
from dfs.namespace.inode import MAX_SYMLINK_BYTES, Inode, R, W, X, split_path
from dfs.namespace.model import Namespace

E = TypeVar("E", bound=Entry)


# --- request ids: a retry after a failover is answered, not done twice ----------------------

@dataclass(frozen=True)
class Replayed:
    """A request with this id already took effect; ``ino``: the inode it named (0 if none)."""

    ino: int


def replayed(ns: Namespace, rid: str | None, made: bool) -> Replayed | None:
    """The answer to a retried request, or None if it must be decided now. ``made``: the
    request makes or links an inode, so it counts as done only while that inode exists.
    An empty request id is no request id."""
    if not rid:
        return None
    done = ns.recent.get(rid)
    if done is None or (made and done not in ns.inodes):
        return None
    return Replayed(done)


def with_request(entry: E, rid: str | None) -> E:
    """``entry`` carrying the request id, so the namespace remembers it (Namespace.recent)."""
    return dataclasses.replace(entry, rid=rid) if rid else entry


# --- looking ------------------------------------------------------------------------------

MAX_STAT_MANY = 512  # names in one stat_many call (the mount's look-ahead)


def stat_target(ns: Namespace, user: Cred, path: str) -> Inode:
    """What ``path`` names, if every directory on the way is searchable (POSIX: a name is
    seen by whoever may search its directory, whatever the entry's own mode)."""
    return ns.resolve(path, user)


def listable(ns: Namespace, user: Cred, path: str) -> Inode:
    """The directory at ``path``, if this user may read it."""
    directory = ns.resolve(path, user)
    if directory.kind != "d":
        raise errors.NotADirectory(f"{path} is not a directory")
    ns.require(user, directory, R, path)
    return directory


def readlink(ns: Namespace, user: Cred, path: str) -> str:
    inode = ns.resolve(path, user)
    if inode.kind != "l":
        raise errors.InvalidArgument(f"{path} is not a symlink")
    return inode.target


# --- making names -------------------------------------------------------------------------

def _free_name(ns: Namespace, user: Cred, path: str) -> tuple[Inode, str]:
    """(parent, name) for a new entry at ``path``: the name not taken (checked first, as
    Linux does: mkdir of an existing name says EEXIST even where one may not write), and
    w+x on the parent."""
    parent, name = ns.resolve_parent(path, user)
    if name in parent.children:
        raise errors.FileExists(f"{path} already exists")
    ns.require(user, parent, W | X, path)
    return parent, name


def new_owner(user: Cred, parent: Inode, mode: int, is_dir: bool) -> tuple[int, int, int]:
    """(uid, gid, mode) of a new inode in ``parent``: the creator's uid; the parent's group
    if it is set-gid, else the creator's; the mode asked for (the umask applied already)
    with access.new_inode_mode's set-gid rules."""
    gid = access.new_inode_group(user, parent.owned())
    return user.uid, gid, access.new_inode_mode(user, parent.owned(), mode, is_dir, gid)


def mkdir(ns: Namespace, user: Cred, path: str, mode: int, now_ns: int) -> Mkdir:
    parent, name = _free_name(ns, user, path)
    quota.check_new_inodes(ns, user.uid)
    uid, gid, mode = new_owner(user, parent, mode, is_dir=True)
    return Mkdir(parent.ino, name, ns.next_ino, uid, gid, mode, now_ns)


def create(ns: Namespace, user: Cred, path: str, mode: int, now_ns: int) -> Create:
    """An empty file; FileExists if the name is taken."""
    parent, name = _free_name(ns, user, path)
    quota.check_new_inodes(ns, user.uid)
    uid, gid, mode = new_owner(user, parent, mode, is_dir=False)
    return Create(parent.ino, name, ns.next_ino, uid, gid, mode, now_ns)


def check_symlink_target(target: str) -> None:
    if not target or "\0" in target or len(target.encode()) > MAX_SYMLINK_BYTES:
        raise errors.InvalidArgument("bad symlink target")


def symlink(ns: Namespace, user: Cred, path: str, target: str, now_ns: int) -> Symlink:
    """``target`` passed check_symlink_target (at the boundary, before the lock)."""
    parent, name = _free_name(ns, user, path)
    quota.check_new_inodes(ns, user.uid)
    uid, gid, _mode = new_owner(user, parent, 0o777, is_dir=False)
    return Symlink(parent.ino, name, ns.next_ino, uid, gid, 0o777, now_ns, target)


SPECIAL_KINDS = ("p", "s", "c", "b")  # fifo, socket, character and block device
DEVICE_KINDS = ("c", "b")
MAX_RDEV = (1 << 32) - 1  # what FUSE carries (the kernel's 32-bit encoding of dev_t)


def mknod(ns: Namespace, user: Cred, path: str, kind: str, mode: int, rdev: int,
          now_ns: int) -> Mknod | Create:
    """mknod(2): a fifo or a socket (metadata only: the pipe or the listening socket is the
    local kernel's), or a device (only the superuser: EPERM otherwise, as Linux without
    CAP_MKNOD) numbered ``rdev``; a regular file ("f") is an empty file, as create. The
    name must be free and the directory w+x; the new inode counts against the quota."""
    if kind not in (*SPECIAL_KINDS, "f"):
        raise errors.InvalidArgument(f"cannot make a file of type {kind!r}")
    if not 0 <= rdev <= MAX_RDEV:
        raise errors.InvalidArgument(f"bad device number {rdev}")
    parent, name = _free_name(ns, user, path)
    if kind in DEVICE_KINDS and not user.superuser:
        raise errors.NotPermitted(f"{path}: only the superuser makes device files")
    quota.check_new_inodes(ns, user.uid)
    uid, gid, mode = new_owner(user, parent, mode, is_dir=False)
    if kind == "f":
        return Create(parent.ino, name, ns.next_ino, uid, gid, mode, now_ns)
    return Mknod(parent.ino, name, ns.next_ino, uid, gid, mode, now_ns, kind,
                 rdev if kind in DEVICE_KINDS else 0)


def link(ns: Namespace, user: Cred, existing: str, path: str, now_ns: int) -> Link:
    """A hard link: not to a directory; as Linux with protected_hardlinks (its default),
    the owner may link anything, others only a regular file they may read and write that
    is not set-uid nor executable set-gid (so nobody pins another's privileged file)."""
    inode = ns.resolve(existing, user)
    if inode.kind == "d":
        raise errors.NotPermitted("hard links to directories are not allowed")
    if not access.owns(user, inode.owned()):
        privileged = inode.mode & access.S_ISUID or (
            inode.mode & access.S_ISGID and inode.mode & access.S_IXGRP)
        if inode.kind != "f" or privileged or not ns.allowed(user, inode, R | W):
            raise errors.NotPermitted(f"{existing}: only its owner may link it")
    parent, name = _free_name(ns, user, path)
    return Link(parent.ino, name, inode.ino, now_ns)


# --- removing and moving ----------------------------------------------------------------------

def _removable(ns: Namespace, user: Cred, path: str) -> tuple[Inode, str, Inode]:
    """The entry at ``path`` that this user may take out of its directory (to remove or to
    move it). -> (parent directory, name, the entry)."""
    parent, name = ns.resolve_parent(path, user)
    child = ns.lookup(parent, name)
    if child is None:
        raise errors.FileNotFound(f"{path}: no such file or directory")
    ns.check_removable(user, parent, child, path)
    return parent, name, child


def remove(ns: Namespace, user: Cred, path: str, want_dir: bool, now_ns: int, wall_now: float,
           trash_seconds: float) -> Unlink:
    """unlink (``want_dir`` False) or rmdir. A regular file's last link goes to the trash
    for ``trash_seconds`` (0: freed now); a hard-linked file just loses this name."""
    parent, name, child = _removable(ns, user, path)
    if want_dir and child.kind != "d":
        raise errors.NotADirectory(f"{path} is not a directory")
    if not want_dir and child.kind == "d":
        raise errors.IsADirectory(f"{path} is a directory: use rmdir")
    if want_dir and child.children:
        raise errors.DirectoryNotEmpty(f"{path} is not empty")
    trash = rules_trash.trash_info(path, child, wall_now, trash_seconds)
    return Unlink(parent.ino, name, now_ns, trash)


def _is_below(parts: list[str], ancestor_parts: list[str]) -> bool:
    """Is the path ``parts`` strictly inside ``ancestor_parts``? Paths are resolved from the
    root without following symlinks and directories have one name, so prefixes decide."""
    return len(parts) > len(ancestor_parts) and parts[:len(ancestor_parts)] == ancestor_parts


RENAME_NOREPLACE = 1  # renameat2(2) flags (linux/fs.h)
RENAME_EXCHANGE = 2


def rename(ns: Namespace, user: Cred, src: str, dst: str, now_ns: int,
           flags: int = 0) -> Rename | Exchange | None:
    """Atomic; replaces ``dst`` as POSIX rename does: a file by a file, an empty directory
    by a directory; never a directory into itself. None: nothing to do (``src`` and ``dst``
    name the same inode: POSIX leaves both names). ``flags`` as renameat2(2):
    RENAME_NOREPLACE refuses an existing ``dst`` (EEXIST, even the same inode), and
    RENAME_EXCHANGE swaps the two names (both must exist; see ``exchange``)."""
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == (RENAME_NOREPLACE
                                                                   | RENAME_EXCHANGE):
        raise errors.InvalidArgument(f"bad rename flags {flags:#x}")
    if flags & RENAME_EXCHANGE:
        return exchange(ns, user, src, dst, now_ns)
    src_parent, src_name = ns.resolve_parent(src, user)
    moved = _existing(ns, src_parent, src_name, src)
    dst_parent, dst_name = ns.resolve_parent(dst, user)
    target = ns.lookup(dst_parent, dst_name)
    if flags & RENAME_NOREPLACE and target is not None:
        raise errors.FileExists(f"{dst} already exists")
    if moved.kind == "d" and _is_below(split_path(dst), split_path(src)):
        raise errors.InvalidArgument(f"cannot move {src} inside itself")
    if target is not None and _is_below(split_path(src), split_path(dst)):
        raise errors.DirectoryNotEmpty(f"{dst} is not empty: {src} is inside it")
    if target is not None and target.ino == moved.ino:
        return None  # as Linux, before any permission check
    ns.check_removable(user, src_parent, moved, src)
    if target is None:
        ns.require(user, dst_parent, W | X, dst)
    else:
        ns.check_removable(user, dst_parent, target, dst)
        if target.kind == "d" and moved.kind != "d":
            raise errors.IsADirectory(f"{dst} is a directory")
        if target.kind != "d" and moved.kind == "d":
            raise errors.NotADirectory(f"{dst} is not a directory")
    if moved.kind == "d" and dst_parent is not src_parent:
        ns.require(user, moved, W, src)  # its ".." changes: as Linux, write permission on it
    if target is not None and target.kind == "d" and target.children:
        raise errors.DirectoryNotEmpty(f"{dst} is not empty")
    return Rename(src_parent.ino, src_name, dst_parent.ino, dst_name, now_ns)


def _existing(ns: Namespace, parent: Inode, name: str, path: str) -> Inode:
    child = ns.lookup(parent, name)
    if child is None:
        raise errors.FileNotFound(f"{path}: no such file or directory")
    return child


def exchange(ns: Namespace, user: Cred, src: str, dst: str, now_ns: int) -> Exchange | None:
    """renameat2(RENAME_EXCHANGE): ``src`` and ``dst`` (both must exist, of any kinds) swap
    places atomically. Each name is taken out of its directory and another put in, so both
    directories need w+x and the sticky rule holds for both entries; a directory that
    changes parent needs write permission on itself (its ".."); neither may be inside the
    other (EINVAL, as Linux). None: both name the same inode (nothing changes)."""
    src_parent, src_name = ns.resolve_parent(src, user)
    a = _existing(ns, src_parent, src_name, src)
    dst_parent, dst_name = ns.resolve_parent(dst, user)
    b = _existing(ns, dst_parent, dst_name, dst)
    src_parts, dst_parts = split_path(src), split_path(dst)
    if _is_below(dst_parts, src_parts) or _is_below(src_parts, dst_parts):
        raise errors.InvalidArgument(f"cannot exchange {src} and {dst}: one is inside the other")
    if a.ino == b.ino:
        return None  # as Linux, before any permission check
    ns.check_removable(user, src_parent, a, src)
    ns.check_removable(user, dst_parent, b, dst)
    if src_parent is not dst_parent:
        for inode, path in ((a, src), (b, dst)):
            if inode.kind == "d":
                ns.require(user, inode, W, path)
    return Exchange(src_parent.ino, src_name, dst_parent.ino, dst_name, now_ns)


# --- attributes -------------------------------------------------------------------------------

MAX_OWNER_ID = (1 << 32) - 2  # (uid_t) -1 means "unchanged" in chown(2)


def set_attributes(ns: Namespace, user: Cred, path: str, now_ns: int, mode: int | None = None,
                   uid: int | None = None, gid: int | None = None,
                   atime_ns: int | None = None, mtime_ns: int | None = None,
                   to_now: bool = False) -> SetAttr:
    """chmod (the owner or the superuser; set-gid dropped for a file outside the caller's
    groups), chown (chown(2): only the superuser gives a file away, the owner may pick one
    of their groups; a non-directory loses its set-id bits), utimens (utimensat(2): setting
    both times to now, ``to_now``, needs ownership or write permission; any explicit time,
    ownership). Every change updates ctime. A non-owner who may write may make the one
    chmod a write makes (access.may_drop_set_id: FUSE's "kill privileges")."""
    inode = ns.resolve(path, user)
    owned = inode.owned()
    new_mode = None
    if mode is not None and not access.owns(user, owned) and access.may_drop_set_id(
            user, owned, mode):
        new_mode = mode & 0o7777  # a writer's "kill privileges" (FUSE, before a write)
    elif mode is not None:
        ns.require_owner(user, inode, path)
        new_mode = access.chmod_mode(user, owned, mode)
    if uid is not None or gid is not None:
        for value in (uid, gid):
            if value is not None and not 0 <= value <= MAX_OWNER_ID:
                raise errors.InvalidArgument(f"bad owner or group id {value}")
        if not access.chown_allowed(user, owned, uid, gid):
            raise errors.NotPermitted(f"{path}: only the superuser gives a file away; its "
                                      "owner may change its group to one they are in")
        now_mode = inode.mode if new_mode is None else new_mode
        cleared = access.mode_after_chown(
            user, access.Owned(inode.uid, inode.gid, now_mode, owned.is_dir))
        if cleared != now_mode:
            new_mode = cleared
    if to_now:
        atime_ns = mtime_ns = now_ns
    if (atime_ns is not None or mtime_ns is not None) and not access.times_allowed(
            user, owned, to_now):
        if to_now:
            raise errors.PermissionDenied(f"{path}: permission denied")
        raise errors.NotPermitted(f"{path}: only the owner may set its times")
    return SetAttr(inode.ino, now_ns, new_mode, uid, gid, atime_ns, mtime_ns)

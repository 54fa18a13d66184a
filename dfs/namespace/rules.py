"""The file-system rules of the tree, as pure functions.

Each rule takes the namespace, the calling user, the request's arguments and the time (and
any config value it needs), checks everything POSIX asks, and returns the journal entry
that makes the change, or raises the DfsError that says why not. Nothing here changes the
namespace or reads a clock: the master commits what a rule returns (nodes/master/*_service.py).
The rules for the trash, for file data and for users are in rules_trash.py, rules_data.py
and rules_users.py.

Access (dfs/namespace/model.py): the owner and admins may do anything; others get the
"other" bits of the mode. Every directory on a path must be searchable (x). Creating or
removing a name needs w+x on its directory; in a sticky directory (mode 1000) only the
owner of the entry or of the directory removes or replaces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

from dfs import errors
from dfs.namespace import quota, rules_trash
from dfs.namespace.entries import Create, Entry, Link, Mkdir, Rename, SetAttr, Symlink, Unlink
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

def check_visible(ns: Namespace, user: str, inode: Inode, path: str) -> None:
    """Another user's private entry (no "other" bits) is not there for this user."""
    if not ns.visible(user, inode):
        raise errors.PermissionDenied(f"{path}: permission denied")


def stat_target(ns: Namespace, user: str, path: str) -> Inode:
    inode = ns.resolve(path, user)
    check_visible(ns, user, inode, path)
    return inode


def listable(ns: Namespace, user: str, path: str) -> Inode:
    """The directory at ``path``, if this user may read it."""
    directory = ns.resolve(path, user)
    if directory.kind != "d":
        raise errors.NotADirectory(f"{path} is not a directory")
    ns.require(user, directory, R, path)
    return directory


def readlink(ns: Namespace, user: str, path: str) -> str:
    inode = ns.resolve(path, user)
    if inode.kind != "l":
        raise errors.InvalidArgument(f"{path} is not a symlink")
    return inode.target


# --- making names -------------------------------------------------------------------------

def _free_name(ns: Namespace, user: str, path: str) -> tuple[Inode, str]:
    """(parent, name) for a new entry at ``path``: w+x on the parent, the name not taken."""
    parent, name = ns.resolve_parent(path, user)
    ns.require(user, parent, W | X, path)
    if name in parent.children:
        raise errors.FileExists(f"{path} already exists")
    return parent, name


def mkdir(ns: Namespace, user: str, path: str, mode: int, now_ns: int) -> Mkdir:
    parent, name = _free_name(ns, user, path)
    quota.check_new_inodes(ns, user)
    return Mkdir(parent.ino, name, ns.next_ino, user, mode & 0o7777, now_ns)


def create(ns: Namespace, user: str, path: str, mode: int, now_ns: int) -> Create:
    """An empty file; FileExists if the name is taken."""
    parent, name = _free_name(ns, user, path)
    quota.check_new_inodes(ns, user)
    return Create(parent.ino, name, ns.next_ino, user, mode & 0o7777, now_ns)


def check_symlink_target(target: str) -> None:
    if not target or "\0" in target or len(target.encode()) > MAX_SYMLINK_BYTES:
        raise errors.InvalidArgument("bad symlink target")


def symlink(ns: Namespace, user: str, path: str, target: str, now_ns: int) -> Symlink:
    """``target`` passed check_symlink_target (at the boundary, before the lock)."""
    parent, name = _free_name(ns, user, path)
    quota.check_new_inodes(ns, user)
    return Symlink(parent.ino, name, ns.next_ino, user, 0o777, now_ns, target)


def link(ns: Namespace, user: str, existing: str, path: str, now_ns: int) -> Link:
    """A hard link: not to a directory, and only by the owner of the file."""
    inode = ns.resolve(existing, user)
    if inode.kind == "d":
        raise errors.NotPermitted("hard links to directories are not allowed")
    ns.require_owner(user, inode, existing)
    parent, name = _free_name(ns, user, path)
    return Link(parent.ino, name, inode.ino, now_ns)


# --- removing and moving ----------------------------------------------------------------------

def _removable(ns: Namespace, user: str, path: str) -> tuple[Inode, str, Inode]:
    """The entry at ``path`` that this user may take out of its directory (to remove or to
    move it). -> (parent directory, name, the entry)."""
    parent, name = ns.resolve_parent(path, user)
    child = ns.lookup(parent, name)
    if child is None:
        raise errors.FileNotFound(f"{path}: no such file or directory")
    check_visible(ns, user, child, path)
    ns.check_removable(user, parent, child, path)
    return parent, name, child


def remove(ns: Namespace, user: str, path: str, want_dir: bool, now_ns: int, wall_now: float,
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


def rename(ns: Namespace, user: str, src: str, dst: str, now_ns: int) -> Rename | None:
    """Atomic; replaces ``dst`` as POSIX rename does: a file by a file, an empty directory
    by a directory; never a directory into itself. None: nothing to do (``src`` and ``dst``
    name the same inode: POSIX leaves both names)."""
    src_parent, src_name, moved = _removable(ns, user, src)
    dst_parent, dst_name = ns.resolve_parent(dst, user)
    ns.require(user, dst_parent, W | X, dst)
    if moved.kind == "d" and _is_below(split_path(dst), split_path(src)):
        raise errors.InvalidArgument(f"cannot move {src} inside itself")
    target = ns.lookup(dst_parent, dst_name)
    if target is not None and target.ino == moved.ino:
        return None
    if target is not None:
        ns.check_removable(user, dst_parent, target, dst)
        if target.kind == "d" and moved.kind != "d":
            raise errors.IsADirectory(f"{dst} is a directory")
        if target.kind != "d" and moved.kind == "d":
            raise errors.NotADirectory(f"{dst} is not a directory")
        if target.kind == "d" and target.children:
            raise errors.DirectoryNotEmpty(f"{dst} is not empty")
    return Rename(src_parent.ino, src_name, dst_parent.ino, dst_name, now_ns)


# --- attributes -------------------------------------------------------------------------------

def set_attributes(ns: Namespace, user: str, path: str, now_ns: int, mode: int | None = None,
                   owner: str | None = None, atime_ns: int | None = None,
                   mtime_ns: int | None = None) -> SetAttr:
    """chmod (owner only), chown (admin only, to a known user), utimens (write permission)."""
    inode = ns.resolve(path, user)
    check_visible(ns, user, inode, path)
    if mode is not None:
        ns.require_owner(user, inode, path)
        mode &= 0o7777
    if owner is not None and owner != inode.owner:
        if not ns.is_admin(user):
            raise errors.NotPermitted(f"{path}: only an admin may change the owner")
        if owner not in ns.users:
            raise errors.InvalidArgument(f"no user {owner}")
    if atime_ns is not None or mtime_ns is not None:
        ns.require(user, inode, W, path)
    return SetAttr(inode.ino, now_ns, mode, owner, atime_ns, mtime_ns)

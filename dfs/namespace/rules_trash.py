"""The trash's rules, as pure functions (see dfs/namespace/rules.py for the conventions).

A regular file whose last link is removed goes to its owner's trash for a while (the
master's ``trash_seconds``; 0 turns the trash off); a hard-linked file only loses a name.
A restore puts the newest trashed version of a path back, making missing parent
directories again; it never replaces what is at that path now. Expired items are purged
by the leader's tick. Times are wall-clock seconds, passed in by the caller.
"""

from __future__ import annotations

from dfs import errors
from dfs.namespace import quota
from dfs.namespace.access import Cred
from dfs.namespace.entries import Mkdir, Purge, Restore, TrashInfo
from dfs.namespace.inode import ROOT_INO, Inode, W, X, split_path
from dfs.namespace.model import Namespace

REMADE_DIR_MODE = 0o700  # a parent directory a restore has to make again: private


def trash_info(path: str, inode: Inode, wall_now: float,
               trash_seconds: float) -> TrashInfo | None:
    """What an unlink of ``inode`` at ``path`` records to keep it in the trash, or None
    when it is freed (or keeps another name)."""
    if trash_seconds > 0 and inode.kind == "f" and inode.nlink == 1:
        return TrashInfo("/" + "/".join(split_path(path)), wall_now, wall_now + trash_seconds)
    return None


def restore(ns: Namespace, user: Cred, path: str, now_ns: int,
            trash_id: str | None = None) -> tuple[list[Mkdir], Restore]:
    """Put the newest trashed version of ``path`` back there (with ``trash_id``: that item of
    the caller's trash, put at ``path`` wherever it was). -> (the mkdir entries of the
    missing parent directories, the Restore entry), to commit in that order. FileExists if
    the path is taken."""
    parts = split_path(path)
    if not parts:
        raise errors.InvalidPath("the root directory is never in the trash")
    where = "/" + "/".join(parts)
    found = ns.trash.newest_at(user.uid, where) if trash_id is None else trash_id
    item = None if found is None else ns.trash.get(found)
    if found is None or item is None or item.uid != user.uid:
        raise errors.FileNotFound(f"{where}: not in your trash" if trash_id is None
                                  else f"trash item {trash_id} is not in your trash")
    made: list[Mkdir] = []
    directory: Inode | None = ns.inodes[ROOT_INO]  # None: inside directories still to make
    parent_ino = ROOT_INO
    walked = ""
    for part in parts[:-1]:
        if directory is not None:
            ns.require(user, directory, X, walked or "/")
        walked += "/" + part
        child = None if directory is None else ns.lookup(directory, part)
        if child is None:
            if directory is not None:
                ns.require(user, directory, W | X, walked)
            ino = ns.next_ino + len(made)
            made.append(Mkdir(parent_ino, part, ino, user.uid, user.gid, REMADE_DIR_MODE,
                              now_ns))
            directory, parent_ino = None, ino
        elif child.kind != "d":
            raise errors.NotADirectory(f"{walked} is not a directory")
        else:
            directory, parent_ino = child, child.ino
    if directory is not None:  # a directory we make is the user's own, and empty
        if parts[-1] in directory.children:
            raise errors.FileExists(f"{where} exists now: move it away, then restore")
        ns.require(user, directory, W | X, where)
    if made:
        quota.check_new_inodes(ns, user.uid, len(made))
    return made, Restore(found, parent_ino, parts[-1], now_ns)


def purge(ns: Namespace, user: Cred, trash_id: str) -> Purge | None:
    """Free one item of the caller's trash now (None: it is not there, or no longer)."""
    item = ns.trash.get(trash_id)
    return Purge((trash_id,)) if item is not None and item.uid == user.uid else None


def empty(ns: Namespace, user: Cred) -> Purge | None:
    """Free the caller's whole trash now (None: it is empty)."""
    mine = tuple(ns.trash.ids_of(user.uid))
    return Purge(mine) if mine else None


def expired(ns: Namespace, wall_now: float) -> Purge | None:
    """The trashed files whose time is up, oldest first (None: none); O(those) with the
    namespace's index, however full the trash."""
    old = tuple(ns.trash.expired(wall_now))
    return Purge(old) if old else None

"""How the entries that change the tree change the namespace: new inodes, hard links,
unlinks (into the trash or for good), restores and purges from the trash, renames and
exchanges. Called by ``Namespace.apply`` (dfs/namespace/model.py) only: like it, they
never fail for an entry that passed the rules' checks, and keep the derived state (the
parent index, usage, chunk references) in step with the inodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfs.namespace.entries import (
    Create,
    Exchange,
    Link,
    Mkdir,
    Mknod,
    Purge,
    Put,
    Rename,
    Restore,
    Symlink,
    Unlink,
)
from dfs.namespace.inode import Inode, TrashItem
from dfs.namespace.shared import shrink_if_sparse, small_int

if TYPE_CHECKING:
    from dfs.namespace.model import Namespace


def new_inode(ns: Namespace, e: Mkdir | Create | Symlink | Mknod | Put, kind: str,
              **extra: Any) -> tuple[Inode, Inode]:
    t = e.time_ns
    uid, gid = (e.uid, e.gid) if e.legacy_owner is None else ns.ids_of(e.legacy_owner)
    inode = Inode(e.ino, kind, small_int(uid), small_int(gid), small_int(e.mode), t, t, t,
                  **extra)
    ns.inodes[inode.ino] = inode
    ns.usage.add(inode)
    ns.refs.add(inode)
    ns.next_ino = max(ns.next_ino, inode.ino + 1)
    parent = ns.inodes[e.parent]
    parent.children[e.name] = inode.ino
    ns.parents.add(inode.ino, parent.ino)
    parent.mtime_ns = parent.ctime_ns = t
    return inode, parent


def link(ns: Namespace, e: Link) -> None:
    parent = ns.inodes[e.parent]
    inode = ns.inodes[e.ino]
    parent.children[e.name] = inode.ino
    ns.parents.add(inode.ino, parent.ino)
    inode.nlink += 1
    parent.mtime_ns = parent.ctime_ns = inode.ctime_ns = e.time_ns


def _drop_link(ns: Namespace, inode: Inode, t: int) -> list[int]:
    """One directory entry fewer for ``inode``; frees it when none is left."""
    if inode.kind == "d":
        inode.nlink = 0  # a directory has exactly one name: removing it removes it
    else:
        inode.nlink -= 1
    inode.ctime_ns = t
    if inode.nlink > 0:
        return []
    _leave_tree(ns, inode)
    ns.usage.remove(inode)
    ns.refs.remove(inode)
    return [c.chunk_id for c in inode.chunks]


def _leave_tree(ns: Namespace, inode: Inode) -> None:
    """``inode`` is in no directory any more (deleted, or in the trash)."""
    del ns.inodes[inode.ino]
    shrink_if_sparse(ns.inodes)  # after mass deletions, the table's room comes back
    ns.parents.forget(inode.ino)


def unlink(ns: Namespace, e: Unlink) -> list[int]:
    parent = ns.inodes[e.parent]
    inode = ns.inodes[parent.children.pop(e.name)]
    shrink_if_sparse(parent.children)
    ns.parents.drop(inode.ino, parent.ino)
    parent.mtime_ns = parent.ctime_ns = e.time_ns
    if inode.kind == "d":
        parent.nlink -= 1
    trash = e.trash
    if trash and inode.kind == "f" and inode.nlink == 1:
        inode.nlink = 0
        inode.ctime_ns = e.time_ns
        _leave_tree(ns, inode)
        ns.trash[str(inode.ino)] = TrashItem(inode.uid, trash.path, trash.deleted_at,
                                             trash.expires, inode)
        return []
    return _drop_link(ns, inode, e.time_ns)


def restore(ns: Namespace, e: Restore) -> None:
    """A trashed file goes back into the tree as ``name`` in ``parent``."""
    item = ns.trash.pop(e.trash_id)
    inode = item.inode
    inode.nlink = 1
    inode.ctime_ns = e.time_ns
    ns.inodes[inode.ino] = inode
    parent = ns.inodes[e.parent]
    parent.children[e.name] = inode.ino
    ns.parents.add(inode.ino, parent.ino)
    parent.mtime_ns = parent.ctime_ns = e.time_ns


def purge(ns: Namespace, e: Purge) -> list[int]:
    """Trashed files are gone for good; returns their chunks (now garbage)."""
    freed: list[int] = []
    for tid in e.trash_ids:
        item = ns.trash.pop(tid, None)
        if item is not None:
            ns.usage.remove(item.inode)
            ns.refs.remove(item.inode)
            freed.extend(c.chunk_id for c in item.inode.chunks)
    return freed


def rename(ns: Namespace, e: Rename) -> list[int]:
    t = e.time_ns
    src_parent = ns.inodes[e.src_parent]
    dst_parent = ns.inodes[e.dst_parent]
    ino = src_parent.children.pop(e.src_name)
    shrink_if_sparse(src_parent.children)
    ns.parents.drop(ino, src_parent.ino)
    moved = ns.inodes[ino]
    freed: list[int] = []
    replaced = dst_parent.children.get(e.dst_name)
    if replaced is not None and replaced != ino:
        old = ns.inodes[replaced]
        if old.kind == "d":
            dst_parent.nlink -= 1
        ns.parents.drop(replaced, dst_parent.ino)
        freed = _drop_link(ns, old, t)
    if replaced != ino:  # moving a name onto another name of the same inode adds none
        ns.parents.add(ino, dst_parent.ino)
    dst_parent.children[e.dst_name] = ino
    if moved.kind == "d" and src_parent is not dst_parent:
        src_parent.nlink -= 1
        dst_parent.nlink += 1
    for d in (src_parent, dst_parent):
        d.mtime_ns = d.ctime_ns = t
    moved.ctime_ns = t
    return freed


def exchange(ns: Namespace, e: Exchange) -> None:
    """The two names swap inodes; a directory that changes parent moves a link (its
    "..") from one parent's count to the other's."""
    src_parent = ns.inodes[e.src_parent]
    dst_parent = ns.inodes[e.dst_parent]
    a, b = src_parent.children[e.src_name], dst_parent.children[e.dst_name]
    src_parent.children[e.src_name], dst_parent.children[e.dst_name] = b, a
    ns.parents.drop(a, src_parent.ino)
    ns.parents.drop(b, dst_parent.ino)
    ns.parents.add(a, dst_parent.ino)
    ns.parents.add(b, src_parent.ino)
    for ino, left, joined in ((a, src_parent, dst_parent), (b, dst_parent, src_parent)):
        if ns.inodes[ino].kind == "d" and left is not joined:
            left.nlink -= 1
            joined.nlink += 1
        ns.inodes[ino].ctime_ns = e.time_ns
    for d in (src_parent, dst_parent):
        d.mtime_ns = d.ctime_ns = e.time_ns

"""The namespace: inodes, directories, files, chunks, users.

Invariants (checked by tests/t1_namespace.py):
- Chunk ids are never reused: ``next_chunk_id`` only grows and is persisted with every
  allocation, so a chunk id names one immutable run of bytes forever. A rewrite of part of
  a file stores new chunks; the old ones become garbage.
- A file's chunk list is sparse (dfs.wire.ChunkRef): ascending indices, each chunk inside
  the file's size and at most ``chunk_size`` long; a missing index, and the rest of a
  short chunk, read as zeros. Holes cost nothing, so a file of any size up to
  dfs.chunks.MAX_FILE_SIZE may store a single chunk.
- Chunk *locations* are not part of the namespace: they are hints the master rebuilds
  from worker reports after every start.
- Every change goes through ``apply(record)`` with a typed entry (dfs/namespace/entries.py)
  that the rules built (dfs/namespace/rules*.py: all ids and times decided beforehand), so
  replaying the journal rebuilds exactly the same state (the entries that change the tree
  are applied by dfs/namespace/tree.py). ``apply`` never fails for an entry that passed
  the rules' checks.
- Inode 1 is the root directory, owned by the admin user, mode 1777: anyone may create
  entries in it, only the owner may remove them.
- Trash: a regular file whose last link is removed by an unlink entry that carries
  ``trash`` leaves the tree but not the namespace. ``trash[str(ino)]`` holds the inode
  (same ino: inode numbers are never reused, so a restore cannot clash), its owner, the
  path it had and when it was deleted and expires. Its chunks stay referenced
  (``live_chunk_ids``) until a ``purge`` entry drops it; ``restore`` puts it back.
- Users: a user's ``uid`` is never reused (``next_uid`` only grows, like inode numbers). A
  revoked name stays in ``revoked`` for good: the rules refuse to create it again, so
  nobody inherits a revoked user's files or revives their sessions. Snapshots written
  before uids existed get them at load, in name order (the same on every load); the
  journal's older adduser entries take the next one in replay order.

Access: the owner (and admins) may do anything; other users get the "other" permission
bits of the mode. Listing a directory shows another user's entries only if their mode
grants the others something (``chmod o+r`` shares a file).

Memory: the master holds every inode, at most 1 KiB a file (issue 12): inodes have slots and
share their empty fields, ids and modes (dfs/namespace/shared.py), the parent index is
compact, and tables emptied by mass deletions are rebuilt small.

Not thread-safe: the master holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import KeysView
from typing import Any

from dfs import errors
from dfs.namespace import access, tree
from dfs.namespace.access import ROOT_UID, Cred
from dfs.namespace.chunk_refs import ChunkRefs
from dfs.namespace.entries import (
    AddUser,
    Alloc,
    Create,
    Entry,
    Exchange,
    Group,
    Init,
    Json,
    Link,
    Member,
    Mkdir,
    Mknod,
    Purge,
    Put,
    Record,
    Rename,
    Renew,
    Restore,
    Revoke,
    SetAttr,
    SetChunks,
    SetGroups,
    SetQuota,
    SetXattr,
    Symlink,
    Unlink,
    Unpend,
    Voter,
    named_ino,
)
from dfs.namespace.inode import (  # also imported from here: ROOT_INO, split_path
    ROOT_INO,
    Inode,
    TrashItem,
    W,
    X,
    split_path,
)
from dfs.namespace.parents import ParentIndex
from dfs.namespace.shared import NO_CHUNKS
from dfs.namespace.trash_index import TrashIndex
from dfs.namespace.usage import Usage
from dfs.namespace.users import NOBODY, User, legacy_uid
from dfs.wire import ChunkRef, DirEntry, Stat

ROOT_MODE = 0o755  # the root is the admin's: users make their own folders (homes) in it

RECENT_REQUESTS = 10000  # request ids remembered for answering retries after a failover


class Namespace:
    def __init__(self) -> None:
        self.inodes: dict[int, Inode] = {}
        self.users: dict[str, User] = {}
        self.next_serial = 1
        self.revoked: set[str] = set()  # names of revoked users: never registered again
        self.retired_uids: set[int] = set()  # uids of revoked users: never given again
        self.groups: dict[str, int] = {}  # group names an admin gave: name -> gid
        self.next_ino = ROOT_INO + 1
        self.next_chunk_id = 1
        self.chunk_size = 0
        # chunk_id -> (owner, expires): allocated, not yet committed
        self.pending: dict[int, tuple[str, float]] = {}
        self.seq = 0  # last applied journal sequence number
        # worker id -> [host, port]: the workers that vote on leadership
        self.voters: dict[str, list[Any]] = {}
        self.members: dict[str, str] = {}  # worker id -> "draining" | "removed" (Member)
        # request id -> inode it created (0): retried requests are answered, not redone
        self.recent: dict[str, int] = {}
        self.trash = TrashIndex()  # str(ino) -> deleted files kept for a while, indexed
        self.parents = ParentIndex()  # derived from the children, never saved
        self.usage = Usage()  # derived from inodes, trash and pending, never saved
        self.refs = ChunkRefs()  # the chunks files list (tree and trash), never saved

    # --- set-up and persistence ------------------------------------------------------

    def initialise(self, chunk_size: int, now_ns: int) -> None:
        self.chunk_size = chunk_size
        self.inodes[ROOT_INO] = Inode(ROOT_INO, "d", ROOT_UID, ROOT_UID, ROOT_MODE, now_ns,
                                      now_ns, now_ns, 2)

    @property
    def initialised(self) -> bool:
        return ROOT_INO in self.inodes

    def to_json(self) -> Json:
        return {
            "format": 1,
            "seq": self.seq,
            "chunk_size": self.chunk_size,
            "next_ino": self.next_ino,
            "next_chunk_id": self.next_chunk_id,
            "users": {u.name: u.to_json() for u in self.users.values()},
            "next_serial": self.next_serial,
            "revoked": sorted(self.revoked),
            "retired_uids": sorted(self.retired_uids),
            "groups": self.groups,
            "pending": [[cid, owner, exp] for cid, (owner, exp) in self.pending.items()],
            "voters": self.voters,
            "members": self.members,
            "recent": self.recent,
            "trash": {tid: item.to_json() for tid, item in self.trash.items()},
            "inodes": [inode.to_json() for inode in self.inodes.values()],
        }

    @classmethod
    def from_json(cls, data: Json) -> Namespace:
        ns = cls()
        ns.seq = data["seq"]
        ns.chunk_size = data["chunk_size"]
        ns.next_ino = data["next_ino"]
        ns.next_chunk_id = data["next_chunk_id"]
        ns._load_users(data)
        ns.pending = {cid: (owner, exp) for cid, owner, exp in data["pending"]}
        ns.voters = data.get("voters", {})
        ns.members = data.get("members", {})
        ns.recent = data.get("recent", {})
        ns.trash = TrashIndex({tid: TrashItem.from_json(item, ns.ids_of)
                               for tid, item in data.get("trash", {}).items()})
        for item in data["inodes"]:
            inode = Inode.from_json(item, ns.ids_of)
            ns.inodes[inode.ino] = inode
        ns.parents = ParentIndex.of((d.ino, d.children.values()) for d in ns.inodes.values())
        files = [*ns.inodes.values(), *(t.inode for t in ns.trash.values())]
        ns.usage = Usage.of(files, [ns.ids_of(owner)[0] for owner, _expires in
                                    ns.pending.values()])
        ns.refs = ChunkRefs.of(files)
        return ns

    def _load_users(self, data: Json) -> None:
        users = data["users"]
        self.users = {name: User.from_json(name, u) for name, u in users.items()}
        self.next_serial = max([int(data.get("next_serial") or data.get("next_uid") or 1),
                                *(u.serial + 1 for u in self.users.values())])
        for name in sorted(n for n, u in users.items() if "uid" not in u and "gid" not in u):
            user = self.users[name]  # a snapshot from before users had any id
            user.serial = self.next_serial
            user.uid = user.gid = legacy_uid(user.admin, user.serial)
            self.next_serial += 1
        self.revoked = set(data.get("revoked", ()))
        self.retired_uids = set(data.get("retired_uids", ()))
        self.groups = dict(data.get("groups", {}))

    # --- lookups ---------------------------------------------------------------------

    def get(self, ino: int) -> Inode:
        try:
            return self.inodes[ino]
        except KeyError:
            raise errors.FileNotFound(f"no inode {ino}") from None

    def resolve(self, path: object, user: Cred | None = None) -> Inode:
        """Inode at ``path``; with ``user``, every directory on the way must be searchable."""
        inode = self.inodes[ROOT_INO]
        walked = ""
        for part in split_path(path):
            if inode.kind != "d":
                raise errors.NotADirectory(f"{walked or '/'} is not a directory")
            if user is not None:
                self.require(user, inode, X, walked or "/")
            walked += "/" + part
            child = inode.children.get(part)
            if child is None:
                raise errors.FileNotFound(f"{walked}: no such file or directory")
            inode = self.inodes[child]
        return inode

    def resolve_parent(self, path: object, user: Cred) -> tuple[Inode, str]:
        """(parent directory inode, name) for creating or removing ``path``."""
        parts = split_path(path)
        if not parts:
            raise errors.InvalidPath("the root directory cannot be created or removed")
        parent_path = "/" + "/".join(parts[:-1])
        parent = self.resolve(parent_path, user)
        if parent.kind != "d":
            raise errors.NotADirectory(f"{parent_path} is not a directory")
        self.require(user, parent, X, parent_path)
        return parent, parts[-1]

    def lookup(self, parent: Inode, name: str) -> Inode | None:
        ino = parent.children.get(name)
        return None if ino is None else self.inodes[ino]

    # --- access ----------------------------------------------------------------------

    def is_admin(self, user: str) -> bool:
        u = self.users.get(user)
        return bool(u and u.admin)

    def ids_of(self, name: str) -> tuple[int, int]:
        """(uid, gid) of user ``name``; nobody's for a name no user has."""
        user = self.users.get(name)
        return (user.uid, user.gid) if user is not None else (NOBODY, NOBODY)

    def user_with_uid(self, uid: int) -> User | None:
        """The (non-admin) user whose uid this is; admins share uid 0 and are None here."""
        for user in self.users.values():
            if user.uid == uid and not user.admin:
                return user
        return None

    def owner_name(self, uid: int) -> str:
        if uid == ROOT_UID:
            return "root"
        user = self.user_with_uid(uid)
        return user.name if user is not None else str(uid)

    def stat(self, inode: Inode) -> Stat:
        """``inode``'s attributes, with its owner's name."""
        return inode.stat(self.owner_name(inode.uid))

    def allowed(self, user: Cred, inode: Inode, want: int) -> bool:
        return access.permitted(user, inode.owned(), want)

    def require(self, user: Cred, inode: Inode, want: int, path: str) -> None:
        if not self.allowed(user, inode, want):
            raise errors.PermissionDenied(f"{path}: permission denied")

    def require_owner(self, user: Cred, inode: Inode, path: str) -> None:
        if not access.owns(user, inode.owned()):
            raise errors.NotPermitted(f"{path}: only the owner may do that")

    def reachable(self, user: Cred, ino: int) -> bool:
        """Is ``ino`` named in a directory that ``user`` reaches from the root through
        directories it may search? O(depth): directories have one parent each."""
        for directory in self.parents.directories(ino):
            while self.allowed(user, self.inodes[directory], X):
                if directory == ROOT_INO:
                    return True
                directory = self.parents.first(directory)
        return ino == ROOT_INO

    def check_removable(self, user: Cred, parent: Inode, child: Inode, path: str) -> None:
        """Write permission on the parent, and the sticky rule: only owners remove."""
        self.require(user, parent, W | X, path)
        if not access.may_unlink_in_sticky(user, parent.owned(), child.owned()):
            raise errors.NotPermitted(f"{path}: the directory is sticky: only the owner of "
                                      "the entry or of the directory may remove it")

    def listdir(self, directory: Inode) -> list[DirEntry]:
        return [DirEntry(name, self.stat(self.inodes[ino]))
                for name, ino in sorted(directory.children.items())]

    def live_chunk_ids(self) -> set[int]:
        """Chunks something still needs: pending, in a file, or in a trashed file."""
        return set(self.pending).union(self.refs.ids())

    def referenced_chunk_ids(self) -> KeysView[int]:
        """Chunks committed in a file or a trashed file (never also pending: a commit
        takes its chunks out of ``pending``, and allocations take ids never used): a
        live view, kept as entries apply, for the master's tick (read under its lock)."""
        return self.refs.ids()

    def trash_of(self, user: Cred) -> list[tuple[str, TrashItem]]:
        """[(trash id, TrashItem)] of ``user`` (the files their uid owned), newest first."""
        return [(tid, self.trash[tid]) for tid in self.trash.ids_of(user.uid)]

    # --- the one way to change anything -------------------------------------------------

    def apply(self, record: Record) -> list[int]:
        """Apply one journal entry. Returns chunk ids that this entry freed."""
        entry = record.entry
        freed = self._apply(entry)
        self.seq = record.seq
        if entry.rid is not None:
            self.recent[entry.rid] = named_ino(entry)
            if len(self.recent) > RECENT_REQUESTS:
                del self.recent[next(iter(self.recent))]  # dicts keep insertion order
        return freed

    def _apply(self, e: Entry) -> list[int]:
        match e:
            case Init():
                self.initialise(e.chunk_size, e.time_ns)
            case AddUser():
                serial = self.next_serial if e.serial is None else e.serial
                if e.gid is None:  # a journal from before POSIX ids
                    uid = gid = legacy_uid(e.admin, serial)
                else:
                    uid, gid = (e.gid if e.uid is None else e.uid), e.gid
                self.users[e.name] = User(e.name, e.stored_key, e.admin, serial, uid, gid,
                                          e.groups)
                self.next_serial = max(self.next_serial, serial + 1)
                self.revoked.discard(e.name)  # only older journals re-add a revoked name
            case Group():
                if e.gid is None:
                    self.groups.pop(e.name, None)
                else:
                    self.groups[e.name] = e.gid
            case SetGroups():
                self.users[e.name].groups = e.groups
            case SetQuota():
                user = self.users[e.name]
                user.quota_bytes, user.quota_inodes = e.bytes, e.inodes
            case Revoke():
                gone = self.users.pop(e.name, None)
                if gone is not None and not gone.admin:
                    self.retired_uids.add(gone.uid)
                self.revoked.add(e.name)
            case Voter():
                self.voters[e.worker_id] = [e.host, e.port]
            case Member():
                self.members[e.worker_id] = e.state
                if e.state == "removed":
                    self.voters.pop(e.worker_id, None)
            case Mkdir():
                _, parent = tree.new_inode(self, e, "d", nlink=2)
                parent.nlink += 1
            case Create():
                tree.new_inode(self, e, "f")
            case Symlink():
                tree.new_inode(self, e, "l", target=e.target, size=len(e.target.encode()))
            case Mknod():
                tree.new_inode(self, e, e.kind, rdev=e.rdev)
            case Link():
                tree.link(self, e)
            case Unlink():
                return tree.unlink(self, e)
            case Restore():
                tree.restore(self, e)
            case Purge():
                return tree.purge(self, e)
            case Rename():
                return tree.rename(self, e)
            case Exchange():
                tree.exchange(self, e)
            case SetAttr():
                self._setattr(e)
            case SetXattr():
                self.inodes[e.ino].set_xattr(e.name, e.value, e.time_ns)
            case Alloc():
                for cid in range(e.first, e.first + e.count):
                    self.pending[cid] = (e.owner, e.expires)
                self.usage.pending(self.ids_of(e.owner)[0], e.count)
                self.next_chunk_id = max(self.next_chunk_id, e.first + e.count)
            case Renew():
                for cid in e.chunk_ids:
                    if self.pending.get(cid, (None,))[0] == e.owner:
                        self.pending[cid] = (e.owner, e.expires)
            case SetChunks():
                return self._set_chunks(e.ino, e.chunks, e.size, e.time_ns, e.mode)
            case Put():
                if e.create:
                    tree.new_inode(self, e, "f")
                keep_mode = e.create or e.legacy_owner is not None  # older lines: ignored
                return self._set_chunks(e.ino, e.chunks, e.size, e.time_ns,
                                        None if keep_mode else e.mode)
            case Unpend():
                for cid in e.chunk_ids:
                    self._unpend(cid)
            case _:
                raise TypeError(f"not a journal entry: {e!r}")
        return []

    def _setattr(self, e: SetAttr) -> None:
        inode = self.inodes[e.ino]
        if e.mode is not None:
            inode.mode = e.mode
        uid, gid = (e.uid, e.gid) if e.legacy_owner is None else self.ids_of(e.legacy_owner)
        if uid is not None or gid is not None:
            self.usage.remove(inode)
            inode.uid = inode.uid if uid is None else uid
            inode.gid = inode.gid if gid is None else gid
            self.usage.add(inode)
        if e.atime_ns is not None:
            inode.atime_ns = e.atime_ns
        if e.mtime_ns is not None:
            inode.mtime_ns = e.mtime_ns
        inode.ctime_ns = e.time_ns

    def _set_chunks(self, ino: int, chunks: tuple[ChunkRef, ...], size: int,
                    time_ns: int, mode: int | None = None) -> list[int]:
        """Commit: the file's content becomes exactly ``chunks`` (and its mode ``mode``, a
        write clearing set-id bits); returns the dropped ones."""
        inode = self.inodes[ino]
        if mode is not None:
            inode.mode = mode
        new = list(chunks)
        keep = {c.chunk_id for c in new}
        freed = [c.chunk_id for c in inode.chunks if c.chunk_id not in keep]
        for c in new:
            self._unpend(c.chunk_id)
        self.usage.remove(inode)
        self.refs.remove(inode)
        inode.chunks = new or NO_CHUNKS
        inode.size = size
        self.usage.add(inode)
        self.refs.add(inode)
        inode.mtime_ns = inode.ctime_ns = time_ns
        return freed

    def _unpend(self, chunk_id: int) -> None:
        pending = self.pending.pop(chunk_id, None)
        if pending is not None:
            self.usage.pending(self.ids_of(pending[0])[0], -1)

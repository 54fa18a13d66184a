"""The namespace: inodes, directories, files, chunks, users.

Invariants (checked by tests/t1_model.py):
- Chunk ids are never reused: ``next_chunk_id`` only grows and is persisted with every
  allocation, so a chunk id names one immutable run of bytes forever. A rewrite of part of
  a file stores new chunks; the old ones become garbage.
- A file's size is the sum of its chunks' lengths; every chunk but the last is full.
- Chunk *locations* are not part of the namespace: they are hints the master rebuilds
  from worker reports after every start.
- Every change goes through ``apply(entry)`` with an entry the master built (all ids and
  times decided beforehand), so replaying the journal rebuilds exactly the same state.
  ``apply`` never fails for an entry that passed the master's checks.
- Inode 1 is the root directory, owned by the admin user, mode 1777: anyone may create
  entries in it, only the owner may remove them.
- Trash: a regular file whose last link is removed by an unlink entry that carries
  ``trash`` leaves the tree but not the namespace. ``trash[str(ino)]`` holds the inode
  (same ino: inode numbers are never reused, so a restore cannot clash), its owner, the
  path it had and when it was deleted and expires. Its chunks stay referenced
  (``live_chunk_ids``) until a ``purge`` entry drops it; ``restore`` puts it back.

Access: the owner (and admins) may do anything; other users get the "other" permission
bits of the mode. Listing a directory shows another user's entries only if their mode
grants the others something (``chmod o+r`` shares a file).

Not thread-safe: the master holds its lock around every call.
"""

from dataclasses import dataclass, field

from dfs import errors
from dfs.wire import ChunkRef, DirEntry, Stat

ROOT_INO = 1
ROOT_OWNER = "admin"
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_SYMLINK_BYTES = 4096

R, W, X = 4, 2, 1
RECENT_REQUESTS = 10000  # request ids remembered for answering retries after a failover


@dataclass
class Inode:
    ino: int
    kind: str  # "d", "f", "l"
    owner: str
    mode: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int = 1
    size: int = 0
    chunks: list = field(default_factory=list)  # of ChunkRef (files)
    children: dict = field(default_factory=dict)  # name -> ino (directories)
    target: str = ""  # symlinks

    def stat(self):
        return Stat(self.ino, self.kind, self.mode, self.owner, self.size, self.atime_ns,
                    self.mtime_ns, self.ctime_ns, self.nlink)

    def to_json(self):
        data = {"ino": self.ino, "kind": self.kind, "owner": self.owner, "mode": self.mode,
                "atime_ns": self.atime_ns, "mtime_ns": self.mtime_ns,
                "ctime_ns": self.ctime_ns, "nlink": self.nlink}
        if self.kind == "f":
            data["size"] = self.size
            data["chunks"] = [list(c) for c in self.chunks]
        elif self.kind == "d":
            data["children"] = self.children
        else:
            data["target"] = self.target
            data["size"] = self.size
        return data

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        data["chunks"] = [ChunkRef(*c) for c in data.get("chunks", [])]
        return cls(**data)


@dataclass
class TrashItem:
    owner: str
    path: str  # where the file was when deleted (a restore puts it back there)
    deleted_at: float  # wall time, decided by the master and journaled
    expires: float
    inode: Inode

    def to_json(self):
        return {"owner": self.owner, "path": self.path, "deleted_at": self.deleted_at,
                "expires": self.expires, "inode": self.inode.to_json()}

    @classmethod
    def from_json(cls, data):
        return cls(data["owner"], data["path"], data["deleted_at"], data["expires"],
                   Inode.from_json(data["inode"]))


@dataclass
class User:
    name: str
    stored_key: str  # sha256 of the key, hex (dfs.auth.stored_form)
    admin: bool = False


def split_path(path):
    """Validate an absolute path and return its components; raise a clear error if bad."""
    if not isinstance(path, str):
        raise errors.InvalidPath("path must be a string")
    if "\0" in path:
        raise errors.InvalidPath("path contains a NUL byte")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise errors.NameTooLong(f"path longer than {MAX_PATH_BYTES} bytes")
    if not path.startswith("/"):
        raise errors.InvalidPath(f"path must be absolute: {path!r}")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        check_name(part)
    return parts


def check_name(name):
    if not isinstance(name, str) or not name:
        raise errors.InvalidPath("empty file name")
    if name in (".", ".."):
        raise errors.InvalidPath(f"'{name}' is not allowed in a path")
    if "/" in name or "\0" in name:
        raise errors.InvalidPath(f"bad character in file name {name!r}")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise errors.NameTooLong(f"file name longer than {MAX_NAME_BYTES} bytes")


class Namespace:
    def __init__(self):
        self.inodes = {}
        self.users = {}
        self.next_ino = ROOT_INO + 1
        self.next_chunk_id = 1
        self.chunk_size = 0
        self.pending = {}  # chunk_id -> (owner, expires): allocated, not yet committed
        self.seq = 0  # last applied journal sequence number
        self.voters = {}  # worker id -> [host, port]: the workers that vote on leadership
        self.recent = {}  # request id -> inode it created (0): retried requests are answered
        self.trash = {}  # str(ino) -> TrashItem: deleted files kept for a while

    # --- set-up and persistence ------------------------------------------------------

    def initialise(self, chunk_size, now_ns):
        self.chunk_size = chunk_size
        self.inodes[ROOT_INO] = Inode(ROOT_INO, "d", ROOT_OWNER, 0o1777, now_ns, now_ns, now_ns, 2)

    @property
    def initialised(self):
        return ROOT_INO in self.inodes

    def to_json(self):
        return {
            "format": 1,
            "seq": self.seq,
            "chunk_size": self.chunk_size,
            "next_ino": self.next_ino,
            "next_chunk_id": self.next_chunk_id,
            "users": {u.name: {"stored_key": u.stored_key, "admin": u.admin}
                      for u in self.users.values()},
            "pending": [[cid, owner, exp] for cid, (owner, exp) in self.pending.items()],
            "voters": self.voters,
            "recent": self.recent,
            "trash": {tid: item.to_json() for tid, item in self.trash.items()},
            "inodes": [inode.to_json() for inode in self.inodes.values()],
        }

    @classmethod
    def from_json(cls, data):
        ns = cls()
        ns.seq = data["seq"]
        ns.chunk_size = data["chunk_size"]
        ns.next_ino = data["next_ino"]
        ns.next_chunk_id = data["next_chunk_id"]
        ns.users = {name: User(name, u["stored_key"], u["admin"]) for name, u in data["users"].items()}
        ns.pending = {cid: (owner, exp) for cid, owner, exp in data["pending"]}
        ns.voters = data.get("voters", {})
        ns.recent = data.get("recent", {})
        ns.trash = {tid: TrashItem.from_json(item) for tid, item in data.get("trash", {}).items()}
        for item in data["inodes"]:
            inode = Inode.from_json(item)
            inode.children = {k: int(v) for k, v in inode.children.items()}
            ns.inodes[inode.ino] = inode
        return ns

    # --- lookups ---------------------------------------------------------------------

    def get(self, ino):
        try:
            return self.inodes[ino]
        except KeyError:
            raise errors.FileNotFound(f"no inode {ino}") from None

    def resolve(self, path, user=None):
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

    def resolve_parent(self, path, user):
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

    def lookup(self, parent, name):
        ino = parent.children.get(name)
        return None if ino is None else self.inodes[ino]

    # --- access ----------------------------------------------------------------------

    def is_admin(self, user):
        u = self.users.get(user)
        return bool(u and u.admin)

    def allowed(self, user, inode, want):
        if inode.owner == user or self.is_admin(user):
            return True
        return (inode.mode & want) == want

    def require(self, user, inode, want, path):
        if not self.allowed(user, inode, want):
            raise errors.PermissionDenied(f"{path}: permission denied")

    def require_owner(self, user, inode, path):
        if inode.owner != user and not self.is_admin(user):
            raise errors.NotPermitted(f"{path}: only the owner may do that")

    def visible(self, user, inode):
        return inode.owner == user or self.is_admin(user) or (inode.mode & 0o7) != 0

    def check_removable(self, user, parent, child, path):
        """Write permission on the parent, and the sticky rule: only owners remove."""
        self.require(user, parent, W | X, path)
        if parent.mode & 0o1000 and child.owner != user and parent.owner != user \
                and not self.is_admin(user):
            raise errors.PermissionDenied(f"{path}: permission denied")

    def listdir(self, directory, user):
        return [DirEntry(name, self.inodes[ino].stat())
                for name, ino in sorted(directory.children.items())
                if self.visible(user, self.inodes[ino])]

    def live_chunk_ids(self):
        """Chunks something still needs: pending, in a file, or in a trashed file."""
        ids = set(self.pending)
        for inode in self.inodes.values():
            if inode.kind == "f":
                ids.update(c.chunk_id for c in inode.chunks)
        for item in self.trash.values():
            ids.update(c.chunk_id for c in item.inode.chunks)
        return ids

    def trash_of(self, user):
        """[(trash id, TrashItem)] of ``user``, newest first."""
        mine = [(tid, item) for tid, item in self.trash.items() if item.owner == user]
        return sorted(mine, key=lambda x: (x[1].deleted_at, int(x[0])), reverse=True)

    # --- the one way to change anything -------------------------------------------------

    def apply(self, entry):
        """Apply one journal entry. Returns chunk ids that this entry freed."""
        handler = getattr(self, "_apply_" + entry["op"])
        freed = handler(entry) or []
        self.seq = entry["seq"]
        if "rid" in entry:
            self.recent[entry["rid"]] = entry.get("ino", 0)
            if len(self.recent) > RECENT_REQUESTS:
                del self.recent[next(iter(self.recent))]  # dicts keep insertion order
        return freed

    def _new_inode(self, e, kind, **extra):
        t = e["time_ns"]
        inode = Inode(e["ino"], kind, e["owner"], e["mode"], t, t, t, **extra)
        self.inodes[inode.ino] = inode
        self.next_ino = max(self.next_ino, inode.ino + 1)
        parent = self.inodes[e["parent"]]
        parent.children[e["name"]] = inode.ino
        parent.mtime_ns = parent.ctime_ns = t
        return inode, parent

    def _apply_init(self, e):
        self.initialise(e["chunk_size"], e["time_ns"])

    def _apply_mkdir(self, e):
        _, parent = self._new_inode(e, "d", nlink=2)
        parent.nlink += 1

    def _apply_create(self, e):
        self._new_inode(e, "f")

    def _apply_symlink(self, e):
        self._new_inode(e, "l", target=e["target"], size=len(e["target"].encode()))

    def _apply_link(self, e):
        parent = self.inodes[e["parent"]]
        inode = self.inodes[e["ino"]]
        parent.children[e["name"]] = inode.ino
        inode.nlink += 1
        parent.mtime_ns = parent.ctime_ns = inode.ctime_ns = e["time_ns"]

    def _drop_link(self, inode, t):
        """One directory entry fewer for ``inode``; frees it when none is left."""
        if inode.kind == "d":
            inode.nlink = 0  # a directory has exactly one name: removing it removes it
        else:
            inode.nlink -= 1
        inode.ctime_ns = t
        if inode.nlink > 0:
            return []
        del self.inodes[inode.ino]
        return [c.chunk_id for c in inode.chunks]

    def _apply_unlink(self, e):
        parent = self.inodes[e["parent"]]
        inode = self.inodes[parent.children.pop(e["name"])]
        parent.mtime_ns = parent.ctime_ns = e["time_ns"]
        if inode.kind == "d":
            parent.nlink -= 1
        trash = e.get("trash")
        if trash and inode.kind == "f" and inode.nlink == 1:
            inode.nlink = 0
            inode.ctime_ns = e["time_ns"]
            del self.inodes[inode.ino]
            self.trash[str(inode.ino)] = TrashItem(inode.owner, trash["path"],
                                                   trash["deleted_at"], trash["expires"], inode)
            return []
        return self._drop_link(inode, e["time_ns"])

    def _apply_restore(self, e):
        """A trashed file goes back into the tree as ``name`` in ``parent``."""
        item = self.trash.pop(e["trash_id"])
        inode = item.inode
        inode.nlink = 1
        inode.ctime_ns = e["time_ns"]
        self.inodes[inode.ino] = inode
        parent = self.inodes[e["parent"]]
        parent.children[e["name"]] = inode.ino
        parent.mtime_ns = parent.ctime_ns = e["time_ns"]

    def _apply_purge(self, e):
        """Trashed files are gone for good; returns their chunks (now garbage)."""
        freed = []
        for tid in e["trash_ids"]:
            item = self.trash.pop(tid, None)
            if item is not None:
                freed.extend(c.chunk_id for c in item.inode.chunks)
        return freed

    def _apply_rename(self, e):
        t = e["time_ns"]
        src_parent = self.inodes[e["src_parent"]]
        dst_parent = self.inodes[e["dst_parent"]]
        ino = src_parent.children.pop(e["src_name"])
        moved = self.inodes[ino]
        freed = []
        replaced = dst_parent.children.get(e["dst_name"])
        if replaced is not None and replaced != ino:
            old = self.inodes[replaced]
            if old.kind == "d":
                dst_parent.nlink -= 1
            freed = self._drop_link(old, t)
        dst_parent.children[e["dst_name"]] = ino
        if moved.kind == "d" and src_parent is not dst_parent:
            src_parent.nlink -= 1
            dst_parent.nlink += 1
        for d in (src_parent, dst_parent):
            d.mtime_ns = d.ctime_ns = t
        moved.ctime_ns = t
        return freed

    def _apply_setattr(self, e):
        inode = self.inodes[e["ino"]]
        for name in ("mode", "owner", "atime_ns", "mtime_ns"):
            if e.get(name) is not None:
                setattr(inode, name, e[name])
        inode.ctime_ns = e["time_ns"]

    def _apply_alloc(self, e):
        for cid in range(e["first"], e["first"] + e["count"]):
            self.pending[cid] = (e["owner"], e["expires"])
        self.next_chunk_id = max(self.next_chunk_id, e["first"] + e["count"])

    def _apply_setchunks(self, e):
        """Commit: the file's content becomes exactly ``chunks``; returns the dropped ones."""
        inode = self.inodes[e["ino"]]
        new = [ChunkRef(*c) for c in e["chunks"]]
        keep = {c.chunk_id for c in new}
        freed = [c.chunk_id for c in inode.chunks if c.chunk_id not in keep]
        for c in new:
            self.pending.pop(c.chunk_id, None)
        inode.chunks = new
        inode.size = e["size"]
        inode.mtime_ns = inode.ctime_ns = e["time_ns"]
        return freed

    def _apply_put(self, e):
        """Create-or-replace a whole file in one step (``dfs put``): no half state."""
        if e["create"]:
            self._new_inode(e, "f")
        return self._apply_setchunks(e)

    def _apply_unpend(self, e):
        for cid in e["chunk_ids"]:
            self.pending.pop(cid, None)

    def _apply_adduser(self, e):
        self.users[e["name"]] = User(e["name"], e["stored_key"], e["admin"])

    def _apply_voter(self, e):
        self.voters[e["worker_id"]] = [e["host"], e["port"]]

    def _apply_revoke(self, e):
        self.users.pop(e["name"], None)

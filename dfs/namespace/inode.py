"""The records the namespace is made of (inodes, trashed files, users) and the rules for
names and paths. The namespace itself, and how it changes, is in dfs/namespace/model.py."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dfs import errors
from dfs.namespace.access import Owned
from dfs.namespace.entries import Json, chunks_from_json
from dfs.namespace.shared import NO_CHILDREN, NO_CHUNKS, NO_XATTRS, small_int
from dfs.wire import XATTR_SECURITY, XATTR_USER, ChunkRef, Stat

ROOT_INO = 1
ADMIN_NAME = "admin"  # the first user, made with the cluster: its admin
MAX_NAME_BYTES = 255
# A path the master resolves: far above PATH_MAX (4096), because the kernel limits only the
# path a program passes, relative to its working directory: in a folder deep inside the
# mount, a PATH_MAX-long relative path names a longer path from the mount's root.
MAX_PATH_BYTES = 64 * 1024
MAX_SYMLINK_BYTES = 4096

R, W, X = 4, 2, 1


@dataclass(slots=True)  # slots: no per-inode __dict__ (the master holds every inode)
class Inode:
    ino: int
    kind: str  # "d", "f", "l"; "p", "s", "c", "b" (fifo, socket, devices: metadata only)
    uid: int
    gid: int
    mode: int  # the 12 permission bits (the kind says the file type)
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int = 1
    size: int = 0
    # files: sparse, ascending index; replaced whole, never changed in place
    chunks: Sequence[ChunkRef] = field(default_factory=lambda: NO_CHUNKS)
    # name -> ino: a directory's own dict; other kinds share an empty read-only one
    children: dict[str, int] = field(default_factory=lambda: NO_CHILDREN)
    target: str = ""  # symlinks
    rdev: int = 0  # devices
    # extended attributes, name -> value (dfs/namespace/rules_xattr.py): on the inode, so
    # every hard link, a rename, the trash, snapshots and the journal keep them. Replaced
    # whole by set_xattr (most inodes have none and share NO_XATTRS).
    xattrs: Mapping[str, bytes] = field(default_factory=lambda: NO_XATTRS)

    def __post_init__(self) -> None:
        if self.kind == "d" and self.children is NO_CHILDREN:
            self.children = {}

    def owned(self) -> Owned:
        return Owned(self.uid, self.gid, self.mode, self.kind == "d")

    def stat(self, owner: str = "") -> Stat:
        """``owner``: the owner's name to show (Namespace.stat fills it in)."""
        return Stat(self.ino, self.kind, self.mode, owner or str(self.uid), self.size,
                    self.atime_ns, self.mtime_ns, self.ctime_ns, self.nlink,
                    sum(c.length for c in self.chunks), self.uid, self.gid, self.rdev,
                    self.xattr_kinds())

    def xattr_kinds(self) -> int:
        """Stat.xattrs: the namespaces (user., security.) this inode has attributes in."""
        kinds = 0
        for name in self.xattrs:
            kinds |= XATTR_USER if name.startswith("user.") else (
                XATTR_SECURITY if name.startswith("security.") else 0)
        return kinds

    def set_xattr(self, name: str, value: bytes | None, time_ns: int) -> None:
        """Extended attribute ``name`` becomes ``value`` (None: removed); ctime changes."""
        if value is not None:
            self.xattrs = {**self.xattrs, name: value}
        elif name in self.xattrs:
            self.xattrs = {k: v for k, v in self.xattrs.items() if k != name} or NO_XATTRS
        self.ctime_ns = time_ns

    def to_json(self) -> Json:
        data: Json = {"ino": self.ino, "kind": self.kind, "uid": self.uid, "gid": self.gid,
                      "mode": self.mode, "atime_ns": self.atime_ns, "mtime_ns": self.mtime_ns,
                      "ctime_ns": self.ctime_ns, "nlink": self.nlink}
        if self.rdev:
            data["rdev"] = self.rdev
        if self.xattrs:  # values in base64: JSON has no bytes
            data["xattrs"] = {k: base64.b64encode(v).decode() for k, v in self.xattrs.items()}
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
    def from_json(cls, data: Json, ids_of: Callable[[str], tuple[int, int]]) -> Inode:
        """``ids_of(name)``: (uid, gid) of a user, for JSON from before POSIX ids. What
        many inodes repeat is shared (shared.py): ids, modes, equal times, empty fields."""
        data = dict(data)
        data["chunks"] = list(chunks_from_json(data.get("chunks", []))) or NO_CHUNKS
        data["xattrs"] = {k: base64.b64decode(v)
                          for k, v in data.get("xattrs", {}).items()} or NO_XATTRS
        if data.get("children"):  # else the default: a directory's own empty dict
            data["children"] = {k: int(v) for k, v in data["children"].items()}
        else:
            data.pop("children", None)
        if "owner" in data:
            data["uid"], data["gid"] = ids_of(data.pop("owner"))
        for key in ("uid", "gid", "mode"):
            data[key] = small_int(data[key])
        if data["mtime_ns"] == data["atime_ns"]:
            data["mtime_ns"] = data["atime_ns"]
        if data["ctime_ns"] == data["mtime_ns"]:
            data["ctime_ns"] = data["mtime_ns"]
        return cls(**data)


@dataclass(slots=True)
class TrashItem:
    uid: int  # whose trash: the file's owner when it was deleted
    path: str  # where the file was when deleted (a restore puts it back there)
    deleted_at: float  # wall time, decided by the master and journaled
    expires: float
    inode: Inode

    def to_json(self) -> Json:
        return {"uid": self.uid, "path": self.path, "deleted_at": self.deleted_at,
                "expires": self.expires, "inode": self.inode.to_json()}

    @classmethod
    def from_json(cls, data: Json, ids_of: Callable[[str], tuple[int, int]]) -> TrashItem:
        uid = data["uid"] if "uid" in data else ids_of(data["owner"])[0]
        return cls(uid, data["path"], data["deleted_at"], data["expires"],
                   Inode.from_json(data["inode"], ids_of))


def as_path(path: object) -> str:
    """A path argument as it came over the wire: it must be a string (checked again, with
    everything else, when it is split)."""
    if type(path) is not str:  # exact: a str subclass could answer split() as it likes
        raise errors.InvalidPath("path must be a string")
    return path


def split_path(path: object) -> list[str]:
    """Validate an absolute path and return its components; raise a clear error if bad."""
    path = as_path(path)
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


def check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise errors.InvalidPath("empty file name")
    if name in (".", ".."):
        raise errors.InvalidPath(f"'{name}' is not allowed in a path")
    if "/" in name or "\0" in name:
        raise errors.InvalidPath(f"bad character in file name {name!r}")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise errors.NameTooLong(f"file name longer than {MAX_NAME_BYTES} bytes")

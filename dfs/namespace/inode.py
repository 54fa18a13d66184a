"""The records the namespace is made of (inodes, trashed files, users) and the rules for
names and paths. The namespace itself, and how it changes, is in dfs/namespace/model.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from dfs import errors
from dfs.namespace.entries import Json, chunks_from_json
from dfs.wire import ChunkRef, Stat

ROOT_INO = 1
ROOT_OWNER = "admin"
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_SYMLINK_BYTES = 4096

R, W, X = 4, 2, 1


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
    chunks: list[ChunkRef] = field(default_factory=list)  # files: sparse, ascending index
    children: dict[str, int] = field(default_factory=dict)  # name -> ino (directories)
    target: str = ""  # symlinks

    def stat(self) -> Stat:
        return Stat(self.ino, self.kind, self.mode, self.owner, self.size, self.atime_ns,
                    self.mtime_ns, self.ctime_ns, self.nlink, sum(c.length for c in self.chunks))

    def to_json(self) -> Json:
        data: Json = {"ino": self.ino, "kind": self.kind, "owner": self.owner, "mode": self.mode,
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
    def from_json(cls, data: Json) -> Inode:
        data = dict(data)
        data["chunks"] = list(chunks_from_json(data.get("chunks", [])))
        return cls(**data)


@dataclass
class TrashItem:
    owner: str
    path: str  # where the file was when deleted (a restore puts it back there)
    deleted_at: float  # wall time, decided by the master and journaled
    expires: float
    inode: Inode

    def to_json(self) -> Json:
        return {"owner": self.owner, "path": self.path, "deleted_at": self.deleted_at,
                "expires": self.expires, "inode": self.inode.to_json()}

    @classmethod
    def from_json(cls, data: Json) -> TrashItem:
        return cls(data["owner"], data["path"], data["deleted_at"], data["expires"],
                   Inode.from_json(data["inode"]))


@dataclass
class User:
    """``uid``: never reused (Namespace.next_uid), so a session can tell the user it logged
    in as from a later one of the same name."""

    name: str
    stored_key: str  # sha256 of the key, hex (dfs.auth.stored_form)
    admin: bool = False
    uid: int = 0
    quota_bytes: int | None = None  # None: no limit (dfs/namespace/quota.py)
    quota_inodes: int | None = None

    def to_json(self) -> Json:
        data: Json = {"stored_key": self.stored_key, "admin": self.admin, "uid": self.uid}
        if self.quota_bytes is not None or self.quota_inodes is not None:
            data["quota"] = [self.quota_bytes, self.quota_inodes]
        return data

    @classmethod
    def from_json(cls, name: str, data: Json) -> User:
        return cls(name, data["stored_key"], data["admin"], data.get("uid", 0),
                   *data.get("quota", (None, None)))


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

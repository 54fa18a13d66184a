"""Typed journal entries: the one schema of every change to the namespace.

Each entry is a frozen dataclass that knows its ``op`` name and its JSON form. The master's
rules (dfs/namespace/rules*.py) build them with every id and time decided beforehand; the
model applies them (``Namespace.apply``); the journal and the standby carry them as JSON.

On disk an entry is one JSON object: ``{"op": ..., <fields>, "seq": n, "ep": epoch}``. The
keys and values are exactly those of the journal lines and snapshots written before these
classes existed, so an old data directory replays. Optional fields (``rid``, ``trash``,
setattr's changes) are left out when unset. ``seq`` and ``ep`` are not part of an entry:
``Record`` pairs an entry with its place in the journal.

How a metadata server uses them (nodes/master/state.py, replication.py)::

    record = Record(ns.seq + 1, epoch, entry)
    journal.append([record])            # writes record.to_line(), fsyncs
    replicator.replicate([record])      # sends record.to_line(); the standby parses
                                        # Record.from_line() and applies the same
    freed = ns.apply(record)            # chunk ids the change freed
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from dfs.wire import ChunkRef

Json = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One change. ``rid``: the client's request id, remembered so that a retry after a
    failover is answered instead of done twice (Namespace.recent)."""

    op: ClassVar[str] = ""
    rid: str | None = dataclasses.field(default=None, kw_only=True)

    def to_json(self) -> Json:
        data: Json = {"op": self.op}
        rid = None
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "rid":
                rid = value
            elif value is not None:
                data[f.name] = _plain(value)
        if rid is not None:
            data["rid"] = rid
        return data

    @classmethod
    def decode(cls, data: Json) -> Entry:
        """The entry of this class in ``data`` (its op, seq and ep already taken out)."""
        return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, TrashInfo):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):  # ChunkRef and tuples of ids: JSON lists
        return [_plain(v) for v in value]
    return value


def chunks_from_json(items: list[list[int]]) -> tuple[ChunkRef, ...]:
    """A file's chunk list as JSON has it: ``[chunk id, version, length, crc, index]`` per
    stored chunk (sparse, ascending index). Lists written before files could have holes
    have four numbers and every index: each chunk's index is its place in the list."""
    return tuple(ChunkRef(c[0], c[1], c[2], c[3], c[4] if len(c) == 5 else index)
                 for index, c in enumerate(items))


def _chunks(data: Json) -> Json:
    return {**data, "chunks": chunks_from_json(data["chunks"])}


# --- cluster and users ----------------------------------------------------------------------

@dataclass(frozen=True)
class Init(Entry):
    """The first entry: the root directory, and the chunk size fixed for the cluster."""

    op: ClassVar[str] = "init"
    chunk_size: int
    time_ns: int


@dataclass(frozen=True)
class AddUser(Entry):
    """A new user (dfs/namespace/users.py). ``serial``, ``uid``, ``gid`` and ``groups`` are
    decided by the rules; in journals written before POSIX ids the line has no ``gid``
    (its "uid" was the serial, or absent: ``apply`` takes the next serial in replay order)
    and ``apply`` derives the ids as users.legacy_uid says."""

    op: ClassVar[str] = "adduser"
    name: str
    admin: bool
    stored_key: str  # dfs.auth.stored_form of the key: the key itself is never kept
    serial: int | None = None
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()

    @classmethod
    def decode(cls, data: Json) -> Entry:
        data = dict(data)
        if "gid" not in data:
            data["serial"] = data.pop("uid", None)
        return cls(**{**data, "groups": tuple(data.get("groups", ()))})


@dataclass(frozen=True)
class Group(Entry):
    """An admin names group ``gid`` ``name`` (``gid`` None: the name is removed)."""

    op: ClassVar[str] = "group"
    name: str
    gid: int | None

    def to_json(self) -> Json:  # None means "removed" here, so it is kept, not left out
        return {"op": self.op, "name": self.name, "gid": self.gid,
                **({"rid": self.rid} if self.rid is not None else {})}


@dataclass(frozen=True)
class SetGroups(Entry):
    """User ``name``'s supplementary groups become exactly ``groups``."""

    op: ClassVar[str] = "setgroups"
    name: str
    groups: tuple[int, ...]

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**{**data, "groups": tuple(data["groups"])})


@dataclass(frozen=True)
class SetQuota(Entry):
    """An admin sets user ``name``'s limits: bytes stored and inodes owned (None: none)."""

    op: ClassVar[str] = "quota"
    name: str
    bytes: int | None
    inodes: int | None

    def to_json(self) -> Json:  # None means "no limit" here, so it is kept, not left out
        return {"op": self.op, "name": self.name, "bytes": self.bytes, "inodes": self.inodes,
                **({"rid": self.rid} if self.rid is not None else {})}


@dataclass(frozen=True)
class Revoke(Entry):
    """The user's key is dead and the name is reserved for good (Namespace.revoked)."""

    op: ClassVar[str] = "revoke"
    name: str


@dataclass(frozen=True)
class Voter(Entry):
    """A worker joins the electorate (journaled, so both metadata servers agree on it)."""

    op: ClassVar[str] = "voter"
    worker_id: str
    host: str
    port: int


@dataclass(frozen=True)
class Member(Entry):
    """An admin changes a worker's membership (nodes/master/membership.py): ``state`` is
    "draining" (no new chunks; its chunks are copied elsewhere) or "removed" (out of the
    electorate for good, its id may not join again). One voter per entry, never more."""

    op: ClassVar[str] = "member"
    worker_id: str
    state: str


# --- the tree ---------------------------------------------------------------------------------

LEGACY_ID = -1  # uid/gid of an entry written before POSIX ids: see ``legacy_owner``


def legacy(data: Json) -> Json:
    """An entry's JSON from before POSIX ids names its owner by user name ("owner"): keep
    the name (``legacy_owner``, ids LEGACY_ID) for ``apply`` to turn into that user's ids."""
    if "owner" not in data:
        return data
    data = dict(data)
    data["legacy_owner"] = data.pop("owner")
    data.setdefault("uid", LEGACY_ID)
    data.setdefault("gid", LEGACY_ID)
    return data


@dataclass(frozen=True)
class NewInode(Entry):
    """What every entry that makes an inode says: where, which number, whose (uid, gid),
    what mode. ``legacy_owner``: the owner's user name in a journal line from before
    POSIX ids (uid and gid are then LEGACY_ID, and ``apply`` looks the name up)."""

    parent: int
    name: str
    ino: int
    uid: int
    gid: int
    mode: int
    time_ns: int
    legacy_owner: str | None = dataclasses.field(default=None, kw_only=True)

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**legacy(data))


@dataclass(frozen=True)
class Mkdir(NewInode):
    op: ClassVar[str] = "mkdir"


@dataclass(frozen=True)
class Create(NewInode):
    """An empty regular file."""

    op: ClassVar[str] = "create"


@dataclass(frozen=True)
class Symlink(NewInode):
    op: ClassVar[str] = "symlink"
    target: str


@dataclass(frozen=True)
class Mknod(NewInode):
    """A special file, metadata only: ``kind`` "p" (fifo), "s" (socket), "c" or "b" (a
    character or block device numbered ``rdev``). A fifo's pipe and a socket's endpoint
    are the local kernel's objects on the inode, as on NFS."""

    op: ClassVar[str] = "mknod"
    kind: str
    rdev: int = 0


@dataclass(frozen=True)
class Link(Entry):
    """A new name ``name`` in ``parent`` for the existing inode ``ino``."""

    op: ClassVar[str] = "link"
    parent: int
    name: str
    ino: int
    time_ns: int


@dataclass(frozen=True)
class TrashInfo:
    """Where a file was and when it was deleted (wall time, decided by the master)."""

    path: str
    deleted_at: float
    expires: float


@dataclass(frozen=True)
class Unlink(Entry):
    """Remove the name ``name`` in ``parent`` (a file, or an empty directory). With ``trash``
    the file's last link sends it to the trash instead of freeing it."""

    op: ClassVar[str] = "unlink"
    parent: int
    name: str
    time_ns: int
    trash: TrashInfo | None = None

    @classmethod
    def decode(cls, data: Json) -> Entry:
        trash = data.get("trash")
        return cls(**{**data, "trash": TrashInfo(**trash) if trash else None})


@dataclass(frozen=True)
class Restore(Entry):
    """A trashed file goes back into the tree as ``name`` in ``parent``."""

    op: ClassVar[str] = "restore"
    trash_id: str
    parent: int
    name: str
    time_ns: int


@dataclass(frozen=True)
class Purge(Entry):
    """Trashed files are gone for good."""

    op: ClassVar[str] = "purge"
    trash_ids: tuple[str, ...]

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**{**data, "trash_ids": tuple(data["trash_ids"])})


@dataclass(frozen=True)
class Rename(Entry):
    """Atomic move; replaces what is at the destination (the rules decided it may)."""

    op: ClassVar[str] = "rename"
    src_parent: int
    src_name: str
    dst_parent: int
    dst_name: str
    time_ns: int


@dataclass(frozen=True)
class Exchange(Entry):
    """renameat2(RENAME_EXCHANGE): the two names swap their inodes, atomically (the rules
    checked both exist and neither is inside the other)."""

    op: ClassVar[str] = "exchange"
    src_parent: int
    src_name: str
    dst_parent: int
    dst_name: str
    time_ns: int


@dataclass(frozen=True)
class SetAttr(Entry):
    """chmod / chown / utimens: the fields left None do not change. ``legacy_owner``: a
    chown to a user, by name, in a journal line from before POSIX ids."""

    op: ClassVar[str] = "setattr"
    ino: int
    time_ns: int
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None
    legacy_owner: str | None = dataclasses.field(default=None, kw_only=True)

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**legacy(data))


@dataclass(frozen=True)
class SetXattr(Entry):
    """setxattr / removexattr: inode ``ino``'s extended attribute ``name`` becomes ``value``
    (None: removed), ctime ``time_ns`` (dfs/namespace/rules_xattr.py decided it may). In
    JSON the value is base64 ("value" left out when removed)."""

    op: ClassVar[str] = "setxattr"
    ino: int
    name: str
    value: bytes | None
    time_ns: int

    def to_json(self) -> Json:
        data = super().to_json()
        if self.value is not None:
            data["value"] = base64.b64encode(self.value).decode()
        return data

    @classmethod
    def decode(cls, data: Json) -> Entry:
        value = data.get("value")
        return cls(**{**data, "value": None if value is None else base64.b64decode(value)})


# --- data ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Alloc(Entry):
    """Chunk ids ``first`` .. ``first + count - 1`` are pending for ``owner`` until
    committed or ``expires`` (wall time)."""

    op: ClassVar[str] = "alloc"
    owner: str
    first: int
    count: int
    expires: float


@dataclass(frozen=True)
class Renew(Entry):
    """A writer still holding uploaded, uncommitted chunks (a file open a long time) keeps
    them: those of ``chunk_ids`` pending for ``owner`` now expire at ``expires``."""

    op: ClassVar[str] = "renew"
    owner: str
    chunk_ids: tuple[int, ...]
    expires: float

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**{**data, "chunk_ids": tuple(data["chunk_ids"])})


@dataclass(frozen=True)
class SetChunks(Entry):
    """Commit: file ``ino``'s content becomes exactly ``chunks``."""

    op: ClassVar[str] = "setchunks"
    ino: int
    size: int
    chunks: tuple[ChunkRef, ...]
    time_ns: int
    mode: int | None = None  # the file's mode when the write clears its set-id bits

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**_chunks(data))


@dataclass(frozen=True)
class Put(Entry):
    """Create-or-replace a whole file in one step (``dfs put``): no half state."""

    op: ClassVar[str] = "put"
    create: bool
    parent: int
    name: str
    ino: int
    uid: int
    gid: int
    mode: int
    size: int
    time_ns: int
    chunks: tuple[ChunkRef, ...]
    legacy_owner: str | None = dataclasses.field(default=None, kw_only=True)

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**_chunks(legacy(data)))


@dataclass(frozen=True)
class Unpend(Entry):
    """Allocated chunks given up (abandoned, or expired): garbage now."""

    op: ClassVar[str] = "unpend"
    chunk_ids: tuple[int, ...]

    @classmethod
    def decode(cls, data: Json) -> Entry:
        return cls(**{**data, "chunk_ids": tuple(data["chunk_ids"])})


ENTRY_TYPES: tuple[type[Entry], ...] = (
    Init, AddUser, Group, SetGroups, SetQuota, Revoke, Voter, Member, Mkdir, Create, Symlink,
    Mknod, Exchange,
    Link, Unlink, Restore, Purge, Rename, SetAttr, Alloc, Renew, SetChunks, Put, Unpend,
    SetXattr)
BY_OP: dict[str, type[Entry]] = {cls.op: cls for cls in ENTRY_TYPES}


def named_ino(entry: Entry) -> int:
    """The inode an entry names (0 if none): what a retry of its request is answered with."""
    if isinstance(entry, Mknod):
        return entry.ino
    if isinstance(entry, (Mkdir, Create, Symlink, Link, SetAttr, SetChunks, Put, SetXattr)):
        return entry.ino
    return 0


def entry_from_json(data: Json) -> Entry:
    """The entry in one journal object (``seq`` and ``ep``, if there, are ignored)."""
    fields = {k: v for k, v in data.items() if k not in ("op", "seq", "ep")}
    try:
        cls = BY_OP[data["op"]]
    except KeyError:
        raise ValueError(f"unknown journal entry {data.get('op')!r}") from None
    return cls.decode(fields)


@dataclass(frozen=True)
class Record:
    """An entry at its place in the journal: sequence number and the leader's epoch."""

    seq: int
    epoch: int | None
    entry: Entry

    def to_json(self) -> Json:
        data = self.entry.to_json()
        data["seq"] = self.seq
        if self.epoch is not None:
            data["ep"] = self.epoch
        return data

    def to_line(self) -> str:
        """The compact JSON of a journal line (and of a replicated entry)."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Json) -> Record:
        return cls(data["seq"], data.get("ep"), entry_from_json(data))

    @classmethod
    def from_line(cls, line: str | bytes) -> Record:
        return cls.from_json(json.loads(line))

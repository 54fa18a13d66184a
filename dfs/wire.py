"""What crosses rpyc: only plain tuples of str/bytes/int/float/bool/None.

rpyc sends those by value; anything else (lists, dicts, named tuples, dataclasses,
bytearray, memoryview) becomes a remote proxy costing one round trip per attribute. So
every service returns ``to_wire(...)`` of the records below and every caller rebuilds
them with ``from_wire``. This module is the one place the wire format is decided.
"""

from typing import NamedTuple


class Stat(NamedTuple):
    """A namespace entry as clients see it."""

    ino: int
    kind: str  # "d" directory, "f" file, "l" symlink
    mode: int  # permission bits only
    owner: str
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int

    @property
    def is_dir(self):
        return self.kind == "d"


class DirEntry(NamedTuple):
    name: str
    stat: Stat


class ChunkRef(NamedTuple):
    """One chunk of a file: ids are never reused, so (chunk_id, version) names its bytes."""

    chunk_id: int
    version: int
    length: int
    crc: int


class Replica(NamedTuple):
    worker_id: str
    host: str
    port: int
    kind: str  # "chunks" (primary copy) or "backups"


class ReadChunk(NamedTuple):
    ref: ChunkRef
    replicas: tuple  # of Replica, primary first
    token: str


class FileLayout(NamedTuple):
    """What a reader needs: attributes plus every chunk with its replicas and token."""

    stat: Stat
    chunk_size: int
    chunks: tuple  # of ReadChunk


class WriteTarget(NamedTuple):
    chunk_id: int
    version: int
    replicas: tuple  # of Replica, primary first
    token: str  # allows writing this chunk
    read_token: str  # allows reading it back before the file is committed


class WrittenChunk(NamedTuple):
    """A chunk the client stored, with the workers that acknowledged it."""

    ref: ChunkRef
    stored_on: tuple  # of (worker id, kind); empty for a chunk the file already had


class WorkerStatus(NamedTuple):
    worker_id: str
    host: str
    port: int
    alive: bool
    chunks: int
    used: int
    free: int
    load: int
    seconds_since_heartbeat: float


def stat_to_wire(stat):
    return tuple(stat)


def stat_from_wire(data):
    return Stat(*data)


def entries_to_wire(entries):
    return tuple((e.name, tuple(e.stat)) for e in entries)


def entries_from_wire(data):
    return [DirEntry(name, Stat(*stat)) for name, stat in data]


def replicas_to_wire(replicas):
    return tuple(tuple(r) for r in replicas)


def replicas_from_wire(data):
    return tuple(Replica(*r) for r in data)


def layout_to_wire(layout):
    return (tuple(layout.stat), layout.chunk_size,
            tuple((tuple(c.ref), replicas_to_wire(c.replicas), c.token) for c in layout.chunks))


def layout_from_wire(data):
    stat, chunk_size, chunks = data
    return FileLayout(Stat(*stat), chunk_size, tuple(
        ReadChunk(ChunkRef(*ref), replicas_from_wire(replicas), token)
        for ref, replicas, token in chunks))


def targets_to_wire(targets):
    return tuple((t.chunk_id, t.version, replicas_to_wire(t.replicas), t.token, t.read_token)
                 for t in targets)


def targets_from_wire(data):
    return [WriteTarget(cid, ver, replicas_from_wire(reps), token, read_token)
            for cid, ver, reps, token, read_token in data]


def written_to_wire(written):
    return tuple((tuple(w.ref), tuple(tuple(s) for s in w.stored_on)) for w in written)


def written_from_wire(data):
    return [WrittenChunk(ChunkRef(*ref), tuple((str(wid), str(kind)) for wid, kind in stored))
            for ref, stored in data]


def written_from_read(chunk, new):
    """The commit record of a ReadChunk: with its replicas if ``new``, else bare."""
    stored = tuple((r.worker_id, r.kind) for r in chunk.replicas) if new else ()
    return WrittenChunk(chunk.ref, stored)


def workers_to_wire(workers):
    return tuple(tuple(w) for w in workers)


def workers_from_wire(data):
    return [WorkerStatus(*w) for w in data]


def plain(value):
    """Deep-convert lists/dicts to tuples of pairs so they cross by value (for small dicts)."""
    if isinstance(value, dict):
        return tuple((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value

"""What crosses rpyc: only plain tuples of str/bytes/int/float/bool/None.

rpyc sends those by value; anything else (lists, dicts, named tuples, dataclasses,
bytearray, memoryview) becomes a remote proxy costing one round trip per attribute. So
every service returns ``..._to_wire(...)`` of the records below and every caller rebuilds
them with ``..._from_wire``. This package is the one place the wire format is decided: the
comment above each pair of functions gives the tuple layout. The records are kept by area
(dfs.wire.files: the namespace and a file's data; dfs.wire.cluster: the cluster and its
administration; dfs.wire.base: ``Wire`` and ``plain``) and every name is imported from
here, ``dfs.wire``.
"""

from dfs.wire.base import (
    Wire,
    plain,
)
from dfs.wire.cluster import (
    FSCK_FIXABLE,
    ClusterStatus,
    Event,
    FsckProblem,
    FsckReport,
    FsckResult,
    StatFs,
    UserUsage,
    WorkerMember,
    WorkerStatus,
    events_from_wire,
    events_to_wire,
    fsck_report_from_wire,
    fsck_report_to_wire,
    fsck_result_from_wire,
    fsck_result_to_wire,
    members_from_wire,
    members_to_wire,
    statfs_from_wire,
    statfs_to_wire,
    status_from_wire,
    status_to_wire,
    usage_from_wire,
    workers_from_wire,
    workers_to_wire,
)
from dfs.wire.files import (
    LOCK_EOF,
    XATTR_SECURITY,
    XATTR_USER,
    ChunkRef,
    DirEntry,
    FileLayout,
    LockAnswer,
    LockRange,
    PutResult,
    ReadChunk,
    Replica,
    Stat,
    TrashEntry,
    WriteTarget,
    WrittenChunk,
    entries_from_wire,
    entries_to_wire,
    layout_from_wire,
    layout_to_wire,
    lock_answer_from_wire,
    lock_answer_to_wire,
    put_result_from_wire,
    put_result_to_wire,
    replicas_from_wire,
    replicas_to_wire,
    stat_from_wire,
    stat_to_wire,
    stats_from_wire,
    stats_to_wire,
    targets_from_wire,
    targets_to_wire,
    trash_from_wire,
    trash_to_wire,
    written_from_read,
    written_from_wire,
    written_to_wire,
)

__all__ = [
    "Wire", "plain",
    # dfs.wire.files
    "Stat", "XATTR_USER", "XATTR_SECURITY", "DirEntry", "ChunkRef", "Replica", "ReadChunk",
    "FileLayout", "WriteTarget", "WrittenChunk", "PutResult", "TrashEntry", "stat_to_wire",
    "stat_from_wire", "entries_to_wire", "entries_from_wire", "replicas_to_wire",
    "stats_to_wire", "stats_from_wire",
    "replicas_from_wire", "layout_to_wire", "layout_from_wire", "targets_to_wire",
    "targets_from_wire", "written_to_wire", "written_from_wire", "written_from_read",
    "put_result_to_wire", "put_result_from_wire", "trash_to_wire", "trash_from_wire",
    "LOCK_EOF", "LockRange", "LockAnswer", "lock_answer_to_wire", "lock_answer_from_wire",
    # dfs.wire.cluster
    "WorkerStatus", "StatFs", "UserUsage", "usage_from_wire", "FSCK_FIXABLE", "FsckProblem",
    "FsckReport", "FsckResult", "ClusterStatus", "Event", "workers_to_wire",
    "workers_from_wire", "statfs_to_wire", "statfs_from_wire", "status_to_wire",
    "status_from_wire", "events_to_wire", "events_from_wire", "fsck_report_to_wire",
    "fsck_report_from_wire", "fsck_result_to_wire", "fsck_result_from_wire", "WorkerMember",
    "members_to_wire", "members_from_wire",
]

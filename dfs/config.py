"""Typed configuration, one frozen dataclass per role.

Built once in a ``main()`` (the CLI or LocalCluster) and passed down; nothing here reads
files relative to the working directory. Each field says what it is for; ``validate()``
turns a bad value into an InvalidArgument with a clear message.

Every default lives here once, as a field: anything else that needs one (an argparse
default, another class) reads it with ``default(MasterConfig, "lease")``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dfs.errors import InvalidArgument

DEFAULT_MASTER_PORT = 18861
DEFAULT_SHADOW_PORT = 18862
DEFAULT_WORKER_BASE_PORT = 18870
METRICS_PORT_OFFSET = 1000
"""A node's HTTP port (/metrics; a metadata server's status page at /) is its rpyc port
plus this unless set: 19861, 19862, 19870+ for `dfs up`'s nodes."""
METRICS_OFF = -1
MIB = 1024 * 1024
BLOCK_SIZE = 64 * 1024  # one CRC32C per block of a chunk

Address = tuple[str, int]


def default(config_class: type, name: str) -> Any:
    """The default value of field ``name`` of one of the dataclasses below.

    ``Any`` on purpose: the field's own annotation says what it is, and callers use it as
    an argparse default or as another field's default."""
    for item in dataclasses.fields(config_class):
        if item.name != name:
            continue
        if item.default is not dataclasses.MISSING:
            return item.default
        if item.default_factory is not dataclasses.MISSING:
            return item.default_factory()
        raise InvalidArgument(f"{config_class.__name__}.{name} has no default")
    raise InvalidArgument(f"{config_class.__name__} has no field {name!r}")


def parse_address(text: str, default_port: int = DEFAULT_MASTER_PORT) -> Address:
    """'host:port' or 'host' -> (host, port)."""
    text = text.strip()
    if not text:
        raise InvalidArgument("empty address")
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        port_number = int(port)
    except ValueError:
        raise InvalidArgument(f"bad port in address {text!r}") from None
    if not 0 < port_number < 65536:
        raise InvalidArgument(f"port out of range in address {text!r}")
    return host.strip("[]") or "127.0.0.1", port_number


def parse_addresses(text: str) -> tuple[Address, ...]:
    """'h1:p1,h2:p2' -> ((h1, p1), (h2, p2))."""
    return tuple(parse_address(part) for part in text.split(",") if part.strip())


def format_addresses(addresses: Iterable[Address]) -> str:
    return ",".join(f"{host}:{port}" for host, port in addresses)


def _require(condition: object, message: str) -> None:
    if not condition:
        raise InvalidArgument(message)


def _check_metrics(port: int | None) -> None:
    _require(port is None or METRICS_OFF <= port < 65536,
             f"metrics port must be a port number, 0 (any) or {METRICS_OFF} (off)")


def metrics_port(node_port: int, configured: int | None) -> int | None:
    """The port a node's HTTP server binds (0: any free one), or None when it is off.
    Unset, it is the node's port + METRICS_PORT_OFFSET, any free one past 65535."""
    if configured is None:
        port = node_port + METRICS_PORT_OFFSET if node_port else 0
        return port if port < 65536 else 0
    return None if configured == METRICS_OFF else configured


@dataclass(frozen=True)
class MasterConfig:
    data_dir: str
    """Holds cache-metadata/ (snapshot + journal) and cluster.json (secrets)."""
    host: str = "127.0.0.1"
    port: int = DEFAULT_MASTER_PORT
    chunk_size: int = 4 * MIB
    """Chunk size for new files; fixed when the cluster is initialised."""
    replication: int = 2
    heartbeat_interval: float = 1.0
    """How often workers report (sent to them at registration)."""
    dead_after: float = 10.0
    """A worker silent this long is dead and its chunks are re-replicated."""
    snapshot_every: int = 1000
    """Mutations at least between snapshots (and a journal a quarter of the snapshot's
    size: nodes/master/snapshots.py); the journal is rotated after each."""
    journal_reserve: int = MIB
    """Bytes kept allocated past the journal's end: when they cannot be kept (the metadata
    disk is full) changes are refused with ENOSPC, except deletions, which use them."""
    open_registration: bool = False
    """Accept `dfs register` without the join token from loopback peers (the local cluster)."""
    gc_grace: float = 600.0
    """Seconds an allocated, uncommitted chunk is kept before it is garbage."""
    token_ttl: float = 600.0
    """Lifetime of the chunk tokens handed to clients."""
    tick_interval: float = 0.5
    role: str = "master"
    """"master" or "shadow": the same code; the role only names it and breaks ties."""
    peer: Address | None = None
    """(host, port) of the other metadata server, or None to run alone."""
    lease: float = 3.0
    """Seconds a voter's lease lasts; a failover takes about one lease."""
    lock_lease: float = 15.0
    """Seconds a mount's file locks (flock, fcntl) outlive its last call to the leader:
    a mount renews them every quarter of it, a dead one's are freed after it. Also the
    grace period of a new leader, in which mounts reclaim their locks (nodes/master/locks.py)."""
    join_token: str = ""
    """The cluster's join token; empty: read (or create) DATA/join-token."""
    tls: bool | None = None
    """TLS on this server's port and its connections (dfs.tls); None: on unless it
    listens on loopback only ($DFS_TLS=1/0 forces it)."""
    trash_seconds: float = 24 * 3600.0
    """How long a deleted file stays in its owner's trash before its chunks are freed;
    0 frees them at once (no trash)."""
    low_space: float = 0.10
    """Free space counts as low under this share of the live workers' space: then the
    leader purges the trash, oldest deleted first, until it is above again
    (nodes/master/trash_pressure.py), and `dfs status` warns."""
    low_space_bytes: int = 0
    """When set, "low" is under this many free bytes (on the workers, all copies counted)
    instead of the share ``low_space``."""
    login_failures: int = 10
    """Failed logins from one host, or as one name, within ``login_window`` seconds after
    which further logins from it (as it) are refused until the window ends."""
    login_window: float = 60.0
    login_timeout: float = 10.0
    """Seconds a connection may stay open without logging in (on a worker: without a call
    its token or signature allowed); then it is closed. Limits: nodes/server_limits.py."""
    idle_timeout: float = 600.0
    """Seconds a logged-in connection may sit idle before it is closed (clients reconnect)."""
    max_connections: int = 1024
    """Connections this server holds at once (a thread each); more are refused at accept."""
    max_connections_per_peer: int = 256
    """Connections from one address at once; more are refused at accept."""
    metrics_port: int | None = None
    """This node's read-only HTTP port: /metrics (Prometheus), and on a metadata server /
    (the status page). None: ``port`` + METRICS_PORT_OFFSET (a free port when ``port`` is
    0); 0: a free port; METRICS_OFF (-1): no HTTP server."""
    metrics_host: str = "127.0.0.1"
    """The address the HTTP port listens on: loopback unless set (to the node's own host,
    say, for a Prometheus elsewhere). What it shows is read-only but not secret-free:
    workers, capacity, who changed something when (never paths or keys)."""
    events_bytes: int = 64 * MIB
    """Bytes the audit log (cache-metadata/events*.jsonl, nodes/master/events.py) may take:
    rotated in four files, the oldest dropped."""

    def validate(self) -> MasterConfig:
        _require(self.events_bytes >= MIB, "events_bytes must be at least 1 MiB")
        _check_metrics(self.metrics_port)
        _require(self.login_failures >= 1 and self.login_window > 0,
                 "login limits must be positive")
        _require(self.trash_seconds >= 0, "trash time must not be negative")
        _require(0 <= self.low_space < 1, "low space share must be between 0 and 1")
        _require(self.low_space_bytes >= 0, "low space bytes must not be negative")
        _require(self.role in ("master", "shadow"), "role must be master or shadow")
        _require(self.role == "master" or self.peer, "a shadow needs --peer (the master)")
        _require(0.5 <= self.lease <= 60, "lease must be between 0.5 and 60 seconds")
        _require(1 <= self.lock_lease <= 600, "lock lease must be between 1 and 600 seconds")
        _require(0 <= self.port < 65536, "master port out of range")
        _require(BLOCK_SIZE <= self.chunk_size <= 64 * MIB and self.chunk_size % BLOCK_SIZE == 0,
                 f"chunk size must be a multiple of {BLOCK_SIZE} between 64 KiB and 64 MiB")
        _require(1 <= self.replication <= 5, "replication must be between 1 and 5")
        _require(self.dead_after > self.heartbeat_interval, "dead_after must exceed the heartbeat")
        _require(self.snapshot_every >= 1, "snapshot_every must be at least 1")
        _require(self.journal_reserve >= 0, "journal_reserve must not be negative")
        return self

    @property
    def metadata_dir(self) -> str:
        return os.path.join(self.data_dir, "cache-metadata")


@dataclass(frozen=True)
class WorkerConfig:
    data_dir: str
    """Holds chunks/ (primary copies), backups/ (backup copies) and worker-id."""
    masters: tuple[Address, ...]
    """((host, port), ...) of the metadata servers."""
    join_token: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_WORKER_BASE_PORT
    tls: bool | None = default(MasterConfig, "tls")
    """As the masters' (MasterConfig.tls)."""
    capacity: int = 0
    """Bytes this worker may use; 0 means the free space of its disk."""
    disk_reserve: int = 16 * MIB
    """Bytes of its disk a worker leaves free: its own small files (voter.json, checksums)
    still fit, and a chunk that would eat into it is refused before its first byte
    (NoSpace) instead of failing with ENOSPC half-way."""
    scrub_bytes_per_second: int = 4 * MIB
    """How fast the scrubber re-reads stored chunks to verify their checksums; 0: never."""
    keep_quarantine: float = 7 * 86400.0
    """Seconds a corrupt copy is kept aside (DATA/quarantine, for a post-mortem) before the
    scrubber deletes it (with scrubbing off, it stays); its room counts as used until then."""
    lease: float = default(MasterConfig, "lease")
    """Seconds a lease this worker grants as a voter lasts (the masters' lease)."""
    upload_idle: float = 120.0
    """Seconds a partial upload may go without a piece before it is dropped (its file
    descriptor closed, its temp file removed)."""
    login_timeout: float = default(MasterConfig, "login_timeout")
    idle_timeout: float = default(MasterConfig, "idle_timeout")
    max_connections: int = default(MasterConfig, "max_connections")
    max_connections_per_peer: int = default(MasterConfig, "max_connections_per_peer")
    """The masters' connection bounds, the same here (MasterConfig says what each is)."""
    metrics_port: int | None = default(MasterConfig, "metrics_port")
    metrics_host: str = default(MasterConfig, "metrics_host")
    """This worker's HTTP port for /metrics, as the masters' (MasterConfig.metrics_port)."""

    def validate(self) -> WorkerConfig:
        _check_metrics(self.metrics_port)
        _require(self.masters, "a worker needs at least one master address")
        _require(0 <= self.port < 65536, "worker port out of range")
        hex_digits = all(c in "0123456789abcdef" for c in self.join_token)
        _require(len(self.join_token) == 64 and hex_digits,
                 "a worker needs the cluster's join token (64 hex digits)")
        _require(self.capacity >= 0, "capacity must not be negative")
        _require(self.disk_reserve >= 0, "disk reserve must not be negative")
        _require(self.scrub_bytes_per_second >= 0, "scrub rate must not be negative")
        _require(self.upload_idle > 0, "upload_idle must be positive")
        return self


@dataclass(frozen=True)
class ClientConfig:
    masters: tuple[Address, ...]
    user: str
    key: str
    cache_dir: str = ""
    """On-disk chunk cache; empty disables it."""
    renew_every: float = 120.0
    """Seconds between an open file's renewals of its uploaded, uncommitted chunks (the
    master frees them after its gc_grace, 600 s by default): well under that."""
    cache_bytes: int = 512 * MIB
    piece_size: int = MIB
    """Bytes per data call to a worker: rpyc is fastest at about 1 MiB."""
    timeout: float = 30.0
    """Deadline for one data call to a worker (the mount's --timeout)."""
    master_timeout: float = 5.0
    """Deadline for one metadata call: they take milliseconds, so a leader that does not
    answer in time is treated as gone (a paused leader then costs this much, not more)."""
    failover_deadline: float = 60.0
    """How long to keep retrying the metadata servers before a clear error."""
    no_workers_wait: float = 10.0
    """How long a "no active workers" answer is asked again before it is raised (never
    longer than failover_deadline): a master that has just restarted gives it until the
    workers have reported again, a cluster that really has none still says so."""
    parallel_chunks: int = 4
    """Chunks uploaded or downloaded at once by one file operation."""
    write_back_bytes: int = 256 * MIB
    """One budget for the bytes written and not yet stored, of every file this client
    (a whole mount) has open. When it is full a writer stores buffered chunks (its own,
    then idle files', partial ones too) and waits for uploads: memory stays bounded."""
    read_buffer_bytes: int = 64 * MIB
    """Chunks kept in memory after reading, and read ahead, by every open file together
    (least recently used first out); a file's are freed when it is closed."""
    fsck_deadline: float = 120.0
    """How long `dfs fsck` waits for the check (and with --repair, the repairs)."""
    register_timeout: float = 10.0
    """Deadline for the `dfs register` call (the master hashes the new key)."""
    register_deadline: float = 30.0
    """How long `dfs register` keeps retrying the metadata servers."""

    def validate(self) -> ClientConfig:
        _require(self.masters, "no master address: run `dfs register` first")
        _require(self.user and self.key, "auth file has no user or key")
        _require(64 * 1024 <= self.piece_size <= 16 * MIB, "piece size out of range")
        _require(self.timeout > 0 and self.failover_deadline > 0, "timeouts must be positive")
        _require(self.no_workers_wait >= 0, "no_workers_wait must not be negative")
        _require(self.write_back_bytes >= MIB and self.read_buffer_bytes >= 0,
                 "the write-back budget must be at least 1 MiB, read buffers not negative")
        return self


@dataclass(frozen=True)
class ClusterConfig:
    """A local cluster: what `dfs up` and LocalCluster start."""

    data_dir: str
    workers: int = 4
    base_port: int = DEFAULT_MASTER_PORT
    """Master on base_port, shadow on base_port + 1, workers from base_port + 9."""
    mount_dir: str = ""
    shadow: bool = True
    chunk_size: int = default(MasterConfig, "chunk_size")
    dead_after: float = default(MasterConfig, "dead_after")
    heartbeat_interval: float = default(MasterConfig, "heartbeat_interval")
    snapshot_every: int = default(MasterConfig, "snapshot_every")
    lease: float = default(MasterConfig, "lease")
    lock_lease: float = default(MasterConfig, "lock_lease")
    """The masters' --lock-lease (MasterConfig.lock_lease)."""
    trash_seconds: float = default(MasterConfig, "trash_seconds")
    """How long deleted files stay in the trash (the masters' --trash-hours)."""
    scrub_bytes_per_second: int = default(WorkerConfig, "scrub_bytes_per_second")
    """The workers' scrub rate (--scrub-rate, bytes per second)."""
    worker_capacity: int = default(WorkerConfig, "capacity")
    """Bytes each worker may use (--capacity); 0: the free space of its disk."""
    low_space: float = default(MasterConfig, "low_space")
    """The masters' --low-space (MasterConfig.low_space)."""
    tls: bool | None = None
    """TLS on every node (True/False), or None: off, as every node listens on loopback."""
    root_mode: int | None = None
    """The root folder's mode once the cluster serves (None: as made, the admin's 0755).
    Tests use 0o1777: a shared sticky root, as /tmp, that every test user may create in."""
    extra_env: dict[str, str] = field(default_factory=dict)

    def validate(self) -> ClusterConfig:
        _require(0 <= self.workers <= 64, "workers must be between 0 and 64")
        _require(0 <= self.base_port < 65000, "base port out of range")
        return self

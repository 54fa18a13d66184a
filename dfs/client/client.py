"""DfsClient: the one API used by the CLI, the mount, the backup watcher and the tests.

    with DfsClient.from_auth_file() as dfs:
        dfs.put("notes.txt", "/notes.txt")
        print([e.name for e in dfs.listdir("/")])
        with dfs.open("/notes.txt") as f:
            head = f.read(100)

Metadata calls go to the leader metadata server (dfs.client.connections.MasterLink: pooled,
authenticated, failing over); chunk bytes go straight to the workers (dfs.client.transfer;
whole files in dfs.client.bulk). A ``put`` is acknowledged only after every chunk is on its
replicas and the master has journaled the new file; with a single live worker the file is
stored with one copy and ``PutResult.under_replicated`` says how many chunks lack their
second copy.

Thread-safe: the mount calls it from many threads.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from dfs import auth, errors, paths, wire
from dfs.client import bulk
from dfs.client.admin import AdminCalls
from dfs.client.cache import ChunkCache
from dfs.client.connections import MasterLink, WorkerLinks
from dfs.client.files import DfsFile
from dfs.client.memory import ReadBuffers, WriteBudget
from dfs.client.renewer import Renewer
from dfs.client.transfer import Transfer
from dfs.client.trash import TrashCalls
from dfs.config import Address, ClientConfig, default, parse_addresses
from dfs.wire import ClusterStatus, FsckProblem, FsckReport, PutResult, StatFs, TrashEntry

__all__ = ["DfsClient", "FsckProblem", "FsckReport", "PutResult", "TrashEntry", "register"]

log = logging.getLogger(__name__)

FILE_MODES = ("rb", "wb", "xb", "ab", "r+b")
READ, WRITE = 4, 2  # what an open asks the master for (its access bits)
OPEN_ACCESS = {"rb": READ, "wb": WRITE, "xb": WRITE, "ab": WRITE, "r+b": READ | WRITE}

Progress = Callable[[int], object]


def local_ids() -> tuple[int | None, int | None, tuple[int, ...]]:
    """This process's (uid, gid, supplementary groups); (None, None, ()) where the system
    has no such ids (Windows)."""
    if not hasattr(os, "getuid"):
        return None, None, ()
    return os.getuid(), os.getgid(), tuple(os.getgroups())


def register(masters: Sequence[Address], name: str, token: str | None = None,
             timeout: float = default(ClientConfig, "register_timeout"),
             failover_deadline: float = default(ClientConfig, "register_deadline")) -> str:
    """Ask the leading metadata server for a new key for user ``name``. -> key (hex).
    Sends this process's uid, gid and groups: a local cluster (open registration from
    this machine) gives the new user those, so this machine's tools agree with it; any
    other master chooses the ids itself."""
    link = MasterLink(masters, None, None, timeout, failover_deadline,
                      default(ClientConfig, "no_workers_wait"))
    try:
        key: str = link.call("register", name, token, *local_ids())
        return key
    finally:
        link.close()


class DfsClient(TrashCalls, AdminCalls):
    """The client. Its trash calls are in dfs.client.trash, the administration ones (users,
    groups, quotas, workers, fsck, the audit log) in dfs.client.admin."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config.validate()
        self.owns_resources = True  # False for a view made by acting_as
        self.master = MasterLink(config.masters, config.user, config.key, config.master_timeout,
                                 config.failover_deadline, config.no_workers_wait)
        self.workers = WorkerLinks(config.timeout)
        cache = ChunkCache(config.cache_dir, config.cache_bytes) if config.cache_dir else None
        # Two pools: chunk-level work may wait on replica-level work, never the reverse.
        self.chunk_pool = ThreadPoolExecutor(max_workers=config.parallel_chunks * 2,
                                             thread_name_prefix="dfs-chunk")
        self.transfer = Transfer(self.master, self.workers, cache, config.piece_size,
                                 config.parallel_chunks)
        # every open file's write buffers and read buffers (a whole mount's): bounded
        self.write_budget = WriteBudget(config.write_back_bytes,
                                        config.failover_deadline + config.timeout)
        self.read_buffers = ReadBuffers(config.read_buffer_bytes)
        self.renewer = Renewer(config.renew_every)  # open files' uncommitted chunks
        self._chunk_size: int | None = None

    @classmethod
    def from_auth_file(cls, path: str | None = None, **overrides: Any) -> DfsClient:
        """A client for the user in ``path`` (default: $DFS_AUTH, then the config dir)."""
        path = path or paths.default_auth_file()
        masters, user, key = auth.read_auth_file(path)
        options: dict[str, Any] = {"cache_dir": paths.default_cache_dir(user)}
        options.update(overrides)
        return cls(ClientConfig(masters=masters, user=user, key=key, **options))

    @classmethod
    def connect(cls, masters: str | Sequence[Address], user: str, key: str,
                **options: Any) -> DfsClient:
        if isinstance(masters, str):
            masters = parse_addresses(masters)
        return cls(ClientConfig(masters=tuple(masters), user=user, key=key, **options))

    def close(self) -> None:
        if not self.owns_resources:  # a view made by acting_as: only its master link
            self.master.close()
            return
        self.renewer.stop()
        self.chunk_pool.shutdown(wait=True, cancel_futures=True)
        self.transfer.close()
        self.master.close()
        self.workers.close()

    def __enter__(self) -> DfsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def user(self) -> str:
        return self.config.user

    def _call(self, name: str, *args: Any) -> Any:
        return self.master.call(name, *args)

    # --- namespace ---------------------------------------------------------------------

    def stat(self, path: str) -> wire.Stat:
        return wire.stat_from_wire(self._call("stat", path))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
            return True
        except errors.FileNotFound:
            return False

    def listdir(self, path: str = "/") -> list[wire.DirEntry]:
        """[DirEntry(name, stat)] of a directory, in one call."""
        return wire.entries_from_wire(self._call("listdir", path))

    def stat_many(self, folder: str, names: Sequence[str]) -> list[wire.Stat | None]:
        """The stat of each of ``names`` in ``folder`` (None where missing), in one call
        (at most dfs.namespace.rules.MAX_STAT_MANY names)."""
        return wire.stats_from_wire(self._call("stat_many", folder, tuple(names)))

    def mkdir(self, path: str, mode: int = 0o700, parents: bool = False,
              exist_ok: bool = False) -> wire.Stat:
        if parents:
            parts = [p for p in path.split("/") if p]
            for i in range(1, len(parts)):
                self.mkdir("/" + "/".join(parts[:i]), mode, exist_ok=True)
            exist_ok = True
        try:
            return wire.stat_from_wire(self._call("mkdir", path, mode))
        except errors.FileExists:
            if exist_ok and self.stat(path).is_dir:
                return self.stat(path)
            raise

    def create(self, path: str, mode: int = 0o600) -> wire.Stat:
        return wire.stat_from_wire(self._call("create", path, mode))

    def rm(self, path: str) -> None:
        self._call("unlink", path)

    def rmdir(self, path: str) -> None:
        self._call("rmdir", path)

    def rm_tree(self, path: str) -> None:
        for entry in self.listdir(path):
            child = path.rstrip("/") + "/" + entry.name
            if entry.stat.is_dir:
                self.rm_tree(child)
            else:
                self.rm(child)
        self.rmdir(path)

    def rename(self, src: str, dst: str, flags: int = 0) -> None:
        """``flags`` as renameat2(2): RENAME_NOREPLACE (1: refuse an existing ``dst``,
        FileExists) or RENAME_EXCHANGE (2: swap the two names), decided atomically."""
        if flags:
            self.master.call("rename", src, dst, flags=flags)
        else:
            self._call("rename", src, dst)

    def mknod(self, path: str, kind: str, mode: int = 0o644, rdev: int = 0) -> wire.Stat:
        """A special file, metadata only: "p" fifo, "s" socket, "c"/"b" device numbered
        ``rdev`` (the superuser only); "f" an empty file."""
        return wire.stat_from_wire(self._call("mknod", path, kind, mode, rdev))

    def chmod(self, path: str, mode: int) -> wire.Stat:
        return wire.stat_from_wire(self._call("setattr", path, mode))

    def chown(self, path: str, owner: int | str | None = None,
              group: int | str | None = None) -> wire.Stat:
        """Change owner and/or group (None: unchanged): a number, or a user's / group's
        name. chown(2)'s rules: only the superuser gives a file away."""
        return wire.stat_from_wire(self._call("setattr", path, None, owner, group))

    def utimens(self, path: str, atime_ns: int | None = None, mtime_ns: int | None = None,
                to_now: bool = False) -> wire.Stat:
        """Set the times given (None: unchanged); ``to_now``: both to the master's now."""
        return wire.stat_from_wire(self._call("setattr", path, None, None, None, atime_ns,
                                              mtime_ns, to_now))

    @property
    def is_admin(self) -> bool:
        """Does this client's key belong to an admin? (Known once it has logged in.)"""
        return self.master.admin

    def acting_as(self, uid: int, gid: int, groups: tuple[int, ...] = ()) -> DfsClient:
        """(Admin keys only.) A client for the same cluster whose namespace calls act as
        these POSIX ids (a trusted host's mount, for each calling process); it shares this
        client's workers, pools and buffers, and closes its own master connections only.
        Its data reservations stay this client's (they are the admin's bookkeeping)."""
        view = copy.copy(self)
        view.master = MasterLink(self.config.masters, self.config.user, self.config.key,
                                 self.config.master_timeout, self.config.failover_deadline,
                                 self.config.no_workers_wait)
        view.master.act_as = (uid, gid, tuple(groups))
        view.owns_resources = False
        return view

    def symlink(self, path: str, target: str) -> wire.Stat:
        return wire.stat_from_wire(self._call("symlink", path, target))

    def readlink(self, path: str) -> str:
        target: str = self._call("readlink", path)
        return target

    def link(self, existing: str, path: str) -> wire.Stat:
        return wire.stat_from_wire(self._call("link", existing, path))

    # extended attributes (the rules: dfs/namespace/rules_xattr.py)

    def getxattr(self, path: str, name: str) -> bytes:
        """The whole value of attribute ``name``; NoAttribute (ENODATA) if it has none."""
        value: bytes = self._call("getxattr", path, name)
        return value

    def listxattr(self, path: str) -> list[str]:
        """The attribute names this caller may see (trusted.* only to the superuser)."""
        return list(self._call("listxattr", path))

    def setxattr(self, path: str, name: str, value: bytes, flags: int = 0) -> wire.Stat:
        """``flags``: os.XATTR_CREATE (FileExists if set), os.XATTR_REPLACE (NoAttribute if
        not). -> the new stat (ctime changed)."""
        return wire.stat_from_wire(self._call("setxattr", path, name, bytes(value), flags))

    def removexattr(self, path: str, name: str) -> wire.Stat:
        return wire.stat_from_wire(self._call("removexattr", path, name))

    def statfs(self) -> StatFs:
        """(total bytes, free bytes, chunk size, files) of the whole cluster."""
        return wire.statfs_from_wire(self._call("statfs"))

    def status(self) -> ClusterStatus:
        return wire.status_from_wire(self._call("status"))

    # --- data --------------------------------------------------------------------------

    @property
    def chunk_size(self) -> int:
        if self._chunk_size is None:
            self._chunk_size = self.statfs().chunk_size
        return self._chunk_size

    def layout(self, path: str, want: int = READ) -> wire.FileLayout:
        """A file's attributes and chunks, to open it for ``want`` (READ, WRITE or both:
        the master checks that permission, as open(2) does)."""
        return wire.layout_from_wire(self._call("layout", path, want))

    def commit(self, ino: int, written: list[wire.WrittenChunk], size: int) -> PutResult:
        result = wire.put_result_from_wire(
            self._call("commit", ino, wire.written_to_wire(written), size))
        if result.under_replicated:
            log.warning("%d chunk(s) stored with fewer copies than wanted",
                        result.under_replicated)
        return result

    def open(self, path: str, mode: str = "rb") -> DfsFile:
        """A DfsFile. Modes: rb, wb (create or truncate), xb (create, must not exist),
        ab (append), r+b (read and write in place)."""
        if mode not in FILE_MODES:
            raise errors.InvalidArgument(f"unsupported mode {mode!r}")
        if mode in ("wb", "xb"):
            try:
                self.create(path)
            except errors.FileExists:
                if mode == "xb":
                    raise
        layout = self.layout(path, OPEN_ACCESS[mode])
        f = DfsFile(self, path, layout, writable=mode != "rb")
        if mode == "wb":
            f.truncate(0)
        elif mode == "ab":
            f.seek(0, 2)
        return f

    def put_stream(self, stream: IO[bytes], remote: str, size: int, mode: int = 0o600,
                   overwrite: bool = True, progress: Progress | None = None) -> PutResult:
        """Store ``size`` bytes read from ``stream`` as ``remote`` in one commit."""
        return bulk.put_stream(self, stream, remote, size, mode, overwrite, progress)

    def put_bytes(self, remote: str, data: bytes, mode: int = 0o600,
                  overwrite: bool = True) -> PutResult:
        import io
        return self.put_stream(io.BytesIO(data), remote, len(data), mode, overwrite)

    def put(self, local: str, remote: str, mode: int | None = None, overwrite: bool = True,
            progress: Progress | None = None) -> PutResult:
        """Upload local file ``local`` to ``remote`` (created or replaced atomically).

        The file is private (the local owner bits only) unless ``mode`` says otherwise:
        sharing with other DFS users is an explicit chmod."""
        return bulk.put_file(self, local, remote, mode, overwrite, progress)

    def iter_chunks(self, remote: str) -> Iterator[bytes]:
        """Yield a file's bytes chunk by chunk, downloading a few chunks ahead."""
        return bulk.iter_chunks(self, remote)

    def read_bytes(self, remote: str) -> bytes:
        return b"".join(self.iter_chunks(remote))

    def get(self, remote: str, local: str, progress: Progress | None = None) -> None:
        """Download ``remote`` to ``local`` (written to a temp file, then renamed)."""
        bulk.get_file(self, remote, local, progress)

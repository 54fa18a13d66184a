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
from dfs.client.cache import ChunkCache
from dfs.client.connections import MasterLink, WorkerLinks
from dfs.client.files import DfsFile
from dfs.client.memory import ReadBuffers, WriteBudget
from dfs.client.renewer import Renewer
from dfs.client.transfer import Transfer
from dfs.config import Address, ClientConfig, default, parse_addresses
from dfs.namespace.trash_index import PAGE_MAX as TRASH_PAGE
from dfs.retry import RetryPolicy
from dfs.wire import (
    FSCK_FIXABLE,
    ClusterStatus,
    FsckProblem,
    FsckReport,
    PutResult,
    StatFs,
    TrashEntry,
)

__all__ = ["DfsClient", "FsckProblem", "FsckReport", "PutResult", "TrashEntry", "register"]

log = logging.getLogger(__name__)

FILE_MODES = ("rb", "wb", "xb", "ab", "r+b")
READ, WRITE = 4, 2  # what an open asks the master for (its access bits)
OPEN_ACCESS = {"rb": READ, "wb": WRITE, "xb": WRITE, "ab": WRITE, "r+b": READ | WRITE}
# An fsck job is asked for its result every 0.2 s; between repair rounds the master's repair
# loop gets a second to copy chunks. Each call sets the deadline.
FSCK_POLL = RetryPolicy(deadline=None, first=0.2, cap=0.2)
REPAIR_POLL = RetryPolicy(deadline=None, first=1.0, cap=1.0)

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


class DfsClient:
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

    def events(self, after: int = 0, since: float = 0.0, user: str = "",
               limit: int = 500) -> tuple[list[wire.Event], int]:
        """The leader's audit log (admin): events after id ``after``, at or after Unix time
        ``since``, by ``user`` if given, oldest first. -> (events, cursor): pass the cursor
        as ``after`` to get the ones that follow."""
        return wire.events_from_wire(self._call("events", after, float(since), user, limit))

    # --- trash ------------------------------------------------------------------------

    def trash_list(self) -> list[TrashEntry]:
        """[TrashEntry] of this user's deleted files, newest first: every page of it
        (``trash_page``; an item deleted meanwhile may be missing, none is listed twice)."""
        return self.trash_listing()[0]

    def trash_listing(self, limit: int = TRASH_PAGE) -> tuple[list[TrashEntry], str | None]:
        """(the whole trash as ``trash_list`` gives it, in pages of ``limit``; its version:
        None if it changed while the pages were read, so the listing may match no version)."""
        entries, cursor, version = self.trash_page(limit)
        same: str | None = version
        while cursor is not None:
            more, cursor, version = self.trash_page(limit, cursor)
            entries.extend(more)
            same = same if version == same else None
        return entries, same

    def trash_page(self, limit: int = TRASH_PAGE, cursor: str | None = None
                   ) -> tuple[list[TrashEntry], str | None, str]:
        """At most ``limit`` (1 to 1000) of this user's deleted files after ``cursor`` (None:
        from the newest), newest first. -> (entries, the next page's cursor, None after the
        last page, the trash's version)."""
        entries, after, version = self._call("trash_page", limit, cursor)
        return wire.trash_from_wire(entries), after, version

    def trash_version(self) -> str:
        """Changes whenever this user's trash does (compare for equality only): one cheap
        call before listing the trash again."""
        version: str = self._call("trash_version")
        return version

    def trash_move(self, path: str) -> None:
        """Delete the file ``path`` into the trash, or change nothing and raise NotSupported
        if the trash would not keep it (the trash is off; not a file with one name)."""
        self._call("trash_move", path)

    def trash_restore(self, path: str, trash_id: str | None = None) -> wire.Stat:
        """Put the newest deleted version of ``path`` back (with ``trash_id``: that item, at
        ``path``); FileExists if the path is taken."""
        if trash_id is None:
            return wire.stat_from_wire(self._call("trash_restore", path))
        return wire.stat_from_wire(self._call("trash_restore", path, trash_id))

    def trash_purge(self, trash_id: str) -> bool:
        """Free one item of the trash now. -> False if it was not (or no longer) there."""
        return bool(self._call("trash_purge", trash_id))

    def trash_empty(self) -> int:
        """Free this user's trash now. -> how many files it held."""
        count: int = self._call("trash_empty")
        return count

    # --- fsck (admin) ------------------------------------------------------------------

    def _fsck_once(self, repair: bool, deadline: float) -> FsckReport:
        job = self._call("fsck_start", bool(repair))
        poll = FSCK_POLL.within(deadline).start()
        while True:
            result = wire.fsck_result_from_wire(self._call("fsck_result", job))
            if result.report is not None:
                return result.report
            if result.state == "failed":
                raise errors.DfsError(f"fsck failed: {result.message}")
            if not poll.wait():
                raise errors.Unavailable(f"fsck did not finish within {deadline:.0f}s")

    def fsck(self, repair: bool = False, deadline: float | None = None) -> FsckReport:
        """Check every file's chunks against what the workers hold (admin only).

        With ``repair``: schedule the fixes (new copies for under-replicated and corrupt
        chunks, orphans deleted), then check again until only unrecoverable problems
        (missing chunks) are left or ``deadline`` seconds (default: the config's
        fsck_deadline) pass. -> the last FsckReport."""
        if deadline is None:
            deadline = self.config.fsck_deadline
        rounds = REPAIR_POLL.within(deadline).start()
        report = self._fsck_once(repair, deadline)
        repairs = report.repairs
        while repair and any(p.kind in FSCK_FIXABLE for p in report.problems) and rounds.wait():
            report = self._fsck_once(True, max(1.0, rounds.remaining() or 0.0))
            repairs += report.repairs
        return report._replace(repairs=repairs)

    # --- users (admin) -----------------------------------------------------------------

    def users_list(self) -> list[wire.UserUsage]:
        """Every user, what they hold and their quotas (admin)."""
        return [wire.usage_from_wire(u) for u in self._call("users_list")]

    def usage(self) -> wire.UserUsage:
        """What this user holds, and their quotas."""
        return wire.usage_from_wire(self._call("usage"))

    def users_quota(self, name: str, quota_bytes: int | None, quota_inodes: int | None) -> None:
        """Limit user ``name`` to these many bytes and inodes (None: no limit; admin)."""
        self._call("users_quota", name, quota_bytes, quota_inodes)

    def users_add(self, name: str, admin: bool = False, uid: int | None = None,
                  gid: int | None = None, groups: tuple[int, ...] = ()) -> str:
        """Register user ``name`` (with ``uid``: those POSIX ids, if free). -> their key."""
        key: str = self._call("users_add", name, admin, uid, gid, tuple(groups))
        return key

    def users_groups(self, name: str, groups: tuple[int | str, ...]) -> None:
        """User ``name``'s supplementary groups become ``groups`` (ids or group names)."""
        self._call("users_groups", name, tuple(groups))

    def groups_list(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """[(group name, gid, member names)] of the groups an admin named."""
        return [(str(n), int(g), tuple(m)) for n, g, m in self._call("groups_list")]

    def groups_add(self, name: str, gid: int | None = None) -> int:
        gid_given: int = self._call("groups_add", name, gid)
        return gid_given

    def groups_remove(self, name: str) -> None:
        self._call("groups_remove", name)

    def users_revoke(self, name: str) -> None:
        self._call("users_revoke", name)

    # --- workers (admin) ---------------------------------------------------------------

    def workers_list(self) -> list[wire.WorkerMember]:
        """Every worker the leader knows: state, chunks, space, voter or not."""
        return wire.members_from_wire(self._call("workers_list"))

    def workers_drain(self, worker_id: str) -> int:
        """Move the worker's chunks to other workers, place nothing new on it. -> how many
        chunks it holds now (`workers_list` says "drained" once they are all elsewhere)."""
        count: int = self._call("workers_drain", worker_id)
        return count

    def workers_remove(self, worker_id: str, force: bool = False) -> int:
        """Take the worker out of the cluster and the electorate; errors.Busy if it may hold
        the only copy of a chunk, unless ``force``. -> chunks lost that way."""
        lost: int = self._call("workers_remove", worker_id, bool(force))
        return lost

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

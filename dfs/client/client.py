"""DfsClient: the one API used by the CLI, the mount, the backup watcher and the tests.

    with DfsClient.from_auth_file() as dfs:
        dfs.put("notes.txt", "/notes.txt")
        print([e.name for e in dfs.listdir("/")])
        with dfs.open("/notes.txt") as f:
            head = f.read(100)

Metadata calls go to the leader metadata server (dfs.client.connections.MasterLink: pooled,
authenticated, failing over); chunk bytes go straight to the workers (dfs.client.transfer).
A ``put`` is acknowledged only after every chunk is on its replicas and the master has
journaled the new file; with a single live worker the file is stored with one copy and
``PutResult.under_replicated`` says how many chunks lack their second copy.

Thread-safe: the mount calls it from many threads.
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from dfs import auth, chunks, errors, paths, wire
from dfs.client.cache import ChunkCache
from dfs.client.connections import MasterLink, WorkerLinks
from dfs.client.files import DfsFile
from dfs.client.transfer import Transfer
from dfs.config import ClientConfig, parse_addresses

log = logging.getLogger(__name__)


class TrashEntry(NamedTuple):
    trash_id: str
    path: str  # where the file was (a restore puts it back there)
    size: int
    deleted_at: float  # Unix seconds
    expires: float  # its chunks are freed after this


class FsckProblem(NamedTuple):
    kind: str  # "missing", "under", "corrupt" or "orphan"
    chunk_id: int
    worker_id: str  # the worker holding the bad or orphan copy ("" for missing/under)
    path: str  # the file the chunk belongs to ("" for an orphan)


class FsckReport(NamedTuple):
    files: int
    chunks: int
    workers: int  # workers scanned
    unreachable: tuple  # workers that could not be scanned
    problems: list  # of FsckProblem
    repairs: int  # repairs scheduled (with repair=True)

    @property
    def clean(self):
        return not self.problems and not self.unreachable


FSCK_FIXABLE = ("under", "corrupt", "orphan")


class PutResult(NamedTuple):
    stat: wire.Stat
    under_replicated: int


def register(masters, name, token=None, timeout=10.0, failover_deadline=30.0):
    """Ask the leading metadata server for a new key for user ``name``. -> key (hex)."""
    link = MasterLink(masters, None, None, timeout, failover_deadline)
    try:
        return link.call("register", name, token)
    finally:
        link.close()


class DfsClient:
    def __init__(self, config):
        self.config = config.validate()
        self.master = MasterLink(config.masters, config.user, config.key, config.master_timeout,
                                 config.failover_deadline)
        self.workers = WorkerLinks(config.timeout)
        cache = ChunkCache(config.cache_dir, config.cache_bytes) if config.cache_dir else None
        # Two pools: chunk-level work may wait on replica-level work, never the reverse.
        self.chunk_pool = ThreadPoolExecutor(max_workers=config.parallel_chunks * 2,
                                             thread_name_prefix="dfs-chunk")
        self.transfer = Transfer(self.master, self.workers, cache, config.piece_size,
                                 config.parallel_chunks)
        self._chunk_size = None

    @classmethod
    def from_auth_file(cls, path=None, **overrides):
        """A client for the user in ``path`` (default: $DFS_AUTH, then the config dir)."""
        path = path or paths.default_auth_file()
        masters, user, key = auth.read_auth_file(path)
        options = {"cache_dir": paths.default_cache_dir(user)}
        options.update(overrides)
        return cls(ClientConfig(masters=masters, user=user, key=key, **options))

    @classmethod
    def connect(cls, masters, user, key, **options):
        if isinstance(masters, str):
            masters = parse_addresses(masters)
        return cls(ClientConfig(masters=tuple(masters), user=user, key=key, **options))

    def close(self):
        self.chunk_pool.shutdown(wait=True, cancel_futures=True)
        self.transfer.close()
        self.master.close()
        self.workers.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def user(self):
        return self.config.user

    def _call(self, name, *args):
        return self.master.call(name, *args)

    # --- namespace ---------------------------------------------------------------------

    def stat(self, path):
        return wire.stat_from_wire(self._call("stat", path))

    def exists(self, path):
        try:
            self.stat(path)
            return True
        except errors.FileNotFound:
            return False

    def listdir(self, path="/"):
        """[DirEntry(name, stat)] of a directory, in one call."""
        return wire.entries_from_wire(self._call("listdir", path))

    def mkdir(self, path, mode=0o700, parents=False, exist_ok=False):
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

    def create(self, path, mode=0o600):
        return wire.stat_from_wire(self._call("create", path, mode))

    def rm(self, path):
        self._call("unlink", path)

    def rmdir(self, path):
        self._call("rmdir", path)

    def rm_tree(self, path):
        for entry in self.listdir(path):
            child = path.rstrip("/") + "/" + entry.name
            if entry.stat.is_dir:
                self.rm_tree(child)
            else:
                self.rm(child)
        self.rmdir(path)

    def rename(self, src, dst):
        self._call("rename", src, dst)

    def chmod(self, path, mode):
        return wire.stat_from_wire(self._call("setattr", path, mode))

    def chown(self, path, owner):
        return wire.stat_from_wire(self._call("setattr", path, None, owner))

    def utimens(self, path, atime_ns=None, mtime_ns=None):
        return wire.stat_from_wire(self._call("setattr", path, None, None, atime_ns, mtime_ns))

    def symlink(self, path, target):
        return wire.stat_from_wire(self._call("symlink", path, target))

    def readlink(self, path):
        return self._call("readlink", path)

    def link(self, existing, path):
        return wire.stat_from_wire(self._call("link", existing, path))

    def statfs(self):
        """-> (total bytes, free bytes, chunk size, files) for the whole cluster."""
        return self._call("statfs")

    def status(self):
        server, epoch, address, workers, under, files, standby, holders = self._call("status")
        return {"leader": server, "epoch": epoch, "address": address, "files": files,
                "workers": wire.workers_from_wire(workers), "under_replicated": under,
                "standby": standby, "lease_holders": list(holders)}

    # --- trash ------------------------------------------------------------------------

    def trash_list(self):
        """[TrashEntry] of this user's deleted files, newest first."""
        return [TrashEntry(*item) for item in self._call("trash_list")]

    def trash_restore(self, path):
        """Put the newest deleted version of ``path`` back; FileExists if the path is taken."""
        return wire.stat_from_wire(self._call("trash_restore", path))

    def trash_empty(self):
        """Free this user's trash now. -> how many files it held."""
        return self._call("trash_empty")

    # --- fsck (admin) ------------------------------------------------------------------

    def _fsck_once(self, repair, deadline):
        job = self._call("fsck_start", bool(repair))
        end = time.monotonic() + deadline
        while True:
            state, value = self._call("fsck_result", job)
            if state == "done":
                files, nchunks, workers, unreachable, problems, repairs = value
                return FsckReport(files, nchunks, workers, tuple(unreachable),
                                  [FsckProblem(*p) for p in problems], repairs)
            if state == "failed":
                raise errors.DfsError(f"fsck failed: {value}")
            if time.monotonic() > end:
                raise errors.Unavailable(f"fsck did not finish within {deadline:.0f}s")
            time.sleep(0.2)

    def fsck(self, repair=False, deadline=120.0):
        """Check every file's chunks against what the workers hold (admin only).

        With ``repair``: schedule the fixes (new copies for under-replicated and corrupt
        chunks, orphans deleted), then check again until only unrecoverable problems
        (missing chunks) are left or ``deadline`` seconds pass. -> the last FsckReport."""
        end = time.monotonic() + deadline
        report = self._fsck_once(repair, deadline)
        repairs = report.repairs
        while repair and any(p.kind in FSCK_FIXABLE for p in report.problems) \
                and time.monotonic() < end:
            time.sleep(1.0)  # give the master's repair loop time to copy chunks
            report = self._fsck_once(True, max(1.0, end - time.monotonic()))
            repairs += report.repairs
        return report._replace(repairs=repairs)

    # --- users (admin) -----------------------------------------------------------------

    def users_list(self):
        return list(self._call("users_list"))

    def users_add(self, name, admin=False):
        return self._call("users_add", name, admin)

    def users_revoke(self, name):
        self._call("users_revoke", name)

    # --- data --------------------------------------------------------------------------

    @property
    def chunk_size(self):
        if self._chunk_size is None:
            self._chunk_size = self.statfs()[2]
        return self._chunk_size

    def layout(self, path):
        return wire.layout_from_wire(self._call("layout", path))

    def commit(self, ino, written, size):
        stat, under = self._call("commit", ino, wire.written_to_wire(written), size)
        if under:
            log.warning("%d chunk(s) stored with fewer copies than wanted", under)
        return PutResult(wire.stat_from_wire(stat), under)

    def open(self, path, mode="rb"):
        """A DfsFile. Modes: rb, wb (create or truncate), xb (create, must not exist),
        ab (append), r+b (read and write in place)."""
        if mode not in ("rb", "wb", "xb", "ab", "r+b"):
            raise errors.InvalidArgument(f"unsupported mode {mode!r}")
        if mode in ("wb", "xb"):
            try:
                self.create(path)
            except errors.FileExists:
                if mode == "xb":
                    raise
        layout = self.layout(path)
        f = DfsFile(self, path, layout, writable=mode != "rb")
        if mode == "wb":
            f.truncate(0)
        elif mode == "ab":
            f.seek(0, 2)
        return f

    def put_stream(self, stream, remote, size, mode=0o600, overwrite=True, progress=None):
        """Store ``size`` bytes read from ``stream`` as ``remote`` in one commit.

        Up to ``parallel_chunks`` chunks are in flight; on any failure the chunks already
        stored are handed back to the master (abandon) so their space is freed at once."""
        chunk_size = self.chunk_size
        count = chunks.chunk_count(size, chunk_size)
        allocated = []
        futures = []
        stored = []

        def collect(future):
            stored.append(future.result())
            if progress:
                progress(stored[-1].ref.length)
        try:
            targets = []
            for index in range(count):
                if not targets and count > 1:  # one chunk: from the reserved ids
                    targets = wire.targets_from_wire(
                        self._call("allocate", remote, min(64, count - index), ()))
                    allocated.extend(t.chunk_id for t in targets)
                want = min(chunk_size, size - index * chunk_size)
                data = stream.read(want)
                if len(data) != want:
                    raise errors.InvalidArgument(f"{remote}: the source changed size while reading")
                futures.append(self.chunk_pool.submit(self.transfer.store_chunk, remote, data,
                                                      targets.pop(0) if targets else None))
                if len(futures) >= self.config.parallel_chunks:
                    collect(futures.pop(0))
            while futures:
                collect(futures.pop(0))
            written = [wire.written_from_read(chunk, True) for chunk in stored]
            stat, under = self._call("put", remote, mode, wire.written_to_wire(written), size,
                                     overwrite)
        except BaseException:
            for future in futures:
                future.cancel()
            self._abandon(allocated + [c.ref.chunk_id for c in stored])
            raise
        if under:
            log.warning("%s: %d chunk(s) stored with fewer copies than wanted", remote, under)
        return PutResult(wire.stat_from_wire(stat), under)

    def _abandon(self, chunk_ids):
        if not chunk_ids:
            return
        try:
            self._call("abandon", tuple(sorted(set(chunk_ids))))
        except errors.DfsError as exc:
            log.debug("could not hand back chunks (the master frees them later): %s", exc)

    def put_bytes(self, remote, data, mode=0o600, overwrite=True):
        import io
        return self.put_stream(io.BytesIO(data), remote, len(data), mode, overwrite)

    def put(self, local, remote, mode=None, overwrite=True, progress=None):
        """Upload local file ``local`` to ``remote`` (created or replaced atomically).

        The file is private (the local owner bits only) unless ``mode`` says otherwise:
        sharing with other DFS users is an explicit chmod."""
        try:
            with open(local, "rb") as f:
                st = os.fstat(f.fileno())
                if not os.path.isfile(local):
                    raise errors.InvalidArgument(f"{local} is not a regular file")
                return self.put_stream(f, remote, st.st_size,
                                       mode if mode is not None else st.st_mode & 0o700,
                                       overwrite, progress)
        except FileNotFoundError:
            raise errors.FileNotFound(f"{local}: no such local file") from None
        except IsADirectoryError:
            raise errors.IsADirectory(f"{local} is a directory") from None
        except PermissionError:
            raise errors.PermissionDenied(f"{local}: permission denied") from None

    def iter_chunks(self, remote):
        """Yield a file's bytes chunk by chunk, downloading a few chunks ahead.

        Files larger than half the cache bypass it: they would only push out everything
        else and never be read from it (and writing them costs about 20% of a get)."""
        layout = self.layout(remote)
        use_cache = layout.stat.size <= self.config.cache_bytes // 2
        ahead = []
        queue = list(layout.chunks)
        while queue or ahead:
            while queue and len(ahead) < self.config.parallel_chunks:
                ahead.append(self.chunk_pool.submit(self.transfer.load_chunk, queue.pop(0),
                                                    use_cache))
            yield ahead.pop(0).result()

    def read_bytes(self, remote):
        return b"".join(self.iter_chunks(remote))

    def get(self, remote, local, progress=None):
        """Download ``remote`` to ``local`` (written to a temp file, then renamed)."""
        tmp = f"{local}.dfs-partial"
        try:
            with open(tmp, "wb") as f:
                for data in self.iter_chunks(remote):
                    f.write(data)
                    if progress:
                        progress(len(data))
            os.replace(tmp, local)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

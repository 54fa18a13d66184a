"""What each queued operation does in the cluster: upload, rename, delete, make folders,
and the start-up check. Called by the uploader thread only (``Operations.apply``)."""

from __future__ import annotations

import logging
import os
import posixpath
import stat as stat_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, cast

from dfs import errors
from dfs.backup import compare
from dfs.backup.changes import ChangeQueue, Op, Scan
from dfs.backup.state import FileRecord, StateStore
from dfs.backup.tree import Scanner, Tree, signature
from dfs.progress import progress_bar
from dfs.wire import PutResult, Stat

if TYPE_CHECKING:
    from dfs.client import DfsClient

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Raised inside an upload when the watcher is stopping (abandons the partial upload)."""


@dataclass
class Counts:
    """What the watcher did since it started (the "in sync" and "stopped" log lines)."""

    uploaded: int = 0
    renamed: int = 0
    deleted: int = 0
    already: int = 0
    """Found in the cluster with the same bytes: recorded, not uploaded."""


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class Operations:
    """Applies one ``Op`` to the cluster; raises what the cluster raised (the uploader
    decides whether to retry). ``stopping()`` is asked during uploads."""

    def __init__(self, client: DfsClient, tree: Tree, queue: ChangeQueue, state: StateStore,
                 mirror_deletes: bool, stopping: Callable[[], bool]) -> None:
        self.client = client
        self.tree = tree
        self.queue = queue
        self.state = state
        self.mirror_deletes = mirror_deletes
        self.stopping = stopping
        self.counts = Counts()
        self._dirs: set[str] = set()  # remote directories known to exist

    def apply(self, op: Op) -> None:
        log.debug("applying %s", op.describe())
        if op.kind == "sync":
            self.sync(op.path)
        elif op.kind == "move":
            self.move(op.path, op.dest, op.is_dir)
        elif op.kind == "delete":
            self.delete(op.path, op.is_dir)
        elif op.kind == "mkdir":
            if os.path.isdir(self.tree.local(op.path)):
                self.ensure_dir(self.tree.remote(op.path))
        elif op.kind == "verify":
            if op.scan is None:
                raise ValueError("the start-up check needs the start-up scan")
            self.verify(op.scan)
        else:
            raise ValueError(f"unknown operation {op.kind!r}")

    def ensure_dir(self, remote: str) -> None:
        """Make remote directory ``remote`` and its parents unless known to exist."""
        if remote == "/" or remote in self._dirs:
            return
        self.ensure_dir(posixpath.dirname(remote))
        self.client.mkdir(remote, exist_ok=True)
        self._dirs.add(remote)

    def _forget_dirs(self, remote: str) -> None:
        """After a remote rename or delete: directories under ``remote`` may be gone."""
        self._dirs = {d for d in self._dirs if d != remote and not d.startswith(remote + "/")}

    # --- uploads ------------------------------------------------------------------------------

    def sync(self, rel: str) -> None:
        """Upload ``rel`` unless the cluster already has these bytes."""
        try:
            st = os.lstat(self.tree.local(rel))
        except FileNotFoundError:
            return
        if not stat_module.S_ISREG(st.st_mode):
            return
        entry = self.state.get(rel)
        if entry is not None and entry.signature == signature(st):
            return
        if entry is not None and entry.size == st.st_size:
            if compare.file_sha256(self.tree.local(rel)) == entry.sha256:  # touched, same bytes
                self.state.record(rel, entry._replace(mtime_ns=st.st_mtime_ns))
                return
        elif entry is None:
            record = compare.same_as_remote(self.client, self.tree, rel, st)
            if record is not None:
                log.debug("already in the cluster: %s", rel)
                self.state.record(rel, record)
                self.counts.already += 1
                return
        self.upload(rel)

    def upload(self, rel: str) -> None:
        remote = self.tree.remote(rel)
        self.ensure_dir(posixpath.dirname(remote))
        path = self.tree.local(rel)
        started = time.monotonic()
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return  # gone before we got to it
        with f:
            st = os.fstat(f.fileno())
            if not stat_module.S_ISREG(st.st_mode):
                return
            reader = compare.HashingReader(f)
            bar, update = progress_bar(st.st_size, rel)

            def progress(nbytes: int) -> None:
                if self.stopping():
                    raise Stopped()
                if update:
                    update(nbytes)
            try:
                result = self._put(reader, remote, st, progress)
            except errors.InvalidArgument:
                if not reader.short:
                    raise
                log.info("%s shrank while it was read; it is uploaded again once it settles",
                         rel)
                self.queue.changed(rel)
                return
            finally:
                if bar:
                    bar.close()
        elapsed = time.monotonic() - started
        self.state.record(rel, FileRecord(st.st_size, st.st_mtime_ns, reader.sha.hexdigest(),
                                          result.stat.ino))
        self.counts.uploaded += 1
        log.info("uploaded %s (%s in %.1fs)", rel, _human(st.st_size), elapsed)
        if self.tree.stat(rel) not in (None, signature(st)):
            log.info("%s changed while it was uploaded; it is uploaded again once it settles",
                     rel)
            self.queue.changed(rel)

    def _put(self, reader: compare.HashingReader, remote: str, st: os.stat_result,
             progress: Callable[[int], None]) -> PutResult:
        mode = (st.st_mode & 0o700) | 0o600  # private, and always readable for a restore
        stream = cast(IO[bytes], reader)  # put_stream only calls read()
        try:
            return self.client.put_stream(stream, remote, st.st_size, mode=mode,
                                          overwrite=True, progress=progress)
        except errors.FileNotFound:
            # The remote folder went away since we last made it: make it again, once.
            self._dirs.clear()
            self.ensure_dir(posixpath.dirname(remote))
            reader.rewind()
            return self.client.put_stream(stream, remote, st.st_size, mode=mode,
                                          overwrite=True, progress=progress)

    # --- renames and deletes --------------------------------------------------------------

    def move(self, src: str, dst: str, is_dir: bool) -> None:
        """A local rename: a remote rename if the target is not already there."""
        entry = self.state.get(src)
        moved_entries = self.state.under(src) if is_dir else ({src: entry} if entry else {})
        remote_src, remote_dst = self.tree.remote(src), self.tree.remote(dst)
        renamed = False
        if moved_entries and not self.client.exists(remote_dst):
            self.ensure_dir(posixpath.dirname(remote_dst))
            try:
                self.client.rename(remote_src, remote_dst)
            except errors.FileNotFound:
                log.info("%s is no longer in the cluster; %s is uploaded instead", src, dst)
                for rel in moved_entries:
                    self.state.forget(rel)
            else:
                self.state.rename(src, dst, is_dir)
                self._forget_dirs(remote_src)
                self.counts.renamed += 1
                log.info("renamed %s -> %s in the cluster", src, dst)
                renamed = True
        elif moved_entries and self.mirror_deletes:
            self.delete(src, is_dir)
        # Whatever happened, what is now at dst gets checked (cheap when the rename covered it).
        if not is_dir:
            self.queue.changed(dst)
        elif os.path.isdir(self.tree.local(dst)):
            files, dirs = Scanner(self.tree).scan(dst)
            if not renamed:  # the folders did not come along with a rename
                for rel in [dst, *dirs]:
                    self.queue.add(Op("mkdir", rel, is_dir=True))
            for rel in files:
                self.queue.changed(rel)

    def delete(self, rel: str, is_dir: bool) -> None:
        """Mirror a local delete: remove what this watcher uploaded (same inode), nothing else."""
        if os.path.lexists(self.tree.local(rel)):
            return  # it came back meanwhile; the queued sync takes care of it
        if is_dir:
            self._delete_tree(rel)
            return
        entry = self.state.get(rel)
        if entry is None:
            return
        remote = self.tree.remote(rel)
        try:
            if self.client.stat(remote).ino == entry.ino:
                self.client.rm(remote)
                self.counts.deleted += 1
                log.info("deleted %s in the cluster", rel)
            else:
                log.info("not deleting %s in the cluster: it was replaced there", rel)
        except errors.FileNotFound:
            pass
        self.state.forget(rel)

    def _delete_tree(self, rel: str) -> None:
        remote = self.tree.remote(rel)
        try:
            entries = self.client.listdir(remote)
        except (errors.FileNotFound, errors.NotADirectory):
            entries = []
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.stat.is_dir:
                self._delete_tree(child)
                continue
            record = self.state.get(child)
            if record is not None and record.ino == entry.stat.ino:
                self.client.rm(self.tree.remote(child))
                self.counts.deleted += 1
                log.info("deleted %s in the cluster", child)
        for child in self.state.under(rel):
            self.state.forget(child)
        if rel:
            try:
                self.client.rmdir(remote)
                self._forget_dirs(remote)
            except (errors.FileNotFound, errors.DirectoryNotEmpty):
                pass

    # --- the start-up check -----------------------------------------------------------------

    def verify(self, scan: Scan) -> None:
        """Start-up check of the files the state says are uploaded and unchanged: one
        listing per remote directory; a file missing or replaced there is checked again.
        Also makes the remote directories, and (mirror deletes) removes what was deleted
        locally while the watcher was not running."""
        files, dirs = scan
        listings: dict[str, dict[str, Stat] | None] = {}
        for rel in sorted({""} | set(dirs) | {posixpath.dirname(r) for r in files}):
            remote = self.tree.remote(rel)
            try:
                listings[rel] = {e.name: e.stat for e in self.client.listdir(remote)}
                self._dirs.add(remote)
            except errors.FileNotFound:
                self.ensure_dir(remote)
                listings[rel] = {}
            except (errors.NotADirectory, errors.PermissionDenied) as exc:
                log.warning("cannot use %s in the cluster: %s", remote, exc)
                listings[rel] = None
        for rel, found in files.items():
            entry = self.state.get(rel)
            listing = listings.get(posixpath.dirname(rel))
            if entry is None or entry.signature != found or listing is None:
                continue  # queued by the scan already, or cannot be checked
            there = listing.get(posixpath.basename(rel))
            if there is None or there.kind != "f" or there.size != entry.size or \
                    there.ino != entry.ino:
                log.info("%s is missing or different in the cluster; checking it again", rel)
                self.state.forget(rel)
                self.queue.changed(rel)
        if self.mirror_deletes:
            for rel in self.state.paths():
                if rel not in files and not os.path.lexists(self.tree.local(rel)):
                    self.queue.add(Op("delete", rel))

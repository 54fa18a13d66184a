"""`dfs backup LOCAL_DIR [REMOTE_DIR]`: watch a folder and keep a copy of it in the cluster.

New and changed files are uploaded once they are complete (size and mtime still for the
settle time), the folder structure is kept, renames become remote renames, and a restart
uploads nothing that is already there. Local deletes are mirrored only with
``--mirror-deletes``. While the cluster is unreachable the work waits and is retried with
backoff; nothing pending is dropped and the watcher does not exit.

The pieces, each a small object:

- ``Scanner``: walks the local folder -> {relative path: (size, mtime_ns)} and directories.
- ``ChangeQueue`` (dfs.backup.changes): pending paths with settle logic, ordered operations.
- ``EventHandler``: watchdog events -> queue calls.
- ``Uploader``: takes work from the queue and applies it to the cluster, retrying while the
  cluster is unavailable; its loop is ``run()`` / ``stop()``.
- ``StateStore`` (dfs.backup.state): what was uploaded, kept across restarts.
- ``Backup``: owns them all; ``run()`` starts, rescans now and then, and stops.

Threads of a `dfs backup` process: the main thread (``Backup.run``: start-up scan,
periodic rescans, waiting for SIGINT/SIGTERM), watchdog's observer and emitter threads
(only call the queue), and the uploader thread (the only one that talks to the cluster
and the only writer of the state). The queue and the state store each have one lock;
``Uploader`` has one more for its map of failed files. No thread holds two locks at once.
"""

import hashlib
import logging
import os
import posixpath
import signal
import stat as stat_module
import threading
import time

from dfs import chunks, errors
from dfs.backup.changes import ChangeQueue, Op
from dfs.backup.state import FileRecord, StateStore, default_state_path
from dfs.config import MIB, format_addresses
from dfs.progress import progress_bar

log = logging.getLogger(__name__)

SETTLE_SECONDS = 1.0
RESCAN_SECONDS = 600.0
"""A full rescan now and then catches anything the watcher missed (inotify overflow)."""
FAILOVER_DEADLINE = 5.0
"""Client calls give up after this long; the uploader then retries on its own schedule."""
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
ONCE_PATIENCE = 60.0
"""With --once, give up (exit 1) after the cluster has been unavailable this long."""
READ_SIZE = MIB
IGNORED_SUFFIXES = (".dfs-partial",)  # `dfs get` writes these and renames them when done

TRANSIENT = (errors.Unavailable, errors.NoSpace, ConnectionError, TimeoutError, EOFError)
"""Failures that say "not now": the operation is kept and retried with backoff."""


class Stopped(Exception):
    """Raised inside an upload when the watcher is stopping (abandons the partial upload)."""


def _signature(st):
    return (st.st_size, st.st_mtime_ns)


class Tree:
    """The mapping between relative paths ('a/b.txt') and local and remote paths."""

    def __init__(self, local_root, remote_root, ignore=()):
        self.local_root = os.path.abspath(local_root)
        self.remote_root = remote_root
        self.ignore = {os.path.abspath(p) for p in ignore}

    def local(self, rel):
        return os.path.join(self.local_root, *rel.split("/")) if rel else self.local_root

    def remote(self, rel):
        return posixpath.join(self.remote_root, rel) if rel else self.remote_root

    def relative(self, path):
        """A local path -> its relative path, or None if outside the tree or ignored."""
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.path.abspath(path)
        if path in self.ignore or path.endswith(IGNORED_SUFFIXES):
            return None
        rel = os.path.relpath(path, self.local_root)
        if rel == "." or rel == ".." or rel.startswith(".." + os.sep):
            return None
        return rel.replace(os.sep, "/")

    def stat(self, rel):
        """(size, mtime_ns) of a regular file; None if gone or not a regular file."""
        try:
            st = os.lstat(self.local(rel))
        except OSError:
            return None
        return _signature(st) if stat_module.S_ISREG(st.st_mode) else None


class Scanner:
    """Walks the local folder. Symlinks and special files are skipped (not followed)."""

    def __init__(self, tree):
        self.tree = tree

    def scan(self, top=""):
        """-> ({rel: (size, mtime_ns)} of regular files, [rel of each directory])."""
        files, dirs = {}, []

        def report(exc):
            log.warning("cannot read %s: %s", exc.filename, exc.strerror)
        for root, dirnames, filenames in os.walk(self.tree.local(top), onerror=report):
            for name in dirnames:
                rel = self.tree.relative(os.path.join(root, name))
                if rel is not None and not os.path.islink(os.path.join(root, name)):
                    dirs.append(rel)
            for name in filenames:
                rel = self.tree.relative(os.path.join(root, name))
                if rel is None:
                    continue
                signature = self.tree.stat(rel)
                if signature is not None:
                    files[rel] = signature
        return files, dirs


class EventHandler:
    """watchdog events -> ChangeQueue calls. Runs in watchdog's observer thread."""

    def __init__(self, tree, queue, scanner, mirror_deletes):
        self.tree = tree
        self.queue = queue
        self.scanner = scanner
        self.mirror_deletes = mirror_deletes

    def dispatch(self, event):
        try:
            self._dispatch(event)
        except Exception:  # an event handler must never kill the observer thread
            log.exception("while handling %r", event)

    def _dispatch(self, event):
        kind = event.event_type
        src = self.tree.relative(event.src_path) if event.src_path else None
        if kind == "moved":
            dst = self.tree.relative(event.dest_path) if event.dest_path else None
            if src is not None and dst is not None:
                log.debug("event: moved %s -> %s", src, dst)
                self.queue.moved(src, dst, event.is_directory)
                return
            if src is not None:  # moved out of the folder: like a delete
                self.queue.deleted(src, event.is_directory, self.mirror_deletes)
            src, kind = dst, "created"  # moved in from outside: like a create
        if src is None:
            return
        if kind == "deleted":
            log.debug("event: deleted %s", src)
            self.queue.deleted(src, event.is_directory, self.mirror_deletes)
        elif event.is_directory:
            if kind == "created":
                log.debug("event: new directory %s", src)
                self.queue.add(Op("mkdir", src, is_dir=True))
                files, _dirs = self.scanner.scan(src)  # files already inside it
                for rel in files:
                    self.queue.changed(rel)
        elif kind in ("created", "modified", "attrib", "closed"):
            self.queue.changed(src)


class _Reader:
    """A file wrapper for DfsClient.put_stream: hashes what is read, notes a short read."""

    def __init__(self, f):
        self.f = f
        self.rewind()

    def rewind(self):
        self.f.seek(0)
        self.sha = hashlib.sha256()
        self.short = False

    def read(self, n):
        data = self.f.read(n)
        if len(data) < n:
            self.short = True
        self.sha.update(data)
        return data


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class Uploader:
    """Takes work from the queue and applies it to the cluster, one operation at a time.

    Runs in its own thread (``run()`` until ``stop()``). It is the only thread that calls
    the cluster and the only writer of the state store. An operation that fails because the
    cluster is unavailable is held and retried with exponential backoff (0.5 s .. 5 s) until
    it succeeds or the watcher stops: the queue keeps collecting changes meanwhile, and
    nothing is dropped. Other failures (a name the cluster refuses, a file we may not read)
    are logged once and the file is skipped until it changes again. ``_failed_lock`` guards
    ``failed``, which the main thread reads during rescans.
    """

    def __init__(self, client, tree, queue, state, mirror_deletes=False, patience=None):
        self.client = client
        self.tree = tree
        self.queue = queue
        self.state = state
        self.mirror_deletes = mirror_deletes
        self.patience = patience
        """Seconds of unavailability after which to give up (None: never; --once uses it)."""
        self.gave_up = False
        self.counts = {"uploaded": 0, "renamed": 0, "deleted": 0, "already": 0}
        self.failed = {}  # rel -> local signature when it failed for good
        self._failed_lock = threading.Lock()
        self._stop = threading.Event()
        self._dirs = set()  # remote directories known to exist
        self._did_work = True  # report "in sync" at the first idle moment

    # --- the loop ---------------------------------------------------------------------------

    def run(self):
        while not self._stop.is_set():
            op = self.queue.take(timeout=0.5)
            if op is None:
                if not self.stopping:
                    self._when_idle()
                continue
            try:
                self._apply_with_retry(op)
            finally:
                self.queue.done()
            self.state.flush_if_due()

    def stop(self):
        self._stop.set()
        self.queue.close()

    @property
    def stopping(self):
        return self._stop.is_set()

    def _when_idle(self):
        if self._did_work and self.queue.idle():
            self._did_work = False
            self.state.flush()
            log.info("in sync: %d files in %s; since start %s", len(self.state),
                     self.tree.remote_root, self.summary())
        else:
            self.state.flush_if_due()

    def _apply_with_retry(self, op):
        self._did_work = True
        backoff = BACKOFF_FIRST
        failures = 0
        first_failure = None
        while not self._stop.is_set():
            try:
                self.apply(op)
                if failures:
                    log.info("the cluster is back; %s done", op.describe())
                return
            except Stopped:
                return
            except TRANSIENT as exc:
                failures += 1
                first_failure = first_failure or time.monotonic()
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "cluster unavailable (%s); %s waits and is retried", exc, op.describe())
                if self.patience is not None and \
                        time.monotonic() - first_failure >= self.patience:
                    log.error("the cluster has been unavailable for %.0fs; giving up for now",
                              time.monotonic() - first_failure)
                    self.gave_up = True
                    self.stop()
                    return
            except errors.DfsError as exc:
                self._give_up(op, exc)
                return
            except OSError as exc:
                self._give_up(op, f"{exc.strerror or exc} ({exc.filename or 'local'})")
                return
            except Exception:
                log.exception("unexpected error during %s; skipped until it changes again",
                              op.describe())
                self._give_up(op, None)
                return
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _give_up(self, op, reason):
        if reason is not None:
            log.warning("%s failed: %s; skipped until it changes again", op.describe(), reason)
        if op.kind == "sync":
            signature = self.tree.stat(op.path)
            if signature is not None:
                with self._failed_lock:
                    self.failed[op.path] = signature

    def summary(self):
        c = self.counts
        with self._failed_lock:
            skipped = len(self.failed)
        return (f"{c['uploaded']} uploaded, {c['renamed']} renamed, {c['deleted']} deleted, "
                f"{c['already']} found already there, {skipped} skipped")

    def should_check(self, rel, signature):
        """False for a file that failed for good and has not changed since."""
        with self._failed_lock:
            return self.failed.get(rel) != signature

    # --- operations ---------------------------------------------------------------------------

    def apply(self, op):
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
            self.verify(*op.data)
        else:
            raise ValueError(f"unknown operation {op.kind!r}")

    def ensure_dir(self, remote):
        """Make remote directory ``remote`` and its parents unless known to exist."""
        if remote == "/" or remote in self._dirs:
            return
        self.ensure_dir(posixpath.dirname(remote))
        self.client.mkdir(remote, exist_ok=True)
        self._dirs.add(remote)

    def _forget_dirs(self, remote):
        """After a remote rename or delete: directories under ``remote`` may be gone."""
        self._dirs = {d for d in self._dirs if d != remote and not d.startswith(remote + "/")}

    def sync(self, rel):
        """Upload ``rel`` unless the cluster already has these bytes."""
        with self._failed_lock:
            self.failed.pop(rel, None)
        try:
            st = os.lstat(self.tree.local(rel))
        except FileNotFoundError:
            return
        if not stat_module.S_ISREG(st.st_mode):
            return
        signature = _signature(st)
        entry = self.state.get(rel)
        if entry is not None and entry.signature == signature:
            return
        if entry is not None and entry.size == st.st_size:
            if self._sha256(rel) == entry.sha256:  # touched, same bytes
                self.state.record(rel, entry._replace(mtime_ns=st.st_mtime_ns))
                return
        elif entry is None:
            record = self._same_as_remote(rel, st)
            if record is not None:
                log.debug("already in the cluster: %s", rel)
                self.state.record(rel, record)
                self.counts["already"] += 1
                return
        self.upload(rel)

    def _sha256(self, rel):
        sha = hashlib.sha256()
        with open(self.tree.local(rel), "rb") as f:
            while data := f.read(READ_SIZE):
                sha.update(data)
        return sha.hexdigest()

    def _same_as_remote(self, rel, st):
        """Without a state entry: compare with the remote file's size and chunk CRC32Cs.

        -> a FileRecord if the cluster holds exactly these bytes, else None."""
        remote = self.tree.remote(rel)
        try:
            remote_stat = self.client.stat(remote)
            if remote_stat.kind != "f" or remote_stat.size != st.st_size:
                return None
            layout = self.client.layout(remote)
        except (errors.FileNotFound, errors.NotADirectory, errors.PermissionDenied):
            return None
        sha = hashlib.sha256()
        with open(self.tree.local(rel), "rb") as f:
            if _signature(os.fstat(f.fileno())) != _signature(st):
                return None
            for chunk in layout.chunks:
                data = f.read(chunk.ref.length)
                if len(data) != chunk.ref.length or chunks.crc(data) != chunk.ref.crc:
                    return None
                sha.update(data)
            if f.read(1):
                return None
        return FileRecord(st.st_size, st.st_mtime_ns, sha.hexdigest(), remote_stat.ino)

    def upload(self, rel):
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
            reader = _Reader(f)
            bar, update = progress_bar(st.st_size, rel)

            def progress(nbytes):
                if self.stopping:
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
        self.counts["uploaded"] += 1
        log.info("uploaded %s (%s in %.1fs)", rel, _human(st.st_size), elapsed)
        if self.tree.stat(rel) not in (None, _signature(st)):
            log.info("%s changed while it was uploaded; it is uploaded again once it settles",
                     rel)
            self.queue.changed(rel)

    def _put(self, reader, remote, st, progress):
        mode = (st.st_mode & 0o700) | 0o600  # private, and always readable for a restore
        try:
            return self.client.put_stream(reader, remote, st.st_size, mode=mode,
                                          overwrite=True, progress=progress)
        except errors.FileNotFound:
            # The remote folder went away since we last made it: make it again, once.
            self._dirs.clear()
            self.ensure_dir(posixpath.dirname(remote))
            reader.rewind()
            return self.client.put_stream(reader, remote, st.st_size, mode=mode,
                                          overwrite=True, progress=progress)

    def move(self, src, dst, is_dir):
        """A local rename: a remote rename if the target is not already there."""
        moved_entries = self.state.under(src) if is_dir else (
            {src: self.state.get(src)} if self.state.get(src) else {})
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
                self.counts["renamed"] += 1
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

    def delete(self, rel, is_dir):
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
                self.counts["deleted"] += 1
                log.info("deleted %s in the cluster", rel)
            else:
                log.info("not deleting %s in the cluster: it was replaced there", rel)
        except errors.FileNotFound:
            pass
        self.state.forget(rel)

    def _delete_tree(self, rel):
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
                self.counts["deleted"] += 1
                log.info("deleted %s in the cluster", child)
        for child in self.state.under(rel):
            self.state.forget(child)
        if rel:
            try:
                self.client.rmdir(remote)
                self._forget_dirs(remote)
            except (errors.FileNotFound, errors.DirectoryNotEmpty):
                pass

    def verify(self, files, dirs):
        """Start-up check of the files the state says are uploaded and unchanged: one
        listing per remote directory; a file missing or replaced there is checked again.
        Also makes the remote directories, and (mirror deletes) removes what was deleted
        locally while the watcher was not running."""
        listings = {}
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
        for rel, signature in files.items():
            entry = self.state.get(rel)
            listing = listings.get(posixpath.dirname(rel))
            if entry is None or entry.signature != signature or listing is None:
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


class Backup:
    """Watches ``tree.local_root`` and keeps ``tree.remote_root`` in the cluster up to date.

    ``run()`` (in the caller's thread) starts the watchdog observer, scans the folder,
    starts the uploader thread, then rescans every ``rescan_interval`` seconds until
    ``request_stop()`` (safe from a signal handler or any thread); then it stops the
    observer, the uploader and saves the state. ``once=True`` does one full sync and
    returns when there is nothing left to do.
    """

    def __init__(self, client, tree, state, settle=SETTLE_SECONDS, mirror_deletes=False,
                 rescan_interval=RESCAN_SECONDS, patience=None):
        self.client = client
        self.tree = tree
        self.state = state
        self.mirror_deletes = mirror_deletes
        self.rescan_interval = rescan_interval
        self.scanner = Scanner(tree)
        self.queue = ChangeQueue(settle, tree.stat)
        self.uploader = Uploader(client, tree, self.queue, state, mirror_deletes, patience)
        self._stop = threading.Event()
        self._observer = None
        self._thread = None

    def request_stop(self):
        self._stop.set()

    def _start_observer(self):
        from watchdog import events
        from watchdog.observers import Observer
        wanted = [events.FileCreatedEvent, events.FileModifiedEvent, events.FileAttribEvent,
                  events.FileClosedEvent, events.FileMovedEvent, events.FileDeletedEvent,
                  events.DirCreatedEvent, events.DirMovedEvent, events.DirDeletedEvent]
        handler = EventHandler(self.tree, self.queue, self.scanner, self.mirror_deletes)
        observer = Observer()
        observer.schedule(handler, self.tree.local_root, recursive=True, event_filter=wanted)
        observer.daemon = True
        try:
            observer.start()
        except OSError as exc:  # typically the inotify watch limit on a huge tree
            raise errors.NoSpace(f"cannot watch {self.tree.local_root}: {exc} (on Linux, raise "
                                 "fs.inotify.max_user_watches, or use --once from cron)") from None
        self._observer = observer

    def _initial_scan(self):
        """Queue every file that differs from the state; then the start-up check."""
        files, dirs = self.scanner.scan()
        queued = 0
        for rel, signature in files.items():
            entry = self.state.get(rel)
            if entry is None or entry.signature != signature:
                self.queue.changed(rel)
                queued += 1
        self.queue.add(Op("verify", "", data=(files, dirs)))
        log.info("%s: %d files, %d new or changed since the last run", self.tree.local_root,
                 len(files), queued)

    def rescan(self):
        files, _dirs = self.scanner.scan()
        for rel, signature in files.items():
            entry = self.state.get(rel)
            if (entry is None or entry.signature != signature) and \
                    self.uploader.should_check(rel, signature):
                self.queue.changed(rel)

    def run(self, once=False):
        if not once:
            self._start_observer()  # before the scan: nothing falls between the two
        self._initial_scan()
        self._thread = threading.Thread(target=self.uploader.run, name="dfs-backup-uploader",
                                        daemon=True)
        self._thread.start()
        if not once:
            log.info("watching %s -> %s (settle %.1fs%s)", self.tree.local_root,
                     self.tree.remote_root, self.queue.settle,
                     ", mirroring deletes" if self.mirror_deletes else "")
        status = 0
        next_rescan = time.monotonic() + self.rescan_interval
        try:
            while not self._stop.wait(0.2 if once else 1.0):
                if self.uploader.gave_up:
                    status = 1
                    break
                if once:
                    if self.queue.idle():
                        break
                    continue
                if not os.path.isdir(self.tree.local_root):
                    log.error("the watched folder %s is gone; stopping", self.tree.local_root)
                    status = 1
                    break
                if self._observer is not None and not self._observer.is_alive():
                    log.error("the folder watcher stopped unexpectedly; stopping")
                    status = 1
                    break
                if self.rescan_interval and time.monotonic() >= next_rescan:
                    self.rescan()
                    next_rescan = time.monotonic() + self.rescan_interval
        finally:
            self._shutdown()
        if once and self.uploader.failed:
            status = 1
        return status

    def _shutdown(self):
        if self._observer is not None:
            self._observer.stop()
        self.uploader.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                log.warning("the uploader did not stop within 30s; exiting anyway")
        if self._observer is not None:
            self._observer.join(timeout=5)
        self.state.flush()
        log.info("stopped: %d files in %s; %s", len(self.state), self.tree.remote_root,
                 self.uploader.summary())


def _remote_dir(text):
    """'photos/', '/photos' -> '/photos'; '' and '/' -> '/'."""
    return posixpath.normpath("/" + (text or "").strip().strip("/"))


def cmd_backup(args):
    """The CLI entry: run until SIGINT/SIGTERM (exit 0), or one sync with --once."""
    from dfs.client import DfsClient
    if not args.debug:
        for name in (__name__, "dfs.backup.state", "dfs.backup.changes"):
            logging.getLogger(name).setLevel(logging.INFO)
    local = os.path.abspath(os.path.expanduser(args.local_dir))
    if not os.path.isdir(local):
        raise errors.FileNotFound(f"{args.local_dir}: no such local folder")
    settle = getattr(args, "settle", None)
    settle = SETTLE_SECONDS if settle is None else settle
    if settle < 0:
        raise errors.InvalidArgument("--settle must not be negative")
    remote = _remote_dir(args.remote_dir)
    client = DfsClient.from_auth_file(args.auth, failover_deadline=FAILOVER_DEADLINE,
                                      cache_dir="")
    try:
        masters = format_addresses(client.config.masters)
        state_path = getattr(args, "state", None) or default_state_path(local, remote, masters,
                                                                        client.user)
        state = StateStore(os.path.abspath(state_path), local, remote, masters, client.user)
        state.load()
        tree = Tree(local, remote, ignore=[state.path, state.path + ".tmp"])
        once = getattr(args, "once", False)
        backup = Backup(client, tree, state, settle=settle, mirror_deletes=args.mirror_deletes,
                        patience=ONCE_PATIENCE if once else None)
        previous = {}

        def on_signal(signum, frame):
            log.info("signal %d: stopping", signum)
            backup.request_stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        try:
            return backup.run(once=once)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        client.close()

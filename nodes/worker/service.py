"""A worker: stores chunks, serves them against tokens, reports to the master.

On disk (all created when missing)::

    DATA/chunks/<id>       primary copies          DATA/chunks/<id>.crc   block CRCs
    DATA/backups/<id>      backup copies           DATA/backups/<id>.crc
    DATA/tmp/              uploads in progress (cleared at start)
    DATA/worker-id         this worker's stable name

A chunk is complete when its data file exists: the ``.crc`` file is renamed into place
first, the data file last, both after an fsync. Every read checks the CRC32C of each
64 KiB block it touches; a mismatch raises ChunkCorrupt and no byte of it leaves.

Threads: one per rpyc connection (clients, other workers), one ``Reporter`` per metadata
server that logs in, registers, heartbeats and hands master commands to a small executor
(so a slow replication never delays a heartbeat), and one ``Scrubber`` that re-reads the
stored chunks at a bounded rate and queues checksum failures for the next heartbeat.
``ChunkStore.lock`` guards the staging table, the counters and the report feeds.
"""

import array
import logging
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import rpyc

from dfs import auth, chunks, errors, rpc
from dfs.config import BLOCK_SIZE, MIB
from dfs.fsutil import fsync_dir
from nodes.master.links import serve_voter_call
from nodes.master.voter import Voter
from nodes.rpcserver import boundary, expect

log = logging.getLogger(__name__)

KINDS = ("chunks", "backups")
MAX_PIECE = 16 * MIB
SCRUB_PIECE = MIB  # bytes read at a time when verifying a whole chunk (a BLOCK_SIZE multiple)


def _kind(kind):
    if kind not in KINDS:
        raise errors.InvalidArgument(f"kind must be one of {KINDS}")
    return kind


class ChunkStore:
    """The chunk files of one worker and what it has not told the master yet."""

    def __init__(self, data_dir, capacity=0):
        self.data_dir = data_dir
        self.capacity = capacity
        self.lock = threading.Lock()
        self.dirs = {kind: os.path.join(data_dir, kind) for kind in KINDS}
        self.tmp_dir = os.path.join(data_dir, "tmp")
        for path in (*self.dirs.values(), self.tmp_dir):
            os.makedirs(path, exist_ok=True)
        shutil.rmtree(self.tmp_dir)
        os.makedirs(self.tmp_dir)
        self.staging = {}  # (chunk_id, kind) -> Upload
        self.used = 0
        self.feeds = {}  # reporter name -> ([added], [removed], [bad]) not yet told to it
        self.busy = 0
        self.chunk_size = 64 * MIB  # until the master says
        for chunk_id, kind in self.inventory():
            self.used += os.path.getsize(self.path(chunk_id, kind))

    def path(self, chunk_id, kind):
        return os.path.join(self.dirs[kind], str(chunk_id))

    def inventory(self):
        found = []
        for kind, directory in self.dirs.items():
            for name in os.listdir(directory):
                if name.isdigit():
                    if os.path.exists(os.path.join(directory, name + ".crc")):
                        found.append((int(name), kind))
                    else:
                        os.unlink(os.path.join(directory, name))
        return found

    def locate(self, chunk_id):
        for kind in KINDS:
            path = self.path(chunk_id, kind)
            if os.path.exists(path):
                return kind, path
        raise errors.ChunkMissing(f"chunk {chunk_id} is not on this worker")

    def free(self):
        stats = os.statvfs(self.data_dir)
        disk_free = stats.f_bavail * stats.f_frsize
        if self.capacity:
            return max(0, min(disk_free, self.capacity - self.used))
        return disk_free

    # --- writing ---------------------------------------------------------------------

    def write(self, chunk_id, kind, offset, data, total, crc):
        """Store one piece of a chunk; the last piece makes the chunk complete."""
        key = (chunk_id, kind)
        with self.lock:
            upload = self.staging.get(key)
            if offset == 0:
                if upload is not None:
                    upload.abort()
                if self.capacity and self.used + total > self.capacity:
                    raise errors.NoSpace(f"worker is full ({self.used} of {self.capacity} bytes)")
                upload = Upload(os.path.join(self.tmp_dir, f"{chunk_id}.{kind}"), total)
                self.staging[key] = upload
            elif upload is None or upload.written != offset:
                raise errors.InvalidArgument(f"chunk {chunk_id}: piece at unexpected offset")
        try:
            upload.add(data)
            if upload.written < total:
                return False
            with self.lock:
                self.staging.pop(key, None)
            self._finish(upload, chunk_id, kind, crc)
            return True
        except OSError as exc:
            self._drop_upload(key, upload)
            if exc.errno == 28:
                raise errors.NoSpace("worker disk is full") from None
            raise
        except errors.DfsError:
            self._drop_upload(key, upload)
            raise

    def _drop_upload(self, key, upload):
        with self.lock:
            if self.staging.get(key) is upload:
                del self.staging[key]
        upload.abort()

    def _finish(self, upload, chunk_id, kind, crc):
        if upload.crc != crc:
            raise errors.ChunkCorrupt(f"chunk {chunk_id} arrived damaged (checksum mismatch)")
        upload.close()
        final = self.path(chunk_id, kind)
        crc_tmp = upload.path + ".crc"
        with open(crc_tmp, "wb") as f:
            f.write(array.array("I", upload.block_crcs).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(crc_tmp, final + ".crc")
        os.replace(upload.path, final)
        fsync_dir(self.dirs[kind])  # the renames too must survive a power cut
        with self.lock:
            self.used += upload.total
            for added, _removed, _bad in self.feeds.values():
                added.append((chunk_id, kind))

    # --- reading ---------------------------------------------------------------------

    def block_crcs(self, path):
        with open(path + ".crc", "rb") as f:
            return array.array("I", f.read())

    def read(self, chunk_id, offset, length):
        kind, path = self.locate(chunk_id)
        size = os.path.getsize(path)
        if offset < 0 or length < 0 or offset > size:
            raise errors.InvalidArgument(f"chunk {chunk_id}: offset {offset} outside 0..{size}")
        if length > MAX_PIECE:
            raise errors.InvalidArgument(f"read of {length} bytes exceeds {MAX_PIECE}")
        end = min(size, offset + length)
        first_block = offset // BLOCK_SIZE
        start = first_block * BLOCK_SIZE
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        bad = chunks.first_bad_block(data, self.block_crcs(path), BLOCK_SIZE, first_block)
        if bad is not None:
            log.error("chunk %d (%s) block %d fails its checksum", chunk_id, kind, bad)
            raise errors.ChunkCorrupt(f"chunk {chunk_id} is corrupt on this worker")
        return data[offset - start:end - start], size

    def delete(self, chunk_id, kind):
        path = self.path(chunk_id, kind)
        try:
            size = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            return
        try:
            os.unlink(path + ".crc")
        except FileNotFoundError:
            pass
        with self.lock:
            self.used -= size
            for _added, removed, _bad in self.feeds.values():
                removed.append((chunk_id, kind))

    def report_bad(self, chunk_id, kind):
        """A replica here failed its checksum: tell every metadata server."""
        with self.lock:
            for _added, _removed, bad in self.feeds.values():
                if (chunk_id, kind) not in bad:
                    bad.append((chunk_id, kind))

    def take_changes(self, feed):
        """What changed since ``feed`` (one per metadata server) last asked:
        -> (added, removed, bad)."""
        with self.lock:
            added, removed, bad = self.feeds.get(feed, ([], [], []))
            self.feeds[feed] = ([], [], [])
        return tuple(added), tuple(removed), tuple(bad)

    def give_back(self, feed, added, removed, bad=()):
        """A heartbeat failed: report these again next time."""
        with self.lock:
            pending_added, pending_removed, pending_bad = self.feeds.setdefault(feed, ([], [], []))
            pending_added[:0] = added
            pending_removed[:0] = removed
            pending_bad[:0] = bad

    def verify(self, chunk_id, kind, pace=None):
        """Re-read a whole replica and check every block's CRC. -> True if good, False if
        corrupt, None if it is gone (deleted meanwhile). ``pace(nbytes)`` is called after
        each piece read (the scrubber sleeps there to keep to its rate)."""
        path = self.path(chunk_id, kind)
        try:
            crcs = self.block_crcs(path)
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if len(crcs) != (size + BLOCK_SIZE - 1) // BLOCK_SIZE:
                    return False
                block = 0
                while True:
                    data = f.read(SCRUB_PIECE)
                    if not data:
                        return True
                    if chunks.first_bad_block(data, crcs, BLOCK_SIZE, block) is not None:
                        return False
                    block += (len(data) + BLOCK_SIZE - 1) // BLOCK_SIZE
                    if pace is not None:
                        pace(len(data))
        except FileNotFoundError:
            return None


class Scrubber:
    """Background checking of every stored replica (``run()``/``stop()``, one thread
    named ``scrubber``, owned by the worker).

    Each pass re-reads every complete chunk file at no more than ``rate`` bytes per second
    and verifies each 64 KiB block against its stored CRC32C. A replica that fails is
    logged and queued in ``ChunkStore.report_bad``; the next heartbeat carries it to the
    metadata servers, and the leader drops that replica and re-replicates a good copy (the
    usual repair path), without any client having to read it first. A pass starts at most
    every ``min_pass`` seconds, so a small store is not re-read in a tight loop. The
    thread only reads files and takes ``ChunkStore.lock`` briefly to queue a report.
    """

    def __init__(self, store, rate, min_pass=5.0):
        self.store = store
        self.rate = rate
        self.min_pass = min_pass
        self.passes = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="scrubber", daemon=True)

    def start(self):
        if self.rate > 0:
            self.thread.start()

    def stop(self):
        self._stop.set()

    def run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.scrub_pass()
            except Exception:
                log.exception("scrub pass failed")
            self.passes += 1
            self._stop.wait(max(0.0, started + self.min_pass - time.monotonic()))

    def scrub_pass(self):
        started = time.monotonic()
        done = 0

        def pace(nbytes):
            nonlocal done
            done += nbytes
            delay = started + done / self.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        for chunk_id, kind in sorted(self.store.inventory()):
            if self._stop.is_set():
                return
            if self.store.verify(chunk_id, kind, pace) is False:
                log.error("scrub: chunk %d (%s) fails its checksum: reporting it", chunk_id,
                          kind)
                self.store.report_bad(chunk_id, kind)


class Upload:
    """A chunk being received: appended in order, checksummed as it arrives."""

    def __init__(self, path, total):
        self.path = path
        self.total = total
        self.written = 0
        self.crc = 0
        self.block_crcs = []
        self.file = open(path, "wb")

    def add(self, data):
        if self.written + len(data) > self.total:
            raise errors.InvalidArgument("more bytes than the chunk's announced length")
        if self.written % BLOCK_SIZE or (len(data) % BLOCK_SIZE and
                                         self.written + len(data) != self.total):
            raise errors.InvalidArgument(f"pieces must be multiples of {BLOCK_SIZE} bytes")
        self.file.write(data)
        self.crc = chunks.crc_update(data, self.crc)
        self.block_crcs.extend(chunks.block_crcs(data))
        self.written += len(data)

    def close(self):
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def abort(self):
        self.file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class WorkerService(rpyc.Service):
    """Data calls from clients and other workers; each needs a chunk token."""

    def __init__(self, worker):
        super().__init__()
        self.worker = worker

    @boundary
    def exposed_write(self, token, chunk_id, kind, offset, data, total, crc):
        """Store a piece of a chunk. -> True once the whole chunk is durable."""
        expect(chunk_id, int, "chunk id")
        expect(offset, int, "offset")
        expect(data, bytes, "data")
        expect(total, int, "total")
        expect(crc, int, "crc")
        _kind(kind)
        self.worker.check_token(token, "w", chunk_id)
        store = self.worker.store
        if not 0 < total <= store.chunk_size or len(data) > MAX_PIECE:
            raise errors.InvalidArgument("chunk or piece larger than allowed")
        if offset < 0 or offset + len(data) > total or not data:
            raise errors.InvalidArgument("piece outside the chunk")
        with self.worker.activity():
            return store.write(chunk_id, kind, offset, data, total, crc)

    @boundary
    def exposed_voter(self, method, args, stamp, mac):
        """Leases, votes and stale marks asked by a metadata server (signed)."""
        return serve_voter_call(self.worker.voter_secret, self.worker.voter, method, args,
                                stamp, mac)

    @boundary
    def exposed_fsck_scan(self, stamp, mac):
        """A metadata server (signed with the voter secret) asks for every chunk here, each
        re-read and checked: -> ((chunk id, kind, checksums good), ...)."""
        auth.verify_voter_call(self.worker.voter_secret, "fsck_scan", (), stamp, mac)
        store = self.worker.store
        found = []
        for chunk_id, kind in sorted(store.inventory()):
            ok = store.verify(chunk_id, kind)
            if ok is not None:
                found.append((chunk_id, kind, ok))
        return tuple(found)

    @boundary
    def exposed_read(self, token, chunk_id, offset, length):
        """-> (bytes, chunk length); every block touched is checksum-verified first."""
        expect(chunk_id, int, "chunk id")
        expect(offset, int, "offset")
        expect(length, int, "length")
        self.worker.check_token(token, "r", chunk_id)
        with self.worker.activity():
            return self.worker.store.read(chunk_id, offset, length)


class Worker:
    def __init__(self, config):
        self.config = config
        self.store = ChunkStore(config.data_dir, config.capacity)
        self.worker_id = self._load_or_create_id()
        self.secret = auth.chunk_secret(config.join_token)
        self.voter_secret = auth.voter_secret(config.join_token)
        self.voter = Voter(os.path.join(config.data_dir, "voter.json"), time.monotonic)
        self.address = (config.host, config.port)

    def _load_or_create_id(self):
        path = os.path.join(self.config.data_dir, "worker-id")
        try:
            with open(path, encoding="ascii") as f:
                return f.read().strip()
        except FileNotFoundError:
            worker_id = "w-" + uuid.uuid4().hex[:10]
            with open(path, "w", encoding="ascii") as f:
                f.write(worker_id + "\n")
            return worker_id

    def check_token(self, token, op, chunk_id):
        """Fencing: a token from an epoch older than the newest we know is refused."""
        auth.verify_chunk_token(self.secret, token, op, chunk_id, self.voter.epoch)

    def activity(self):
        return _Busy(self.store)

    def replicate(self, chunk_id, kind, host, port, source_kind, token):
        """Copy a chunk from another worker (the master asked, to restore replication)."""
        conn = rpc.connect(host, port)
        try:
            blob = rpc.read_pieces(
                lambda offset: rpc.call(conn, "read", token, chunk_id, offset, MIB),
                None, f"chunk {chunk_id} while replicating")
        finally:
            conn.close()
        if not blob:
            return
        self.store.write(chunk_id, kind, 0, blob, len(blob), chunks.crc(blob))
        log.info("replicated chunk %d from %s:%d (%s) as %s", chunk_id, host, port,
                 source_kind, kind)

    def execute(self, command):
        try:
            if command[0] == "delete":
                self.store.delete(command[1], command[2])
            elif command[0] == "replicate":
                self.replicate(*command[1:])
        except Exception as exc:
            log.warning("command %s for chunk %s failed: %s", command[0], command[1], exc)


class _Busy:
    def __init__(self, store):
        self.store = store

    def __enter__(self):
        with self.store.lock:
            self.store.busy += 1

    def __exit__(self, *exc):
        with self.store.lock:
            self.store.busy -= 1


class Reporter:
    """Keeps this worker known to one metadata server: logs in, registers with the full
    inventory, heartbeats with what changed, runs the commands the leader sends back;
    reconnects with backoff after any failure. One Reporter per metadata server, so the
    standby knows every chunk's location before it has to take over."""

    def __init__(self, worker, address):
        self.worker = worker
        self.address = address
        self.feed = "%s:%d" % address
        self._stop = threading.Event()
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worker-cmd")
        self.thread = threading.Thread(target=self.run, name=f"reporter-{self.feed}", daemon=True)
        self.interval = 1.0

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def run(self):
        backoff = 0.2
        host, port = self.address
        while not self._stop.is_set():
            try:
                self._session(host, port)
                backoff = 0.2
            except (errors.DfsError, *rpc.TRANSPORT_ERRORS, OSError) as exc:
                log.info("metadata server %s:%d: %s", host, port, exc)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 1.0)

    def _session(self, host, port):
        worker, store = self.worker, self.worker.store
        conn = rpc.connect(host, port, timeout=10)
        try:
            self.interval, _epoch = rpc.login(conn, "worker_login", worker.worker_id,
                                              worker.config.join_token)
            store.take_changes(self.feed)  # the full inventory below supersedes them
            chunk_size, epoch = conn.root.worker_register(
                worker.address[0], worker.address[1], store.free(), store.used,
                tuple(store.inventory()))
            if chunk_size:
                store.chunk_size = chunk_size
            log.info("registered with %s:%d as %s", host, port, worker.worker_id)
            while not self._stop.wait(self.interval):
                added, removed, bad = store.take_changes(self.feed)
                try:
                    commands = conn.root.worker_heartbeat(store.free(), store.used, store.busy,
                                                          added, removed, bad)
                except Exception:
                    store.give_back(self.feed, added, removed, bad)
                    raise
                if commands is None:
                    return  # the master forgot us (restart, or we were declared dead)
                for command in commands:
                    self.executor.submit(worker.execute, command)
        finally:
            conn.close()


def run(config, ready=None):
    from rpyc.utils.helpers import classpartial

    from nodes.rpcserver import make_server

    config.validate()
    worker = Worker(config)
    server = make_server(classpartial(WorkerService, worker), config.host, config.port)
    worker.address = (config.host, server.port)
    reporters = [Reporter(worker, address) for address in config.masters]
    for reporter in reporters:
        reporter.start()
    scrubber = Scrubber(worker.store, config.scrub_bytes_per_second)
    scrubber.start()
    log.info("worker %s serving on %s:%d (data in %s)", worker.worker_id, config.host,
             server.port, config.data_dir)
    if ready is not None:
        ready(server.port)
    try:
        server.start()
    finally:
        scrubber.stop()
        for reporter in reporters:
            reporter.stop()
        server.close()

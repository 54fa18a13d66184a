"""`dfs fsck` on the leader: the namespace checked against what the workers really hold.

A check asks every live worker to re-read all its chunk files and verify their block
CRCs (``fsck_scan``, signed with the cluster's voter secret, so only a metadata server
can ask), then compares under the metadata lock:

- missing: a chunk of a file (or of a trashed file) with no good copy anywhere;
- under: fewer good copies than the replication factor (also a location the master
  believed in whose file is gone from the worker's disk);
- corrupt: a copy that fails its checksums;
- orphan: a chunk file no file, trashed file or pending upload references.

With ``repair`` the leader then forgets locations whose files are gone and drops corrupt
copies (never the last one), so the usual repair path (WorkerTable.tick) copies good
ones, and tells workers to delete orphans. Missing chunks cannot be repaired: they are
reported with their file's path.

Threads: a check runs on its own thread (``fsck-N``); scans of the workers run in
parallel without the metadata lock; comparing and repairing take it. Jobs live in
``Fsck.jobs`` (guarded by ``Fsck.lock``); clients poll ``result(job)``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from dfs import auth, errors, rpc, wire
from dfs.namespace.model import ROOT_INO, Inode, Namespace
from nodes.master.placement import WorkerTable

log = logging.getLogger(__name__)

SCAN_TIMEOUT = 3600.0  # a worker re-reads all its chunks: allow for big disks
KEEP_JOBS = 8
Scan = dict[int, tuple[str, bool]]  # chunk id -> (kind, checksums good) on one worker


class Fsck:
    def __init__(self, lock: AbstractContextManager[object], require_serving: Callable[[], None],
                 workers: WorkerTable, namespace: Callable[[], Namespace],
                 secret: bytes) -> None:
        """``lock``: the metadata lock; ``namespace()``: the namespace served now (a
        snapshot install replaces it); ``secret``: the voter secret, to sign the scans."""
        self.metadata_lock = lock
        self.require_serving = require_serving
        self.workers = workers
        self.namespace = namespace
        self.secret = secret
        self.lock = threading.Lock()
        self.jobs: dict[int, wire.FsckResult] = {}
        self.ids = itertools.count(1)

    def start(self, repair: bool) -> int:
        with self.lock:
            job = next(self.ids)
            self.jobs[job] = wire.FsckResult("running")
            for old in sorted(self.jobs)[:-KEEP_JOBS]:
                del self.jobs[old]
        threading.Thread(target=self._run, args=(job, repair), name=f"fsck-{job}",
                         daemon=True).start()
        return job

    def result(self, job: int) -> wire.FsckResult:
        """Where job ``job`` is: running, done (with its report) or failed."""
        with self.lock:
            if job not in self.jobs:
                raise errors.FileNotFound(f"no fsck job {job} (the master restarted?)")
            return self.jobs[job]

    def _run(self, job: int, repair: bool) -> None:
        outcome: wire.FsckResult
        try:
            outcome = wire.FsckResult("done", self.check(repair))
        except errors.DfsError as exc:
            outcome = wire.FsckResult("failed", message=exc.message)
        except Exception as exc:
            log.exception("fsck failed")
            outcome = wire.FsckResult("failed", message=f"internal error: {exc}")
        with self.lock:
            self.jobs[job] = outcome

    # --- the check ------------------------------------------------------------------------

    def _scan(self, worker_id: str, host: str, port: int) -> Scan:
        conn = rpc.connect(host, port, timeout=SCAN_TIMEOUT)
        try:
            stamp, mac = auth.sign_voter_call(self.secret, "fsck_scan", (), worker_id)
            return {cid: (kind, ok) for cid, kind, ok in conn.root.fsck_scan(stamp, mac)}
        finally:
            conn.close()

    def file_paths(self, ns: Namespace) -> dict[int, str]:
        """{chunk id: path} of every file in the tree and in the trash. Lock held."""
        paths: dict[int, str] = {}
        stack: list[tuple[str, Inode]] = [("", ns.inodes[ROOT_INO])]
        while stack:
            prefix, directory = stack.pop()
            for name, ino in directory.children.items():
                inode = ns.inodes[ino]
                if inode.kind == "d":
                    stack.append((f"{prefix}/{name}", inode))
                elif inode.kind == "f":
                    for ref in inode.chunks:
                        paths.setdefault(ref.chunk_id, f"{prefix}/{name}")
        for item in ns.trash.values():
            for ref in item.inode.chunks:
                whose = ns.owner_name(item.uid)
                paths.setdefault(ref.chunk_id, f"{item.path} (in {whose}'s trash)")
        return paths

    def check(self, repair: bool) -> wire.FsckReport:
        """Scan every live worker and judge every chunk of every file."""
        workers = self.workers
        with self.metadata_lock:
            self.require_serving()
            live = [(w.worker_id, w.host, w.port) for w in workers.live()]
            before = {cid: dict(holders) for cid, holders in workers.locations.items()}
            newest = self.namespace().next_chunk_id  # allocated later: too new to judge
        scans: dict[str, Scan] = {}
        unreachable: list[str] = []
        with ThreadPoolExecutor(max(1, len(live)), thread_name_prefix="fsck-scan") as pool:
            futures = {wid: pool.submit(self._scan, wid, host, port) for wid, host, port in live}
            for wid, future in futures.items():
                try:
                    scans[wid] = future.result()
                except Exception as exc:
                    log.warning("fsck: worker %s could not be scanned: %s", wid, exc)
                    unreachable.append(wid)
        with self.metadata_lock:
            self.require_serving()
            ns = self.namespace()
            paths = self.file_paths(ns)
            problems: list[wire.FsckProblem] = []
            stale: list[tuple[int, str]] = []
            corrupt: list[tuple[int, str]] = []
            orphans: list[tuple[int, str, str]] = []
            for wid, found in scans.items():
                for cid, (kind, ok) in found.items():
                    if cid >= newest:
                        continue
                    if cid not in paths and cid not in ns.pending:
                        problems.append(wire.FsckProblem("orphan", cid, wid, ""))
                        orphans.append((cid, wid, kind))
                    elif not ok and cid in paths:
                        problems.append(wire.FsckProblem("corrupt", cid, wid, paths[cid]))
                        corrupt.append((cid, wid))
            for cid, path in sorted(paths.items()):
                good = 0
                for wid, _kind in before.get(cid, {}).items():
                    worker = workers.workers.get(wid)
                    if worker is None or not worker.alive:
                        continue
                    if wid not in scans:
                        good += 1  # not scanned: trust the master's table
                    elif cid not in scans[wid]:
                        stale.append((cid, wid))  # the master believed in a file that is gone
                for found in scans.values():
                    if found.get(cid, (None, False))[1]:
                        good += 1
                if good == 0:
                    problems.append(wire.FsckProblem("missing", cid, "", path))
                elif good < workers.replication:
                    problems.append(wire.FsckProblem("under", cid, "", path))
            scheduled = 0
            if repair:
                for cid, wid in stale:
                    scheduled += workers.forget_location(cid, wid)
                for cid, wid in corrupt:
                    scheduled += workers.drop_corrupt(cid, wid)
                for cid, wid, kind in orphans:
                    scheduled += workers.delete_replica(cid, wid, kind)
                log.info("fsck --repair: %d repair(s) scheduled", scheduled)
            files = sum(1 for i in ns.inodes.values() if i.kind == "f") + len(ns.trash)
            return wire.FsckReport(files, len(paths), len(scans), tuple(sorted(unreachable)),
                                   tuple(problems), scheduled)

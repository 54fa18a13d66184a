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

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from dfs import auth, errors, rpc
from dfs.namespace.model import ROOT_INO

log = logging.getLogger(__name__)

SCAN_TIMEOUT = 3600.0  # a worker re-reads all its chunks: allow for big disks
KEEP_JOBS = 8
FIXABLE = ("under", "corrupt", "orphan")


class Fsck:
    def __init__(self, state):
        self.state = state
        self.lock = threading.Lock()
        self.jobs = {}  # job id -> ("running", None) | ("done", report) | ("failed", message)
        self.ids = itertools.count(1)

    def start(self, repair):
        with self.lock:
            job = next(self.ids)
            self.jobs[job] = ("running", None)
            for old in sorted(self.jobs)[:-KEEP_JOBS]:
                del self.jobs[old]
        threading.Thread(target=self._run, args=(job, repair), name=f"fsck-{job}",
                         daemon=True).start()
        return job

    def result(self, job):
        with self.lock:
            if job not in self.jobs:
                raise errors.FileNotFound(f"no fsck job {job} (the master restarted?)")
            return self.jobs[job]

    def _run(self, job, repair):
        try:
            outcome = ("done", self.check(repair))
        except errors.DfsError as exc:
            outcome = ("failed", exc.message)
        except Exception as exc:
            log.exception("fsck failed")
            outcome = ("failed", f"internal error: {exc}")
        with self.lock:
            self.jobs[job] = outcome

    # --- the check ------------------------------------------------------------------------

    def _scan(self, host, port):
        conn = rpc.connect(host, port, timeout=SCAN_TIMEOUT)
        try:
            stamp, mac = auth.sign_voter_call(self.state.voter_secret, "fsck_scan", ())
            return {cid: (kind, ok) for cid, kind, ok in conn.root.fsck_scan(stamp, mac)}
        finally:
            conn.close()

    def _file_paths(self):
        """{chunk id: path} of every file in the tree and in the trash. Lock held."""
        ns = self.state.ns
        paths = {}
        stack = [("", ns.inodes[ROOT_INO])]
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
                paths.setdefault(ref.chunk_id, f"{item.path} (in {item.owner}'s trash)")
        return paths

    def check(self, repair):
        """-> (files, chunks, workers scanned, unreachable workers, problems, repairs
        scheduled); problems are (kind, chunk id, worker id or "", path or "")."""
        state = self.state
        with state.lock:
            state.require_serving()
            live = [(w.worker_id, w.host, w.port) for w in state.workers.live()]
            before = {cid: dict(holders) for cid, holders in state.workers.locations.items()}
            newest = state.ns.next_chunk_id  # chunks allocated later are too new to judge
        scans, unreachable = {}, []
        with ThreadPoolExecutor(max(1, len(live)), thread_name_prefix="fsck-scan") as pool:
            futures = {wid: pool.submit(self._scan, host, port) for wid, host, port in live}
            for wid, future in futures.items():
                try:
                    scans[wid] = future.result()
                except Exception as exc:
                    log.warning("fsck: worker %s could not be scanned: %s", wid, exc)
                    unreachable.append(wid)
        with state.lock:
            state.require_serving()
            workers = state.workers
            ns = state.ns
            paths = self._file_paths()
            problems, stale, corrupt, orphans = [], [], [], []
            for wid, found in scans.items():
                for cid, (kind, ok) in found.items():
                    if cid >= newest:
                        continue
                    if cid not in paths and cid not in ns.pending:
                        problems.append(("orphan", cid, wid, ""))
                        orphans.append((cid, wid, kind))
                    elif not ok and cid in paths:
                        problems.append(("corrupt", cid, wid, paths[cid]))
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
                for wid, found in scans.items():
                    if found.get(cid, (None, False))[1]:
                        good += 1
                if good == 0:
                    problems.append(("missing", cid, "", path))
                elif good < workers.replication:
                    problems.append(("under", cid, "", path))
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
            return (files, len(paths), len(scans), tuple(sorted(unreachable)),
                    tuple(problems), scheduled)

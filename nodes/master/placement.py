"""The master's view of the workers: liveness, chunk locations, placement, repair, GC.

All decisions that depend on time are made in ``tick(now)`` with ``now`` passed in, so
tests can step the clock by hand. Locations are hints rebuilt from worker reports after
every master start; they are never persisted.

Commands for a worker are queued here and handed out in the reply to its next heartbeat:
``("delete", chunk_id, kind)``, ``("verify", chunk_id, kind)``, ``("quarantine", chunk_id,
kind)`` and ``("replicate", chunk_id, kind, source_host, source_port, source_kind,
read_token)``.

Corrupt copies: a client's report (``suspect``) is only a hint, on anyone's word: it
asks that worker to re-check the copy (``verify``), at most ``VERIFIES_PER_WORKER`` at a
time. Only a failure the worker finds itself (that check, its scrubber, an fsck scan)
counts (``drop_corrupt``): the copy stops being served and the worker moves it aside
(``quarantine``, never deleted) so repair copies a good one; the last copy is kept.

Placement keeps every worker's share of the data even, by bytes and by chunk count. A
worker's figures are its last report plus the chunks placed on it that the report does not
include yet (``Worker.pending``: worker_view.py, reservations.py); one of unknown length
counts the typical length of the chunks lately committed or reported stored (``typical``: a
stream commits only at its end). A worker more than ``BAND_CHUNKS`` chunks fuller than the
least filled comes after the others, least filled first: a fuller worker gets nothing new
until they catch up, one with twice the space gets twice the data. Within the band the
fewest chunks for its space wins, the fill breaking ties: small files barely move the fill,
so they are spread by count, and as chunks of every size spread alike, their bytes follow.
The band is wide because the unknown lengths of the chunks still being written blur each
figure by several chunks: a narrower band had workers drop in and out of it, which dragged
the counts apart. Exact ties go to the less busy worker (``load``: transfers in flight at
its last report), then to a random one; which of the chosen holds the primary copy (the one
reads try first) is random.

Draining workers (``draining``, from the namespace's Member entries; `dfs workers drain`)
get no new chunks and their copies do not count toward a chunk's replication: repair copies
each of their chunks to other workers (reading from any copy, theirs included), and once a
chunk has its copies elsewhere the draining worker's copy is deleted as surplus. A draining
worker holding no chunk any more is drained.

A tick does not walk every chunk (the lock would be held for seconds at a million): it looks
at those whose copies changed, the endangered ones repair takes up, fewest copies first, and
a slice of a round-robin pass over all, which finds the chunks no file lists any more
(chunk_scan.py).

Not thread-safe: the master calls every method under its metadata lock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Iterable

from dfs.wire import Replica, WorkerStatus
from nodes.master.chunk_scan import SLICE, ChunkScan
from nodes.master.worker_view import Command, Worker

log = logging.getLogger(__name__)

PRIMARY, BACKUP = "chunks", "backups"
REPAIRS_PER_WORKER = 8
REPAIR_DEADLINE = 60.0
VERIFIES_PER_WORKER = 8  # client reports a worker re-checks at once: a flood costs no more
VERIFY_DEADLINE = 60.0  # a chunk reported again within this is not checked again
STALE_REPORTS = 30  # a placement its worker has not reported stored in this many reports
#                     is taken as never written (the client gave up, or went away)
BAND_CHUNKS = 8  # fills within this many chunks of the least filled worker count as even
TYPICAL_WEIGHT = 32  # the guess at a new chunk's length follows the last chunks' lengths

ChunkKinds = Iterable[tuple[int, str]]  # ((chunk id, kind), ...) as workers report them


class WorkerTable:
    def __init__(self, replication: int, dead_after: float, chunk_size: int) -> None:
        self.replication = replication
        self.dead_after = dead_after
        self.chunk_size = chunk_size
        # the length a chunk placed now will likely have: the recent commits' and reports'
        # (a whole chunk until they tell), so small files are not counted as whole chunks
        self.typical = float(chunk_size)
        self.workers: dict[str, Worker] = {}
        self.locations: dict[int, dict[str, str]] = {}  # chunk_id -> {worker_id: kind}
        self.repairs: dict[int, tuple[str, float]] = {}  # chunk_id -> (target, deadline)
        self.draining: set[str] = set()  # worker ids: no new chunks, theirs copied elsewhere
        # worker id -> when its last heartbeat arrived, noted before the metadata lock is
        # taken (``arrived``): a heartbeat waiting on a long hold of the lock is no silence
        self.arrivals: dict[str, float] = {}
        # which chunks a tick looks at: those whose copies changed, a slice of a round-robin
        # pass over all, and the endangered ones queued for repair (chunk_scan.py)
        self.scan = ChunkScan()

    def arrived(self, worker_id: str, now: float) -> None:
        """A heartbeat from ``worker_id`` came in (called without the lock: one dict store,
        atomic in CPython; the id is a logged-in worker's)."""
        self.arrivals[worker_id] = now

    def _silent(self, worker: Worker, now: float) -> float:
        """Seconds since ``worker`` was last heard from."""
        return now - max(worker.last_seen, self.arrivals.get(worker.worker_id, 0.0))

    # --- reports from workers --------------------------------------------------------

    def register(self, worker_id: str, host: str, port: int, free: int, used: int,
                 inventory: Collection[tuple[int, str]], now: float) -> Worker:
        old = self.workers.get(worker_id)
        if old is not None:
            self._forget_worker(old)
        worker = Worker(worker_id, host, port, free, used, last_seen=now)
        self.workers[worker_id] = worker
        for chunk_id, kind in inventory:
            self._add(chunk_id, worker, kind)
        log.info("worker %s registered at %s:%d with %d chunks", worker_id, host, port,
                 len(inventory))
        return worker

    def heartbeat(self, worker_id: str, free: int, used: int, load: int, added: ChunkKinds,
                  removed: ChunkKinds, now: float) -> list[Command] | None:
        """Update a worker; returns its queued commands (None if it must re-register)."""
        worker = self.workers.get(worker_id)
        if worker is None or not worker.alive:
            return None
        growth = used - worker.used
        worker.free, worker.used, worker.load, worker.last_seen = free, used, load, now
        worker.reports += 1
        added, removed = list(added), list(removed)
        freed = worker.releasing.freed(chunk_id for chunk_id, _kind in removed)
        if added and freed is not None:
            self._learn_typical(growth + freed, len(added))
        for chunk_id, kind in added:
            self._add(chunk_id, worker, kind)
            if self.repairs.get(chunk_id, (None,))[0] == worker_id:
                del self.repairs[chunk_id]
                worker.repairs = max(0, worker.repairs - 1)
        # its used/free count what it reports stored, not the chunks still being written
        worker.pending.settle((chunk_id for chunk_id, _kind in added),
                              worker.reports - STALE_REPORTS)
        for chunk_id, _kind in removed:
            self._remove(chunk_id, worker)
        worker.releasing.settle((chunk_id for chunk_id, _kind in removed),
                                worker.reports - STALE_REPORTS)
        commands, worker.commands = worker.commands, []
        return commands

    def _learn_typical(self, growth: float, count: int) -> None:
        """A report of ``count`` chunks stored added ``growth`` bytes to its worker's ``used``
        (its change, plus what the deletes it reports freed): their mean length is news for
        ``typical`` as a commit's is. A stream written through the mount commits only at its
        fsync or close: without this the guess kept the length of the small files written
        before it for the whole stream, its chunks still being written counted next to
        nothing, and a worker whose report lagged looked the emptiest and took a copy of
        every chunk."""
        mean = growth / count
        if 0 <= mean <= self.chunk_size:
            self.typical += (mean - self.typical) * (1 - (1 - 1 / TYPICAL_WEIGHT) ** count)

    def suspect(self, chunk_id: int, worker_id: str, now: float) -> bool:
        """A client says this replica failed its checksum. Only a hint: ask the worker to
        re-check it (a failure it confirms comes back as ``bad`` in its heartbeat, see
        drop_corrupt). -> True if a check was asked."""
        worker = self.workers.get(worker_id)
        if worker is None or not worker.alive or chunk_id not in worker.chunks:
            return False
        for cid, until in list(worker.verifying.items()):
            if until < now:
                del worker.verifying[cid]
        if chunk_id in worker.verifying or len(worker.verifying) >= VERIFIES_PER_WORKER:
            return False
        worker.verifying[chunk_id] = now + VERIFY_DEADLINE
        worker.commands.append(("verify", chunk_id, worker.chunks[chunk_id]))
        log.info("chunk %d on worker %s reported corrupt by a client: asking it to check",
                 chunk_id, worker_id)
        return True

    def drop_corrupt(self, chunk_id: int, worker_id: str) -> bool:
        """The worker's own check found its replica corrupt: stop serving it and have the
        worker quarantine it (moved aside, not deleted), so repair copies a good one.
        Never the last copy: a partly readable chunk beats none. -> True if dropped."""
        worker = self.workers.get(worker_id)
        if worker is None or chunk_id not in worker.chunks:
            return False
        if not [r for r in self.replicas(chunk_id) if r.worker_id != worker_id]:
            log.error("chunk %d: the only copy (on %s) is corrupt; keeping it", chunk_id,
                      worker_id)
            return False
        kind = worker.chunks[chunk_id]
        log.error("chunk %d on worker %s is corrupt: dropping that replica (quarantined there)",
                  chunk_id, worker_id)
        self._remove(chunk_id, worker)
        worker.commands.append(("quarantine", chunk_id, kind))
        return True

    def forget_location(self, chunk_id: int, worker_id: str) -> int:
        """fsck found the worker no longer has this chunk: stop counting on it, so repair
        makes a new copy. -> 1 if a location was forgotten."""
        worker = self.workers.get(worker_id)
        if worker is None or chunk_id not in worker.chunks:
            return 0
        log.warning("chunk %d is gone from worker %s: forgetting that replica", chunk_id,
                    worker_id)
        self._remove(chunk_id, worker)
        return 1

    def delete_replica(self, chunk_id: int, worker_id: str, kind: str) -> int:
        """Have the worker delete a chunk file (an orphan fsck found). -> 1 if queued."""
        worker = self.workers.get(worker_id)
        if worker is None or not worker.alive:
            return 0
        self._delete(chunk_id, worker, kind)
        return 1

    def add_location(self, chunk_id: int, worker_id: str, kind: str,
                     length: int | None = None) -> None:
        """A client stored a copy here (it says so at commit; the worker confirms later).
        ``length``: the chunk's, so its reservation counts what it really takes."""
        worker = self.workers.get(worker_id)
        if worker is not None and worker.alive and kind in (PRIMARY, BACKUP):
            self._add(chunk_id, worker, kind)
            if length is not None and worker.pending.measure(chunk_id, length):
                self.typical += (length - self.typical) / TYPICAL_WEIGHT

    def _add(self, chunk_id: int, worker: Worker, kind: str) -> None:
        worker.chunks[chunk_id] = kind
        self.locations.setdefault(chunk_id, {})[worker.worker_id] = kind
        self.scan.touch(chunk_id)

    def _remove(self, chunk_id: int, worker: Worker) -> None:
        worker.chunks.pop(chunk_id, None)
        self.scan.touch(chunk_id)
        holders = self.locations.get(chunk_id)
        if holders is not None:
            holders.pop(worker.worker_id, None)
            if not holders:
                del self.locations[chunk_id]

    def _delete(self, chunk_id: int, worker: Worker, kind: str) -> None:
        """Have the worker delete its replica; its bytes count as free until it reports
        the deletion (``Worker.releasing``), as its mean chunk's length (the table keeps no
        lengths)."""
        if chunk_id in worker.chunks:
            held = worker.used - worker.releasing.nbytes
            worker.releasing.add(chunk_id, max(0.0, held) / len(worker.chunks), worker.reports)
        worker.commands.append(("delete", chunk_id, kind))
        self._remove(chunk_id, worker)

    def _forget_worker(self, worker: Worker) -> None:
        worker.lost = set(worker.chunks)
        for chunk_id in list(worker.chunks):
            self._remove(chunk_id, worker)
        worker.alive = False

    # --- membership (nodes/master/membership.py) -------------------------------------

    def set_members(self, members: dict[str, str]) -> None:
        """The namespace's membership changed: who drains; removed workers are forgotten
        (locations, queued commands, repairs towards them)."""
        draining = {wid for wid, state in members.items() if state == "draining"}
        for wid in draining ^ self.draining:  # whether their copies count changed
            worker = self.workers.get(wid)
            for chunk_id in worker.chunks if worker is not None else ():
                self.scan.touch(chunk_id)
        self.draining = draining
        for wid, state in members.items():
            worker = self.workers.get(wid)
            if state == "removed" and worker is not None:
                self._forget_worker(worker)
                del self.workers[wid]
                for chunk_id, (target, _deadline) in list(self.repairs.items()):
                    if target == wid:
                        del self.repairs[chunk_id]
                        self.scan.touch(chunk_id)

    def drained(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)
        return (worker_id in self.draining and worker is not None and worker.alive
                and not worker.chunks)

    def only_copies(self, worker_id: str, chunk_ids: Collection[int]) -> list[int]:
        """Of ``chunk_ids``, those whose last copy would go with this worker: it is the only
        live holder; for a dead worker, those it held that have no live copy now; for a
        worker not seen since this server started, every chunk without a live copy (it may
        hold them)."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return sorted(c for c in chunk_ids if not self.replicas(c))
        if not worker.alive:
            return sorted(c for c in worker.lost & set(chunk_ids) if not self.replicas(c))
        return sorted(c for c in worker.chunks if c in chunk_ids
                      and {r.worker_id for r in self.replicas(c)} == {worker_id})

    # --- queries ---------------------------------------------------------------------

    def live(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    def any_alive(self, now: float) -> bool:
        """Has any worker reported within ``dead_after``? (Also right on a standby, whose
        table never runs ``tick``.)"""
        return any(w.alive and self._silent(w, now) <= self.dead_after
                   for w in self.workers.values())

    def replicas(self, chunk_id: int) -> list[Replica]:
        """Live replicas of a chunk, primary copy first."""
        holders = self.locations.get(chunk_id, {})
        found = [self.workers[wid].replica(kind) for wid, kind in holders.items()
                 if self.workers[wid].alive]
        return sorted(found, key=lambda r: r.kind != PRIMARY)

    def choose(self, count: int, exclude: Collection[str] = ()) -> list[Worker]:
        """Up to ``count`` distinct live workers with room, best first (counting what was
        placed on them since their last report; see the module docstring)."""
        size = self.chunk_size
        candidates = [w for w in self.live() if w.worker_id not in exclude
                      and w.worker_id not in self.draining and w.has_room(size)]
        if not candidates:
            return []
        random.shuffle(candidates)  # exact ties go to a random worker, not always the first
        fills = {w.worker_id: w.projected_fill(size, self.typical) for w in candidates}
        least = min(fills.values())
        widest = max(w.total() for w in candidates)

        def rank(w: Worker) -> tuple[bool, float, float, int]:
            fill = fills[w.worker_id]
            if (fill - least) * w.total() > BAND_CHUNKS * size:
                return True, fill, fill, w.load
            # chunks per byte of space, as whole chunks of the widest worker: reports of one
            # shared disk taken at different moments give slightly different totals, which
            # must not outweigh a chunk
            return False, w.projected_chunks() * widest // w.total(), fill, w.load

        candidates.sort(key=rank)
        return candidates[:count]

    def place(self, exclude: Collection[str] = ()) -> list[Replica]:
        """Replicas for one new chunk (primary first); fewer than ``replication`` if short.
        Each worker chosen reserves a chunk's room until it reports the chunk stored."""
        chosen = self.choose(self.replication, exclude)
        # which of them holds the primary, the copy reads go to first: any, so primaries
        # spread as the copies do (the ranking's order repeats with a workload's pattern)
        random.shuffle(chosen)
        for worker in chosen:
            worker.pending.add(self.chunk_size, worker.reports)
        return [w.replica(PRIMARY if i == 0 else BACKUP) for i, w in enumerate(chosen)]

    def bind(self, chunk_id: int, replicas: Iterable[Replica]) -> None:
        """The placement ``replicas`` (the newest from ``place``) was handed out as chunk
        ``chunk_id``: the worker's report of that chunk ends its reservation, its commit
        gives its length, and one never written is dropped with its allocation."""
        for replica in replicas:
            worker = self.workers.get(replica.worker_id)
            if worker is not None:
                worker.pending.bind(chunk_id)

    def unreserve(self, chunk_ids: Iterable[int]) -> None:
        """The client gave up on these allocated chunks: their placements count no more."""
        gone = set(chunk_ids)
        for worker in self.live():
            worker.pending.forget(gone.__contains__)

    def unplace(self, replicas: Iterable[Replica]) -> None:
        """Undo ``place()`` for an allocation that was not handed out."""
        for replica in replicas:
            worker = self.workers.get(replica.worker_id)
            if worker is not None:
                worker.pending.drop_newest()

    def status(self, now: float) -> list[WorkerStatus]:
        return [WorkerStatus(w.worker_id, w.host, w.port, w.alive, len(w.chunks), w.used,
                             w.free, w.load, round(now - w.last_seen, 1))
                for w in sorted(self.workers.values(), key=lambda w: w.worker_id)]

    def under_replicated(self, live_ids: Iterable[int]) -> int:
        return sum(1 for cid in live_ids if len(self.replicas(cid)) < self.replication)

    def _kept(self, copies: Iterable[Replica]) -> list[Replica]:
        """The copies that count toward replication: not on a draining worker."""
        return [r for r in copies if r.worker_id not in self.draining]

    # --- time-driven work ------------------------------------------------------------

    def tick(self, now: float, referenced: Collection[int], pending: Collection[int],
             sign_read: Callable[[int], str]) -> None:
        """Mark silent workers dead, queue repairs and garbage collection.

        ``referenced``: chunk ids committed in some file; ``pending``: allocated, not yet
        committed (kept, never repaired); ``sign_read(chunk_id)``: a read token.
        """
        for worker in self.live():
            if self._silent(worker, now) > self.dead_after:
                log.warning("worker %s silent for %.1fs: dead, re-replicating its chunks",
                            worker.worker_id, self._silent(worker, now))
                self._forget_worker(worker)
        for worker in self.live():  # allocations gone unwritten: their room is free again
            worker.pending.forget(lambda c: c not in referenced and c not in pending)
        self._expire_repairs(now)
        for chunk_id in self.scan.due(self.locations.keys()):
            self._look_at(chunk_id, referenced, pending)
        self._repair(now, referenced, pending, sign_read)

    def _look_at(self, chunk_id: int, referenced: Collection[int],
                 pending: Collection[int]) -> None:
        """Garbage collection of one chunk (all its copies when no file lists it and no
        allocation holds it), surplus copies trimmed, and whether it is endangered."""
        holders = self.locations.get(chunk_id)
        if not holders or chunk_id not in referenced:
            self.scan.safe(chunk_id)
            if holders and chunk_id not in pending:
                for wid, kind in list(holders.items()):
                    self._delete(chunk_id, self.workers[wid], kind)
            return
        if chunk_id in self.repairs:  # looked at again when its repair lands or expires
            return
        kept = sum(1 for wid in holders if wid not in self.draining
                   and self.workers[wid].alive)
        if kept == len(holders) == self.replication:  # the common case: nothing to do
            self.scan.safe(chunk_id)
            return
        self._trim(chunk_id, holders)
        kept = len(self._kept(self.replicas(chunk_id)))
        if kept < self.replication:
            self.scan.endanger(chunk_id, kept)
        else:
            self.scan.safe(chunk_id)

    def _trim(self, chunk_id: int, holders: dict[str, str]) -> None:
        """A worker came back after its chunks were re-replicated: drop surplus backups.
        A draining worker's copy is surplus once the chunk has its copies elsewhere."""
        kept = {wid: kind for wid, kind in holders.items() if wid not in self.draining}
        extra = len(kept) - self.replication
        if extra < 0:
            return
        surplus = [(wid, kind) for wid, kind in holders.items() if wid not in kept]
        by_fill = sorted(kept.items(), key=lambda item: (item[1] == PRIMARY,
                                                         -self.workers[item[0]].fill()))
        for wid, kind in surplus + by_fill[:extra]:
            self._delete(chunk_id, self.workers[wid], kind)

    def _expire_repairs(self, now: float) -> None:
        for chunk_id, (target_id, deadline) in list(self.repairs.items()):
            worker = self.workers.get(target_id)
            if now > deadline or worker is None or not worker.alive:
                del self.repairs[chunk_id]
                self.scan.touch(chunk_id)
                if worker is not None:
                    worker.repairs = max(0, worker.repairs - 1)

    def _repair(self, now: float, referenced: Collection[int], pending: Collection[int],
                sign_read: Callable[[int], str]) -> None:
        """Queue copies of the endangered chunks, fewest copies first, as long as some
        worker takes another repair (and at most a slice of them looked at per tick)."""
        later: list[tuple[int, int]] = []  # (chunk id, kept copies): no target this tick
        looked = 0
        for chunk_id in self.scan.most_endangered():
            if chunk_id in self.repairs:
                continue  # looked at again when its repair lands or expires
            if chunk_id not in referenced:  # its file went since: garbage now
                self._look_at(chunk_id, referenced, pending)
                continue
            copies = self.replicas(chunk_id)
            if not copies or len(self._kept(copies)) >= self.replication:
                continue  # every copy lost, nothing to repair from; or none missing
            holders = {r.worker_id for r in copies}
            targets = [w for w in self.choose(len(self.workers), exclude=holders)
                       if w.repairs < REPAIRS_PER_WORKER]
            if not targets:
                later.append((chunk_id, len(self._kept(copies))))
            else:
                target = targets[0]
                source = copies[0]
                kind = BACKUP if any(r.kind == PRIMARY for r in self._kept(copies)) else PRIMARY
                target.commands.append(("replicate", chunk_id, kind, source.host, source.port,
                                        source.kind, sign_read(chunk_id)))
                target.repairs += 1
                target.pending.add(self.chunk_size, target.reports, chunk_id)
                self.repairs[chunk_id] = (target.worker_id, now + REPAIR_DEADLINE)
            looked += 1
            if looked >= SLICE or all(
                    w.repairs >= REPAIRS_PER_WORKER for w in self.live()):
                break  # the rest wait in the queue for the next ticks
        for chunk_id, kept in later:
            self.scan.endanger(chunk_id, kept)

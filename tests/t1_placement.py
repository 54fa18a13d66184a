"""Placement (nodes/master/placement.py) fed by hand: chunks spread evenly by bytes and count.

Workers report used/free only at heartbeats, and a report leaves out the chunks still being
written: between two reports the table must count what it placed itself, and a report may
end only the reservations of the chunks it says it stored. ``Writes`` plays the rest of the
write path around the table (clients, workers, heartbeats) so whole workloads can be run;
issue 12 asks each to leave the workers within 10 % of even by bytes and by chunk count
(deviation = max |worker - mean| / mean, as bench/fs_spread.py measures it).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable

import pytest

from dfs.wire import Replica
from nodes.master.placement import BACKUP, PRIMARY, STALE_REPORTS, WorkerTable

CHUNK = 1 << 20
DISK = 1 << 40  # far more room than the placements below need
BIG_CHUNK = 4 << 20  # the default chunk size, as the bench runs it
SMALL = 4096


def table(free: dict[str, int], used: dict[str, int] | None = None,
          replication: int = 2, chunk_size: int = CHUNK) -> WorkerTable:
    workers = WorkerTable(replication, dead_after=10.0, chunk_size=chunk_size)
    for i, (wid, room) in enumerate(sorted(free.items())):
        workers.register(wid, "127.0.0.1", 9000 + i, room, (used or {}).get(wid, 0), (), 0.0)
    return workers


def deviation(values: Iterable[int]) -> float:
    """bench/fs_spread.py's figure: max distance from the mean, in % of the mean."""
    values = list(values)
    mean = sum(values) / len(values)
    return max(abs(v - mean) for v in values) / mean * 100


class Writes:
    """The write path around a WorkerTable: chunks are placed and bound to their chunk
    ids (the master's allocate) ``batch`` at a time ahead of use, as a client allocates
    them (dfs/client/transfer.py: 16); each file takes the next ones, its copies land on
    the workers ``in_flight`` files later, the client then commits them with their length,
    and the workers heartbeat, the i-th every ``period + i * skew`` files (busy workers
    and slow links report less often), each at its own moment, with what has landed: the
    chunks still being written are in neither its used/free nor its list of chunks added."""

    def __init__(self, workers: WorkerTable, period: int, in_flight: int,
                 skew: int = 0, batch: int = 16) -> None:
        self.workers, self.in_flight, self.batch = workers, in_flight, batch
        self.ahead: deque[tuple[int, list[Replica]]] = deque()  # allocated, not used yet
        ids = sorted(workers.workers)
        self.period = {wid: period + i * skew for i, wid in enumerate(ids)}
        self.phase = {wid: i * period // len(ids) for i, wid in enumerate(ids)}
        self.used = {wid: w.used for wid, w in workers.workers.items()}
        self.room = {wid: w.used + w.free for wid, w in workers.workers.items()}
        self.landed: dict[str, list[tuple[int, str]]] = {wid: [] for wid in ids}
        self.flying: deque[tuple[int, int, int, list[Replica]]] = deque()
        self.copies: Counter[str] = Counter({wid: 0 for wid in ids})  # this workload's
        self.nbytes: Counter[str] = Counter({wid: 0 for wid in ids})
        self.primaries: Counter[str] = Counter()
        self.later: set[int] = set()  # chunk ids committed by ``commit_all`` only
        # worker id -> (the file after which it reports them, the replicas it deleted, and
        # their bytes, which its reports count in its used until then)
        self.deletes: dict[str, tuple[int, list[tuple[int, str]], int]] = {}
        self.uncommitted: list[tuple[int, int, list[Replica]]] = []  # landed, not committed
        self.files = self.next_id = 0

    def allocate(self, exclude: tuple[str, ...]) -> tuple[int, list[Replica]]:
        if not self.ahead:
            for _ in range(self.batch):
                replicas = self.workers.place(exclude)
                assert len(replicas) == self.workers.replication
                assert len({r.worker_id for r in replicas}) == len(replicas)  # distinct
                assert [r.kind for r in replicas] == [PRIMARY] + [BACKUP] * (len(replicas) - 1)
                self.next_id += 1
                self.workers.bind(self.next_id, replicas)
                self.ahead.append((self.next_id, replicas))
        return self.ahead.popleft()

    def write(self, lengths: list[int], exclude: tuple[str, ...] = (),
              commit: bool = True) -> None:
        """One file of chunks this long: send them, and move time on by one file.
        ``commit`` False: their commit waits for ``commit_all`` (a stream through the
        mount commits at its fsync or close, not chunk by chunk)."""
        for length in lengths:
            chunk_id, replicas = self.allocate(exclude)
            self.flying.append((self.files + self.in_flight, chunk_id, length, replicas))
            if not commit:
                self.later.add(chunk_id)
            self.primaries[replicas[0].worker_id] += 1
            for r in replicas:
                self.copies[r.worker_id] += 1
                self.nbytes[r.worker_id] += length
        self.files += 1
        self._land()
        self._heartbeats()

    def _land(self) -> None:
        while self.flying and self.flying[0][0] < self.files:
            _, chunk_id, length, replicas = self.flying.popleft()
            for r in replicas:
                self.landed[r.worker_id].append((chunk_id, r.kind))
                self.used[r.worker_id] += length
            if chunk_id in self.later:
                self.uncommitted.append((chunk_id, length, replicas))
                continue
            for r in replicas:  # the client's commit
                self.workers.add_location(chunk_id, r.worker_id, r.kind, length)

    def commit_all(self) -> None:
        """The streams' commits, of every chunk they wrote."""
        for chunk_id, length, replicas in self.uncommitted:
            for r in replicas:
                self.workers.add_location(chunk_id, r.worker_id, r.kind, length)
        self.uncommitted.clear()

    def next_workload(self) -> None:
        """Count the copies of what comes next only, as the bench measures each workload."""
        self.copies = Counter({wid: 0 for wid in self.copies})
        self.nbytes = Counter({wid: 0 for wid in self.nbytes})

    def _heartbeats(self) -> None:
        for wid, phase in self.phase.items():
            if (self.files + phase) % self.period[wid] == 0:
                self.report(wid)

    def report(self, wid: str) -> None:
        added, self.landed[wid] = self.landed[wid], []
        removed: list[tuple[int, str]] = []
        if wid in self.deletes and self.deletes[wid][0] <= self.files:
            _, removed, _nbytes = self.deletes.pop(wid)
        used = self.used[wid] + (self.deletes[wid][2] if wid in self.deletes else 0)
        assert self.workers.heartbeat(wid, self.room[wid] - used, used, 0, added, removed,
                                      0.0) == []

    def remove_everything(self, reported_after: dict[str, int]) -> None:
        """Every file is removed: the table asks the workers to delete every replica (its
        garbage collection), and each worker reports its deletes after that many more files
        (the used it reports counts them until then)."""
        while self.flying:  # what is in flight lands first, and every worker reports it
            self.files += 1
            self._land()
        for wid in self.landed:
            self.report(wid)
        self.workers.tick(0.0, referenced=set(), pending=set(), sign_read=str)
        for wid, worker in self.workers.workers.items():
            asked = [(c[1], c[2]) for c in worker.commands if c[0] == "delete"]
            worker.commands = []  # carried by its next heartbeat's answer
            self.deletes[wid] = (self.files + reported_after[wid], asked, self.used[wid])
            self.used[wid] = 0

    def worst(self) -> float:
        return max(deviation(self.copies.values()), deviation(self.nbytes.values()))


@pytest.fixture(autouse=True)
def seeded() -> None:
    random.seed(8)  # ties are broken at random: the same draws on every run


def equal_workers(count: int = 4, chunk_size: int = BIG_CHUNK) -> WorkerTable:
    return table({f"w{i}": DISK for i in range(count)}, chunk_size=chunk_size)


# --- whole workloads, as the bench runs them -----------------------------------------

# (heartbeat every, one worker more than the next, files in flight)
LAGS = [(16, 0, 1), (16, 2, 4), (5, 1, 2), (50, 8, 8), (1, 1, 1), (7, 3, 3), (3, 2, 0)]


@pytest.mark.parametrize("batch", [16, 1])
@pytest.mark.parametrize("period,skew,in_flight", LAGS)
def test_two_thousand_small_files_spread_within_ten_percent(period: int, skew: int,
                                                            in_flight: int, batch: int) -> None:
    """Issue 12's case: 4 KiB files barely move the fill, and each report lags behind
    the chunks still being written. Clearing every reservation at each report (as if it
    included them all) sent the next files to the worker that had just reported, so the
    workers reporting most often got the most files (12-16 % in the bench)."""
    writes = Writes(equal_workers(), period, in_flight, skew, batch)
    for _ in range(2000):
        writes.write([SMALL])
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)
    assert deviation(writes.primaries.values()) <= 15.0, writes.primaries


@pytest.mark.parametrize("batch", [16, 1])
@pytest.mark.parametrize("period,skew,in_flight", LAGS)
def test_small_files_mixed_with_big_ones_spread_within_ten_percent(
        period: int, skew: int, in_flight: int, batch: int) -> None:
    """Bytes come from the big files, the count from the small ones: both must be even (a
    big chunk on one worker must not send the next thousand small files elsewhere)."""
    writes = Writes(equal_workers(), period, in_flight, skew, batch)
    for i in range(2000):
        writes.write([SMALL])
        if i % 20 == 0:
            writes.write([BIG_CHUNK, BIG_CHUNK, BIG_CHUNK // 2])
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)


PATTERNS = {"every 3rd of 2 chunks": (3, 2), "every 5th of 1 chunk": (5, 1),
            "every 67th of 3 chunks": (67, 3)}


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("count", [3, 4, 5])
@pytest.mark.parametrize("period,skew,in_flight", [LAGS[1], LAGS[3], (100, 20, 20)])
def test_big_files_in_a_steady_rhythm_spread_within_ten_percent(
        pattern: str, count: int, period: int, skew: int, in_flight: int) -> None:
    """A rhythm of big and small files must not lock in with the workers' reports and the
    lengths still unknown, sending the big ones to some workers and the small to others."""
    every, chunks = PATTERNS[pattern]
    writes = Writes(equal_workers(count), period, in_flight, skew)
    for i in range(2000):
        writes.write([SMALL] if i % every else [BIG_CHUNK] * chunks)
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)


@pytest.mark.parametrize("period,skew,in_flight", LAGS[:4])
def test_files_of_every_size_spread_within_ten_percent(period: int, skew: int,
                                                       in_flight: int) -> None:
    """A source tree: sizes from a byte to a few chunks, spread over orders of magnitude."""
    writes = Writes(equal_workers(), period, in_flight, skew)
    for _ in range(3000):
        size = int(2 ** random.uniform(0, 24))
        writes.write([BIG_CHUNK] * (size // BIG_CHUNK) + [size % BIG_CHUNK or BIG_CHUNK])
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)


@pytest.mark.parametrize("period,skew,in_flight", [(16, 4, 8), (20, 5, 10), (40, 10, 10),
                                                   (25, 8, 16), (12, 12, 8)])
def test_a_stream_after_small_files_spreads_within_ten_percent(period: int, skew: int,
                                                               in_flight: int) -> None:
    """The bench's par_write after its cp -r of a source tree: 4 dd writers stream 256 MiB
    each through the mount, which commits at their fsync only, so no commit tells the
    length of their chunks while they are written. The guess at it (``typical``) stayed
    the small files' length, the chunks being written counted next to nothing, and a
    worker whose reports lagged (a loaded machine) looked the emptiest by more than the
    band: it took a copy of nearly every chunk (20 % off even in the bench at load 5)."""
    writes = Writes(equal_workers(), period, in_flight, skew)
    for _ in range(2000):
        writes.write([SMALL])
    writes.next_workload()
    for _ in range(256):  # 4 x 256 MiB of 4 MiB chunks, the writers' chunks interleaved
        writes.write([BIG_CHUNK], commit=False)
    writes.commit_all()
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)


@pytest.mark.parametrize("late", [("w1", "w2", "w3"), ("w3",), ("w2", "w3")])
def test_a_stream_right_after_a_removal_spreads_within_ten_percent(late: tuple[str, ...]) -> None:
    """The bench's next par_write right after the last one's files were removed: each worker
    was told to delete its 512 MiB, and the used it reports counts them until a report says
    they are gone. The workers that had not reported it yet looked fuller by all of it and
    got nothing until then, and a short stream ended before the chunk counts caught up
    (34 % off even in a bench-like run)."""
    writes = Writes(equal_workers(), period=16, in_flight=4)
    for _ in range(128):
        writes.write([BIG_CHUNK] * 4)
    writes.remove_everything({wid: 192 if wid in late else 0 for wid in writes.landed})
    writes.next_workload()
    for _ in range(256):
        writes.write([BIG_CHUNK])
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)


def test_big_files_alone_spread_within_ten_percent() -> None:
    writes = Writes(equal_workers(), period=4, in_flight=6, skew=3)
    for _ in range(50):
        writes.write([BIG_CHUNK] * 4)
    assert writes.worst() <= 10.0, (writes.copies, writes.nbytes)


def test_a_worker_with_twice_the_space_gets_twice_the_small_files() -> None:
    room = {"big": 2 * DISK, "a": DISK, "b": DISK, "c": DISK}
    writes = Writes(table(room, chunk_size=BIG_CHUNK), period=16, in_flight=2, skew=2)
    for _ in range(2500):
        writes.write([SMALL])
    assert abs(writes.copies["big"] - 2000) <= 100, writes.copies  # 2 copies x 2500 x 2/5
    assert all(abs(writes.copies[w] - 1000) <= 50 for w in "abc"), writes.copies


def test_a_fuller_worker_gets_no_small_files_until_the_others_catch_up() -> None:
    used = {"w0": 0, "w1": 0, "w2": 0, "full": 100 * BIG_CHUNK}
    writes = Writes(table({wid: DISK for wid in used}, used, chunk_size=BIG_CHUNK),
                    period=16, in_flight=2, skew=2)
    for _ in range(1500):
        writes.write([SMALL])
    assert writes.copies["full"] == 0, writes.copies
    assert deviation(writes.copies[w] for w in ("w0", "w1", "w2")) <= 5.0, writes.copies


def test_a_draining_or_excluded_worker_gets_nothing_and_the_rest_share_evenly() -> None:
    workers = table({f"w{i}": DISK for i in range(5)}, chunk_size=BIG_CHUNK)
    workers.set_members({"w4": "draining"})
    writes = Writes(workers, period=16, in_flight=3, skew=2)
    for i in range(2000):
        writes.write([SMALL] if i % 10 else [BIG_CHUNK], exclude=("w1",))
    assert writes.copies["w1"] == writes.copies["w4"] == 0, writes.copies
    kept = ("w0", "w2", "w3")
    assert deviation(writes.copies[w] for w in kept) <= 10.0, writes.copies
    assert deviation(writes.nbytes[w] for w in kept) <= 10.0, writes.nbytes


# --- the rules, one at a time -----------------------------------------------------------

def place_many(workers: WorkerTable, count: int, per_report: int,
               exclude: tuple[str, ...] = ()) -> tuple[Counter[str], Counter[str]]:
    """-> (copies, primaries) per worker after ``count`` one-chunk files, every worker
    reporting all of them stored after each ``per_report``."""
    writes = Writes(workers, period=10**9, in_flight=0, batch=1)
    for i in range(count):
        writes.write([CHUNK], exclude)
        if (i + 1) % per_report == 0:
            for wid in workers.workers:
                writes.report(wid)
    return writes.copies, writes.primaries


def within(counts: Counter[str], expected: dict[str, float], band: float) -> bool:
    return all(abs(counts[wid] - want) <= band * want for wid, want in expected.items())


@pytest.mark.parametrize("per_report", [1, 16, 64, 1000, 5000])
def test_equal_workers_share_every_copy_and_every_primary(per_report: int) -> None:
    workers = table({f"w{i}": DISK for i in range(4)})
    copies, primaries = place_many(workers, 4000, per_report)
    assert within(copies, {f"w{i}": 2000.0 for i in range(4)}, 0.02), copies
    assert within(primaries, {f"w{i}": 1000.0 for i in range(4)}, 0.1), primaries


def test_placements_between_two_reports_are_counted() -> None:
    """The reported fill changes only at a heartbeat, and w0 reported a hair less than the
    others. Without counting its own placements the table put a copy of every chunk on w0."""
    used = {"w0": 39 * CHUNK, "w1": 41 * CHUNK, "w2": 41 * CHUNK, "w3": 42 * CHUNK}
    workers = table({wid: 80_000 * CHUNK for wid in used}, used)
    copies, _ = place_many(workers, 2000, per_report=10**9)  # no report at all
    assert within(copies, {wid: 1000.0 for wid in used}, 0.01), copies


def test_a_worker_with_twice_the_space_gets_twice_the_chunks() -> None:
    room = {"big": 2000 * CHUNK, "a": 1000 * CHUNK, "b": 1000 * CHUNK, "c": 1000 * CHUNK}
    workers = table(room)
    copies, _ = place_many(workers, 1500, per_report=25)
    assert within(copies, {"big": 1200.0, "a": 600.0, "b": 600.0, "c": 600.0}, 0.03), copies
    fills = [w.fill() for w in workers.live()]
    assert max(fills) - min(fills) < 0.02, fills  # equal fill is the aim


def test_a_fuller_worker_is_left_alone_until_the_others_catch_up() -> None:
    used = {"w0": 0, "w1": 0, "w2": 0, "full": 300 * CHUNK}
    workers = table({wid: 1000 * CHUNK - used[wid] for wid in used}, used)
    copies, _ = place_many(workers, 150, per_report=8)
    assert copies["full"] == 0, copies  # the three others end at 300 chunks each too
    assert within(copies, {"w0": 100.0, "w1": 100.0, "w2": 100.0}, 0.05), copies


def test_ties_go_to_the_less_busy_worker_then_to_any() -> None:
    workers = table({f"w{i}": DISK for i in range(4)})
    workers.heartbeat("w2", DISK, 0, 5, (), (), 0.0)  # busy at its last report
    first = workers.place()
    assert "w2" not in {r.worker_id for r in first}
    firsts: Counter[str] = Counter()
    for _ in range(400):
        fresh = table({f"w{i}": DISK for i in range(4)})
        firsts[fresh.place()[0].worker_id] += 1
    assert all(60 <= firsts[f"w{i}"] <= 140 for i in range(4)), firsts  # random, not w0


def test_excluded_workers_get_nothing_and_the_rest_share_evenly() -> None:
    workers = table({f"w{i}": DISK for i in range(5)})
    copies, _ = place_many(workers, 3000, per_report=50, exclude=("w1", "w3"))
    assert copies["w1"] == copies["w3"] == 0
    assert within(copies, {"w0": 2000.0, "w2": 2000.0, "w4": 2000.0}, 0.02), copies


def test_a_worker_without_room_is_skipped_and_a_short_cluster_places_fewer() -> None:
    workers = table({"w0": 100 * CHUNK, "w1": 100 * CHUNK, "small": 3 * CHUNK})
    for _ in range(100):
        workers.place()
    assert workers.workers["small"].assigned == 3  # its room, reserved between two reports
    assert "small" not in {r.worker_id for r in workers.place()}
    workers = table({"w0": DISK, "w1": CHUNK - 1})
    assert [r.worker_id for r in workers.place()] == ["w0"]  # one copy, not two
    workers.unplace(workers.place())
    assert workers.workers["w0"].assigned == 1  # the first placement still counts


def test_a_report_ends_only_the_reservations_of_the_chunks_it_lists() -> None:
    """A report taken while chunks are still being written leaves them out of its used/free:
    their reservations stay until a report lists them."""
    workers = table({"w0": DISK, "w1": DISK})
    for chunk_id in range(1, 11):
        workers.bind(chunk_id, workers.place())
    assert [w.assigned for w in workers.live()] == [10, 10]
    stored = [(chunk_id, PRIMARY) for chunk_id in range(1, 7)]
    workers.heartbeat("w0", DISK - 6 * CHUNK, 6 * CHUNK, 0, stored, (), 0.0)
    w0 = workers.workers["w0"]
    assert (w0.assigned, w0.pending.room, sorted(w0.pending.bound)) == (4, 4 * CHUNK, [7, 8, 9, 10])
    assert w0.projected_chunks() == 10
    workers.heartbeat("w0", DISK - 6 * CHUNK, 6 * CHUNK, 0, stored, (), 0.0)  # said twice
    assert w0.assigned == 4
    workers.heartbeat("w1", DISK, 0, 0, (), (), 0.0)  # nothing stored yet
    assert workers.workers["w1"].assigned == 10


def test_a_commit_shrinks_the_reservation_to_the_chunks_length() -> None:
    workers = table({"w0": DISK, "w1": DISK})
    replicas = workers.place()
    workers.bind(7, replicas)
    w0 = workers.workers["w0"]
    assert w0.pending.room == CHUNK
    workers.add_location(7, "w0", PRIMARY, SMALL)
    assert (w0.pending.room, w0.assigned, w0.projected_chunks()) == (SMALL, 1, 1)
    assert workers.typical < CHUNK  # the next chunks' length is guessed from the commits
    workers.add_location(7, "w0", PRIMARY, SMALL)  # the same commit again: no news
    assert (w0.pending.room, w0.projected_chunks()) == (SMALL, 1)
    workers.heartbeat("w0", DISK - SMALL, SMALL, 0, [(7, PRIMARY)], (), 0.0)
    assert (w0.pending.room, w0.assigned, w0.projected_chunks()) == (0, 0, 1)


def test_a_report_of_chunks_stored_tells_their_length_even_with_deletes() -> None:
    """A stream commits at its end only: the reports of its chunks stored tell their length
    meanwhile (the growth of used), also when the same report lists deletes done (their
    bytes as estimated when the deletes were asked: the worker's mean chunk then)."""
    workers = table({"w0": DISK, "w1": DISK}, chunk_size=BIG_CHUNK)
    small = [(chunk_id, PRIMARY) for chunk_id in range(1, 11)]
    workers.heartbeat("w0", DISK - 10 * SMALL, 10 * SMALL, 0, small, (), 0.0)
    workers.typical = float(SMALL)  # as the small files' commits left it
    workers.tick(0.0, referenced=set(), pending=set(), sign_read=str)  # removed: deletes asked
    w0 = workers.workers["w0"]
    assert (len(w0.releasing), w0.releasing.nbytes) == (10, 10 * SMALL)
    assert w0.projected_fill(BIG_CHUNK, workers.typical) == 0.0  # counted free already
    big = [(chunk_id, PRIMARY) for chunk_id in range(11, 15)]
    workers.heartbeat("w0", DISK - 4 * BIG_CHUNK, 4 * BIG_CHUNK, 0, big, small, 0.0)
    assert (len(w0.releasing), w0.releasing.nbytes) == (0, 0.0)
    learnt = 1 - (1 - 1 / 32) ** 4  # 4 samples of TYPICAL_WEIGHT 32
    assert workers.typical == pytest.approx(SMALL + (BIG_CHUNK - SMALL) * learnt)


def test_reservations_never_written_are_dropped() -> None:
    workers = table({"w0": DISK, "w1": DISK})
    workers.bind(1, workers.place())  # allocated, then abandoned: pending no more
    workers.bind(2, workers.place())  # still pending for its writer
    workers.tick(0.0, referenced=set(), pending={2}, sign_read=str)
    assert sorted(workers.workers["w0"].pending.bound) == [2]
    workers.bind(3, workers.place())
    workers.unreserve([3])  # the client handed it back (abandon)
    assert sorted(workers.workers["w0"].pending.bound) == [2]
    workers.place()  # never bound, never reported
    for _ in range(STALE_REPORTS + 1):
        workers.heartbeat("w0", DISK, 0, 0, (), (), 0.0)
    w0 = workers.workers["w0"]
    assert (w0.assigned, w0.pending.room) == (0, 0)

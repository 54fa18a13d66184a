"""Pure units of the worker: its chunk store, its service's checks, its reporter and
scrubber stepped by hand, and the background Task every loop runs on. No sockets."""

import logging
import os
import threading

import pytest
from helpers import SteppedClock, random_bytes

from dfs import auth, chunks, errors
from dfs.config import BLOCK_SIZE, WorkerConfig
from dfs.retry import RetryPolicy
from nodes.tasks import Task
from nodes.worker import reporter as reporter_module
from nodes.worker.node import Worker
from nodes.worker.reporter import Reporter
from nodes.worker.scrubber import Scrubber
from nodes.worker.service import WorkerService
from nodes.worker.store import MAX_PIECE, ChunkStore, as_kind

JOIN_TOKEN = "ab" * 32


def new_store(path, capacity=0):
    store = ChunkStore(str(path), capacity)
    store.chunk_size = 1 << 20
    return store


def put(store, chunk_id, data, kind="chunks", piece=None):
    """Write ``data`` as chunk ``chunk_id`` in pieces; -> what each write answered."""
    piece = piece or len(data)
    return [store.write(chunk_id, kind, offset, data[offset:offset + piece], len(data),
                        chunks.crc(data)) for offset in range(0, len(data), piece)]


# --- the chunk store -----------------------------------------------------------------------

def test_a_chunk_written_in_pieces_reads_back_and_is_complete_only_at_the_end(tmp_path):
    store = new_store(tmp_path)
    data = random_bytes(3 * BLOCK_SIZE + 100)
    assert put(store, 5, data, piece=BLOCK_SIZE) == [False, False, False, True]
    assert store.read(5, 0, len(data)) == (data, len(data))
    assert store.read(5, BLOCK_SIZE + 7, 50) == (data[BLOCK_SIZE + 7:BLOCK_SIZE + 57], len(data))
    assert store.read(5, len(data), 10) == (b"", len(data))  # at the end: empty, not an error
    assert store.inventory() == [(5, "chunks")] and store.used == len(data)
    assert store.take_changes("m") == ((), (), ())  # no feed yet: nobody to tell


def test_a_flipped_byte_fails_the_read_of_its_block_only(tmp_path):
    store = new_store(tmp_path)
    data = random_bytes(2 * BLOCK_SIZE, seed=1)
    put(store, 3, data)
    with open(store.path(3, "chunks"), "r+b") as f:
        f.seek(BLOCK_SIZE + 10)
        f.write(bytes([data[BLOCK_SIZE + 10] ^ 1]))
    assert store.read(3, 0, BLOCK_SIZE) == (data[:BLOCK_SIZE], len(data))
    with pytest.raises(errors.ChunkCorrupt):
        store.read(3, BLOCK_SIZE, 1)


def test_a_damaged_upload_or_a_torn_one_leaves_no_chunk(tmp_path):
    store = new_store(tmp_path)
    data = random_bytes(BLOCK_SIZE + 1, seed=2)
    with pytest.raises(errors.ChunkCorrupt):
        store.write(1, "chunks", 0, data, len(data), chunks.crc(data) ^ 1)
    store.write(2, "backups", 0, data[:BLOCK_SIZE], len(data), chunks.crc(data))  # no end
    assert os.listdir(store.tmp_dir) == ["2.backups"]
    with open(os.path.join(store.dirs["chunks"], "9"), "wb") as f:
        f.write(b"a data file whose .crc never arrived")
    assert store.inventory() == [] and store.used == 0
    assert not os.path.exists(os.path.join(store.dirs["chunks"], "9"))
    reopened = new_store(tmp_path)  # a restart clears the uploads in progress
    assert os.listdir(reopened.tmp_dir) == [] and reopened.inventory() == []
    with pytest.raises(errors.ChunkMissing):
        reopened.read(2, 0, 1)


def test_a_restart_finds_every_chunk_and_counts_their_bytes(tmp_path):
    store = new_store(tmp_path)
    one, two = random_bytes(1000, seed=3), random_bytes(BLOCK_SIZE * 2, seed=4)
    put(store, 1, one)
    put(store, 2, two, kind="backups")
    reopened = new_store(tmp_path)
    assert sorted(reopened.inventory()) == [(1, "chunks"), (2, "backups")]
    assert reopened.used == len(one) + len(two)
    assert reopened.locate(2) == ("backups", reopened.path(2, "backups"))
    assert reopened.read(2, 0, MAX_PIECE) == (two, len(two))


class DeletedOnceLocated(ChunkStore):
    """A store whose replica is deleted right after it was located: the window a delete, a
    drain's move or a quarantine can open between finding a copy and opening it."""

    def locate(self, chunk_id):
        found = super().locate(chunk_id)
        self.delete(chunk_id, found[0])
        return found


@pytest.mark.parametrize("read", [lambda s: s.read(4, 0, 10), lambda s: s.read(4, 10, 1),
                                  lambda s: s.read_blocks(4, 0, 1)])
def test_a_replica_deleted_once_located_reads_as_missing_not_as_an_internal_error(tmp_path,
                                                                                   read):
    store = DeletedOnceLocated(str(tmp_path), 0)
    store.chunk_size = 1 << 20
    put(store, 4, random_bytes(BLOCK_SIZE + 5))
    with pytest.raises(errors.ChunkMissing):
        read(store)


@pytest.mark.parametrize("offset, length", [(-1, 10), (0, -1), (1001, 1), (0, MAX_PIECE + 1)])
def test_reads_outside_the_chunk_or_too_big_are_refused(tmp_path, offset, length):
    store = new_store(tmp_path)
    put(store, 1, random_bytes(1000))
    with pytest.raises(errors.InvalidArgument):
        store.read(1, offset, length)


def test_pieces_out_of_order_misaligned_or_past_the_end_are_refused(tmp_path):
    store = new_store(tmp_path)
    data = random_bytes(3 * BLOCK_SIZE, seed=5)
    with pytest.raises(errors.InvalidArgument, match="unexpected offset"):
        store.write(1, "chunks", BLOCK_SIZE, data[:BLOCK_SIZE], len(data), 0)  # no offset 0
    store.write(1, "chunks", 0, data[:BLOCK_SIZE], len(data), chunks.crc(data))
    with pytest.raises(errors.InvalidArgument, match="unexpected offset"):
        store.write(1, "chunks", 2 * BLOCK_SIZE, data[:BLOCK_SIZE], len(data), 0)  # a gap
    with pytest.raises(errors.InvalidArgument, match="multiples"):
        store.write(2, "chunks", 0, data[:100], len(data), 0)  # only the last may be short
    with pytest.raises(errors.InvalidArgument, match="announced length"):
        store.write(3, "chunks", 0, data, BLOCK_SIZE, 0)
    # a refused piece ends its upload: the staged file is gone, the chunk never appears
    assert sorted(os.listdir(store.tmp_dir)) == ["1.chunks"] and store.inventory() == []


def test_a_full_worker_refuses_a_new_chunk_before_any_byte(tmp_path):
    store = new_store(tmp_path, capacity=1500)
    put(store, 1, random_bytes(1000))
    assert store.free() == 500
    with pytest.raises(errors.NoSpace):
        put(store, 2, random_bytes(1000, seed=6))
    assert store.inventory() == [(1, "chunks")] and os.listdir(store.tmp_dir) == []


def test_each_feed_hears_of_every_change_once_and_again_after_a_failed_heartbeat(tmp_path):
    store = new_store(tmp_path)
    store.take_changes("a")
    store.take_changes("b")  # two metadata servers listening
    put(store, 1, b"x" * 10)
    store.delete(1, "chunks")
    store.delete(1, "chunks")  # already gone: nothing more to tell
    assert store.take_changes("a") == (((1, "chunks"),), ((1, "chunks"),), ())
    assert store.take_changes("a") == ((), (), ())
    failed = store.take_changes("b")
    store.report_bad(4, "backups")
    store.give_back("b", failed)
    assert store.take_changes("b") == (((1, "chunks"),), ((1, "chunks"),), ((4, "backups"),))
    assert store.used == 0


def test_chunk_store_verify_finds_a_flipped_byte_and_reports_it_once(tmp_path):
    store = ChunkStore(str(tmp_path), 0)
    store.chunk_size = 1 << 20
    data = os.urandom(300_000)
    store.write(7, "chunks", 0, data, len(data), chunks.crc(data))
    store.take_changes("m")
    read = []
    assert store.verify(7, "chunks", read.append) is True and sum(read) == len(data)
    with open(store.path(7, "chunks"), "r+b") as f:
        f.seek(200_000)
        f.write(b"\0" if data[200_000] else b"\1")
    assert store.verify(7, "chunks") is False
    store.report_bad(7, "chunks")
    store.report_bad(7, "chunks")
    assert store.take_changes("m") == ((), (), ((7, "chunks"),))
    store.delete(7, "chunks")
    assert store.verify(7, "chunks") is None


def test_only_the_two_replica_kinds_are_accepted():
    assert as_kind("chunks") == "chunks" and as_kind("backups") == "backups"
    for bad in ("tmp", "../chunks", b"chunks", None, 1):
        with pytest.raises(errors.InvalidArgument):
            as_kind(bad)


# --- the service's checks, called directly -----------------------------------------------

@pytest.fixture
def worker(tmp_path):
    return Worker(WorkerConfig(data_dir=str(tmp_path), masters=(("127.0.0.1", 1),),
                               join_token=JOIN_TOKEN))


def token(worker, op, chunk_id):
    return auth.sign_chunk_token(worker.secret, op, chunk_id, 0, 60)


def test_the_service_stores_and_serves_against_a_token_and_nothing_else(worker):
    service = WorkerService(worker)
    worker.store.chunk_size = 1 << 20
    data = random_bytes(5000)
    assert service.exposed_write(token(worker, "w", 8), 8, "backups", 0, data, len(data),
                                 chunks.crc(data)) is True
    assert service.exposed_read(token(worker, "r", 8), 8, 0, 100) == (data[:100], len(data))
    with pytest.raises(errors.StaleToken):
        service.exposed_read(token(worker, "w", 8), 8, 0, 100)  # a write token
    with pytest.raises(errors.StaleToken):
        service.exposed_read(token(worker, "r", 9), 8, 0, 100)  # another chunk's
    assert worker.store.busy == 0  # the load counter is back once the calls are done
    assert Worker(worker.config).worker_id == worker.worker_id  # stable across restarts


@pytest.mark.parametrize("change, error", [
    (dict(chunk_id=True), errors.InvalidArgument),  # a bool is not a chunk id
    (dict(data=bytearray(10)), errors.InvalidArgument),
    (dict(kind="tmp"), errors.InvalidArgument),
    (dict(total=(1 << 20) + 1), errors.InvalidArgument),  # bigger than a chunk
    (dict(offset=-BLOCK_SIZE), errors.InvalidArgument),
    (dict(offset=BLOCK_SIZE), errors.InvalidArgument),  # past the announced end
    (dict(data=b""), errors.InvalidArgument),
    (dict(token="w:8:0:9999999999:forged"), errors.StaleToken),
])
def test_the_service_refuses_bad_writes_before_storing_anything(worker, change, error):
    worker.store.chunk_size = 1 << 20
    call = dict(token=token(worker, "w", 8), chunk_id=8, kind="chunks", offset=0,
                data=b"y" * 10, total=10, crc=chunks.crc(b"y" * 10))
    call.update(change)
    with pytest.raises(error):
        WorkerService(worker).exposed_write(**call)
    assert worker.store.inventory() == [] and os.listdir(worker.store.tmp_dir) == []


def test_a_piece_bigger_than_the_limit_is_refused(worker):
    worker.store.chunk_size = 64 << 20
    big = bytes(MAX_PIECE + BLOCK_SIZE)
    with pytest.raises(errors.InvalidArgument, match="larger than allowed"):
        WorkerService(worker).exposed_write(token(worker, "w", 1), 1, "chunks", 0, big,
                                            len(big), 0)


def test_master_commands_delete_and_bad_ones_are_logged_not_raised(worker, caplog):
    put(worker.store, 4, b"z" * 100)
    worker.execute(("delete", 4, "chunks"))
    assert worker.store.inventory() == []
    with caplog.at_level(logging.WARNING):
        worker.execute(("delete", "4", "chunks"))
        worker.execute(("replicate", 4, "chunks"))  # too short
    assert sum("failed" in r.getMessage() for r in caplog.records) == 2


# --- the reporter, stepped by hand against a fake metadata server ------------------------

class FakeMaster:
    """Answers worker_register and worker_heartbeat as a metadata server would."""

    def __init__(self):
        self.heartbeats = []
        self.answers = []  # what the next heartbeats return (an exception is raised)
        self.closed = 0
        self.root = self

    def worker_register(self, host, port, free, used, inventory):
        self.inventory = inventory
        return 1 << 20, 0

    def worker_heartbeat(self, free, used, load, added, removed, bad):
        self.heartbeats.append((added, removed, bad))
        answer = self.answers.pop(0) if self.answers else ()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        self.closed += 1


def test_the_reporter_registers_heartbeats_and_reconnects_with_backoff(worker, monkeypatch):
    masters = []
    refuse = [True]

    def connect(host, port, timeout):
        if refuse and refuse.pop():
            raise errors.Unavailable("cannot reach it")
        masters.append(FakeMaster())
        return masters[-1]
    monkeypatch.setattr(reporter_module.rpc, "connect", connect)
    monkeypatch.setattr(reporter_module.rpc, "login", lambda conn, *args: (0.25, 0))
    put(worker.store, 1, b"a" * 10)
    reporter = Reporter(worker, ("127.0.0.1", 1), RetryPolicy(None, first=0.2, cap=0.3), 1.0, 1)
    assert reporter.task.next_pause() == 0  # the first try at once
    reporter.step()  # refused
    assert reporter.conn is None and reporter.pause == 0.2
    reporter.step()
    assert reporter.conn is masters[0] and masters[0].inventory == ((1, "chunks"),)
    assert reporter.pause == 0.25 and worker.store.chunk_size == 1 << 20
    put(worker.store, 2, b"b" * 10)
    masters[0].answers = [(), EOFError("gone"), None]
    reporter.step()
    assert masters[0].heartbeats == [(((2, "chunks"),), (), ())]
    worker.store.delete(2, "chunks")
    reporter.step()  # fails: the changes go back to the feed, the connection is dropped
    assert reporter.conn is None and masters[0].closed == 1 and reporter.pause == 0.2
    reporter.step()  # a new registration: the inventory supersedes the pending changes
    assert masters[1].inventory == ((1, "chunks"),) and reporter.pause == 0.25
    masters[1].answers = [None]
    reporter.step()  # the master forgot us: register again soon
    assert reporter.conn is None and masters[1].closed == 1 and reporter.pause == 0.2
    assert masters[1].heartbeats == [((), (), ())]
    reporter.stop()


# --- the scrubber, one pass by hand --------------------------------------------------------

def test_a_scrub_pass_reports_a_flipped_byte_and_the_next_waits_for_min_pass(tmp_path):
    store = new_store(tmp_path)
    good, bad = random_bytes(BLOCK_SIZE * 3, seed=7), random_bytes(1000, seed=8)
    put(store, 1, good)
    put(store, 2, bad, kind="backups")
    with open(store.path(2, "backups"), "r+b") as f:
        f.write(bytes([bad[0] ^ 0xFF]))
    store.take_changes("m")
    clock = SteppedClock()
    scrubber = Scrubber(store, rate=1 << 40, min_pass=5.0, clock=clock)
    assert scrubber.task.next_pause() == 0  # the first pass at once
    scrubber.scrub_pass()
    assert store.take_changes("m").bad == ((2, "backups"),) and scrubber.passes == 1
    clock.step(2)
    assert scrubber.task.next_pause() == 3.0


# --- the background task -------------------------------------------------------------------

def test_a_task_action_that_raises_is_logged_and_the_next_tick_runs(caplog):
    calls = []

    def action():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("one bad pass")
    task = Task("housekeeping", action, 10.0)
    with caplog.at_level(logging.ERROR, logger="nodes.tasks"):
        task.tick()
        task.tick()
    assert calls == [0, 1]
    assert [r.getMessage() for r in caplog.records] == ["housekeeping failed"]
    assert caplog.records[0].exc_info[0] is RuntimeError


def test_a_running_task_survives_failures_asks_its_interval_and_cleans_up():
    passes, pauses, cleaned = [], [], threading.Event()
    third = threading.Event()

    def action():
        passes.append(1)
        if len(passes) >= 3:
            third.set()
        raise ValueError("every pass fails")

    def interval():
        pauses.append(1)
        return 0.0
    task = Task("flaky", action, interval, on_stop=cleaned.set).start()
    assert third.wait(10), "the loop ended after a failing pass"
    task.stop(timeout=10)
    assert cleaned.is_set() and len(pauses) >= 3 and task.stopping
    assert task.wait(5) is True  # a stopped task does not pause

"""Trash pressure in-process: a real MasterState (journal in a tmp dir) on real leases, one
worker whose free space the test reports by hand, and nodes.master.trash_pressure ticked by
hand. When free space falls under the low mark the trash is purged, oldest deleted first,
only as much as needed, and not again while the purged chunks are still being deleted."""

import pytest
from master_harness import in_process_master
from master_harness import user as login

from dfs import wire
from nodes.master.trash_pressure import TrashPressure, choose

CHUNK = 65536
DISK = 10 * CHUNK  # the one worker's space


def ref(chunk_id, length, index):
    """A ChunkRef (with its place in the file where the record has one)."""
    fields = dict(chunk_id=chunk_id, version=1, length=length, crc=0, chunk_index=index)
    return wire.ChunkRef(**{k: v for k, v in fields.items() if k in wire.ChunkRef._fields})


@pytest.fixture
def master(tmp_path):
    with in_process_master(tmp_path, chunk_size=CHUNK, trash_seconds=3600.0, low_space=0.25,
                           worker_bytes=DISK) as running:
        yield running


def write_file(alice, path, chunks):
    targets = wire.targets_from_wire(alice.exposed_allocate(path, chunks))
    written = [wire.WrittenChunk(ref(t.chunk_id, CHUNK, i), (("w1", "chunks"),))
               for i, t in enumerate(targets)]
    alice.exposed_put(path, 0o600, wire.written_to_wire(written), chunks * CHUNK)
    return [t.chunk_id for t in targets]


def report(state, clock, removed=()):
    """The worker heartbeats: its used bytes are the chunks it still holds, and it lists
    those it stored as added (as a real worker's report does, once each: again is
    harmless), which ends the room their placement reserved."""
    with state.lock:
        worker = state.workers.workers["w1"]
        held = set(worker.chunks) - set(removed)
        used = len(held) * CHUNK
        return state.workers.heartbeat("w1", DISK - used, used, 0,
                                       tuple((cid, "chunks") for cid in sorted(held)),
                                       tuple((cid, "chunks") for cid in removed), clock())


def trashed(alice):
    return sorted(path for _tid, path, *_rest in alice.exposed_trash_page()[0])


def test_low_space_purges_the_oldest_trash_first_and_only_what_is_needed(master):
    state, clock, wall = master
    alice = login(state, "alice")
    files = {name: write_file(alice, f"/{name}", 2) for name in ("a", "b", "c", "d")}
    report(state, clock)  # 8 of 10 chunks used: 20 % free, under the 25 % mark
    pressure = TrashPressure(state)
    pressure.tick()
    assert state.ns.trash == {}  # nothing in the trash: nothing to purge, files are kept
    assert "space is low" in wire.status_from_wire(alice.exposed_status()).space_warning
    for name in ("b", "a", "c"):  # deleted in this order, a second apart
        alice.exposed_unlink(f"/{name}")
        wall.step(1)
    pressure.tick()
    assert trashed(alice) == ["/a", "/c"]  # b, the oldest, freed 2 chunks: enough
    state.tick()  # garbage collection: the master forgets b's copies, queues their deletes
    pressure.tick()  # but the worker still holds them: counted as free already
    assert trashed(alice) == ["/a", "/c"]
    commands = report(state, clock)  # the heartbeat that carries the deletes
    assert sorted(c[1] for c in commands if c[0] == "delete") == sorted(files["b"])
    pressure.tick()
    assert trashed(alice) == ["/a", "/c"]
    report(state, clock, removed=files["b"])  # done: 4 chunks free, 40 %
    pressure.tick()
    assert trashed(alice) == ["/a", "/c"]
    assert wire.status_from_wire(alice.exposed_status()).space_warning == ""

    write_file(alice, "/e", 2)
    write_file(alice, "/f", 2)
    report(state, clock)  # full: a and c both go, oldest first, to get over the mark
    pressure.tick()
    assert trashed(alice) == []
    listed = wire.entries_from_wire(alice.exposed_listdir("/"))
    assert sorted(e.name for e in listed) == ["d", "e", "f", "home"]


def test_choose_takes_the_oldest_until_enough_is_freed():
    from dfs.namespace.inode import TrashItem

    class Inode:  # what choose reads of a trashed inode: its chunks
        def __init__(self, ids):
            self.chunks = [ref(cid, CHUNK, i) for i, cid in enumerate(ids)]
    trash = {"7": TrashItem("u", "/new", 30.0, 99.0, Inode([1])),
             "8": TrashItem("u", "/old", 10.0, 99.0, Inode([2, 3])),
             "6": TrashItem("u", "/empty", 5.0, 99.0, Inode([])),  # frees nothing: kept
             "9": TrashItem("u", "/mid", 20.0, 99.0, Inode([4]))}
    stored = {1: 100, 2: 100, 3: 100, 4: 100}
    assert choose(trash, 150, stored) == (["8"], {2: 100, 3: 100})
    assert choose(trash, 250, stored) == (["8", "9"], {2: 100, 3: 100, 4: 100})
    assert choose(trash, 10_000, stored)[0] == ["8", "9", "7"]  # all there is
    assert choose(trash, 0, stored) == ([], {})

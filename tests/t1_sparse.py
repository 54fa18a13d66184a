"""Pure units of sparse files and bounded memory on the client: DfsFile (dfs/client/files.py)
over an in-memory stand-in for the workers and the master's commit, the shared
write-back budget and read buffers (dfs/client/memory.py), and the hole arithmetic
(dfs/chunks.py find_data/find_hole).

The stand-in stores and loads chunk bytes in a dict and counts every call, so a test can
say which requests reached "a worker"; everything DfsFile decides is the real code."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from dfs import chunks, errors
from dfs.chunks import MAX_FILE_SIZE
from dfs.client.files import DfsFile
from dfs.client.memory import ReadBuffers, WriteBudget
from dfs.client.renewer import Renewer
from dfs.client.transfer import Pieces
from dfs.config import BLOCK_SIZE, MIB, ClientConfig
from dfs.retry import poll
from dfs.wire import ChunkRef, FileLayout, PutResult, ReadChunk, Replica, Stat

CS = 64 * 1024  # chunk size
REPLICA = (Replica("w1", "127.0.0.1", 1, "chunks"),)


class Workers:
    """Chunk bytes by id; counts stores and loads (what would have reached a worker)."""

    piece_size = 1 << 20  # how DfsFile cuts a chunk for its uploads (Transfer's)

    def __init__(self):
        self.bytes = {}
        self.stores = 0
        self.loads = 0
        self.fail = None  # an error to raise from the next stores
        self.renewed = []  # chunk ids of each renew call
        self.abandoned = []  # chunk ids of each abandon call
        self.lock = threading.Lock()

    def store_chunk(self, path, index, data, target=None):
        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.stores += 1
            cid = len(self.bytes) + 1
            self.bytes[cid] = data = data.joined() if isinstance(data, Pieces) else bytes(data)
        return ReadChunk(ChunkRef(cid, 1, len(data), chunks.crc(data), index), REPLICA, "t")

    def renew(self, chunk_ids):
        with self.lock:
            self.renewed.append(tuple(chunk_ids))

    def abandon(self, chunk_ids):
        with self.lock:
            self.abandoned.append(tuple(chunk_ids))

    def load_chunk(self, chunk, use_cache=True):
        with self.lock:
            self.loads += 1
        data = self.bytes[chunk.ref.chunk_id]
        assert len(data) == chunk.ref.length and chunks.crc(data) == chunk.ref.crc
        return data

    def load_blocks(self, chunk, first_block, count):
        with self.lock:
            self.loads += 1
        data = self.bytes[chunk.ref.chunk_id]
        assert len(data) == chunk.ref.length and first_block * BLOCK_SIZE < len(data)
        return data[first_block * BLOCK_SIZE:(first_block + count) * BLOCK_SIZE]


class Client:
    """What a DfsFile needs of its client; ``commit`` keeps the layout for the next open."""

    def __init__(self, budget=MIB, read_buffers=4 * CS, parallel=2, renew_every=3600.0):
        self.config = ClientConfig(masters=(("h", 1),), user="alice", key="k" * 64,
                                   write_back_bytes=budget, read_buffer_bytes=read_buffers,
                                   parallel_chunks=parallel, renew_every=renew_every)
        self.renewer = Renewer(renew_every)
        self.transfer = Workers()
        self.chunk_pool = ThreadPoolExecutor(8)
        self.write_budget = WriteBudget(budget, deadline=20.0)
        self.read_buffers = ReadBuffers(read_buffers)
        self.layouts = {}  # ino -> FileLayout as committed
        self.chunk_sizes = {99: 4 * CS}  # inodes with other chunk sizes
        self.commits = []

    def commit(self, ino, written, size):
        refs = [w.ref for w in written]
        assert [r.chunk_index for r in refs] == sorted({r.chunk_index for r in refs})
        chunk = self.chunk_sizes.get(ino, CS)
        assert all(0 < r.length <= chunk and r.chunk_index * chunk + r.length <= size
                   for r in refs)
        self.commits.append(refs)
        stat = Stat(ino, "f", 0o600, "alice", size, 1, 2, 3, 1, sum(r.length for r in refs))
        self.layouts[ino] = FileLayout(stat, chunk, tuple(ReadChunk(r, REPLICA, "t") for r in refs))
        return PutResult(stat, 0)

    def open(self, ino=7):
        layout = self.layouts.get(ino) or FileLayout(Stat(ino, "f", 0o600, "alice", 0, 1, 2, 3,
                                                          1), CS, ())
        return DfsFile(self, f"/f{ino}", layout, writable=True)


def read_all(f):
    """A file's bytes, a budget's worth at a time (read() of more is refused)."""
    f.seek(0)
    return b"".join(iter(lambda: f.read(MIB), b""))


@pytest.fixture
def client():
    c = Client()
    yield c
    c.chunk_pool.shutdown()


# --- holes ---------------------------------------------------------------------------------

def test_truncate_to_the_largest_file_then_write_at_its_end_stores_one_chunk(client):
    f = client.open()
    f.truncate(MAX_FILE_SIZE)
    assert client.transfer.stores == 0 and client.write_budget.used == 0
    tail = b"the end" * 585  # 4095 bytes, ending at the last byte of the largest file
    f.pwrite(MAX_FILE_SIZE - len(tail), tail)
    f.close()
    (refs,) = client.commits
    last = (MAX_FILE_SIZE - 1) // CS
    assert [(r.chunk_index, r.length) for r in refs] == [(last, MAX_FILE_SIZE - last * CS)]
    assert client.transfer.stores == 1
    g = client.open()
    assert g.size == MAX_FILE_SIZE and g.stored() == refs[0].length
    assert g.pread(MAX_FILE_SIZE - len(tail), 10 ** 6) == tail
    loads = client.transfer.loads
    assert g.pread(12345, 1000) == bytes(1000)  # a hole: no worker is asked
    assert g.pread(last * CS, 100) == bytes(100)  # the start of the last chunk is zeros too
    assert client.transfer.loads == loads == 1  # the stored chunk: read once, then kept
    g.close()


def test_a_write_past_the_end_stores_nothing_for_the_gap(client):
    f = client.open()
    f.pwrite(0, b"a" * 10)
    f.pwrite(10 * CS + 5, b"b" * 20)
    f.close()
    refs = client.commits[-1]
    assert [(r.chunk_index, r.length) for r in refs] == [(0, 10), (10, 25)]
    g = client.open()
    assert g.read() == b"a" * 10 + bytes(10 * CS - 5) + b"b" * 20
    assert g.seek_hole(0) == 10 and g.seek_data(10) == 10 * CS
    assert g.seek_hole(10 * CS) == 10 * CS + 25 == g.size
    with pytest.raises(errors.NoSuchOffset):
        g.seek_data(10 * CS + 25)
    g.close()


def test_chunks_of_zeros_are_not_stored_and_zeroing_a_chunk_drops_it(client):
    f = client.open()
    f.pwrite(0, bytes(3 * CS))  # three full chunks of zeros
    f.pwrite(3 * CS, b"x")
    f.close()
    assert [r.chunk_index for r in client.commits[-1]] == [3]
    assert client.transfer.stores == 1
    g = client.open()
    g.pwrite(3 * CS, b"\0")  # that chunk is all zeros now: a hole again
    g.close()
    assert client.commits[-1] == [] and client.layouts[7].stat.size == 3 * CS + 1
    h = client.open()
    assert h.read() == bytes(3 * CS + 1) and h.stored() == 0
    h.close()


def test_long_trailing_zeros_of_a_chunk_are_not_stored(client):
    big = 4 * CS  # chunks of 256 KiB: room for a run of zeros of a block (64 KiB) or more
    f = DfsFile(client, "/z", FileLayout(Stat(99, "f", 0o600, "alice", 0, 1, 2, 3, 1), big,
                                         ()), writable=True)
    f.pwrite(0, b"ab" + bytes(CS + 100))  # a long run: left out
    f.pwrite(big, b"\0" * 5 + b"c" + bytes(100))  # a short one stays; so do leading zeros
    f.close()
    assert [(r.chunk_index, r.length) for r in client.commits[-1]] == [(0, 2), (1, 106)]
    assert client.layouts[99].stat.size == big + 106


@pytest.mark.parametrize("data, length", [
    (b"", 0), (bytes(10), 10), (b"x" + bytes(9), 10), (bytes(9) + b"x", 10),
    (b"x" + bytes(64 * 1024), 1), (bytes(64 * 1024), 0), (b"x" + bytes(64 * 1024 - 1), 64 * 1024),
    (b"a" + bytes(3 * 64 * 1024) + b"b" + bytes(70000), 3 * 64 * 1024 + 2),
])
def test_data_length_leaves_out_long_trailing_zeros(data, length):
    assert chunks.data_length(data) == length
    assert chunks.data_length(bytearray(data)) == length


def test_truncate_down_cuts_the_last_chunk_and_up_again_reads_zeros(client):
    f = client.open()
    data = random.randbytes(3 * CS)
    f.pwrite(0, data)
    f.close()
    g = client.open()
    g.truncate(CS + 100)
    g.truncate(5 * CS)  # up again: the cut part does not come back
    g.close()
    assert [(r.chunk_index, r.length) for r in client.commits[-1]] == [(0, CS), (1, 100)]
    h = client.open()
    assert h.read() == data[:CS + 100] + bytes(4 * CS - 100)
    h.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_writes_and_truncates_match_a_plain_bytearray(seed):
    rng = random.Random(seed)
    c = Client(budget=MIB, read_buffers=3 * CS, parallel=rng.choice([1, 2, 4]))
    model = bytearray()
    f = c.open()
    for step in range(120):
        op = rng.random()
        if op < 0.6:
            offset = rng.randrange(0, 40 * CS)
            blob = (rng.randbytes(rng.randrange(1, 3 * CS)) if rng.random() < 0.7
                    else bytes(rng.randrange(1, 2 * CS)))
            f.pwrite(offset, blob)
            if len(model) < offset:
                model.extend(bytes(offset - len(model)))
            model[offset:offset + len(blob)] = blob
        elif op < 0.75:
            size = rng.randrange(0, 45 * CS)
            f.truncate(size)
            del model[size:]
            model.extend(bytes(size - len(model)))
        elif op < 0.9:
            offset = rng.randrange(0, 45 * CS)
            assert f.pread(offset, 2 * CS) == bytes(model[offset:offset + 2 * CS]), step
        else:
            f.close()
            f = c.open()
        assert c.write_budget.used <= c.write_budget.capacity
    f.close()
    g = c.open()
    assert read_all(g) == bytes(model)
    stored = sum(r.length for r in c.commits[-1])
    assert stored <= len(model) and g.stored() == stored
    g.close()
    assert c.write_budget.used == 0 and c.read_buffers.used == 0
    c.chunk_pool.shutdown()


@pytest.mark.parametrize("lengths, size, offset, data, hole", [
    ({}, 100, 0, None, 0),
    ({0: CS}, CS, 0, 0, CS),
    ({0: 10}, CS, 5, 5, 10),
    ({0: 10}, CS, 10, None, 10),
    ({1: CS, 2: 5}, 3 * CS, 0, CS, 0),
    ({1: CS, 2: 5}, 3 * CS, CS + 7, CS + 7, 2 * CS + 5),
    ({0: CS, 1: CS}, 5 * CS, 0, 0, 2 * CS),
    ({3: 1}, 4 * CS, 3 * CS + 1, None, 3 * CS + 1),
])
def test_find_data_and_hole(lengths, size, offset, data, hole):
    assert chunks.find_data(lengths, offset, size, CS) == data
    assert chunks.find_hole(lengths, offset, size, CS) == hole
    assert chunks.find_hole(lengths, size, size, CS) is None  # at the end: ENXIO


def test_offsets_past_the_largest_file_are_too_large(client):
    f = client.open()
    with pytest.raises(errors.FileTooLarge):
        f.truncate(MAX_FILE_SIZE + 1)
    with pytest.raises(errors.FileTooLarge):
        f.pwrite(MAX_FILE_SIZE - 1, b"ab")
    f.close()
    assert client.commits == []  # nothing changed, nothing to commit


# --- bounded memory ------------------------------------------------------------------------

def test_many_files_share_one_write_back_budget_and_idle_ones_give_way():
    c = Client(budget=MIB, parallel=2)  # 16 chunks' worth for everything
    files = [c.open(ino) for ino in range(1, 41)]
    expect = {}
    for f in files:  # 40 idle files with a partial chunk buffered each: 40 * 48 KiB
        blob = random.randbytes(3 * CS // 4)
        f.pwrite(CS // 8, blob)
        expect[f.ino] = bytes(CS // 8) + blob
    assert c.write_budget.peak <= MIB
    for f in files:
        f.close()
    for ino, data in expect.items():
        g = c.open(ino)
        assert g.read() == data
        g.close()
    assert c.write_budget.used == 0 and c.read_buffers.used == 0
    c.chunk_pool.shutdown()


def test_writers_in_parallel_stay_within_the_budget():
    c = Client(budget=MIB, parallel=2)
    errors_seen = []

    def writer(ino):
        try:
            rng = random.Random(ino)
            f = c.open(ino)
            model = bytearray(20 * CS)
            for _ in range(60):
                offset = rng.randrange(0, 19 * CS)
                blob = rng.randbytes(rng.randrange(1, CS))
                f.pwrite(offset, blob)
                model[offset:offset + len(blob)] = blob
            f.truncate(20 * CS)
            f.close()
            g = c.open(ino)
            assert read_all(g) == bytes(model)
            g.close()
        except Exception as exc:  # reported below: a thread's assert is not the test's
            errors_seen.append(exc)
    threads = [threading.Thread(target=writer, args=(ino,)) for ino in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors_seen and not any(t.is_alive() for t in threads)
    assert c.write_budget.peak <= MIB and c.write_budget.used == 0
    c.chunk_pool.shutdown()


def test_read_buffers_are_shared_bounded_and_freed_at_close():
    c = Client(budget=MIB, read_buffers=4 * CS)
    data = random.randbytes(12 * CS)
    for ino in (1, 2, 3):
        f = c.open(ino)
        f.pwrite(0, data)
        f.close()
    readers = [c.open(ino) for ino in (1, 2, 3)]
    for offset in range(0, len(data), 4096):  # sequential: each reads ahead
        for r in readers:
            assert r.pread(offset, 4096) == data[offset:offset + 4096]
    assert c.read_buffers.peak <= 4 * CS
    for r in readers:
        r.close()
    assert c.read_buffers.used == 0 and not c.read_buffers.entries


def test_one_request_never_needs_more_than_the_budget(client):
    f = client.open()
    f.truncate(3 * MIB)
    assert len(f.pread(0, 3 * MIB)) == MIB  # a short read, as POSIX allows
    with pytest.raises(errors.NoMemory):
        f.read()  # everything at once: refused, not grown
    f.seek(2 * MIB)
    assert f.read() == bytes(MIB)
    f.close()
    big = Client(budget=MIB)
    g = DfsFile(big, "/big", FileLayout(Stat(9, "f", 0o600, "alice", 0, 1, 2, 3, 1), 2 * MIB,
                                        ()), writable=True)
    g.pwrite(0, b"x")  # the start of a chunk: the buffer holds only what is written
    with pytest.raises(errors.NoMemory, match="more than the whole write-back budget"):
        g.pwrite(MIB + 5, b"x")  # a chunk buffer of 1 MiB + 6 bytes: more than the budget
    assert g.size == 1 and big.write_budget.used == 1
    g.close()
    big.chunk_pool.shutdown()


@pytest.mark.log_allows(r"earlier write")
def test_a_failed_upload_is_reported_and_its_memory_given_back(client):
    f = client.open()
    f.pwrite(0, random.randbytes(CS // 2))
    client.transfer.fail = errors.NoSpace("the workers are full")
    with pytest.raises(errors.NoSpace):
        f.flush()
    with pytest.raises(errors.NoSpace, match="earlier write"):
        f.close()
    assert client.write_budget.used == 0 and client.commits == []


def test_a_write_waits_for_room_held_by_a_busy_file_then_goes_on():
    c = Client(budget=MIB)
    hog = c.open(1)
    for index in range(16):  # 16 chunks, none written to its end: all stay buffered
        hog.pwrite(index * CS, random.randbytes(CS - 100))
    assert MIB - c.write_budget.used < CS  # less than a chunk is left
    writer = c.open(2)
    with hog.lock:  # busy: it cannot be asked to store its buffers
        done = threading.Event()

        def write():
            writer.pwrite(0, random.randbytes(CS))
            done.set()
        t = threading.Thread(target=write)
        t.start()
        assert not done.wait(0.3)  # waits (no room, nothing of its own to store)
    t.join(20)
    assert done.is_set() and c.write_budget.peak <= MIB
    hog.close()
    writer.close()
    assert c.write_budget.used == 0
    c.chunk_pool.shutdown()


# --- the namespace: old dense chunk lists still load ---------------------------------------

# A snapshot as the master wrote it before files could have holes: four numbers per chunk,
# every index present (one file in the tree, one in the trash).
OLD_SNAPSHOT = (
    '{"format":1,"seq":9,"chunk_size":1024,"next_ino":5,"next_chunk_id":4,'
    '"users":{"alice":{"stored_key":"00","admin":false,"uid":1}},"next_uid":2,"revoked":[],'
    '"pending":[],"voters":{},"recent":{},'
    '"trash":{"4":{"owner":"alice","path":"/t","deleted_at":1.5,"expires":2.5,"inode":'
    '{"ino":4,"kind":"f","owner":"alice","mode":384,"atime_ns":1,"mtime_ns":1,"ctime_ns":1,'
    '"nlink":0,"size":10,"chunks":[[3,1,10,33]]}}},'
    '"inodes":[{"ino":1,"kind":"d","owner":"admin","mode":1023,"atime_ns":1,"mtime_ns":1,'
    '"ctime_ns":1,"nlink":2,"children":{"f":3}},'
    '{"ino":3,"kind":"f","owner":"alice","mode":384,"atime_ns":1,"mtime_ns":1,"ctime_ns":1,'
    '"nlink":1,"size":1500,"chunks":[[1,1,1024,11],[2,1,476,22]]}]}')


def test_an_old_snapshot_with_dense_chunk_lists_loads_with_every_index():
    import json

    from dfs.namespace.model import Namespace
    ns = Namespace.from_json(json.loads(OLD_SNAPSHOT))
    f = ns.resolve("/f")
    assert f.chunks == [ChunkRef(1, 1, 1024, 11, 0), ChunkRef(2, 1, 476, 22, 1)]
    assert ns.trash["4"].inode.chunks == [ChunkRef(3, 1, 10, 33, 0)]
    assert f.stat().stored == 1500 and ns.live_chunk_ids() == {1, 2, 3}
    again = Namespace.from_json(json.loads(json.dumps(ns.to_json())))  # written sparse
    assert again.resolve("/f").chunks == f.chunks
    assert ns.to_json()["inodes"][1]["chunks"] == [[1, 1, 1024, 11, 0], [2, 1, 476, 22, 1]]


def test_an_open_file_renews_its_uncommitted_chunks_until_it_commits():
    """A file open longer than the master's gc_grace must not lose its uploaded chunks:
    the renewer asks for them to be kept every renew_every seconds (here 0.05)."""
    client = Client(renew_every=0.05)
    f = client.open(7)
    f.pwrite(0, bytes(range(256)) * (2 * CS // 256))  # two full chunks: uploaded at once
    f.pwrite(2 * CS, b"x")
    kept = poll(lambda: len(client.transfer.renewed) >= 2, 10.0, 0.01)
    assert kept and set(client.transfer.renewed[-1]) == {1, 2}
    f.close()
    calls = len(client.transfer.renewed)
    f.keep_new_chunks(force=True)  # committed: nothing is left to keep
    assert len(client.transfer.renewed) == calls
    client.renewer.stop()


def test_a_close_that_fails_gives_its_uploaded_chunks_back():
    client = Client()
    f = client.open(8)
    f.pwrite(0, bytes(range(256)) * (CS // 256))  # one full chunk: uploaded
    f.pwrite(CS, b"tail")
    client.commit = lambda *a: (_ for _ in ()).throw(errors.NoSpace("full"))
    with pytest.raises(errors.NoSpace):
        f.close()
    assert client.transfer.abandoned == [(1, 2)]  # both stored chunks, handed back at once

"""t3: random reads load the 64 KiB blocks they touch, not the whole chunk (real master
and workers): every byte comes back exact at any offset and length, the workers send
blocks rather than chunks, a copy with a flipped byte is met by reading the other one,
and a bad call for blocks is refused cleanly."""

import os
import random

import pytest
from conftest import TEST_CHUNK, chunk_files, random_bytes

from dfs import errors
from dfs.config import BLOCK_SIZE
from dfs.local.cluster import wait_for

SIZE = 3 * TEST_CHUNK + 12345  # four chunks, the last one short


@pytest.fixture(scope="module")
def stored(shared_dfs):
    data = random_bytes(SIZE, seed=77)
    shared_dfs.put_bytes("/random-reads", data)
    return data


def test_random_reads_of_any_offset_and_length_are_exact(shared_dfs, stored):
    rng = random.Random(5)
    with shared_dfs.open("/random-reads") as f:
        for _ in range(300):
            offset = rng.randrange(SIZE)
            length = rng.choice([1, 100, 4096, BLOCK_SIZE - 1, BLOCK_SIZE + 1, 300_000])
            assert f.pread(offset, length) == stored[offset:offset + length], (offset, length)
        assert f.pread(SIZE - 10, 100) == stored[-10:]
        assert f.pread(SIZE, 10) == b""


def test_a_random_read_loads_its_blocks_not_the_chunk(shared_dfs, stored):
    with shared_dfs.open("/random-reads") as f:
        f.pread(2 * TEST_CHUNK + 5000, 4096)  # far from where a new file starts reading
        held = [key for key in shared_dfs.read_buffers.entries if isinstance(key, tuple)]
        assert len(held) == 1 and held[0][1] == 5000 // BLOCK_SIZE
        assert sum(len(v) for v in shared_dfs.read_buffers.entries.values()) == BLOCK_SIZE
        assert f.pread(10 * BLOCK_SIZE, 100) == stored[10 * BLOCK_SIZE:][:100]  # elsewhere
        assert f.pread(2 * TEST_CHUNK + 6000, 100) == stored[2 * TEST_CHUNK + 6000:][:100]
        assert len(shared_dfs.read_buffers.entries) == 2  # the first block was kept
    assert not shared_dfs.read_buffers.entries  # let go at close


def test_sequential_reads_still_take_whole_chunks(shared_dfs, stored):
    with shared_dfs.open("/random-reads") as f:
        got = b"".join(f.pread(o, 128 * 1024) for o in range(0, SIZE, 128 * 1024))
        assert got == stored
        assert any(isinstance(key, int) for key in shared_dfs.read_buffers.entries)


@pytest.mark.log_allows(r"fails its checksum", r"trying another copy",
                        r"is corrupt: dropping that replica")
def test_a_flipped_byte_in_one_copy_is_read_from_the_other(cluster, dfs):
    data = random_bytes(2 * TEST_CHUNK, seed=78)
    dfs.put_bytes("/flipped", data)
    ref = dfs.layout("/flipped").chunks[1].ref
    for index in chunk_files(cluster, "chunks")[ref.chunk_id]:
        with open(os.path.join(cluster.worker_dir(index), "chunks", str(ref.chunk_id)),
                  "r+b") as copy:
            copy.seek(3 * BLOCK_SIZE + 7)
            byte = copy.read(1)
            copy.seek(3 * BLOCK_SIZE + 7)
            copy.write(bytes([byte[0] ^ 0x40]))
    with dfs.open("/flipped") as f:
        offset = TEST_CHUNK + 3 * BLOCK_SIZE
        assert f.pread(offset, 4096) == data[offset:offset + 4096]

    def good_copies():  # the bad copy is quarantined and a good one made from the other
        found = []
        for kind in ("chunks", "backups"):
            for index in chunk_files(cluster, kind).get(ref.chunk_id, []):
                with open(os.path.join(cluster.worker_dir(index), kind, str(ref.chunk_id)),
                          "rb") as copy:
                    found.append(copy.read() == data[TEST_CHUNK:])
        return found.count(True) == 2
    wait_for(good_copies, 60, "the corrupt copy to be replaced")


@pytest.mark.parametrize("first, count", [(-1, 1), (0, 0), (0, -3), (10_000, 1),
                                          (0, 1 << 20), ("0", 1), (0, 1.5), (True, 1)])
def test_bad_block_reads_are_refused(shared_dfs, stored, first, count):
    chunk = shared_dfs.layout("/random-reads").chunks[0]
    replica = chunk.replicas[0]
    with pytest.raises((errors.InvalidArgument, errors.InvalidPath)):
        shared_dfs.transfer.workers.call(replica, "read_blocks", chunk.token,
                                         chunk.ref.chunk_id, first, count)
    with shared_dfs.open("/random-reads") as f:
        assert f.pread(5, 10) == stored[5:15]

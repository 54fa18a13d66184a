"""A worker's chunk store when its disk fills, and its scrubber when chunks are deleted
under it: units, no sockets. Full disks are real: a small tmpfs (we run as root), always
unmounted; the ENOSPC comes from the kernel, not from a mock."""

import logging
import os

import pytest
from helpers import random_bytes, tmpfs

from dfs import chunks, errors
from dfs.config import BLOCK_SIZE, MIB
from nodes.worker import store as store_module
from nodes.worker import uploads as uploads_module
from nodes.worker.scrubber import Scrubber
from nodes.worker.store import ChunkStore


def put(store, chunk_id, data, kind="chunks", piece=BLOCK_SIZE * 4):
    crc = chunks.crc(data)
    done = False
    for offset in range(0, len(data), piece):
        done = store.write(chunk_id, kind, offset, data[offset:offset + piece], len(data), crc)
    return done


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("kind", ["chunks", "backups"])
def test_enospc_half_way_drops_the_upload_and_the_store_goes_on(tmp_path, kind, caplog):
    with tmpfs(tmp_path / "disk", "4m") as disk:
        store = ChunkStore(disk, capacity=0, reserve=0)
        store.chunk_size = 8 * MIB
        data = random_bytes(2 * MIB, seed=1)
        crc = chunks.crc(data)
        assert store.write(1, kind, 0, data[:MIB], len(data), crc) is False  # room then
        # then someone else fills the disk (another process, another worker on the same
        # disk): the kernel says ENOSPC in the middle of the chunk
        with open(os.path.join(disk, "filler"), "wb") as f:
            f.write(bytes(disk_free(disk) - 64 * 1024))
        with caplog.at_level(logging.WARNING), pytest.raises(errors.NoSpace):
            store.write(1, kind, MIB, data[MIB:], len(data), crc)
        assert "disk full while storing chunk 1" in caplog.text
        assert os.listdir(store.tmp_dir) == [] and store.staging == {}  # nothing left behind
        assert store.inventory() == [] and store.used == 0
        assert store.free() == disk_free(disk)  # honest: what the disk really has
        os.unlink(os.path.join(disk, "filler"))  # space comes back: the same store works
        assert put(store, 1, data, kind) is True
        assert store.read(1, 0, len(data)) == (data, len(data))


def test_the_reserve_refuses_a_chunk_before_its_first_byte(tmp_path):
    with tmpfs(tmp_path / "disk", "4m") as disk:
        store = ChunkStore(disk, capacity=0, reserve=3 * MIB)
        store.chunk_size = 8 * MIB
        assert store.free() == max(0, disk_free(disk) - 3 * MIB)
        with pytest.raises(errors.NoSpace, match="worker is full"):
            put(store, 1, random_bytes(2 * MIB, seed=2))
        assert os.listdir(store.tmp_dir) == [] and disk_free(disk) > 3 * MIB
        put(store, 2, random_bytes(MIB // 2, seed=3))  # what fits above the reserve does
        assert store.inventory() == [(2, "chunks")]


def test_uploads_in_progress_count_against_the_free_space(tmp_path):
    store = ChunkStore(str(tmp_path), capacity=3 * BLOCK_SIZE, reserve=0)
    store.chunk_size = MIB
    data = random_bytes(2 * BLOCK_SIZE, seed=4)
    store.write(1, "chunks", 0, data[:BLOCK_SIZE], len(data), chunks.crc(data))  # half-way
    assert store.free() == BLOCK_SIZE  # the rest of chunk 1 is spoken for
    with pytest.raises(errors.NoSpace):  # two uploads together would pass the capacity
        store.write(2, "backups", 0, data, len(data), chunks.crc(data))
    assert store.write(1, "chunks", BLOCK_SIZE, data[BLOCK_SIZE:], len(data), chunks.crc(data))
    assert store.free() == BLOCK_SIZE and store.used == 2 * BLOCK_SIZE


def test_a_failed_checksum_file_leaves_no_temp_file(tmp_path, monkeypatch):
    """ENOSPC while writing the .crc (the data already fit): both temp files go."""
    store = ChunkStore(str(tmp_path), capacity=0, reserve=0)
    store.chunk_size = MIB
    real_open = uploads_module.open_private

    def open_then_full(path, mode="wb"):
        f = real_open(path, mode)
        if path.endswith(".crc"):
            f.close()
            raise OSError(28, "No space left on device", path)
        return f
    monkeypatch.setattr(uploads_module, "open_private", open_then_full)
    with pytest.raises(errors.NoSpace):
        put(store, 7, random_bytes(BLOCK_SIZE, seed=5))
    assert os.listdir(store.tmp_dir) == [] and store.inventory() == []


# --- the scrubber and deletions under it -------------------------------------------------

def test_a_chunk_deleted_between_listing_and_checking_is_skipped_quietly(tmp_path, monkeypatch,
                                                                        caplog):
    """The listing sees chunk N, then a delete removes N and N.crc before the scrubber looks
    (the race that logged "scrub pass failed: FileNotFoundError .../backups/N")."""
    store = ChunkStore(str(tmp_path), capacity=0, reserve=0)
    store.chunk_size = MIB
    for chunk_id in (1, 2, 3):
        put(store, chunk_id, random_bytes(BLOCK_SIZE, seed=chunk_id), kind="backups")
    real_listdir = os.listdir

    def listdir_then_delete(path):
        names = real_listdir(path)
        if path == store.dirs["backups"]:
            store.delete(2, "backups")  # lands right after the listing
        return names
    monkeypatch.setattr(store_module.os, "listdir", listdir_then_delete)
    scrubber = Scrubber(store, rate=1 << 40, min_pass=5.0)
    with caplog.at_level(logging.DEBUG):
        scrubber.task.tick()  # the Task's own pass: it logs any failure with its traceback
    assert scrubber.passes == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    monkeypatch.undo()
    assert sorted(store.inventory()) == [(1, "backups"), (3, "backups")]
    assert store.take_changes("m").bad == ()


def test_a_chunk_deleted_while_it_is_being_verified_is_gone_not_bad(tmp_path, monkeypatch):
    store = ChunkStore(str(tmp_path), capacity=0, reserve=0)
    store.chunk_size = MIB
    put(store, 4, random_bytes(3 * BLOCK_SIZE, seed=6))
    real_crcs = store.block_crcs

    def crcs_then_delete(path):
        found = real_crcs(path)
        store.delete(4, "chunks")  # the data file goes after its checksums were read
        return found
    monkeypatch.setattr(store, "block_crcs", crcs_then_delete)
    assert store.verify(4, "chunks") is None

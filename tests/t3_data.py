"""Real master + 4 workers: round trips, replica placement, balance, streaming files."""

import pytest
from conftest import TEST_CHUNK, chunk_files, random_bytes, sha256

from dfs import errors

C = TEST_CHUNK


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, int(3.5 * C), 50 * 1024 * 1024])
def test_put_get_round_trip(shared_dfs, tmp_path, size):
    data = random_bytes(size, seed=size)
    local = tmp_path / "in.bin"
    local.write_bytes(data)
    result = shared_dfs.put(str(local), f"/rt-{size}")
    assert result.stat.size == size and result.under_replicated == 0
    shared_dfs.get(f"/rt-{size}", str(tmp_path / "out.bin"))
    assert sha256((tmp_path / "out.bin").read_bytes()) == sha256(data)
    assert shared_dfs.stat(f"/rt-{size}").size == size


def test_every_chunk_has_two_copies_on_distinct_workers_one_in_backups(shared_cluster,
                                                                       shared_dfs):
    shared_dfs.put_bytes("/placed", random_bytes(3 * C + 5, seed=9))
    layout = shared_dfs.layout("/placed")
    primaries = chunk_files(shared_cluster, "chunks")
    backups = chunk_files(shared_cluster, "backups")
    for chunk in layout.chunks:
        cid = chunk.ref.chunk_id
        assert len(primaries.get(cid, [])) == 1, cid
        assert len(backups.get(cid, [])) == 1, cid
        assert primaries[cid] != backups[cid]  # two different workers
        assert {r.kind for r in chunk.replicas} == {"chunks", "backups"}


def test_two_hundred_chunks_spread_evenly(shared_cluster, shared_dfs):
    before = {i: 0 for i in range(4)}
    for kind in ("chunks", "backups"):
        for workers in chunk_files(shared_cluster, kind).values():
            for i in workers:
                before[i] += 1
    shared_dfs.put_bytes("/spread", random_bytes(200 * C, seed=2))
    after = {i: 0 for i in range(4)}
    ids = {c.ref.chunk_id for c in shared_dfs.layout("/spread").chunks}
    for kind in ("chunks", "backups"):
        for cid, workers in chunk_files(shared_cluster, kind).items():
            if cid in ids:
                for i in workers:
                    after[i] += 1
    even = 2 * 200 / 4
    assert all(abs(n - even) <= 0.2 * even for n in after.values()), after


def test_streaming_write_seek_and_read(shared_dfs):
    data = random_bytes(2 * C + 300, seed=3)
    with shared_dfs.open("/stream", "wb") as f:
        for i in range(0, len(data), 100_000):
            f.write(data[i:i + 100_000])
    with shared_dfs.open("/stream") as f:
        assert f.read() == data
        f.seek(C - 10)
        assert f.read(20) == data[C - 10:C + 10]
    with shared_dfs.open("/stream", "r+b") as f:
        f.seek(C + 5)
        f.write(b"patched")
    expected = data[:C + 5] + b"patched" + data[C + 12:]
    assert shared_dfs.read_bytes("/stream") == expected
    with shared_dfs.open("/stream", "ab") as f:
        f.write(b"tail")
    assert shared_dfs.read_bytes("/stream") == expected + b"tail"


def test_truncate_grow_and_shrink(shared_dfs):
    data = random_bytes(C + 100, seed=4)
    shared_dfs.put_bytes("/trunc", data)
    with shared_dfs.open("/trunc", "r+b") as f:
        f.truncate(10)
    assert shared_dfs.read_bytes("/trunc") == data[:10]
    with shared_dfs.open("/trunc", "r+b") as f:
        f.truncate(2 * C + 1)
    assert shared_dfs.read_bytes("/trunc") == data[:10] + bytes(2 * C + 1 - 10)


def test_overwrite_frees_the_old_chunks(shared_cluster, shared_dfs):
    shared_dfs.put_bytes("/over", random_bytes(2 * C, seed=5))
    old = {c.ref.chunk_id for c in shared_dfs.layout("/over").chunks}
    shared_dfs.put_bytes("/over", b"small now")
    assert shared_dfs.read_bytes("/over") == b"small now"
    from dfs.local.cluster import wait_for

    def gone():
        on_disk = set(chunk_files(shared_cluster, "chunks")) | set(
            chunk_files(shared_cluster, "backups"))
        return not (old & on_disk)
    wait_for(gone, 20, "old chunks to be garbage-collected")


def test_namespace_operations(shared_dfs):
    d = shared_dfs
    d.mkdir("/ns/a/b", parents=True)
    d.put_bytes("/ns/a/b/f", b"x")
    assert [e.name for e in d.listdir("/ns/a")] == ["b"]
    with pytest.raises(errors.InvalidArgument, match="inside itself"):
        d.rename("/ns/a", "/ns/a/b/a")
    d.rename("/ns/a", "/ns/ab")  # a name that merely starts the same is not inside
    d.rename("/ns/ab", "/ns/a")
    d.rename("/ns/a/b/f", "/ns/g")
    assert d.read_bytes("/ns/g") == b"x"
    d.put_bytes("/ns/h", b"replaced")
    d.rename("/ns/h", "/ns/g")  # replaces the target, as POSIX rename does
    assert d.read_bytes("/ns/g") == b"replaced" and not d.exists("/ns/h")
    d.symlink("/ns/link", "g")
    assert d.readlink("/ns/link") == "g"
    d.link("/ns/g", "/ns/hard")
    assert d.stat("/ns/g").nlink == 2
    d.chmod("/ns/g", 0o640)
    assert d.stat("/ns/hard").mode == 0o640
    entries = {e.name: e.stat for e in d.listdir("/ns")}
    assert entries["g"].size == 8 and entries["a"].is_dir and entries["link"].kind == "l"
    d.rm_tree("/ns")
    assert not d.exists("/ns")

"""t3: sparse files through the client on real processes (no mount): ``put`` of a sparse
local file stores only its non-zero chunks, ``get`` writes a sparse local file back,
``cat`` (iter_chunks) streams the holes as zeros without asking a worker, and the backup
watcher's "already there?" check (dfs.backup.compare) accepts a sparse remote file."""

import os

from conftest import TEST_CHUNK, chunk_files
from helpers import random_bytes

from dfs.backup.compare import same_as_remote
from dfs.backup.tree import Tree


def _sparse_local(path, pieces, size):
    with open(path, "wb") as f:
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
        f.truncate(size)
    with open(path, "rb") as f:
        return f.read()


def test_put_get_cat_and_backup_compare_keep_holes(cluster, dfs, tmp_path):
    local = str(tmp_path / "sparse.bin")
    a, b = random_bytes(5000), random_bytes(TEST_CHUNK)
    size = 40 * TEST_CHUNK + 77
    content = _sparse_local(local, [(3, a), (20 * TEST_CHUNK, b)], size)
    result = dfs.put(local, "/sparse.bin")
    assert result.stat.size == size and result.stat.stored == 3 + 5000 + TEST_CHUNK
    layout = dfs.layout("/sparse.bin")
    assert [c.ref.chunk_index for c in layout.chunks] == [0, 20]
    primaries = chunk_files(cluster, "chunks")
    assert len(primaries) == 2  # only the two chunks with data
    assert b"".join(dfs.iter_chunks("/sparse.bin")) == content
    back = str(tmp_path / "back.bin")
    dfs.get("/sparse.bin", back)
    with open(back, "rb") as f:
        assert f.read() == content
    assert os.stat(back).st_blocks * 512 < 4 * TEST_CHUNK  # written sparse, not 40 MiB
    tree = Tree(str(tmp_path), "/")
    record = same_as_remote(dfs, tree, "sparse.bin", os.stat(local))
    assert record is not None and record.size == size
    with open(local, "r+b") as f:  # a byte in a hole: no longer the same file
        f.seek(30 * TEST_CHUNK)
        f.write(b"!")
    assert same_as_remote(dfs, tree, "sparse.bin", os.stat(local)) is None

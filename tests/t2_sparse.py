"""Sparse files at the master's boundary, in-process (tests/t2_master.py's real MasterService
on a real MasterState): a commit of one chunk at the end of the largest file is accepted
and costs one chunk; hostile sizes, indices and malformed chunk lists get a clear error and
change nothing."""

import pytest
from t2_master import CHUNK, _user, master  # noqa: F401 (master is a fixture)

from dfs import errors, wire
from dfs.chunks import MAX_FILE_SIZE


def _new_chunk(alice, path):
    (target,) = wire.targets_from_wire(alice.exposed_allocate(path, 1, ()))
    return target.chunk_id


def _commit(alice, ino, refs, size):
    written = tuple((tuple(ref), (("w1", "chunks"),)) for ref in refs)
    return wire.put_result_from_wire(alice.exposed_commit(ino, written, size))


def test_one_chunk_at_the_end_of_the_largest_file(master):  # noqa: F811
    state, _clock, _wall = master
    alice = _user(state, "alice")
    ino = wire.stat_from_wire(alice.exposed_create("/big", 0o600)).ino
    cid = _new_chunk(alice, "/big")
    last = (MAX_FILE_SIZE - 1) // CHUNK
    length = MAX_FILE_SIZE - last * CHUNK
    result = _commit(alice, ino, [(cid, 1, length, 7, last)], MAX_FILE_SIZE)
    assert result.stat.size == MAX_FILE_SIZE and result.stat.stored == length
    layout = wire.layout_from_wire(alice.exposed_layout("/big"))
    assert [(c.ref.chunk_id, c.ref.chunk_index) for c in layout.chunks] == [(cid, last)]
    assert wire.stat_from_wire(alice.exposed_stat("/big")).stored == length
    # truncated down to a hole: the chunk is garbage, the file stores nothing
    assert _commit(alice, ino, [], CHUNK).stat.stored == 0
    assert cid not in state.ns.live_chunk_ids()


@pytest.mark.parametrize("refs, size, error", [
    ([], 1 << 63, errors.FileTooLarge),
    ([], 10 ** 40, errors.FileTooLarge),
    ([], -1, errors.InvalidArgument),
    ("CID", 1 << 64, errors.FileTooLarge),  # index and size past the largest file
    ([("CID", 1, 10, 0)], 10, errors.InvalidArgument),  # an old dense ref: malformed
    ([("CID", 1, 10, 0, 1 << 70)], MAX_FILE_SIZE, errors.InvalidArgument),
    ([("CID", 1, 10, 0, -1)], 100, errors.InvalidArgument),
    ([("CID", 1, 10, 0, True)], 100, errors.InvalidArgument),
    ([("CID", 1, 10, 0, 0, 9)], 100, errors.InvalidArgument),  # one number too many
    ([("CID", 1, 10, 0, 5)], 5 * CHUNK + 9, errors.InvalidArgument),  # past the size
    ([("CID", 1, 10, 0, 1), ("CID", 1, 10, 0, 0)], 2 * CHUNK, errors.InvalidArgument),
])
def test_hostile_chunk_lists_are_refused_and_change_nothing(master, refs, size, error):  # noqa: F811
    state, _clock, _wall = master
    alice = _user(state, "alice")
    ino = wire.stat_from_wire(alice.exposed_create("/f", 0o600)).ino
    cid = _new_chunk(alice, "/f")
    if refs == "CID":  # a chunk at the very end of a file past the largest size
        refs = [(cid, 1, 10, 0, size // CHUNK)]
    refs = [tuple(cid if v == "CID" else v for v in ref) for ref in refs]
    before = state.ns.seq
    with pytest.raises(error):
        _commit(alice, ino, refs, size)
    assert state.ns.seq == before  # nothing journaled
    st = wire.stat_from_wire(alice.exposed_stat("/f"))
    assert st.size == 0 and st.stored == 0 and cid in state.ns.pending

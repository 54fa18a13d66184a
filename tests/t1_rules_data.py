"""Pure units: the rules of file data (dfs/namespace/rules_data.py: allocate, commit, put,
abandon, read) and of users (rules_users.py), on a namespace in memory (``Fs`` of
tests/t1_rules.py)."""

import pytest
from t1_rules import ADMIN, ALICE, BOB, CHUNK, WALL, Fs, T

from dfs import errors
from dfs.namespace import rules, rules_data, rules_users
from dfs.namespace.entries import AddUser
from dfs.wire import ChunkRef


@pytest.fixture
def fs():
    return Fs()


# --- data ---------------------------------------------------------------------------------

def _refs(*lengths, first=1):
    return [ChunkRef(first + i, 1, n, 0, i) for i, n in enumerate(lengths)]


def test_commit_takes_only_chunks_pending_for_the_writer(fs):
    f = fs.create(ALICE, "/f", 0o666)
    fs.do(rules_data.alloc(fs.ns, ALICE, 2, WALL, 600))
    fs.do(rules_data.alloc(fs.ns, BOB, 1, WALL, 600))
    with pytest.raises(errors.InvalidArgument, match="not allocated to you"):
        rules_data.commit(fs.ns, ALICE, f.ino, _refs(CHUNK, 5, first=2), CHUNK + 5, T)
    entry = rules_data.commit(fs.ns, ALICE, f.ino, _refs(CHUNK, 5), CHUNK + 5, T)
    fs.do(entry)
    assert f.size == CHUNK + 5 and fs.ns.pending == {3: (BOB.name, WALL + 600)}
    # the chunks a file already has need no allocation (a partial rewrite keeps them)
    fs.do(rules_data.commit(fs.ns, ALICE, f.ino, _refs(CHUNK), CHUNK, T))
    assert [c.chunk_id for c in f.chunks] == [1]


def _ref(chunk_id, length, index, crc=0):
    return ChunkRef(chunk_id, 1, length, crc, index)


@pytest.mark.parametrize("refs, size", [
    ([_ref(1, CHUNK, 0), _ref(2, 0, 1)], CHUNK + 1),  # an empty chunk
    ([_ref(1, CHUNK + 1, 0)], CHUNK + 1),  # bigger than a chunk
    ([_ref(1, CHUNK, 0), _ref(2, 5, 1)], CHUNK + 4),  # a chunk past the size
    ([_ref(1, 5, 3)], 3 * CHUNK + 4),  # a chunk past the size, after a hole
    ([_ref(1, 5, 1), _ref(2, 5, 0)], 2 * CHUNK),  # indices out of order
    ([_ref(1, 5, 0), _ref(2, 5, 0)], CHUNK),  # one index twice
    ([_ref(1, 5, 0), _ref(1, 5, 1)], 2 * CHUNK),  # one chunk twice
    ([_ref(1, 5, -1)], CHUNK),  # a negative index
    ([ChunkRef(1, 1, 5, 0, True)], CHUNK),  # a bool is not an index
    ([ChunkRef(1, 1, 5.0, 0, 0)], CHUNK),  # nor a float a length
    ([ChunkRef("1", 1, 5, 0, 0)], CHUNK),  # nor a str a chunk id
    ([_ref(1, 5, 0)], -1),  # a negative size
])
def test_commit_refuses_chunk_lists_that_do_not_fit_the_file(fs, refs, size):
    f = fs.create(ALICE, "/f")
    fs.do(rules_data.alloc(fs.ns, ALICE, 2, WALL, 600))
    with pytest.raises(errors.InvalidArgument):
        rules_data.commit(fs.ns, ALICE, f.ino, refs, size, T)
    assert f.chunks == [] and f.size == 0


def test_sparse_chunk_lists_holes_and_short_chunks_anywhere(fs):
    f = fs.create(ALICE, "/f")
    fs.do(rules_data.alloc(fs.ns, ALICE, 3, WALL, 600))
    huge = (1 << 63) - 1  # the kernel's largest file: one chunk at its very end
    last = huge // CHUNK
    refs = [_ref(1, 5, 0), _ref(2, 7, 2), _ref(3, huge - last * CHUNK, last)]
    fs.do(rules_data.commit(fs.ns, ALICE, f.ino, refs, huge, T))
    assert f.size == huge and [c.chunk_index for c in f.chunks] == [0, 2, last]
    assert f.stat().stored == 12 + huge - last * CHUNK  # holes cost nothing
    # truncated up to the largest size with no chunk at all: legal, and free
    g = fs.create(ALICE, "/g")
    fs.do(rules_data.commit(fs.ns, ALICE, g.ino, [], huge, T))
    assert g.stat().stored == 0 and g.size == huge
    # a chunk the file has keeps its length and checksum; it may move to another index
    with pytest.raises(errors.InvalidArgument, match="not what the file has"):
        rules_data.commit(fs.ns, ALICE, f.ino, [_ref(1, 6, 0)], huge, T)
    with pytest.raises(errors.InvalidArgument, match="not what the file has"):
        rules_data.commit(fs.ns, ALICE, f.ino, [_ref(1, 5, 0, crc=9)], huge, T)
    fs.do(rules_data.commit(fs.ns, ALICE, f.ino, [_ref(2, 7, 5)], 6 * CHUNK, T))
    assert f.chunks == [_ref(2, 7, 5)]


@pytest.mark.parametrize("size", [1 << 63, 1 << 64, 10 ** 30])
def test_a_size_past_the_largest_file_is_too_large(fs, size):
    f = fs.create(ALICE, "/f")
    with pytest.raises(errors.FileTooLarge):
        rules_data.commit(fs.ns, ALICE, f.ino, [], size, T)
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 600))
    with pytest.raises(errors.FileTooLarge):
        rules_data.put(fs.ns, ALICE, "/g", 0o600, [_ref(1, 5, size // CHUNK)], size, True, T)
    assert f.size == 0 and "g" not in fs.ns.resolve("/").children


def test_commit_needs_a_writable_regular_file_that_still_exists(fs):
    f = fs.create(ALICE, "/f", 0o644)
    d = fs.mkdir(ALICE, "/d")
    with pytest.raises(errors.PermissionDenied):
        rules_data.commit(fs.ns, BOB, f.ino, [], 0, T)
    with pytest.raises(errors.InvalidArgument):
        rules_data.commit(fs.ns, ALICE, d.ino, [], 0, T)
    fs.remove(ALICE, "/f")
    with pytest.raises(errors.FileNotFound):
        rules_data.commit(fs.ns, ALICE, f.ino, [], 0, T)


def test_put_creates_or_replaces_and_checks_like_commit(fs):
    fs.do(rules_data.alloc(fs.ns, ALICE, 2, WALL, 600))
    entry = rules_data.put(fs.ns, ALICE, "/f", 0o100600, _refs(7), 7, False, T)
    assert entry.create and entry.ino == fs.ns.next_ino and entry.mode == 0o600
    fs.do(entry)
    with pytest.raises(errors.FileExists):
        rules_data.put(fs.ns, ALICE, "/f", 0o600, _refs(3, first=2), 3, False, T)
    again = rules_data.put(fs.ns, ALICE, "/f", 0o600, _refs(3, first=2), 3, True, T)
    assert not again.create and again.ino == entry.ino
    with pytest.raises(errors.InvalidArgument):
        rules_data.put(fs.ns, BOB, "/g", 0o600, _refs(3, first=2), 3, True, T)  # alice's chunk
    fs.mkdir(ALICE, "/d")
    with pytest.raises(errors.IsADirectory):
        rules_data.put(fs.ns, ALICE, "/d", 0o600, [], 0, True, T)
    with pytest.raises(errors.PermissionDenied):
        rules_data.put(fs.ns, BOB, "/f", 0o600, [], 0, True, T)


def test_allocate_needs_a_writable_path_and_a_sane_count(fs):
    fs.mkdir(ALICE, "/d", 0o755)
    fs.do(rules.symlink(fs.ns, ALICE, "/l", "x", T))
    with pytest.raises(errors.PermissionDenied):
        rules_data.writable(fs.ns, BOB, "/d/new")
    with pytest.raises(errors.InvalidArgument):
        rules_data.writable(fs.ns, ALICE, "/l")
    parent, name, existing = rules_data.writable(fs.ns, ALICE, "/d/new")
    assert (parent.ino, name, existing) == (fs.ns.resolve("/d").ino, "new", None)
    for count in (0, 4097):
        with pytest.raises(errors.InvalidArgument):
            rules_data.check_count(count)
    first = fs.ns.next_chunk_id
    assert rules_data.alloc(fs.ns, ALICE, 3, WALL, 600).first == first


def test_abandoned_and_expired_allocations_are_unpended(fs):
    fs.do(rules_data.alloc(fs.ns, ALICE, 2, WALL, 600))
    fs.do(rules_data.alloc(fs.ns, BOB, 1, WALL + 100, 600))
    assert rules_data.abandon(fs.ns, BOB.name, (1, 2, "x", True)) is None  # not bob's
    assert rules_data.abandon(fs.ns, ALICE.name, (1, 3, 99)).chunk_ids == (1,)
    assert rules_data.expired_allocations(fs.ns, WALL + 600) is None
    assert rules_data.expired_allocations(fs.ns, WALL + 601).chunk_ids == (1, 2)


def test_a_writer_renews_its_uncommitted_chunks_and_only_its_own(fs):
    """A file open longer than gc_grace keeps its uploaded chunks (dfs/client/renewer.py)."""
    fs.do(rules_data.alloc(fs.ns, ALICE, 2, WALL, 600))
    fs.do(rules_data.alloc(fs.ns, BOB, 1, WALL, 600))
    assert rules_data.renew(fs.ns, BOB.name, (1, 2, "x", 99), WALL + 500, 600) is None
    renew = rules_data.renew(fs.ns, ALICE.name, (1, 2, 3, True), WALL + 500, 600)
    assert renew.chunk_ids == (1, 2) and renew.expires == WALL + 1100
    fs.do(renew)
    assert rules_data.expired_allocations(fs.ns, WALL + 601).chunk_ids == (3,)  # bob's only
    fs.do(rules_data.expired_allocations(fs.ns, WALL + 601))
    assert rules_data.expired_allocations(fs.ns, WALL + 1101).chunk_ids == (1, 2)
    assert fs.ns.usage.held(ALICE.uid).pending_chunks == 2  # still booked to her


def test_reading_needs_read_permission_and_not_a_directory(fs):
    fs.create(ALICE, "/f", 0o640)
    with pytest.raises(errors.PermissionDenied):
        rules_data.readable(fs.ns, BOB, "/f")
    with pytest.raises(errors.IsADirectory):
        rules_data.readable(fs.ns, ALICE, "/")
    assert rules_data.readable(fs.ns, ALICE, "/f").kind == "f"


def test_an_open_is_checked_for_what_it_asks_and_the_owner_commits_whatever_the_mode(fs):
    R, W = 4, 2
    fs.create(ALICE, "/drop", 0o622)  # others may write, not read
    assert rules_data.openable(fs.ns, BOB, "/drop", W).kind == "f"
    for want in (R, R | W):
        with pytest.raises(errors.PermissionDenied):
            rules_data.openable(fs.ns, BOB, "/drop", want)
    fs.do(rules.symlink(fs.ns, ALICE, "/link", "drop", T))
    with pytest.raises(errors.InvalidArgument):  # a symlink is read (readlink), not written
        rules_data.openable(fs.ns, ALICE, "/link", W)
    ro = fs.create(ALICE, "/ro", 0o444)  # made read-only by its create, as git does
    with pytest.raises(errors.PermissionDenied):
        rules_data.openable(fs.ns, ALICE, "/ro", W)
    fs.do(rules_data.commit(fs.ns, ALICE, ro.ino, [], 0, T))  # through the create's fd
    fs.do(rules.set_attributes(fs.ns, ALICE, "/drop", T, mode=0o600))
    with pytest.raises(errors.PermissionDenied):  # another user's right ends with the mode
        rules_data.commit(fs.ns, BOB, fs.ns.resolve("/drop").ino, [], 0, T)


# --- users -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "-x", ".hidden", "a b", "x" * 65, "é"])
def test_bad_user_names_are_refused(name):
    with pytest.raises(errors.InvalidArgument):
        rules_users.check_user_name(name)


def test_user_rules(fs):
    rules_users.check_user_name("carol.smith_2-x")
    assert rules_users.add_user(fs.ns, "carol", False, "ff") == AddUser("carol", False, "ff", 4,
                                                                        10000, 10000)
    with pytest.raises(errors.FileExists):
        rules_users.add_user(fs.ns, ALICE.name, False, "ff")
    with pytest.raises(errors.InvalidArgument):
        rules_users.revoke(fs.ns, ADMIN.name, ADMIN.name)
    with pytest.raises(errors.FileNotFound):
        rules_users.revoke(fs.ns, ADMIN.name, "nobody")
    fs.do(rules_users.revoke(fs.ns, ADMIN.name, BOB.name))
    assert BOB.name not in fs.ns.users


def test_who_may_register(fs):
    for caller, open_here, token_ok in ((None, True, False), (None, False, True),
                                        (ADMIN.name, False, False)):
        rules_users.may_register(fs.ns, caller, open_here, token_ok)
    for caller in (None, ALICE.name):
        with pytest.raises(errors.AuthenticationFailed):
            rules_users.may_register(fs.ns, caller, False, False)

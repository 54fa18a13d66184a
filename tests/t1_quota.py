"""Pure units: per-user quotas (dfs/namespace/quota.py) and the usage the namespace keeps
for them (dfs/namespace/usage.py), on a namespace in memory (``Fs`` of tests/t1_rules.py)."""

import random

import pytest
from t1_rules import ADMIN, ALICE, BOB, CHUNK, WALL, Fs, T

from dfs import errors
from dfs.namespace import quota, rules, rules_data, rules_trash
from dfs.namespace.model import Namespace
from dfs.namespace.usage import Usage
from dfs.wire import ChunkRef


@pytest.fixture
def fs():
    return Fs()


def _limit(fs, user, quota_bytes=None, inodes=None):
    fs.do(quota.set_quota(fs.ns, user.name, quota_bytes, inodes))


def _write(fs, user, path, *lengths):
    """Allocate and commit chunks of these lengths as the whole content of ``path``."""
    first = fs.ns.next_chunk_id
    fs.do(rules_data.alloc(fs.ns, user, len(lengths), WALL, 600))
    refs = [ChunkRef(first + i, 1, n, 0, i) for i, n in enumerate(lengths)]
    ino = fs.ns.resolve(path).ino
    fs.do(rules_data.commit(fs.ns, user, ino, refs, sum(lengths), T))


def test_the_inode_quota_counts_every_new_inode_and_trash_until_purged(fs):
    _limit(fs, ALICE, inodes=3)
    fs.mkdir(ALICE, "/d")
    fs.create(ALICE, "/d/f")
    fs.do(rules.symlink(fs.ns, ALICE, "/d/l", "f", T))
    for refused in (lambda: rules.create(fs.ns, ALICE, "/g", 0o644, T),
                    lambda: rules.mkdir(fs.ns, ALICE, "/e", 0o755, T),
                    lambda: rules.symlink(fs.ns, ALICE, "/m", "x", T),
                    lambda: rules_data.put(fs.ns, ALICE, "/p", 0o644, [], 0, True, T)):
        with pytest.raises(errors.QuotaExceeded, match="quota of 3 files"):
            refused()
    fs.do(rules.link(fs.ns, ALICE, "/d/f", "/d/f2", T))  # a hard link is no new inode
    fs.create(BOB, "/bobs")  # others are not limited by alice's quota
    fs.remove(ALICE, "/d/f")  # one of two names: still there
    fs.remove(ALICE, "/d/f2", trash_seconds=60)  # in the trash: still counted
    with pytest.raises(errors.QuotaExceeded):
        rules.create(fs.ns, ALICE, "/g", 0o644, T)
    fs.do(rules_trash.empty(fs.ns, ALICE))
    fs.create(ALICE, "/g")
    assert fs.ns.usage.held(ALICE.uid).inodes == 3


def test_the_byte_quota_counts_uploads_in_flight(fs):
    _limit(fs, ALICE, quota_bytes=2 * CHUNK)
    fs.create(ALICE, "/f", 0o666)
    fs.do(rules_data.alloc(fs.ns, ALICE, 2, WALL, 600))  # reserves two whole chunks
    with pytest.raises(errors.QuotaExceeded, match="in flight"):
        rules_data.alloc(fs.ns, ALICE, 1, WALL, 600)
    fs.do(rules_data.commit(fs.ns, ALICE, fs.ns.resolve("/f").ino,
                            [ChunkRef(1, 1, CHUNK, 0, 0), ChunkRef(2, 1, 10, 0, 1)], CHUNK + 10, T))
    assert fs.ns.usage.held(ALICE.uid).bytes == CHUNK + 10
    assert fs.ns.usage.held(ALICE.uid).pending_chunks == 0
    with pytest.raises(errors.QuotaExceeded):  # CHUNK + 10 held, one more chunk is too many
        rules_data.alloc(fs.ns, ALICE, 1, WALL, 600)
    fs.do(rules_data.commit(fs.ns, ALICE, fs.ns.resolve("/f").ino,
                            [ChunkRef(1, 1, CHUNK, 0, 0)], CHUNK, T))  # shrinking is allowed
    first = fs.ns.next_chunk_id
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 600))  # chunks are immutable: a rewrite
    fs.do(rules_data.commit(fs.ns, ALICE, fs.ns.resolve("/f").ino,  # needs room for the new
                            [ChunkRef(1, 1, CHUNK, 0, 0), ChunkRef(first, 1, CHUNK, 0, 1)],
                            2 * CHUNK, T))  # copy until it commits; now exactly at the quota
    assert rules_data.abandon(fs.ns, ALICE.name, (1, first)) is None  # nothing pending any more


def test_abandoned_and_expired_allocations_give_their_room_back(fs):
    _limit(fs, ALICE, quota_bytes=CHUNK)
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 600))
    first = fs.ns.next_chunk_id - 1
    fs.do(rules_data.abandon(fs.ns, ALICE.name, (first,)))
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 600))
    fs.do(rules_data.expired_allocations(fs.ns, WALL + 601))
    assert fs.ns.usage.held(ALICE.uid).pending_chunks == 0
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 600))


def test_bytes_are_charged_to_the_files_owner(fs):
    fs.create(ALICE, "/shared", 0o666)
    _limit(fs, ALICE, quota_bytes=CHUNK)
    first = fs.ns.next_chunk_id
    fs.do(rules_data.alloc(fs.ns, BOB, 2, WALL, 600))  # bob has no quota: he may allocate
    refs = [ChunkRef(first, 1, CHUNK, 0, 0), ChunkRef(first + 1, 1, 1, 0, 1)]
    with pytest.raises(errors.QuotaExceeded):  # but alice's file would pass alice's quota
        rules_data.commit(fs.ns, BOB, fs.ns.resolve("/shared").ino, refs, CHUNK + 1, T)
    fs.do(rules_data.commit(fs.ns, BOB, fs.ns.resolve("/shared").ino, refs[:1], CHUNK, T))
    assert fs.ns.usage.held(ALICE.uid).bytes == CHUNK and fs.ns.usage.held(BOB.uid).bytes == 0


def test_put_checks_bytes_and_inodes(fs):
    _limit(fs, ALICE, quota_bytes=CHUNK, inodes=1)
    first = fs.ns.next_chunk_id
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 600))
    _limit(fs, ALICE, quota_bytes=10, inodes=1)  # lowered while the upload was in flight
    with pytest.raises(errors.QuotaExceeded, match="10 bytes"):
        rules_data.put(fs.ns, ALICE, "/p", 0o644, [ChunkRef(first, 1, CHUNK, 0, 0)], CHUNK,
                       True, T)
    fs.do(rules_data.put(fs.ns, ALICE, "/p", 0o644, [ChunkRef(first, 1, 5, 0, 0)], 5, True, T))
    with pytest.raises(errors.QuotaExceeded, match="1 files"):
        rules_data.put(fs.ns, ALICE, "/q", 0o644, [], 0, True, T)
    fs.do(rules_data.put(fs.ns, ALICE, "/p", 0o644, [], 0, True, T))  # replacing: no new inode
    assert fs.ns.usage.held(ALICE.uid) == type(fs.ns.usage.held(ALICE.uid))(0, 1, 0)


def test_a_limit_below_the_usage_still_lets_the_user_delete_and_shrink(fs):
    fs.create(ALICE, "/f")
    _write(fs, ALICE, "/f", CHUNK, CHUNK)
    _limit(fs, ALICE, quota_bytes=CHUNK // 2, inodes=0)
    fs.do(rules_data.commit(fs.ns, ALICE, fs.ns.resolve("/f").ino,
                            [fs.ns.resolve("/f").chunks[0]], CHUNK, T))
    with pytest.raises(errors.QuotaExceeded):
        rules.create(fs.ns, ALICE, "/g", 0o644, T)
    fs.remove(ALICE, "/f")
    assert fs.ns.usage.held(ALICE.uid).bytes == 0 and fs.ns.usage.held(ALICE.uid).inodes == 0


def test_admins_are_not_limited_and_limits_can_be_lifted(fs):
    _limit(fs, ADMIN, inodes=0)
    fs.create(ADMIN, "/a")
    _limit(fs, ALICE, inodes=0)
    with pytest.raises(errors.QuotaExceeded):
        rules.create(fs.ns, ALICE, "/b", 0o644, T)
    _limit(fs, ALICE, None, None)
    fs.create(ALICE, "/b")


def test_restoring_into_missing_folders_counts_the_folders(fs):
    fs.mkdir(ALICE, "/a")
    fs.mkdir(ALICE, "/a/b")
    fs.create(ALICE, "/a/b/f")
    fs.remove(ALICE, "/a/b/f", trash_seconds=60)
    fs.remove(ALICE, "/a/b", want_dir=True)
    fs.remove(ALICE, "/a", want_dir=True)
    fs.create(ALICE, "/x")
    _limit(fs, ALICE, inodes=3)  # the trashed file and /x: two; /a and /a/b would be four
    with pytest.raises(errors.QuotaExceeded):
        rules_trash.restore(fs.ns, ALICE, "/a/b/f", T)
    _limit(fs, ALICE, inodes=4)
    made, restore = rules_trash.restore(fs.ns, ALICE, "/a/b/f", T)
    for entry in [*made, restore]:
        fs.do(entry)


@pytest.mark.parametrize("value", [-1, True, 1.5, "10G", 1 << 63])
def test_bad_limits_are_refused(fs, value):
    with pytest.raises(errors.InvalidArgument):
        quota.set_quota(fs.ns, ALICE.name, value, None)
    with pytest.raises(errors.InvalidArgument):
        quota.set_quota(fs.ns, ALICE.name, None, value)


def test_a_quota_for_an_unknown_user_is_refused(fs):
    with pytest.raises(errors.FileNotFound):
        quota.set_quota(fs.ns, "nobody", 1, 1)


def _recount(ns):
    return Usage.of([*ns.inodes.values(), *(t.inode for t in ns.trash.values())],
                    [ns.ids_of(owner)[0] for owner, _ in ns.pending.values()])


def test_the_kept_usage_always_equals_a_recount_and_survives_a_snapshot():
    """Random changes of every kind; after each, the counters the namespace keeps as
    entries apply equal a full recount."""
    fs = Fs()
    rng = random.Random(7)
    users = (ALICE, BOB)
    for step in range(400):
        user = rng.choice(users)
        names = [f"/{n}" for n in fs.ns.inodes[1].children]
        action = rng.randrange(9)
        try:
            if action == 0 or not names:
                fs.create(user, f"/f{step}", 0o666)
            elif action == 1:
                fs.mkdir(user, f"/d{step}", 0o777)
            elif action == 2:
                path = rng.choice(names)
                if fs.ns.resolve(path).kind == "f":
                    _write(fs, user, path, *[rng.choice((1, CHUNK))
                                             for _ in range(rng.randrange(3))])
            elif action == 3:
                entry = rules.rename(fs.ns, user, rng.choice(names), rng.choice(names), T)
                if entry:  # None: both names are one inode
                    fs.do(entry)
            elif action == 4:
                path = rng.choice(names)
                fs.remove(user, path, want_dir=fs.ns.resolve(path).kind == "d",
                          trash_seconds=rng.choice((0, 60)))
            elif action == 5:
                fs.do(rules.link(fs.ns, user, rng.choice(names), f"/h{step}", T))
            elif action == 6 and fs.ns.trash_of(user):
                path = rng.choice(fs.ns.trash_of(user))[1].path
                made, restore = rules_trash.restore(fs.ns, user, path, T)
                for entry in [*made, restore]:
                    fs.do(entry)
            elif action == 7:
                entry = rules_trash.empty(fs.ns, user)
                if entry:
                    fs.do(entry)
            else:
                fs.do(rules.set_attributes(fs.ns, ADMIN, rng.choice(names), T,
                                           uid=rng.choice(users).uid))
                fs.do(rules_data.alloc(fs.ns, user, 1, WALL, 600))
        except errors.DfsError:
            pass
        for name in users:
            assert fs.ns.usage.held(name.uid) == _recount(fs.ns).held(name.uid), step
    loaded = Namespace.from_json(fs.ns.to_json())
    for name in users:
        assert loaded.usage.held(name.uid) == fs.ns.usage.held(name.uid)


def test_quotas_survive_a_snapshot(fs):
    _limit(fs, ALICE, quota_bytes=5, inodes=6)
    loaded = Namespace.from_json(fs.ns.to_json())
    assert (loaded.users[ALICE.name].quota_bytes, loaded.users[ALICE.name].quota_inodes) == (5, 6)
    assert loaded.users[BOB.name].quota_bytes is None

"""Pure units: the trash's index (dfs/namespace/trash_index.py) on a namespace in memory,
changed only through the rules (``Fs`` of tests/t1_rules.py). After any sequence of deletes,
restores, purges, emptyings and expiry it agrees with a full recount of the trash; its pages
give every item exactly once; bad limits and cursors are refused."""

import random

import pytest
from t1_rules import ALICE, BOB, WALL, Fs

from dfs import errors
from dfs.namespace import rules, rules_trash
from dfs.namespace.access import Cred
from dfs.namespace.model import Namespace
from dfs.namespace.trash_index import PAGE_MAX, SortedKeys, TrashIndex, parse_cursor

CAROL = Cred(10003, 10003, name="carol")  # has no user: her uid's trash is always empty


class SmallBlocks(SortedKeys):
    BLOCK = 4  # splits and merges after a few keys


def test_sorted_keys_agree_with_a_sorted_list():
    rng = random.Random(7)
    keys, plain = SmallBlocks(), set()
    for step in range(3000):
        key = (float(rng.randrange(40)), rng.randrange(40))
        if rng.random() < 0.55:
            if key not in plain:
                keys.add(key)
                plain.add(key)
        else:
            keys.discard(key)  # absent keys too: nothing happens
            plain.discard(key)
        ordered = sorted(plain)
        assert list(keys.after(None)) == ordered and len(keys) == len(ordered), step
        start = rng.choice([None, key, *ordered[:1]])
        assert list(keys.after(start)) == [k for k in ordered if start is None or k > start]
        assert list(keys.before(start)) == [k for k in reversed(ordered)
                                            if start is None or k < start]
    assert list(SmallBlocks(reversed(sorted(plain))).after(None)) == sorted(plain)


def recount(trash):
    """What the index should say, from the items alone: uid -> ids newest first."""
    mine = {}
    for tid, item in sorted(trash.items(), key=lambda x: (x[1].deleted_at, int(x[0])),
                            reverse=True):
        mine.setdefault(item.uid, []).append(tid)
    return mine


def all_pages(index, uid, limit):
    found, cursor = [], None
    while True:
        items, cursor = index.page(uid, limit, cursor)
        assert len(items) <= limit
        found.extend(tid for tid, _item in items)
        if cursor is None:
            return found


def check_agrees(ns, wall):
    index, mine = ns.trash, recount(ns.trash)
    for user in (ALICE, BOB, CAROL):
        ids = mine.get(user.uid, [])
        assert index.ids_of(user.uid) == ids and index.count(user.uid) == len(ids)
        assert [tid for tid, _item in ns.trash_of(user)] == ids
        for limit in (1, 3, PAGE_MAX):
            assert all_pages(index, user.uid, limit) == ids
        for path in {ns.trash[tid].path for tid in ids}:
            newest = next(tid for tid in ids if ns.trash[tid].path == path)
            assert index.newest_at(user.uid, path) == newest
    for when in (wall - 1, wall + 30, wall + 61, wall + 10_000):
        assert sorted(index.expired(when)) == sorted(
            tid for tid, item in ns.trash.items() if item.expires < when)


@pytest.mark.parametrize("block", [4, SortedKeys.BLOCK])
def test_the_index_agrees_with_a_recount_after_random_changes(block, monkeypatch):
    monkeypatch.setattr(SortedKeys, "BLOCK", block)  # 4: every order splits and merges
    rng = random.Random(12)
    fs = Fs()
    users = (ALICE, BOB)
    wall = WALL
    for step in range(1200):
        user = rng.choice(users)
        before = {u.uid: fs.ns.trash.ids_of(u.uid) for u in users}
        versions = {u.uid: fs.ns.trash.version(u.uid) for u in users}
        action = rng.randrange(12)
        wall += rng.choice((0.0, 0.5, 3.0))  # equal times too: the id breaks the tie
        try:
            if action <= 5:
                path = f"/{user.name}-{rng.randrange(12)}"  # names come back: same paths
                fs.create(user, path)
                fs.do(remove(fs, user, path, wall, rng.choice((0, 60, 600, 6000))))
            elif action == 6 and fs.ns.trash.ids_of(user.uid):
                tid = rng.choice(fs.ns.trash.ids_of(user.uid))
                by_path = rng.random() < 0.5
                path = fs.ns.trash[tid].path
                made, restore = rules_trash.restore(fs.ns, user, path, 1000,
                                                    None if by_path else tid)
                for entry in [*made, restore]:
                    fs.do(entry)
                fs.remove(user, path)  # gone again, for good (no trash): the name is free
            elif action == 7 and fs.ns.trash.ids_of(user.uid):
                purge = rules_trash.purge(fs.ns, user, rng.choice(fs.ns.trash.ids_of(user.uid)))
                fs.do(purge)
            elif action == 8 and rng.random() < 0.1:
                purge = rules_trash.empty(fs.ns, user)
                if purge is not None:
                    fs.do(purge)
            elif action >= 9:
                purge = rules_trash.expired(fs.ns, wall)
                if purge is not None:
                    fs.do(purge)
        except errors.FileExists:
            pass
        check_agrees(fs.ns, wall)
        for u in users:  # a version changes when that user's trash did, and only then
            changed = fs.ns.trash.ids_of(u.uid) != before[u.uid]
            assert (fs.ns.trash.version(u.uid) != versions[u.uid]) == changed, step
    assert fs.ns.trash, "the sequence should leave something in the trash"
    loaded = Namespace.from_json(fs.ns.to_json())
    assert isinstance(loaded.trash, TrashIndex)
    check_agrees(loaded, wall)
    assert loaded.trash.version(ALICE.uid) != fs.ns.trash.version(ALICE.uid)  # never matches


def remove(fs, user, path, wall, keep):
    """The unlink entry of ``path`` at wall time ``wall``, into the trash for ``keep`` s."""
    return rules.remove(fs.ns, user, path, False, 1000, wall, keep)


def trash_some(fs, user, count, wall=WALL):
    for i in range(count):
        fs.create(user, f"/{user.name}-p{i}")
        fs.do(remove(fs, user, f"/{user.name}-p{i}", wall + i // 3, 60))


def test_pages_give_each_item_once_while_the_trash_changes():
    fs = Fs()
    trash_some(fs, ALICE, 40)
    trash_some(fs, BOB, 5)
    index = fs.ns.trash
    stayed = set(index.ids_of(ALICE.uid))
    seen, cursor, rng = [], None, random.Random(3)
    while True:
        items, cursor = index.page(ALICE.uid, 7, cursor)
        seen.extend(tid for tid, _item in items)
        if cursor is None:
            break
        gone = rng.choice(index.ids_of(ALICE.uid))  # purged between two pages
        fs.do(rules_trash.purge(fs.ns, ALICE, gone))
        stayed.discard(gone)
        fs.create(ALICE, f"/new-{len(seen)}")  # and a newer one deleted meanwhile
        fs.do(remove(fs, ALICE, f"/new-{len(seen)}", WALL + 100, 60))
    assert len(seen) == len(set(seen)) and stayed <= set(seen)
    assert all(fs.ns.trash.get(tid) is None or fs.ns.trash[tid].uid == ALICE.uid for tid in seen)


def test_bad_limits_and_cursors_are_refused():
    fs = Fs()
    trash_some(fs, ALICE, 3)
    index = fs.ns.trash
    for limit in (0, -1, PAGE_MAX + 1):
        with pytest.raises(errors.InvalidArgument):
            index.page(ALICE.uid, limit)
    first, cursor = index.page(ALICE.uid, 1)
    assert parse_cursor(cursor) is not None and len(first) == 1
    for bad in ("", ":", "abc", "1.0", "1.0:", ":5", "nan:5", "inf:1", "1.0:-5", "1.0:5x",
                "1.0:٣", "1" * 100 + ":1", "1e400:3"):
        with pytest.raises(errors.InvalidArgument):
            index.page(ALICE.uid, 10, bad)
    assert index.page(CAROL.uid, 10) == ([], None)
    with pytest.raises(errors.FileNotFound):  # another's item, by its id: not in your trash
        rules_trash.restore(fs.ns, BOB, "/anywhere", 1000, first[0][0])
    assert index.page(ALICE.uid, 10, "0.0:1") == ([], None)  # after everything: the end


def test_a_plain_dict_change_keeps_the_index_in_step():
    fs = Fs()
    trash_some(fs, ALICE, 4)
    index = fs.ns.trash
    tid, item = next(iter(index.items()))
    del index[tid]
    index.setdefault(tid, item)
    index.update({tid: item})
    assert index.ids_of(ALICE.uid) == recount(index)[ALICE.uid]
    index.popitem()
    assert index.ids_of(ALICE.uid) == recount(index)[ALICE.uid] and len(index) == 3
    copied = TrashIndex(index)
    index.clear()
    assert index.ids_of(ALICE.uid) == [] and index.expired(WALL + 10_000) == []
    assert copied.ids_of(ALICE.uid) == recount(copied)[ALICE.uid] and len(copied) == 3
    assert sorted(copied.expired(WALL + 10_000)) == sorted(copied)

"""t1: the leader's lock table (nodes/master/locks.py), pure: ranges split and merge per
owner, conflicts between owners, kinds, sessions and their users, leases expiring on a
stepped clock, the grace period of a later term, reclaims and the bounds."""

import threading

import pytest

from dfs import errors
from dfs.wire import LOCK_EOF, LockRange
from nodes.master import locks
from nodes.master.locks import Locks, LockTable, clash, replace

ALICE, BOB = ("alice", 1), ("bob", 2)
S1, S2 = "a" * 32, "b" * 32  # two mounts' sessions
LEASE = 10.0


def R(start, end, kind):
    return LockRange(start, end, kind)


def table(term=1, now=0.0):
    return LockTable(LEASE, now, term, grace=term > 1)


def lock(t, sid, start, end, want, owner=7, ino=5, kind="posix", holder=ALICE, now=1.0,
         reclaim=False, pid=0):
    return t.lock(sid, holder, kind, ino, owner, start, end, want, pid, now, reclaim)


# --- one owner's ranges ----------------------------------------------------------------------

@pytest.mark.parametrize("held, asked, after", [
    ((), (0, 10, "w"), (R(0, 10, "w"),)),
    ((R(0, 10, "w"),), (3, 5, "u"), (R(0, 3, "w"), R(5, 10, "w"))),           # split
    ((R(0, 10, "w"),), (3, 5, "r"), (R(0, 3, "w"), R(3, 5, "r"), R(5, 10, "w"))),
    ((R(0, 3, "r"), R(5, 8, "r")), (3, 5, "r"), (R(0, 8, "r"),)),             # merge touching
    ((R(0, 3, "r"), R(5, 8, "w")), (3, 5, "r"), (R(0, 5, "r"), R(5, 8, "w"))),  # not w
    ((R(0, 10, "r"),), (0, 10, "w"), (R(0, 10, "w"),)),                         # upgrade
    ((R(0, LOCK_EOF, "w"),), (0, LOCK_EOF, "u"), ()),
    ((R(2, 4, "w"), R(6, 8, "w")), (0, 10, "u"), ()),
    ((R(2, 4, "w"),), (4, LOCK_EOF, "w"), (R(2, LOCK_EOF, "w"),)),
    ((R(0, 5, "r"),), (10, 20, "u"), (R(0, 5, "r"),)),                         # nothing there
])
def test_an_owner_s_ranges_split_and_merge_as_posix_says(held, asked, after):
    assert replace(held, *asked) == after


@pytest.mark.parametrize("held, asked, conflict", [
    ((R(0, 10, "r"),), (5, 15, "r"), None),              # shared with shared
    ((R(0, 10, "r"),), (5, 15, "w"), R(0, 10, "r")),
    ((R(0, 10, "w"),), (5, 15, "r"), R(0, 10, "w")),
    ((R(0, 10, "w"),), (10, 15, "w"), None),             # touching is not overlapping
    ((R(0, 10, "w"), R(20, 30, "w")), (12, 18, "w"), None),
    ((R(0, LOCK_EOF, "w"),), (1 << 62, LOCK_EOF, "r"), R(0, LOCK_EOF, "w")),
])
def test_conflicts_need_an_overlap_and_an_exclusive_lock(held, asked, conflict):
    assert clash(held, *asked) == conflict


# --- owners, kinds, sessions ------------------------------------------------------------------

def test_two_mounts_exclude_each_other_and_an_owner_never_itself():
    t = table()
    assert lock(t, S1, 0, 100, "w").granted
    assert lock(t, S1, 50, 150, "w").held == (R(0, 150, "w"),)  # its own: merged, no conflict
    refused = lock(t, S2, 120, 130, "r", holder=BOB)
    assert not refused.granted and refused.holder == R(0, 150, "w") and refused.holder_pid == 0
    assert lock(t, S2, 150, 200, "w", holder=BOB).granted  # beyond the range
    assert lock(t, S1, 100, 150, "u").granted
    assert lock(t, S2, 120, 130, "r", holder=BOB).granted


def test_two_processes_of_one_mount_conflict_and_see_each_other_s_pid():
    t = table()
    assert lock(t, S1, 0, 10, "w", owner=1, pid=4242).granted
    refused = lock(t, S1, 5, 6, "w", owner=2)
    assert not refused.granted and refused.holder_pid == 4242
    assert t.test(S1, "posix", 5, 2, 0, 1, "r", 1.0).holder_pid == 4242
    assert t.test(S2, "posix", 5, 9, 0, 1, "r", 1.0).holder_pid == 0  # another machine's


def test_flock_and_posix_locks_do_not_conflict_nor_do_other_files():
    t = table()
    assert lock(t, S1, 0, LOCK_EOF, "w", kind="flock", owner=3).granted
    assert lock(t, S2, 0, LOCK_EOF, "w", kind="posix", holder=BOB).granted
    assert lock(t, S2, 0, LOCK_EOF, "w", kind="flock", ino=6, holder=BOB).granted
    assert not lock(t, S2, 0, LOCK_EOF, "r", kind="flock", holder=BOB).granted


def test_a_session_belongs_to_the_user_that_made_it():
    t = table()
    assert lock(t, S1, 0, 10, "w").granted
    with pytest.raises(errors.NotPermitted):
        lock(t, S1, 0, 10, "u", holder=BOB)
    with pytest.raises(errors.NotPermitted):
        t.release(S1, BOB, 1.0)
    with pytest.raises(errors.NotPermitted):
        t.renew(S1, BOB, 1.0)
    assert lock(t, S1, 0, 10, "w").held == (R(0, 10, "w"),)  # untouched


def test_release_drops_one_owner_s_locks_on_one_file_or_a_whole_session():
    t = table()
    lock(t, S1, 0, 10, "w", owner=1)
    lock(t, S1, 0, 10, "w", owner=2, ino=6)
    lock(t, S1, 20, 30, "w", owner=1, ino=6)
    t.release(S1, ALICE, 2.0, "posix", 6, 2)  # owner 2 closes file 6
    assert not lock(t, S2, 0, 10, "w", holder=BOB).granted
    assert lock(t, S2, 0, 10, "w", ino=6, holder=BOB).granted
    assert not lock(t, S2, 20, 30, "w", ino=6, holder=BOB).granted
    t.release(S1, ALICE, 3.0)  # the unmount
    assert lock(t, S2, 0, 10, "w", owner=8, holder=BOB).granted
    assert lock(t, S2, 20, 30, "w", ino=6, holder=BOB).granted
    assert S1 not in t.sessions


# --- leases ---------------------------------------------------------------------------------

def test_a_silent_session_s_locks_go_after_the_lease_and_renewal_keeps_them():
    t = table()
    lock(t, S1, 0, 10, "w", now=0.0)
    lock(t, S2, 50, 60, "w", holder=BOB, now=0.0)
    for now in (4.0, 8.0, 12.0):  # S2 renews every 4 s; S1 is silent
        assert t.renew(S2, BOB, now)
        t.expire(now)
    assert t.renew(S1, ALICE, 12.0) is False  # its lease ran out at 10
    assert lock(t, S2, 0, 10, "w", holder=BOB, now=12.0).granted
    assert not lock(t, S1, 50, 60, "w", now=12.0).granted  # S2 kept its own


def test_an_empty_session_is_forgotten():
    t = table()
    lock(t, S1, 0, 10, "w")
    assert not lock(t, S2, 0, 10, "w", holder=BOB).granted
    assert S2 not in t.sessions  # refused, holds nothing
    lock(t, S1, 0, 10, "u")
    assert t.sessions == {} and t.by_ino == {}


# --- failover: grace period and reclaims ------------------------------------------------------

def test_a_later_term_starts_with_a_grace_period_for_reclaims_only():
    t = table(term=3, now=100.0)
    waiting = lock(t, S2, 0, 10, "w", holder=BOB, now=101.0)
    assert not waiting.granted and waiting.holder is None and waiting.grace == pytest.approx(9.0)
    assert lock(t, S1, 0, 10, "w", now=102.0, reclaim=True).granted
    assert lock(t, S1, 0, 10, "u", owner=99, now=102.0).granted  # known session: unlocks go
    unknown = lock(t, S2, 0, 10, "u", holder=BOB, now=103.0)  # may be about to reclaim
    assert not unknown.granted and unknown.grace
    with pytest.raises(errors.LockLost):  # two reclaims of one lock: the second is refused
        lock(t, S2, 5, 6, "r", holder=BOB, now=104.0, reclaim=True)
    assert t.test(S2, "posix", 5, 7, 0, 10, "r", 105.0).grace
    refused = lock(t, S2, 0, 10, "w", holder=BOB, now=110.5)  # grace over: a plain conflict
    assert not refused.granted and refused.holder == R(0, 10, "w")
    with pytest.raises(errors.LockLost):
        lock(t, S2, 20, 30, "w", holder=BOB, now=111.0, reclaim=True)


def test_no_grace_in_a_term_begun_uninitialised_and_versions_grow_across_terms():
    first = LockTable(LEASE, 0.0, 2, grace=False)  # the cluster had never served anything
    later = table(term=3, now=0.0)
    assert lock(first, S1, 0, 1, "w", now=0.0).granted
    assert first.grace_left(0.0) == 0 and later.grace_left(0.0) == LEASE
    assert later.version > first.version + 1000
    shared = Locks(LEASE, lambda: 0.0)
    shared.tick(2, initialised=False)
    assert shared.table.grace_left(0.0) == 0
    shared.tick(3, initialised=True)
    assert shared.table.grace_left(0.0) == LEASE


# --- bounds ---------------------------------------------------------------------------------

def test_a_session_holds_at_most_max_ranges(monkeypatch):
    monkeypatch.setattr(locks, "MAX_RANGES", 4)
    t = table()
    for i in range(4):
        assert lock(t, S1, 10 * i, 10 * i + 1, "w").granted
    with pytest.raises(errors.LockLost):
        lock(t, S1, 100, 101, "w", ino=6)
    assert lock(t, S1, 0, 50, "w").held == (R(0, 50, "w"),)  # merging frees room
    assert lock(t, S1, 100, 101, "w", ino=6).granted


def test_the_whole_table_is_bounded(monkeypatch):
    monkeypatch.setattr(locks, "MAX_TOTAL_RANGES", 3)
    t = table()
    for i in range(3):
        assert lock(t, f"{i:032x}", 0, 1, "r", ino=5 + i).granted
    with pytest.raises(errors.LockLost):
        lock(t, S1, 0, 1, "r", holder=BOB)
    assert lock(t, f"{0:032x}", 0, 1, "u", ino=5).granted
    assert lock(t, S1, 0, 1, "r", holder=BOB).granted and t.total == 3


def test_a_user_has_a_bounded_number_of_sessions(monkeypatch):
    monkeypatch.setattr(locks, "MAX_SESSIONS_PER_USER", 2)
    t = table()
    for i in range(2):
        assert lock(t, f"{i:032x}", 0, 1, "r", ino=5 + i).granted
    with pytest.raises(errors.LockLost):
        lock(t, "f" * 32, 0, 1, "r")
    assert lock(t, "f" * 32, 0, 1, "r", holder=BOB).granted  # another user's count


# --- Locks: per-term tables and waiting ---------------------------------------------------

def test_locks_start_a_new_table_per_term_and_waiters_wake_at_a_release():
    now = [0.0]
    shared = Locks(LEASE, lambda: now[0])
    shared.tick(1, initialised=False)
    assert shared.run(1, lambda t, n: lock(t, S1, 0, 10, "w", now=n)).granted
    started = threading.Event()

    def wait_for_it():
        started.set()
        return shared.wait(1, lambda t, n: lock(t, S2, 0, 10, "w", holder=BOB, now=n), 60.0)

    result = {}
    waiter = threading.Thread(target=lambda: result.update(answer=wait_for_it()))
    waiter.start()
    started.wait(5)
    shared.run(1, lambda t, n: lock(t, S1, 0, 10, "u", now=n))
    waiter.join(30)
    assert not waiter.is_alive() and result["answer"].granted
    shared.tick(2)  # a later term: everything forgotten, grace begins
    assert shared.table.sessions == {} and shared.table.grace_left(now[0]) == LEASE

"""t2: the lock endpoints of a real MasterService over a real MasterState (tests/t2_master.py's
``master``: in-process voters, stepped clocks): hostile arguments are refused with EINVAL
and change nothing, a file the caller cannot reach is answered as missing, a session is
its user's, and a silent session's locks go after the lock lease on the stepped clock."""

import threading

import pytest
from t2_master import _user, master  # noqa: F401 (the fixture)

from dfs import errors, wire
from dfs.config import MasterConfig, default
from dfs.wire import LOCK_EOF, LockRange

SID_A, SID_B = "a" * 32, "b" * 32
LOCK_LEASE = default(MasterConfig, "lock_lease")


def lock(service, sid, ino, start, end, want, owner=1, kind="posix", **options):
    return wire.lock_answer_from_wire(service.exposed_lock(sid, kind, ino, owner, start, end,
                                                           want, **options))


@pytest.fixture
def two(master):  # noqa: F811
    state, clock, _wall = master
    # what the master-locks task did as this term began, before the first worker came
    state.locks.tick(state.leadership.term, initialised=False)
    alice, bob = _user(state, "alice"), _user(state, "bob")
    alice.exposed_create("/f", 0o666)
    ino = wire.stat_from_wire(alice.exposed_stat("/f")).ino
    return state, clock, alice, bob, ino


@pytest.mark.parametrize("args, options", [
    ((True, "posix", 5, 1, 0, 1, "w"), {}),              # a bool is not a session
    (("xyz", "posix", 5, 1, 0, 1, "w"), {}),             # not hex
    (("a" * 65, "posix", 5, 1, 0, 1, "w"), {}),
    ((SID_A, "nfs", 5, 1, 0, 1, "w"), {}),               # unknown kind
    ((SID_A, "posix", True, 1, 0, 1, "w"), {}),          # bool as inode
    ((SID_A, "posix", -5, 1, 0, 1, "w"), {}),
    ((SID_A, "posix", 5, "1", 0, 1, "w"), {}),
    ((SID_A, "posix", 5, 1 << 64, 0, 1, "w"), {}),
    ((SID_A, "posix", 5, 1, 5, 5, "w"), {}),             # empty range
    ((SID_A, "posix", 5, 1, -1, 5, "w"), {}),
    ((SID_A, "posix", 5, 1, 0, LOCK_EOF + 1, "w"), {}),
    ((SID_A, "flock", 5, 1, 0, 10, "w"), {}),            # flock is the whole file
    ((SID_A, "posix", 5, 1, 0, 1, "x"), {}),
    ((SID_A, "posix", 5, 1, 0, 1, "w"), {"pid": -1}),
    ((SID_A, "posix", 5, 1, 0, 1, "w"), {"wait": float("nan")}),
    ((SID_A, "posix", 5, 1, 0, 1, "w"), {"wait": -1.0}),
    ((SID_A, "posix", 5, 1, 0, 1, "w"), {"reclaim": 1}),
    ((SID_A, "posix", 5, 1, (0,), 1, "w"), {}),
])
def test_hostile_lock_arguments_are_einval_and_change_nothing(two, args, options):
    state, _clock, alice, _bob, _ino = two
    with pytest.raises(errors.InvalidArgument):
        alice.exposed_lock(*args, **options)
    assert state.locks.table.sessions == {} and state.locks.table.by_ino == {}


def test_a_file_out_of_reach_is_missing_and_a_session_is_its_user_s(two):
    _state, _clock, alice, bob, ino = two
    alice.exposed_mkdir("/private", 0o700)
    alice.exposed_create("/private/g", 0o666)
    hidden = wire.stat_from_wire(alice.exposed_stat("/private/g")).ino
    with pytest.raises(errors.FileNotFound):
        lock(bob, SID_B, hidden, 0, 1, "r")
    with pytest.raises(errors.FileNotFound):
        lock(bob, SID_B, 999_999, 0, 1, "r")
    assert lock(alice, SID_A, ino, 0, 10, "w").granted
    with pytest.raises(errors.NotPermitted):
        lock(bob, SID_A, ino, 0, 10, "u")  # alice's session: not bob's to unlock
    with pytest.raises(errors.NotPermitted):
        bob.exposed_lock_release(SID_A)
    refused = lock(bob, SID_B, ino, 5, 6, "r")
    assert not refused.granted and refused.holder == LockRange(0, 10, "w")
    assert refused.lease == LOCK_LEASE


def test_f_getlk_release_and_renew_through_the_service(two):
    _state, _clock, alice, bob, ino = two
    assert lock(alice, SID_A, ino, 0, LOCK_EOF, "r", owner=3, pid=77).granted
    seen = wire.lock_answer_from_wire(bob.exposed_lock_test(SID_B, "posix", ino, 9, 0, 1, "w"))
    assert not seen.granted and seen.holder == LockRange(0, LOCK_EOF, "r")
    assert seen.holder_pid == 0  # alice's process is on another mount
    own = wire.lock_answer_from_wire(alice.exposed_lock_test(SID_A, "posix", ino, 4, 0, 1, "w"))
    assert own.holder_pid == 77
    assert wire.lock_answer_from_wire(alice.exposed_lock_renew(SID_A)).granted
    assert not wire.lock_answer_from_wire(bob.exposed_lock_renew(SID_B)).granted  # none held
    alice.exposed_lock_release(SID_A, "posix", ino, 3)
    assert lock(bob, SID_B, ino, 0, 1, "w").granted


def test_a_silent_session_s_locks_go_after_the_lock_lease(two):
    state, clock, alice, bob, ino = two
    assert lock(alice, SID_A, ino, 0, 1, "w").granted
    waited = 0.0
    while waited <= LOCK_LEASE + 1:  # bob renews, alice is silent; leases stay held
        assert lock(bob, SID_B, ino, 100 + int(waited), 101 + int(waited), "w").granted
        clock.now += 1.0
        waited += 1.0
        state.elect()
        with state.lock:  # the worker stays alive too
            state.workers.heartbeat("w1", 1 << 30, 0, 0, [], [], clock())
    assert lock(bob, SID_B, ino, 0, 1, "w").granted
    assert not wire.lock_answer_from_wire(alice.exposed_lock_renew(SID_A)).granted


def test_a_waiting_request_is_granted_when_the_holder_unlocks(two):
    _state, _clock, alice, bob, ino = two
    assert lock(alice, SID_A, ino, 0, 1, "w").granted
    answer = {}
    waiter = threading.Thread(target=lambda: answer.update(
        got=lock(bob, SID_B, ino, 0, 1, "w", wait=30.0)))
    waiter.start()
    assert lock(alice, SID_A, ino, 0, 1, "u").granted
    waiter.join(60)
    assert not waiter.is_alive()
    # granted at the unlock, or (a wait is at most MAX_WAIT) refused: then it is free now
    assert answer["got"].granted or lock(bob, SID_B, ino, 0, 1, "w").granted

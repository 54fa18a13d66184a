"""The seen-nonce cache of signed calls (nodes/replay.py, issue 9 point 9): a signed call is
accepted once, a copy is refused while its stamp is valid, the cache forgets what has
expired and never holds more than its cap. Time is a stepped clock."""

import pytest
from helpers import SteppedClock

from dfs import auth
from dfs.errors import AuthenticationFailed
from nodes.replay import SeenNonces, check_signed_call

SECRET = auth.voter_secret("ab" * 32)
START = 1_000_000.0
ME = "w-1"  # the node the calls are made out to


@pytest.fixture
def clock():
    return SteppedClock(START)


@pytest.fixture
def seen(clock):
    return SeenNonces(window=auth.VOTER_WINDOW, cap=100, clock=clock)


def signed(clock, method="lease", args=(3, "master")):
    stamp, mac = auth.sign_voter_call(SECRET, method, args, ME, now=clock())
    return method, args, stamp, mac, ME


def test_a_call_is_accepted_once_and_its_copy_refused(clock, seen):
    call = signed(clock)
    check_signed_call(SECRET, *call, seen=seen)
    clock.step(1.0)
    with pytest.raises(AuthenticationFailed, match="replayed call"):
        check_signed_call(SECRET, *call, seen=seen)
    clock.step(auth.VOTER_WINDOW - 2.0)  # still inside the window: still refused
    with pytest.raises(AuthenticationFailed, match="replayed call"):
        check_signed_call(SECRET, *call, seen=seen)
    check_signed_call(SECRET, *signed(clock), seen=seen)  # the same call signed again: new


def test_every_signature_has_its_own_nonce():
    first = auth.sign_voter_call(SECRET, "peer_ping", (), "shadow", now=START)
    second = auth.sign_voter_call(SECRET, "peer_ping", (), "shadow", now=START)
    assert first[0] == second[0] and first[1] != second[1]
    assert auth.verify_voter_call(SECRET, "peer_ping", (), *first, "shadow", now=START)[1] != \
        auth.verify_voter_call(SECRET, "peer_ping", (), *second, "shadow", now=START)[1]


def test_a_call_is_good_only_for_the_node_it_was_made_out_to(clock, seen):
    method, args, stamp, mac, _me = signed(clock)
    for other in ("w-2", "master", "shadow", ""):
        with pytest.raises(AuthenticationFailed, match="not signed"):
            check_signed_call(SECRET, method, args, stamp, mac, other, seen=seen)
    check_signed_call(SECRET, method, args, stamp, mac, ME, seen=seen)


def test_the_nonce_is_signed_and_required(clock, seen):
    method, args, stamp, mac, _me = signed(clock)
    nonce, _, signature = mac.partition(":")
    other = "0" * len(nonce) if nonce != "0" * len(nonce) else "1" * len(nonce)
    for forged in (f"{other}:{signature}", signature, f":{signature}", "é:é", 7):
        with pytest.raises(AuthenticationFailed):
            check_signed_call(SECRET, method, args, stamp, forged, ME, seen=seen)
    assert len(seen) == 0  # nothing unsigned is remembered
    check_signed_call(SECRET, method, args, stamp, mac, ME, seen=seen)


def test_a_refused_signature_does_not_spend_the_nonce(clock, seen):
    method, args, stamp, mac, _me = signed(clock)
    with pytest.raises(AuthenticationFailed, match="not signed"):
        check_signed_call(SECRET, method, (4, "master"), stamp, mac, ME, seen=seen)  # altered
    check_signed_call(SECRET, method, args, stamp, mac, ME, seen=seen)


def test_expired_nonces_are_forgotten_and_their_calls_refused_as_too_old(clock, seen):
    call = signed(clock)
    check_signed_call(SECRET, *call, seen=seen)
    clock.step(auth.VOTER_WINDOW + 0.5)
    check_signed_call(SECRET, *signed(clock), seen=seen)  # the next call sweeps
    assert len(seen) == 1
    with pytest.raises(AuthenticationFailed, match="too old"):
        check_signed_call(SECRET, *call, seen=seen)


def test_a_stamp_from_a_clock_ahead_is_remembered_until_it_leaves_the_window(clock, seen):
    ahead = auth.sign_voter_call(SECRET, "vote", (5, "shadow"), ME, now=clock() + 20.0)
    check_signed_call(SECRET, "vote", (5, "shadow"), *ahead, ME, seen=seen)
    clock.step(auth.VOTER_WINDOW + 10.0)  # our clock: 30 s since it arrived, 10 s past stamp
    with pytest.raises(AuthenticationFailed, match="replayed call"):
        check_signed_call(SECRET, "vote", (5, "shadow"), *ahead, ME, seen=seen)


def test_the_cache_is_bounded_and_never_accepts_a_replay_past_its_cap(clock, seen):
    calls = []
    for i in range(250):
        call = signed(clock, "mark_stale", (3, "shadow", i))
        check_signed_call(SECRET, *call, seen=seen)
        calls.append(call)
        clock.step(0.01)
        assert len(seen) <= 100
    assert len(seen) == 100
    for call in calls:  # forgotten or remembered: every copy is refused
        with pytest.raises(AuthenticationFailed, match="replayed call"):
            check_signed_call(SECRET, *call, seen=seen)
    check_signed_call(SECRET, *signed(clock), seen=seen)  # a new call still passes
    clock.step(auth.VOTER_WINDOW + 5.0)
    check_signed_call(SECRET, *signed(clock), seen=seen)
    assert len(seen) == 1  # everything expired

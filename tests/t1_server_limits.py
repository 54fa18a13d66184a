"""Pure units of nodes/server_limits.py: the caps, the budget, the timeouts, the throttle,
who counts as logged in, and the numbers (issue 9, point 4). The attacks themselves, on real
processes, are in tests/t3_hostile_conn.py."""

import logging

import pytest
from helpers import SteppedClock

from dfs import errors
from dfs.config import ClientConfig, MasterConfig, WorkerConfig
from nodes import server_limits as sl
from nodes.worker.store import MAX_PIECE


def _table(**overrides):
    options = dict(frame_before_login=sl.FRAME_BEFORE_LOGIN, login_timeout=10.0,
                   idle_timeout=600.0, max_connections=5, max_connections_per_peer=3,
                   buffer_budget=4 * sl.MIB)
    options.update(overrides)
    clock = SteppedClock()
    return sl.ConnectionTable(sl.ServerLimits(**options), clock), clock


def test_connections_are_capped_per_peer_and_in_all_and_released():
    table, _clock = _table()
    a = [table.admit("10.0.0.1", None) for _ in range(4)]
    assert None not in a[:3] and a[3] is None  # three per peer
    b = [table.admit("10.0.0.2", None) for _ in range(3)]
    assert b[0] is not None and b[1] is not None and b[2] is None  # five in all
    table.release(a[0])
    table.release(a[0])  # twice is harmless
    assert table.count("10.0.0.1") == 2 and table.count() == 4
    assert table.admit("10.0.0.1", None) is not None


def test_unauthenticated_connections_expire_after_the_login_timeout_even_if_busy_talking():
    table, clock = _table()
    quiet = table.admit("p", None)
    trickle = table.admit("p", None)
    clock.now += 9
    trickle.idle_since = clock.now  # it keeps polling (a half-sent frame counts as idle)
    assert table.expired() == []
    clock.now += 2
    assert set(table.expired()) == {quiet, trickle}


def test_logged_in_connections_expire_when_idle_never_while_handling_a_request():
    table, clock = _table()
    conn = table.admit("p", None)
    table.promote(conn, sl.USER_FRAME)
    assert conn.frame_limit == sl.USER_FRAME
    clock.now += 599
    assert table.expired() == []
    conn.idle_since = None  # a request in progress
    clock.now += 3600
    assert table.expired() == []
    conn.idle_since = clock.now
    clock.now += 601
    assert table.expired() == [conn]


def test_promotion_never_lowers_a_limit():
    table, _clock = _table(frame_before_login=sl.WORKER_FRAME)
    conn = table.admit("p", None)
    table.promote(conn, sl.FRAME_BEFORE_LOGIN)
    assert conn.logged_in and conn.frame_limit == sl.WORKER_FRAME


def test_big_frames_before_login_share_one_budget():
    table, _clock = _table(buffer_budget=3 * sl.MIB)
    first, second, member = (table.admit(p, None) for p in ("a", "b", "c"))
    table.promote(member, sl.USER_FRAME)
    assert table.reserve(first, sl.FRAME_BEFORE_LOGIN) == 0  # small frames are free
    assert table.reserve(first, 2 * sl.MIB) == 2 * sl.MIB
    assert table.reserve(second, 2 * sl.MIB) == -1  # over the budget
    assert table.reserve(member, 2 * sl.MIB) == 0  # logged in: not counted
    table.unreserve(2 * sl.MIB)
    assert table.reserve(second, 2 * sl.MIB) == 2 * sl.MIB


class FakeSession:
    def __init__(self, user=None, worker_id=None):
        self.user = user
        self.worker_id = worker_id


def test_who_is_logged_in_on_a_master():
    assert sl.promote_master(FakeSession(), "hello") is None
    assert sl.promote_master(FakeSession(), "register") is None
    assert sl.promote_master(FakeSession(user="alice"), "login") == sl.USER_FRAME
    assert sl.promote_master(FakeSession(user="alice"), "Auth_Host") == sl.USER_FRAME
    assert sl.promote_master(FakeSession(worker_id="w1"), "worker_login") == sl.NODE_FRAME
    for method in ("voter", "peer_ping", "peer_replicate", "peer_install"):
        assert sl.promote_master(FakeSession(), method) == sl.NODE_FRAME  # signed calls


def test_the_limits_hold_every_honest_frame_and_stay_far_below_4_gib():
    master = sl.master_limits(MasterConfig(data_dir="/x"))
    worker = sl.worker_limits(WorkerConfig(data_dir="/x", masters=(("h", 1),),
                                           join_token="0" * 64))
    biggest_client_piece = 16 * sl.MIB  # ClientConfig.validate's upper bound
    ClientConfig(masters=(("h", 1),), user="u", key="k",
                 piece_size=biggest_client_piece).validate()
    assert worker.frame_before_login >= MAX_PIECE + 64 * 1024 >= biggest_client_piece
    assert worker.promote(object(), "read") == worker.frame_before_login
    assert master.frame_before_login == 64 * 1024
    assert master.promote is sl.promote_master
    assert max(sl.NODE_FRAME, sl.USER_FRAME, sl.WORKER_FRAME) <= 2**30 < 2**32 - 1
    assert (master.login_timeout, master.idle_timeout) == (10.0, 600.0)
    assert worker.max_connections_per_peer == master.max_connections_per_peer


@pytest.mark.parametrize("options", [dict(login_timeout=0), dict(login_timeout=700.0),
                                     dict(max_connections_per_peer=0),
                                     dict(max_connections=2, max_connections_per_peer=3)])
def test_bad_limits_are_refused(options):
    with pytest.raises(errors.InvalidArgument):
        sl.ServerLimits(**options)


def test_the_throttle_writes_one_line_per_interval_and_counts_the_rest(caplog):
    clock = SteppedClock()
    throttle = sl.Throttle(every=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="nodes.server_limits"):
        assert throttle.log(logging.WARNING, "cap", "refused %s", "a")
        assert not throttle.log(logging.WARNING, "cap", "refused %s", "b")
        assert not throttle.log(logging.WARNING, "cap", "refused %s", "c")
        assert throttle.log(logging.WARNING, "other", "emfile")  # kinds are apart
        clock.now += 10
        assert throttle.log(logging.WARNING, "cap", "refused %s", "d")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a", "emfile", "refused d (and 2 more like it in the last 10s)"]

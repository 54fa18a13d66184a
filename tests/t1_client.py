"""Pure units of the client side: the retry policy on a stepped clock, the failover and
"no active workers" waits of MasterLink (no network: its per-address attempt is faked),
every wire record's round trip, and the config defaults helper."""

import dataclasses

import pytest
from helpers import SteppedClock

from dfs import errors, wire
from dfs.client.connections import MasterLink
from dfs.config import (
    ClientConfig,
    ClusterConfig,
    MasterConfig,
    WorkerConfig,
    default,
)
from dfs.retry import RetryPolicy

# --- the retry policy ------------------------------------------------------------------------

def test_backoff_doubles_caps_and_stops_before_the_deadline():
    clock = SteppedClock(1000.0)
    backoff = RetryPolicy(deadline=5.0, first=0.1, cap=1.0).start(clock, clock.sleep)
    while backoff.wait():
        pass
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert sum(clock.sleeps) <= 5.0  # no try starts after the deadline
    assert clock.now + 1.0 > 1005.0  # and the one refused would have
    assert not backoff.expired() and backoff.remaining() == pytest.approx(0.5)
    clock.now += 0.5
    assert backoff.expired() and backoff.remaining() == 0.0


def test_backoff_reset_starts_the_schedule_again_and_no_deadline_means_forever():
    clock = SteppedClock(1000.0)
    backoff = RetryPolicy(deadline=None, first=0.05, cap=0.2).start(clock, clock.sleep)
    for _ in range(100):
        assert backoff.wait()
    assert clock.sleeps[:4] == [0.05, 0.1, 0.2, 0.2] and max(clock.sleeps) == 0.2
    assert backoff.remaining() is None and not backoff.expired()
    backoff.reset()
    assert backoff.next_delay() == 0.05


def test_policy_within_keeps_the_schedule_and_changes_the_deadline():
    policy = RetryPolicy(deadline=None, first=0.3, cap=0.6)
    assert policy.within(2.0) == RetryPolicy(deadline=2.0, first=0.3, cap=0.6)
    clock = SteppedClock(1000.0)
    backoff = policy.within(0.0).start(clock, clock.sleep)
    assert not backoff.wait() and clock.sleeps == []  # zero time: give up without sleeping


# --- MasterLink: failover and "no active workers" ---------------------------------------------

def _link(answers, failover_deadline=60.0, no_workers_wait=10.0):
    """A MasterLink of two addresses whose attempts answer from ``answers(address, kwargs)``
    (raise or return), on a stepped clock. -> (link, clock, calls)."""
    clock = SteppedClock(1000.0)
    link = MasterLink([("a", 1), ("b", 2)], "alice", "k" * 64, 5.0, failover_deadline,
                      no_workers_wait, clock=clock, sleep=clock.sleep)
    calls = []

    def attempt(address, name, args, kwargs):
        calls.append((address, name, dict(kwargs)))
        return answers(address, kwargs)
    link._attempt = attempt
    return link, clock, calls


def _no_workers(address, kwargs):
    raise errors.NoActiveWorkers()


def test_no_active_workers_is_asked_again_for_no_workers_wait_then_raised():
    link, clock, calls = _link(_no_workers, no_workers_wait=10.0)
    with pytest.raises(errors.NoActiveWorkers, match="no active workers"):
        link.call("listdir", "/")
    waited = sum(clock.sleeps)
    assert 9.0 <= waited <= 10.0  # about the whole window, never more
    assert len(calls) > 10  # asked again and again meanwhile, both addresses each round
    assert {address for address, _name, _kwargs in calls} == {("a", 1), ("b", 2)}


def test_no_active_workers_wait_never_exceeds_the_failover_deadline():
    link, clock, _calls = _link(_no_workers, failover_deadline=3.0, no_workers_wait=10.0)
    with pytest.raises(errors.NoActiveWorkers):
        link.call("stat", "/")
    assert 2.0 <= sum(clock.sleeps) <= 3.0


def test_no_active_workers_then_workers_report_and_the_call_succeeds():
    # a master that has just restarted: "no active workers" until the workers report again
    def answers(address, kwargs):
        if clock.now < 1002.0:
            raise errors.NoActiveWorkers()
        return "answer"
    link, clock, calls = _link(answers)
    assert link.call("mkdir", "/d", 0o700) == "answer"
    rids = {kwargs["rid"] for _address, _name, kwargs in calls}
    assert len(rids) == 1  # a once-only request keeps its id across the retries


def test_a_server_that_serves_wins_over_one_that_says_no_active_workers():
    def answers(address, kwargs):
        if address == ("a", 1):
            raise errors.NoActiveWorkers()
        return "from b"
    link, clock, _calls = _link(answers)
    assert link.call("stat", "/") == "from b"
    assert clock.sleeps == []
    assert link.preferred == 1  # asked first next time


def test_no_leader_until_the_failover_deadline_is_a_clear_master_unavailable():
    def answers(address, kwargs):
        raise errors.NotLeader("not the leader", "")
    link, clock, _calls = _link(answers, failover_deadline=8.0)
    with pytest.raises(errors.MasterUnavailable, match="is leading after 8s"):
        link.call("stat", "/")
    assert clock.sleeps[:5] == [0.05, 0.1, 0.2, 0.4, 0.8] and max(clock.sleeps) == 1.0
    assert 7.0 <= sum(clock.sleeps) <= 8.0


def test_a_definite_error_is_raised_at_once_without_retrying():
    def answers(address, kwargs):
        raise errors.FileNotFound("/nope: no such file")
    link, clock, calls = _link(answers)
    with pytest.raises(errors.FileNotFound):
        link.call("stat", "/nope")
    assert len(calls) == 1 and clock.sleeps == []


# --- wire records --------------------------------------------------------------------------------

PLAIN = (str, bytes, int, float, bool, type(None))


def _only_plain(value):
    """True if ``value`` is exactly plain types and tuples of them (what rpyc sends by value)."""
    if type(value) is tuple:
        return all(_only_plain(v) for v in value)
    return type(value) in PLAIN


STAT = wire.Stat(7, "f", 0o640, "alice", 123, 1, 2, 3, 1)
REPLICAS = (wire.Replica("w1", "10.0.0.1", 18870, "chunks"),
            wire.Replica("w2", "10.0.0.2", 18871, "backups"))
REF = wire.ChunkRef(5, 1, 123, 0xDEADBEEF, 2)
WORKER = wire.WorkerStatus("w1", "10.0.0.1", 18870, True, 3, 1 << 20, 1 << 30, 2, 0.25)
REPORT = wire.FsckReport(4, 9, 3, ("w4",), (wire.FsckProblem("under", 5, "", "/a"),
                                             wire.FsckProblem("orphan", 6, "w2", "")), 2)


@pytest.mark.parametrize("record, to_wire, from_wire", [
    (STAT, wire.stat_to_wire, wire.stat_from_wire),
    ([wire.DirEntry("a", STAT)], wire.entries_to_wire, wire.entries_from_wire),
    (REPLICAS, wire.replicas_to_wire, wire.replicas_from_wire),
    (wire.FileLayout(STAT, 1 << 20, (wire.ReadChunk(REF, REPLICAS, "tok"),)),
     wire.layout_to_wire, wire.layout_from_wire),
    ([wire.WriteTarget(5, 1, REPLICAS, "w-tok", "r-tok")],
     wire.targets_to_wire, wire.targets_from_wire),
    ([wire.WrittenChunk(REF, (("w1", "chunks"),)), wire.WrittenChunk(REF, ())],
     wire.written_to_wire, wire.written_from_wire),
    (wire.PutResult(STAT, 1), wire.put_result_to_wire, wire.put_result_from_wire),
    ([WORKER], wire.workers_to_wire, wire.workers_from_wire),
    (wire.StatFs(1 << 40, 1 << 39, 1 << 22, 12), wire.statfs_to_wire, wire.statfs_from_wire),
    (wire.ClusterStatus("master", 3, "127.0.0.1:18861", (WORKER,), 2, 12, "in sync",
                        ("w1", "shadow")), wire.status_to_wire, wire.status_from_wire),
    ([wire.TrashEntry("3", "/a", 10, 1700000000.5, 1700086400.5)],
     wire.trash_to_wire, wire.trash_from_wire),
    (REPORT, wire.fsck_report_to_wire, wire.fsck_report_from_wire),
    (wire.FsckResult("done", REPORT), wire.fsck_result_to_wire, wire.fsck_result_from_wire),
    (wire.FsckResult("failed", message="no leader"), wire.fsck_result_to_wire,
     wire.fsck_result_from_wire),
    (wire.FsckResult("running"), wire.fsck_result_to_wire, wire.fsck_result_from_wire),
], ids=["stat", "entries", "replicas", "layout", "targets", "written", "put_result", "workers",
        "statfs", "status", "trash", "fsck_report", "fsck_done", "fsck_failed", "fsck_running"])
def test_every_wire_record_round_trips_as_plain_tuples(record, to_wire, from_wire):
    data = to_wire(record)
    assert _only_plain(data), data
    assert from_wire(data) == record


def test_wire_layouts_are_the_servers_tuples():
    # the layouts the master sends today (nodes/master): changing them breaks old clients
    assert wire.statfs_to_wire(wire.StatFs(100, 50, 4, 2)) == (100, 50, 4, 2)
    status = wire.ClusterStatus("m", 2, "h:1", (WORKER,), 0, 5, "in sync", ("w1",), "low",
                                "http://h:2/")
    assert wire.status_to_wire(status) == ("m", 2, "h:1", (tuple(WORKER),), 0, 5, "in sync",
                                           ("w1",), "low", "http://h:2/")
    assert wire.trash_to_wire([wire.TrashEntry("1", "/x", 3, 10, 20)]) == (
        ("1", "/x", 3, 10.0, 20.0),)
    assert type(wire.trash_to_wire([wire.TrashEntry("1", "/x", 3, 10, 20)])[0][3]) is float
    assert wire.fsck_result_to_wire(wire.FsckResult("running")) == ("running", None)
    assert wire.fsck_result_to_wire(wire.FsckResult("failed", message="m")) == ("failed", "m")
    assert wire.fsck_result_to_wire(wire.FsckResult("done", REPORT)) == (
        "done", (4, 9, 3, ("w4",), (("under", 5, "", "/a"), ("orphan", 6, "w2", "")), 2))


def test_cluster_status_reads_by_attribute():
    # an older server's status, without the space warning added since: read as no warning
    status = wire.status_from_wire(("m", 2, "h:1", (tuple(WORKER),), 1, 5, "in sync", ()))
    assert status.standby == "in sync" and status.epoch == 2
    assert status.workers == (WORKER,) and status.lease_holders == ()
    assert status.space_warning == ""
    assert wire.status_to_wire(status) == ("m", 2, "h:1", (tuple(WORKER),), 1, 5, "in sync", (),
                                           "", "")


def test_fsck_report_is_clean_only_without_problems_and_unreachable_workers():
    assert wire.FsckReport(1, 1, 1, (), (), 0).clean
    assert not wire.FsckReport(1, 1, 1, ("w1",), (), 0).clean
    assert not REPORT.clean


# --- config defaults -----------------------------------------------------------------------------

def test_default_reads_a_fields_default_once():
    assert default(MasterConfig, "lease") == 3.0
    assert default(ClientConfig, "failover_deadline") == 60.0
    assert default(ClusterConfig, "extra_env") == {}  # a default_factory is called
    with pytest.raises(errors.InvalidArgument, match="no field"):
        default(MasterConfig, "nope")
    with pytest.raises(errors.InvalidArgument, match="no default"):
        default(MasterConfig, "data_dir")


def test_shared_settings_have_one_default():
    # the local cluster and the worker take the masters' values, not copies of them
    for name in ("chunk_size", "dead_after", "heartbeat_interval", "snapshot_every", "lease",
                 "trash_seconds"):
        assert default(ClusterConfig, name) == default(MasterConfig, name), name
    assert default(WorkerConfig, "lease") == default(MasterConfig, "lease")
    assert (default(ClusterConfig, "scrub_bytes_per_second")
            == default(WorkerConfig, "scrub_bytes_per_second"))


def test_no_workers_wait_is_a_client_setting_within_the_failover_deadline():
    config = ClientConfig(masters=(("h", 1),), user="u", key="k")
    assert 0 < config.no_workers_wait <= config.failover_deadline
    with pytest.raises(errors.InvalidArgument):
        dataclasses.replace(config, no_workers_wait=-1.0).validate()


def test_poll_returns_the_first_truthy_answer_or_none_at_the_deadline():
    from dfs import retry
    answers = iter([None, 0, "ready"])
    assert retry.poll(lambda: next(answers), 5.0, 0.01) == "ready"
    calls = []
    assert retry.poll(lambda: calls.append(1), 0.1, 0.01) is None
    assert 2 <= len(calls) <= 11  # tried again and again, and stopped at the deadline


def test_a_worker_that_failed_is_tried_last_for_a_while():
    """A worker cut off costs each read a timeout unless the client remembers it."""
    import socket

    from dfs.client.connections import WorkerLinks
    from dfs.wire import Replica
    with socket.socket() as s:  # a port that refuses: nobody listens on it any more
        s.bind(("127.0.0.1", 0))
        gone = s.getsockname()[1]
    links = WorkerLinks(timeout=2.0)
    dead, alive = Replica("w-dead", "127.0.0.1", gone, "chunks"), Replica("w-ok", "h", 1,
                                                                          "backups")
    assert links.order([dead, alive]) == [dead, alive]  # nothing known yet: as given
    with pytest.raises(errors.WorkerUnavailable):
        links.call(dead, "read", "t", 1, 0, 1)
    assert links.order([dead, alive]) == [alive, dead]
    assert links.order([dead]) == [dead]  # still tried when it is the only one
    links.close()

"""Pure units of issue 13's observability: the audit log (nodes/master/events.py), the RPC
boundary's measurements and call context (nodes/rpcserver.py), the status page's HTML
(nodes/master/status_page.py) and the CLI's pieces (dfs/cli/events.py). No sockets."""

import json
import logging
import os
import stat
import threading

import pytest
from helpers import SteppedClock
from prometheus_client import generate_latest

from dfs import errors, metrics, wire
from dfs.cli.events import format_event, parse_since
from dfs.cli.output import printable
from dfs.config import METRICS_OFF, MasterConfig, metrics_port
from dfs.namespace.entries import Record, Revoke
from nodes.master import events as events_module
from nodes.master.events import EventLog, describe
from nodes.master.status_page import render
from nodes.rpcserver import boundary, current_call


class FakeSession:
    """What the audit log reads of a connection: who is logged in and from where."""

    def __init__(self, user=None, worker_id=None, peer="10.0.0.7"):
        self.user, self.worker_id, self.peer = user, worker_id, peer
        self.seen = None

    @boundary
    def exposed_mkdir(self, path, mode=0o700, rid=None):
        self.seen = current_call()
        return self.log.mutation(Record(5, 1, Revoke(name="x")))

    @boundary
    def exposed_register(self, name, token):
        self.log.mutation(Record(6, 1, Revoke(name="x")))

    @boundary
    def exposed_fail(self, what):
        raise errors.FileNotFound(what)


def wait_written(log, count):
    """The writer thread has put ``count`` lines in the current file (poll, no sleep)."""
    from dfs.retry import poll

    def written():
        try:
            with open(log.path, "rb") as f:
                return len(f.read().splitlines()) >= count
        except FileNotFoundError:
            return False
    assert poll(written, 10.0, 0.01), f"{count} events not written"


# --- the audit log --------------------------------------------------------------------------

def test_mutations_name_the_caller_and_only_safe_arguments(tmp_path):
    log = EventLog(str(tmp_path), 1 << 20, wall=SteppedClock(1000.0))
    session = FakeSession(user="alice")
    session.log = log
    session.exposed_mkdir("/home/alice/new\x1b[2J", 0o750)
    assert session.seen.op == "mkdir" and session.seen.service is session
    assert current_call() is None  # only while the method runs
    session.exposed_register("bob", "the-join-token-never-logged")
    log.mutation(Record(7, 1, Revoke(name="x")))
    first, second, third = log.page(0)[0]
    assert (first.user, first.address, first.op, first.entry, first.outcome) == (
        "alice", "10.0.0.7", "mkdir", "revoke #5", "ok")
    assert first.detail == "path='/home/alice/new\\x1b[2J' mode=0o750"  # escaped, no token
    assert second.op == "register" and second.detail == "name='bob'"
    assert (third.user, third.address, third.op) == ("", "", events_module.MASTER_OP)
    log.close()
    text = open(log.path, encoding="utf-8").read()
    assert "the-join-token-never-logged" not in text
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert [json.loads(line)["event_id"] for line in text.splitlines()] == [1, 2, 3]


def test_logins_pages_filters_and_ids_across_restarts(tmp_path):
    clock = SteppedClock(1000.0)
    log = EventLog(str(tmp_path), 1 << 20, wall=clock)
    log.login("alice", "10.0.0.1", accepted=True)
    clock.step(100)
    log.login("mallory", "10.0.0.66", accepted=False)
    clock.step(100)
    log.login("alice", "10.0.0.1", accepted=True)
    assert [e.outcome for e in log.page(0)[0]] == ["ok", "refused", "ok"]
    assert [e.event_id for e in log.page(0, user="alice")[0]] == [1, 3]
    assert [e.event_id for e in log.page(0, since=1100.0)[0]] == [2, 3]
    page, cursor = log.page(0, limit=2)
    assert [e.event_id for e in page] == [1, 2] and cursor == 2
    page, cursor = log.page(cursor, limit=2)
    assert [e.event_id for e in page] == [3] and cursor == 3
    assert log.page(cursor) == ([], 3)
    assert log.page(0, user="nobody") == ([], 3)  # the cursor moves on past what was skipped
    log.close()
    again = EventLog(str(tmp_path), 1 << 20, wall=clock)  # a restart: read from the file
    assert [e.event_id for e in again.page(0, user="alice")[0]] == [1, 3]
    again.login("carol", "10.0.0.3", accepted=True)
    assert again.page(2)[0][-1].event_id == 4  # ids go on, never reused
    again.close()


def test_rotation_keeps_the_log_under_its_bound(tmp_path):
    log = EventLog(str(tmp_path), 64 * 1024)
    for i in range(2000):
        log.login(f"user{i}", "10.0.0.1", accepted=True)
    log.close()
    files = [f for f in os.listdir(tmp_path) if f.startswith("events")]
    assert events_module.ROTATED <= len(files) <= events_module.ROTATED + 1
    total = sum(os.path.getsize(tmp_path / f) for f in files)
    assert total <= 64 * 1024 + 1024  # each file ends at most one line past its share
    kept = EventLog(str(tmp_path), 64 * 1024)  # restarted: only the files
    assert kept.next_id == 2001  # the numbering goes on...
    oldest = kept.page(0, limit=5)[0]
    assert oldest and oldest[0].event_id > 1  # ...though the oldest were dropped
    assert oldest[0].op == "login"
    ids = [e.event_id for e in kept.page(0, limit=1000)[0]]
    assert ids == sorted(set(ids))  # in order, each once


def test_a_failing_disk_drops_events_with_one_warning(tmp_path, caplog):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the metadata dir should be")
    log = EventLog(str(blocked), 1 << 20)
    with caplog.at_level(logging.WARNING, logger="nodes.master.events"):
        for _ in range(50):
            log.login("alice", "10.0.0.1", accepted=True)  # never raises
        log.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropping events" in warnings[0].getMessage()
    assert log.dropped == 50 and log.recorded == 50
    assert len(log.last(10)) == 10  # still shown from memory


def test_a_writer_that_falls_behind_drops_events_with_one_warning(tmp_path, caplog):
    log = EventLog(str(tmp_path), 1 << 20)
    release, real_write = threading.Event(), log._write

    def stuck(events):  # a disk that does not answer
        release.wait(30)
        real_write(events)
    log._write = stuck
    with caplog.at_level(logging.WARNING, logger="nodes.master.events"):
        for _ in range(events_module.QUEUE + events_module.BATCH + 100):
            log.login("alice", "10.0.0.1", accepted=True)  # never waits, never raises
        release.set()
        log.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "behind" in warnings[0].getMessage()
    assert 0 < log.dropped <= events_module.BATCH + 100


def test_describe_keeps_only_the_named_arguments():
    assert describe("login", {"name": "al", "client_nonce": b"x", "proof": b"y"}) == "name='al'"
    assert describe("exposed_unknown", {"path": "/a"}) == ""
    assert describe("put", {"path": "/a", "mode": 0o600, "written": ((1, 2),), "size": 3}) \
        == "path='/a' size=3"
    long = describe("mkdir", {"path": "/" + "a" * 5000})
    assert len(long) == events_module.DETAIL_MAX and long.endswith("...")


# --- the boundary's measurements ---------------------------------------------------------------

def _sample(name, labels):
    text = generate_latest(metrics.node_registry(())).decode()
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_boundary_counts_calls_and_errors_by_method():
    session = FakeSession(user="alice")
    calls = _sample("dfs_request_seconds_count", {"op": "fail"})
    failed = _sample("dfs_request_errors_total", {"op": "fail", "error": "FileNotFound"})
    with pytest.raises(errors.FileNotFound):
        session.exposed_fail("x")
    assert _sample("dfs_request_seconds_count", {"op": "fail"}) == calls + 1
    assert _sample("dfs_request_errors_total", {"op": "fail", "error": "FileNotFound"}) \
        == failed + 1


# --- the status page ---------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>&\'"'


def test_page_escapes_everything_that_comes_from_outside():
    worker = wire.WorkerStatus(HOSTILE, "<b>host</b>", 1, True, 3, 10, 20, 0, 0.5)
    status = wire.ClusterStatus("master", 2, "127.0.0.1:1", (worker,), 1, 5, "in sync",
                                (HOSTILE,), "", "")
    event = wire.Event(1, 1000.0, "<i>user</i>", "10.0.0.1", "<op>", "secret path",
                       "mkdir #1", "<refused>")
    page = render(status, True, "", 1000, 500, [event], 2000.0)
    assert "<script" not in page and "<b>host" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;&quot;" in page
    assert "&lt;i&gt;user&lt;/i&gt;" in page and "&lt;refused&gt;" in page
    assert "secret path" not in page  # events show no detail on the page
    assert "standby:" not in page


def test_page_of_a_standby_says_so():
    status = wire.ClusterStatus("shadow", 2, "127.0.0.1:2", (), 0, 5, "no standby", (), "", "")
    page = render(status, False, "127.0.0.1:1", 0, 0, [], 2000.0)
    assert "This server is the standby: the leader is 127.0.0.1:1" in page


# --- where the HTTP port listens ----------------------------------------------------------------

def test_the_metrics_port_follows_the_node_port_unless_set(tmp_path):
    assert metrics_port(18861, None) == 19861 and metrics_port(18870, None) == 19870
    assert metrics_port(0, None) == 0  # a node on any free port: its metrics on any, too
    assert metrics_port(65000, None) == 0  # past 65535: any free one
    assert metrics_port(18861, 9100) == 9100 and metrics_port(18861, 0) == 0
    assert metrics_port(18861, METRICS_OFF) is None
    assert MasterConfig(str(tmp_path)).validate().metrics_host == "127.0.0.1"  # loopback
    with pytest.raises(errors.InvalidArgument):
        MasterConfig(str(tmp_path), metrics_port=70000).validate()
    with pytest.raises(errors.InvalidArgument):
        MasterConfig(str(tmp_path), events_bytes=1000).validate()


# --- the CLI ------------------------------------------------------------------------------------

def test_since_and_event_lines():
    assert parse_since("10m", now=10_000.0) == 9_400.0
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since("2026-05-01 14:30") > parse_since("2026-05-01")
    with pytest.raises(errors.InvalidArgument):
        parse_since("yesterday-ish")
    line = format_event(wire.Event(3, 0.0, "worker:\x1b[31mred", "10.0.0.1", "login", "",
                                   "", "refused"))
    assert "\x1b" not in line and "\\x1b[31mred" in line and line.endswith("REFUSED")
    assert printable("plain /path") == "plain /path"

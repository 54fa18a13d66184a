"""Master + shadow + 4 workers as real processes: kill -9, SIGSTOP, restarts. Every file
whose put returned must be intact afterwards; never two leaders; clients ride through."""

import signal
import threading

import pytest
from conftest import cluster_config, random_bytes, sha256

from dfs import errors
from dfs.local.cluster import LocalCluster, wait_for

# This module kills, pauses and restarts metadata servers on purpose: what they log about it.
pytestmark = pytest.mark.log_allows(
    r"steps down to standby", r"lost its majority of voters",
    r"standby unreachable .*: marking it stale", r"silent for [\d.]+s: dead")


@pytest.fixture
def ha(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "ha", snapshot_every=50)) as cluster:
        yield cluster


def _payload(i):
    return random_bytes(500 + (i * 7919) % 300_000, seed=i)


class Writer:
    """Puts files in a loop from a thread; remembers what each acknowledged put stored."""

    def __init__(self, client, prefix):
        self.client, self.prefix = client, prefix
        self.acked = {}
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        i = 0
        while not self.stop.is_set():
            path = f"{self.prefix}{i}"
            try:
                self.client.put_bytes(path, _payload(i))
                self.acked[path] = i
            except errors.DfsError as exc:
                self.errors.append(exc)
            i += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def wait_for_more(self, count, seconds=60):
        target = len(self.acked) + count
        wait_for(lambda: len(self.acked) >= target or self.errors, seconds,
                 f"{count} more acknowledged puts")
        assert not self.errors, self.errors


def _check_all(client, acked):
    for path, i in acked.items():
        assert sha256(client.read_bytes(path)) == sha256(_payload(i)), path


def _status(cluster):
    with cluster.admin_client(failover_deadline=30) as admin:
        return admin.status()


def _leader(cluster):
    return wait_for(cluster.leader, 30, "a leader")


def _in_sync(cluster):
    wait_for(lambda: _status(cluster).standby == "in sync", 60, "the standby in sync")


def test_kill_9_of_the_leader_under_load_loses_nothing(ha):
    with ha.client("alice", failover_deadline=60) as dfs, Writer(dfs, "/a") as writer:
        writer.wait_for_more(10)
        old = _leader(ha)
        old.stop(signal.SIGKILL)
        writer.wait_for_more(10)
        assert _leader(ha) is not old
    with ha.client("alice") as check:
        _check_all(check, writer.acked)


def test_sigstop_of_the_leader_gives_no_split_brain(ha):
    with ha.client("alice", failover_deadline=60) as dfs, Writer(dfs, "/s") as writer:
        writer.wait_for_more(5)
        old = _leader(ha)
        old.send_signal(signal.SIGSTOP)
        try:
            new = wait_for(lambda: ha.leader() not in (None, old) and ha.leader(), 30,
                           "the standby to take over")
            writer.wait_for_more(10)
        finally:
            old.send_signal(signal.SIGCONT)
        wait_for(lambda: ha.leader() is new, 30, "one leader after the resume")
        _in_sync(ha)  # the old leader rejoined as the standby
        writer.wait_for_more(5)
    assert new is not old and not writer.errors
    with ha.client("alice") as check:
        _check_all(check, writer.acked)


def test_standby_killed_under_load_catches_up_and_can_take_over(ha):
    with ha.client("alice", failover_deadline=60) as dfs, Writer(dfs, "/b") as writer:
        writer.wait_for_more(5)
        leader = _leader(ha)
        standby = ha.shadow if leader is ha.master else ha.master
        standby.stop(signal.SIGKILL)
        writer.wait_for_more(10)
        assert _status(ha).standby.startswith("stale from entry")
        standby.start(ha.env, False)
        standby.wait_ready()
        _in_sync(ha)
        leader.stop(signal.SIGKILL)  # right after: the caught-up standby must take over
        writer.wait_for_more(10)
        assert ha.leader() is standby
    with ha.client("alice") as check:
        _check_all(check, writer.acked)


def test_ten_kill_restart_cycles_alternating_roles(ha):
    acked = {}
    with ha.client("alice", failover_deadline=60) as dfs:
        for cycle in range(10):
            leader = _leader(ha)
            leader.stop(signal.SIGKILL)
            path = f"/cycle{cycle}"
            dfs.put_bytes(path, _payload(cycle))  # rides through the failover
            acked[path] = cycle
            assert _leader(ha) is not leader
            leader.start(ha.env, False)
            leader.wait_ready()
            _in_sync(ha)
        _check_all(dfs, acked)

"""t3: file locks at real metadata servers, through real clients' lock sessions
(dfs.client.locks): a client whose lease ran out gives its locks up and they go to another
after the leader's lease; a kill -9 of the leader loses no lock, as the holders reclaim
them in the new leader's grace period, during which nobody else gets one."""

import signal
import time

import pytest
from conftest import cluster_config

from dfs.client.locks import LockSession
from dfs.local.cluster import LocalCluster, wait_for
from dfs.wire import LOCK_EOF, LockRange

LOCK_LEASE = 10.0  # more than a failover takes, as a real lease must be
DEADLINE = 120.0

pytestmark = pytest.mark.log_allows(
    r"steps down to standby", r"lost its majority of voters",
    r"standby unreachable .*: marking it stale", r"silent for [\d.]+s: dead",
    r"file lock\(s\) lost")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    config = cluster_config(tmp_path_factory.mktemp("locks"), lock_lease=LOCK_LEASE)
    with LocalCluster(config) as running:
        yield running


@pytest.fixture(scope="module")
def shared(cluster):
    """(alice's client, bob's client, the inode of a file both may lock)."""
    with cluster.client("alice") as alice, cluster.client("bob") as bob:
        alice.put_bytes("/shared.lock", b"x" * 100, mode=0o666)
        yield alice, bob, alice.stat("/shared.lock").ino


def test_a_client_whose_lease_ran_out_drops_its_locks_and_another_gets_them(shared):
    alice, bob, ino = shared
    skew = [0.0]
    mine = LockSession(alice, clock=lambda: time.monotonic() + skew[0])
    theirs = LockSession(bob)
    try:
        assert mine.lock("posix", ino, 1, 0, 10, "w").granted
        assert not theirs.lock("posix", ino, 2, 0, 10, "w").granted
        old_session = mine.id
        skew[0] = LOCK_LEASE + 1  # as if paused for longer than the lease
        mine.renew()
        assert not mine.holds("posix", ino, 1) and mine.id != old_session
        # the leader frees them a lease after it last heard of the old session
        wait_for(lambda: theirs.lock("posix", ino, 2, 0, 10, "w", wait=1.0).granted,
                 DEADLINE, "the old session's lease to lapse at the leader")
        assert not mine.lock("posix", ino, 1, 5, 6, "r").granted  # a new session, no lock
    finally:
        mine.close()
        theirs.close()


def test_locks_survive_a_kill_9_of_the_leader_by_reclaim_in_its_grace_period(cluster,
                                                                             shared):
    alice, bob, ino = shared
    mine, theirs = LockSession(alice), LockSession(bob)
    try:
        assert mine.lock("posix", ino, 1, 0, 100, "w").granted
        assert mine.lock("posix", ino, 1, 200, 300, "r").granted
        assert mine.lock("flock", ino, 7, 0, LOCK_EOF, "w").granted
        assert theirs.lock("posix", ino, 2, 250, 260, "r").granted  # shared with alice's
        refused = theirs.lock("posix", ino, 2, 50, 60, "w")
        assert not refused.granted and refused.holder == LockRange(0, 100, "w")
        wait_for(cluster.leader, 30, "a leader").stop(signal.SIGKILL)
        answers = []

        def settled():  # through the failover, then the new leader's grace period
            answers.append(theirs.lock("posix", ino, 2, 50, 60, "w"))
            return not answers[-1].grace
        wait_for(settled, DEADLINE, "the new leader's grace period to end")
        assert not any(a.granted for a in answers)
        assert answers[-1].holder == LockRange(0, 100, "w")  # alice reclaimed it
        assert not theirs.lock("flock", ino, 8, 0, LOCK_EOF, "r").granted
        assert not theirs.lock("posix", ino, 2, 210, 220, "w").granted  # her shared range
        assert theirs.lock("posix", ino, 2, 250, 260, "r").granted  # bob's own, reclaimed
        mine.release("posix", ino, 1)
        assert theirs.lock("posix", ino, 2, 50, 60, "w").granted
    finally:
        mine.close()
        theirs.close()

"""Journal replication in one process: the leader's Replicator sends to a real standby
MasterState through its signed peer endpoints (ClusterEndpoints), with no socket. The
standby applies every entry in order; an unreachable or lagging standby is marked stale
before anything goes on without it, and a snapshot brings it back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import SteppedClock

from dfs import auth, errors
from dfs.config import MasterConfig
from dfs.journal import encode
from dfs.namespace import entries
from dfs.namespace.entries import Entry, Record
from dfs.namespace.model import ROOT_INO, Namespace
from nodes.master.cluster_service import ClusterEndpoints
from nodes.master.links import PeerLink
from nodes.master.replication import Replicator
from nodes.master.state import MasterState

TOKEN = "ab" * 32
EPOCH = 3


class InProcessPeer(PeerLink):
    """PeerLink's own signing, with the "network" a direct call of the endpoint; ``down``
    makes it unreachable, ``lose`` drops the next replicate call on the floor."""

    def __init__(self, endpoints: ClusterEndpoints, secret: bytes) -> None:
        super().__init__("127.0.0.1", 1, secret, endpoints.state.me)
        self.endpoints = endpoints
        self.down = False
        self.lose = 0
        self.calls: list[str] = []

    def _call(self, remote: str, args: tuple[object, ...], timeout: float | None) -> object:
        self.calls.append(remote)
        if self.down:
            raise errors.Unavailable("standby unreachable")
        if remote == "peer_replicate" and self.lose:
            self.lose -= 1  # the standby never hears it: it will be one entry behind
            raise errors.Unavailable("timed out")
        return getattr(self.endpoints, "exposed_" + remote)(*args)

    def _send(self, remote: str, args: tuple[object, ...]) -> Callable[[], object]:
        answer = self._call(remote, args, None)  # no socket: answered as it is sent
        return lambda: answer


class FakeLeadership:
    """The leader's election state as replication sees it: marks recorded, never lost."""

    def __init__(self) -> None:
        self.epoch = EPOCH
        self.marks: list[int] = []
        self.cleared = 0
        self.stepped_down: list[int] = []
        self.majority = True

    def serving(self, now: float) -> bool:
        return not self.stepped_down

    def step_down(self, epoch: int) -> None:
        self.stepped_down.append(epoch)

    def mark_standby_stale(self, from_seq: int) -> bool:
        if self.majority:
            self.marks.append(from_seq)
        return self.majority

    def clear_standby_stale(self, only: set[str] | None = None) -> set[str]:
        self.cleared += 1
        return set()


class Leader:
    """The leader's half, as MasterState does it: under the lock each entry is applied and
    handed to the replication stream; outside it, wait until the standby covers them."""

    def __init__(self, peer: InProcessPeer) -> None:
        self.ns = Namespace()
        self.lock = threading.RLock()
        self.leadership = FakeLeadership()
        self.replicator = Replicator(peer, "shadow", self.leadership, self.lock,
                                     SteppedClock(), lambda: encode(self.ns.to_json()),
                                     lambda: self.ns.seq, standby_marked=lambda: False)
        self.replicator.reset(leading=True, epoch=EPOCH)
        self.replicator.start()

    def commit(self, *batch: Entry) -> None:
        with self.lock:
            term = self.replicator.term
            for entry in batch:
                record = Record(self.ns.seq + 1, EPOCH, entry)
                self.ns.apply(record)
                self.replicator.submit(record.seq, record.to_line())
            seq = self.ns.seq
        self.replicator.wait(seq, term)  # acknowledged only past this


def mkdir(name: str, ino: int) -> entries.Mkdir:
    return entries.Mkdir(parent=ROOT_INO, name=name, ino=ino, uid=0, gid=0, mode=0o755,
                         time_ns=1)


@pytest.fixture
def standby(tmp_path: Path) -> Iterator[MasterState]:
    config = MasterConfig(data_dir=str(tmp_path / "shadow"), role="shadow",
                          peer=("127.0.0.1", 1), join_token=TOKEN)
    state = MasterState(config, clock=SteppedClock())
    yield state
    state.snapshot_and_close()


@pytest.fixture
def peer(standby: MasterState) -> InProcessPeer:
    return InProcessPeer(ClusterEndpoints(standby), auth.voter_secret(TOKEN))


def started(leader: Leader) -> None:
    leader.commit(entries.Init(chunk_size=1 << 20, time_ns=1))
    leader.commit(entries.AddUser(name="admin", admin=True, stored_key="k"))


def test_entries_arrive_in_order_and_are_journaled(standby: MasterState,
                                                   peer: InProcessPeer, tmp_path: Path) -> None:
    leader = Leader(peer)
    started(leader)  # the first commit finds the standby out of sync: a snapshot first
    assert peer.calls[:3] == ["peer_ping", "peer_install", "peer_replicate"]
    assert leader.replicator.describe() == "in sync"
    for i in range(20):
        leader.commit(mkdir(f"d{i}", 2 + i))
    leader.commit(mkdir("x", 30), mkdir("y", 31))  # a group commit: in order
    assert standby.seq == leader.ns.seq == 24
    assert standby.ns.to_json() == leader.ns.to_json()
    assert leader.leadership.marks == []
    standby.journal.close()
    replay = MasterState(standby.config, clock=SteppedClock())  # what it fsynced
    assert replay.ns.to_json() == leader.ns.to_json()
    replay.journal.close()


def test_an_entry_out_of_order_is_refused_as_a_gap(standby: MasterState,
                                                   peer: InProcessPeer) -> None:
    leader = Leader(peer)
    started(leader)
    ahead = Record(standby.seq + 2, EPOCH, mkdir("far", 9)).to_line()
    assert peer.replicate(EPOCH, (ahead,)) == ("gap", 2)
    assert standby.seq == 2 and "far" not in standby.ns.inodes[ROOT_INO].children


def test_a_lagging_standby_is_marked_stale_then_synced_by_a_snapshot(
        standby: MasterState, peer: InProcessPeer) -> None:
    leader = Leader(peer)
    started(leader)
    peer.lose = 1
    leader.commit(mkdir("lost", 2))  # the standby did not get it: stale from entry 3
    assert leader.leadership.marks == [3]
    assert leader.replicator.describe() == "stale from entry 3"
    assert standby.seq == 2
    leader.commit(mkdir("alone", 3))  # marked once: the leader goes on alone
    assert leader.leadership.marks == [3] and standby.seq == 2
    leader.replicator.sync()
    assert leader.replicator.describe() == "in sync" and leader.leadership.cleared == 1
    assert standby.ns.to_json() == leader.ns.to_json()
    leader.commit(mkdir("after", 4))
    assert standby.seq == leader.ns.seq == 5


def test_an_unreachable_standby_without_a_majority_stops_the_leader(
        standby: MasterState, peer: InProcessPeer) -> None:
    leader = Leader(peer)
    started(leader)
    peer.down = True
    leader.leadership.majority = False
    with pytest.raises(errors.Unavailable):  # never acknowledged
        leader.commit(mkdir("never", 2))
    assert leader.leadership.stepped_down == [EPOCH]
    assert standby.seq == 2


def test_a_standby_of_a_newer_epoch_refuses_and_the_leader_steps_down(
        standby: MasterState, peer: InProcessPeer) -> None:
    leader = Leader(peer)
    started(leader)
    standby.voter.epoch = EPOCH + 1
    with pytest.raises(errors.NotLeader):
        leader.commit(mkdir("old", 2))
    assert leader.leadership.stepped_down == [EPOCH + 1]
    assert standby.seq == 2


def test_peer_calls_need_the_cluster_secret(standby: MasterState) -> None:
    stranger = InProcessPeer(ClusterEndpoints(standby), auth.voter_secret("cd" * 32))
    with pytest.raises(errors.AuthenticationFailed):
        stranger.ping()
    with pytest.raises(errors.AuthenticationFailed):
        stranger.install(EPOCH, b"{}")
    assert standby.seq == 0


def test_tick_expires_pending_chunks_and_trash_on_the_wall_clock(tmp_path: Path) -> None:
    clock, wall = SteppedClock(), SteppedClock(1_000_000.0)
    state = MasterState(MasterConfig(data_dir=str(tmp_path / "m"), join_token=TOKEN),
                        clock=clock, wall=wall)
    state.elect()  # alone, no voters: the bootstrap master leads at once
    with state.lock:
        state.ensure_initialised()
        state.commit(entries.Alloc(owner="admin", first=1, count=3, expires=wall() + 10))
    state.tick()
    assert sorted(state.ns.pending) == [1, 2, 3]
    wall.step(11)  # the monotonic clock has not moved: only wall time decides expiry
    state.tick()
    assert state.ns.pending == {}
    state.snapshot_and_close()

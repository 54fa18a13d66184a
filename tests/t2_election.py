"""Leadership, deterministically: in-process voters and servers, a clock stepped by hand,
a network that drops, partitions and pauses (tests/election_harness.py). After every step:
never two servers that could change anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import election_harness
import pytest
from election_harness import LEASE, STEP, Link

from nodes.master.election import STANDBY, Electorate, Leadership
from nodes.master.voter import Voter

WORKERS = ["w1", "w2", "w3", "w4"]


class World(election_harness.World):
    """Two servers, A and B, and four workers' voters; pairs of nodes may be cut apart."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.tmp = tmp_path
        self.cut: set[frozenset[str]] = set()  # pairs that cannot talk
        self.voters = {w: Voter(str(tmp_path / f"{w}.json"), self.clock, LEASE) for w in WORKERS}
        for name in ("A", "B"):
            self.start_server(name)

    def start_server(self, name: str) -> None:
        voter = Voter(str(self.tmp / f"{name}.json"), self.clock, LEASE)
        self.voters[name] = voter
        peer = "B" if name == "A" else "A"

        def links() -> Electorate:
            return {v: Link(self, name, v) for v in [*WORKERS, peer]}
        self.servers[name] = Leadership(name, voter, links, LEASE, bootstrap=(name == "A"),
                                        peer_id=peer)
        self.down.discard(name)

    def reachable(self, a: str, b: str) -> bool:
        return super().reachable(a, b) and frozenset((a, b)) not in self.cut

    def run_until(self, condition: Callable[[], bool], seconds: float = 30) -> None:
        for _ in range(int(seconds / STEP)):
            if condition():
                return
            self.step()
        raise AssertionError("condition not reached")


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.run_until(lambda: w.serving() == ["A"])
    return w


def test_a_fresh_cluster_elects_the_master(world: World) -> None:
    assert world.servers["A"].epoch >= 1 and world.servers["B"].role == STANDBY


def test_leader_dies_the_standby_takes_over(world: World) -> None:
    epoch = world.servers["A"].epoch
    world.down.add("A")
    world.run_until(lambda: world.serving() == ["B"])
    assert world.servers["B"].epoch > epoch


def test_standby_dies_the_leader_goes_on(world: World) -> None:
    world.down.add("B")
    for _ in range(40):
        world.step()
        assert world.serving() == ["A"]


def test_paused_leader_resumes_and_steps_down(world: World) -> None:
    world.down.add("A")  # SIGSTOP: no ticks, no answers; its clock runs on
    world.run_until(lambda: world.serving() == ["B"])
    world.down.discard("A")  # SIGCONT
    assert not world.servers["A"].serving(world.clock.now)  # its leases have lapsed
    world.run_until(lambda: world.servers["A"].role == STANDBY)
    for _ in range(20):
        world.step()
        assert world.serving() == ["B"]


def test_leader_cut_off_from_the_workers_loses_to_the_standby(world: World) -> None:
    for w in WORKERS:
        world.cut.add(frozenset(("A", w)))
    world.run_until(lambda: world.serving() == ["B"])
    for w in WORKERS:
        world.cut.discard(frozenset(("A", w)))
    world.run_until(lambda: world.servers["A"].role == STANDBY)
    assert world.serving() == ["B"]  # the healed old leader rejoined as standby


def test_both_servers_restart_and_one_leads(world: World) -> None:
    world.down.update(("A", "B"))
    world.step(4)
    world.start_server("A")
    world.start_server("B")
    world.run_until(lambda: len(world.serving()) == 1)
    world.step(int(10 / STEP))  # and it stays that way
    assert len(world.serving()) == 1


def test_a_stale_standby_can_never_win(world: World) -> None:
    world.down.add("B")
    assert world.servers["A"].mark_standby_stale(from_seq=42)
    world.down.add("A")
    world.down.discard("B")
    for _ in range(int(30 / STEP)):
        world.step()
        assert "B" not in world.serving()
    world.start_server("A")  # the up-to-date server comes back and leads again
    world.run_until(lambda: world.serving() == ["A"])


def test_a_minority_cannot_mark_the_standby_stale(world: World) -> None:
    for w in WORKERS[:3]:
        world.down.add(w)
    world.down.add("B")
    assert not world.servers["A"].mark_standby_stale(from_seq=7)


def test_a_restarted_voter_keeps_its_vote(world: World, tmp_path: Path) -> None:
    world.down.add("A")
    world.clock.now += LEASE + 1  # w1's lease to A has run out
    voter = world.voters["w1"]
    assert voter.vote(50, "B") == (True, 50)
    again = Voter(str(tmp_path / "w1.json"), world.clock, LEASE)
    world.clock.now += LEASE + 1
    assert again.vote(50, "A")[0] is False  # one vote per epoch, even after a restart

"""The electorate changing under the election (nodes/master/membership.py, DESIGN section 5),
deterministically: in-process voters and two servers, a clock stepped by hand. Each server
counts the voters of its own view, as a metadata server counts those of its namespace; a
removal reaches the two views one after the other, as a journal entry does. After every
step: never two servers that could change anything (tests/election_harness.py)."""

from __future__ import annotations

import random
from pathlib import Path

import election_harness
import pytest
from election_harness import LEASE, STEP, Link

from nodes.master.election import Electorate, Leadership
from nodes.master.voter import Voter

WORKERS = ["w1", "w2", "w3", "w4", "w5"]


class World(election_harness.World):
    """Two servers, A and B, each counting the voters of its own view of the electorate."""

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.voters = {v: Voter(str(tmp / f"{v}.json"), self.clock, LEASE)
                       for v in [*WORKERS, "A", "B"]}
        self.views = {"A": set(WORKERS), "B": set(WORKERS)}  # each server's electorate
        for name, peer in (("A", "B"), ("B", "A")):
            def links(name: str = name, peer: str = peer) -> Electorate:
                return {v: Link(self, name, v) for v in [*sorted(self.views[name]), peer]}
            self.servers[name] = Leadership(name, self.voters[name], links, LEASE,
                                            bootstrap=name == "A", peer_id=peer)

    def settle(self, seconds: float = 20) -> None:
        self.step(int(seconds / STEP))

    def remove(self, voter: str) -> None:
        """A removal reaches the standby first (replicated), then the leader (applied)."""
        for name in ("B", "A"):
            self.views[name].discard(voter)
            self.step()

    def add(self, voter: str, tmp: Path) -> None:
        """A new worker joins: the standby's view first, then the leader's."""
        self.voters[voter] = Voter(str(tmp / f"{voter}.json"), self.clock, LEASE)
        for name in ("B", "A"):
            self.views[name].add(voter)
            self.step()


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.settle(5)
    assert w.serving() == ["A"]
    return w


def test_one_dead_extra_worker_and_two_more_dead_leave_no_majority(world: World) -> None:
    world.down |= {"w5", "w4", "w3"}
    world.settle()
    assert world.serving() == []  # w1, w2 and B: 3 of 6


def test_removing_the_dead_worker_keeps_the_majority(world: World) -> None:
    world.down.add("w5")
    world.settle(5)
    world.remove("w5")
    world.down |= {"w4", "w3"}
    world.settle()
    assert world.serving() == ["A"]  # w1, w2 and B: 3 of 5


def test_after_a_removal_the_standby_is_elected_where_it_could_not_be(world: World,
                                                                      tmp_path: Path) -> None:
    world.down |= {"w5", "w4"}
    world.settle(5)
    world.remove("w5")
    world.down.add("A")
    world.settle()
    assert world.serving() == ["B"]  # w1, w2, w3 of w1-w4 and A; with w5 it needs 4 of 6


def test_the_removed_voter_counts_for_nobody(world: World) -> None:
    world.remove("w5")
    world.down |= {"w1", "w2", "w3"}  # only w4 and w5 (removed) answer, and B
    world.settle()
    assert world.serving() == []  # w4 and B: 2 of 5; w5's lease does not count


def test_a_resumed_leader_never_leads_in_the_epoch_its_voter_learnt(world: World) -> None:
    """A paused leader's own voter grants the new leader a lease (epoch 2) before the old
    one ticks again: the old one must step down, not renew its leases in epoch 2."""
    world.down.add("A")
    world.settle()
    assert world.serving() == ["B"]
    world.down.discard("A")
    world.clock.now += STEP
    world.servers["B"].tick(world.clock.now)  # asks A's voter too: it learns epoch 2
    world.servers["A"].tick(world.clock.now)
    assert world.serving() == ["B"]
    world.settle(5)
    assert world.serving() == ["B"]


@pytest.mark.parametrize("seed", range(12))
def test_membership_changes_during_failovers_never_make_two_leaders(tmp_path: Path,
                                                                    seed: int) -> None:
    """Servers crash and return, voters die, and voters are removed and new ones join, one
    at a time (the standby's view first) while it all happens; ``step`` checks every quarter
    second."""
    rng = random.Random(seed)
    world = World(tmp_path)
    world.settle(5)
    joined = 0
    for _ in range(40):
        event = rng.random()
        if event < 0.3:
            server = rng.choice(["A", "B"])
            world.down ^= {server}  # crash, or come back
        elif event < 0.5:
            voter = rng.choice(sorted(world.views["A"]))
            world.down ^= {voter}
        elif event < 0.65 and len(world.views["A"]) > 2:
            world.remove(rng.choice(sorted(world.views["A"])))
        elif event < 0.75:
            joined += 1
            world.add(f"n{joined}", tmp_path)
        world.step(rng.randint(1, 16))
    world.down.clear()  # everything back: one of them leads again
    world.settle(30)
    assert len(world.serving()) == 1

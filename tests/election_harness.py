"""Leadership in-process, for t2_election and t2_membership: voters and servers
(nodes.master.election.Leadership) on one clock stepped by hand, reached through a
simulated network in which nodes go down. After every step: never two servers that could
change anything."""

from __future__ import annotations

from helpers import SteppedClock

from dfs import errors
from nodes.master.election import Leadership
from nodes.master.voter import Answer, Voter

LEASE = 3.0
STEP = 0.25


class Link:
    """A voter as seen from ``source`` through the simulated network."""

    def __init__(self, world: World, source: str, target: str) -> None:
        self.world, self.source, self.target = world, source, target

    def _voter(self) -> Voter:
        if not self.world.reachable(self.source, self.target):
            raise errors.Unavailable(f"{self.target} unreachable from {self.source}")
        return self.world.voters[self.target]

    def lease(self, epoch: int, leader: str) -> Answer:
        return self._voter().lease(epoch, leader)

    def vote(self, epoch: int, candidate: str) -> Answer:
        return self._voter().vote(epoch, candidate)

    def mark_stale(self, epoch: int, server: str, from_seq: int) -> Answer:
        return self._voter().mark_stale(epoch, server, from_seq)

    def clear_stale(self, epoch: int, server: str) -> Answer:
        return self._voter().clear_stale(epoch, server)


class World:
    """The clock, the voters and servers, and which of them are down (crashed or paused:
    neither answers nor ticks). A test module's World adds its servers."""

    def __init__(self) -> None:
        self.clock = SteppedClock()
        self.down: set[str] = set()
        self.voters: dict[str, Voter] = {}
        self.servers: dict[str, Leadership] = {}

    def reachable(self, a: str, b: str) -> bool:
        return a not in self.down and b not in self.down

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            self.clock.now += STEP
            for name, server in self.servers.items():
                if name not in self.down:
                    server.tick(self.clock.now)
            self.check()

    def serving(self) -> list[str]:
        return [n for n, s in self.servers.items() if s.serving(self.clock.now)]

    def check(self) -> None:
        assert len(self.serving()) <= 1, f"two leaders at {self.clock.now}: {self.serving()}"

"""The one retry policy: exponential backoff up to a deadline.

Every loop that tries something again (the client's failover, the mount, the backup
watcher, a worker's reporter, a poll for a result) asks a ``Backoff`` how long to wait, so
the schedule and the "give up" rule are decided here once. The clock and the sleep are
injectable, so tests step time by hand.

    backoff = RetryPolicy(deadline=60.0).start()
    while True:
        try:
            return attempt()
        except Unavailable:
            if not backoff.wait():
                raise
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

FIRST_DELAY = 0.05
MAX_DELAY = 1.0
WORKER_SUSPECT_SECONDS = 30.0
"""How long a worker that failed a call is tried after its replicas' other workers (a
worker cut off costs each read a timeout otherwise: dfs.client.connections.WorkerLinks)."""

Clock = Callable[[], float]
Sleep = Callable[[float], object]


@dataclass(frozen=True)
class RetryPolicy:
    """How to wait between tries: ``first`` seconds, doubling up to ``cap``, and no try
    that would start after ``deadline`` seconds (None: try forever)."""

    deadline: float | None
    first: float = FIRST_DELAY
    cap: float = MAX_DELAY

    def within(self, deadline: float | None) -> RetryPolicy:
        """The same schedule with another deadline."""
        return dataclasses.replace(self, deadline=deadline)

    def start(self, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Backoff:
        return Backoff(self, clock, sleep)


class Backoff:
    """One run of tries under a policy: ``wait()`` after each failure."""

    def __init__(self, policy: RetryPolicy, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.delay = policy.first
        self.ends = None if policy.deadline is None else clock() + policy.deadline

    def expired(self) -> bool:
        return self.ends is not None and self.clock() >= self.ends

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), None without one."""
        return None if self.ends is None else max(0.0, self.ends - self.clock())

    def next_delay(self) -> float | None:
        """The pause before the next try, or None when that try would miss the deadline.
        Advances the schedule."""
        delay = self.delay
        if self.ends is not None and self.clock() + delay > self.ends:
            return None
        self.delay = min(self.delay * 2, self.policy.cap)
        return delay

    def wait(self) -> bool:
        """Sleep before the next try; False (without sleeping) when it is time to give up."""
        delay = self.next_delay()
        if delay is None:
            return False
        self.sleep(delay)
        return True

    def reset(self) -> None:
        """A success: the next failure starts the schedule again."""
        self.delay = self.policy.first


def poll(condition: Callable[[], T | None], deadline: float, interval: float) -> T | None:
    """Call ``condition()`` every ``interval`` seconds until it returns something truthy
    (returned), or ``deadline`` seconds pass (None). The one polling loop: readiness waits
    of the local cluster and the mount's start and stop use it."""
    backoff = RetryPolicy(deadline, first=interval, cap=interval).start()
    while True:
        result = condition()
        if result:
            return result
        if not backoff.wait():
            return None

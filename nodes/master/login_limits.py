"""Failed logins, counted per source host and per user name.

After ``max_failures`` failures of one host (or for one name) within ``window`` seconds of
the first, further logins from that host (or as that name) are refused, without looking at
the key, until the window ends: a brute force gets ``max_failures`` guesses per window.
Both counts, because one machine may guess many names' keys and many machines one name's.
The price is that anyone can lock a name, or a host (on a loopback cluster: every local
user), out for the rest of a window; never for longer.

The log gets the first failure of a host's window and the moment something is locked, one
line each, never a line per attempt (``failed`` says what to log).

A successful login forgets its name's failures (a mistyped key), not its host's: an
attacker with an account of their own cannot reset their host's count that way.

Thread-safe (its own small lock, never the metadata lock); time from an injected
monotonic clock. One per metadata server (``MasterState.login_limits``), shared by all
its connections.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from dfs import errors
from dfs.config import MasterConfig

MAX_TRACKED = 10000
"""Windows remembered at most: a flood of made-up names cannot grow the table for ever."""


@dataclass
class _Window:
    start: float
    failures: int = 0


class LoginLimits:
    def __init__(self, max_failures: int, window: float, clock: Callable[[], float]) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.lock = threading.Lock()
        self.windows: dict[tuple[str, str], _Window] = {}  # ("host"|"name", value) -> window

    @classmethod
    def from_config(cls, config: MasterConfig, clock: Callable[[], float]) -> LoginLimits:
        return cls(config.login_failures, config.login_window, clock)

    def check(self, host: str, name: str) -> None:
        """Raise AuthenticationFailed while ``host`` or ``name`` is locked."""
        now = self.clock()
        with self.lock:
            ends = [w.start + self.window for w in self._current(host, name, now)
                    if w.failures >= self.max_failures]
        if ends:
            wait = max(1, math.ceil(max(ends) - now))
            raise errors.AuthenticationFailed(f"too many failed logins; try again in {wait} s")

    def failed(self, host: str, name: str) -> str | None:
        """Count one failure. -> the line to log for it, or None (said already)."""
        now = self.clock()
        with self.lock:
            by_host, by_name = (self._window(key, now) for key in (("host", host), ("name", name)))
            by_host.failures += 1
            by_name.failures += 1
        locked = [what for what, w in ((f"logins from {host or 'here'}", by_host),
                                       (f"logins as {name!r}", by_name))
                  if w.failures == self.max_failures]
        if locked:
            return (f"{self.max_failures} failed logins in {self.window:g} s (last: {name!r} "
                    f"from {host}): refusing {' and '.join(locked)} until the window ends")
        if by_host.failures == 1:
            return (f"failed login for {name!r} from {host} (more from there are counted, "
                    "not logged)")
        return None

    def succeeded(self, name: str) -> None:
        with self.lock:
            self.windows.pop(("name", name), None)

    def _current(self, host: str, name: str, now: float) -> list[_Window]:
        found = (self.windows.get(("host", host)), self.windows.get(("name", name)))
        return [w for w in found if w is not None and now < w.start + self.window]

    def _window(self, key: tuple[str, str], now: float) -> _Window:
        """The open window of ``key``, a new one if it had none (lock held)."""
        window = self.windows.get(key)
        if window is not None and now < window.start + self.window:
            return window
        self.windows.pop(key, None)
        if len(self.windows) >= MAX_TRACKED:
            self._forget_old(now)
        window = self.windows[key] = _Window(now)
        return window

    def _forget_old(self, now: float) -> None:
        """Drop closed windows; if that is not enough, the oldest (dicts keep order)."""
        for key in [k for k, w in self.windows.items() if now >= w.start + self.window]:
            del self.windows[key]
        while len(self.windows) >= MAX_TRACKED:
            del self.windows[next(iter(self.windows))]

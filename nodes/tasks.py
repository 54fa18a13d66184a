"""The one background-task object: every periodic loop of a node is a ``Task``.

A task calls ``action()`` on its own daemon thread, pausing ``interval`` seconds before
each call, until stopped. ``interval`` is a number, or a callable asked before each pause
when the pause depends on what the last pass found (a reconnect backoff, a pass that
starts at most every N seconds); a callable that answers 0 runs the action at once. An
action that raises is logged with its traceback and the loop goes on: a bug in one pass
must not end a node's housekeeping for good (NotLeader, leadership moving during a pass,
is only noted). The action reads time from its owner's
injected clock, so the same action is tested by calling ``tick()`` by hand.

Inside a long action, ``wait(seconds)`` pauses without delaying ``stop()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dfs import errors

log = logging.getLogger(__name__)

Interval = float | Callable[[], float]


class Task:
    def __init__(self, name: str, action: Callable[[], object], interval: Interval,
                 on_stop: Callable[[], object] | None = None) -> None:
        """``on_stop`` runs once on the task's thread when its loop has ended (to release
        what the action holds, such as a connection)."""
        self.name = name
        self.action = action
        self.interval = interval
        self.on_stop = on_stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One pass of the action, its failure logged (what the thread does each interval)."""
        try:
            self.action()
        except errors.Unavailable as exc:  # leadership moved, or this leader lost its
            log.info("%s: %s", self.name, exc)  # majority (a partition): the next pass sees
        except Exception:
            log.exception("%s failed", self.name)

    def next_pause(self) -> float:
        """Seconds to wait before the next pass."""
        interval = self.interval
        return max(0.0, interval() if callable(interval) else interval)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.next_pause()):
                self.tick()
        finally:
            if self.on_stop is not None:
                try:
                    self.on_stop()
                except Exception:
                    log.exception("%s: cleanup failed", self.name)

    def start(self) -> Task:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Pause inside an action; True (early) when the task is being stopped."""
        return self._stop.wait(seconds)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end; with ``timeout``, wait that long for the pass in progress."""
        self._stop.set()
        if timeout is not None and self._thread is not None \
                and self._thread is not threading.current_thread():
            self._thread.join(timeout)

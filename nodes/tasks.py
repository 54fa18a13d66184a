"""The one background-task object: every periodic loop of a node is a ``Task``.

A task calls ``action()`` every ``interval`` seconds on its own daemon thread until
stopped. An action that raises is logged with its traceback and the loop goes on: a bug in
one pass must not end a node's housekeeping for good. The action reads time from its
owner's injected clock, so the same action is tested by calling ``tick()`` by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Task:
    def __init__(self, name: str, action: Callable[[], object], interval: float) -> None:
        self.name = name
        self.action = action
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One pass of the action, its failure logged (what the thread does each interval)."""
        try:
            self.action()
        except Exception:
            log.exception("%s failed", self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def start(self) -> Task:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end; with ``timeout``, wait that long for the pass in progress."""
        self._stop.set()
        if timeout is not None and self._thread is not None \
                and self._thread is not threading.current_thread():
            self._thread.join(timeout)

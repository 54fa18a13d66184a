"""Keeps the uploaded, uncommitted chunks of open files alive at the master.

The master frees a chunk that was allocated and never committed after its ``gc_grace``
(600 s by default), so a file left open longer than that between its last write and its
close would lose those chunks at the commit. Every ``interval`` seconds this thread asks
each open file that has such chunks to renew them (``DfsFile.keep_new_chunks``); a file
busy at that moment renews on its own at its next upload.

One per client (so one per mount), started with the first file it watches; files are
held weakly, so a file that is dropped is forgotten.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol


class Renewable(Protocol):
    def keep_new_chunks(self, force: bool = False) -> None: ...


class Renewer:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.files: weakref.WeakSet[Renewable] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def watch(self, file: Renewable) -> None:
        with self.lock:
            self.files.add(file)
            if self.thread is None and not self.stopped.is_set():
                self.thread = threading.Thread(target=self._run, name="dfs-renew",
                                               daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                files = list(self.files)
            for file in files:
                file.keep_new_chunks(force=True)

    def stop(self) -> None:
        self.stopped.set()

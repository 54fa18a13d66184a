"""The change queue of `dfs backup`: what to do next, and when a file is complete.

Two kinds of work go through it, in this order of priority:

- operations (``Op``): moves, deletes, mkdirs and the start-up check, applied in the order
  they happened (a rename must be applied before the upload of the renamed file);
- syncs: relative paths of files that appeared or changed. A path becomes due only once
  its size and mtime have stayed the same for ``settle`` seconds since the last event, so a
  file still being written (copied, downloaded, saved) is not uploaded half-written.

The queue stats pending files itself (every ``check_interval``), so a writer that grows a
file without producing events (rare, but NFS and some editors do) is still waited for.

Nothing is dropped: a path stays pending until it is taken; a taken op is the taker's to
finish or to retry (the uploader keeps retrying it while the cluster is away).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, TypeVar

T = TypeVar("T")

Signature = tuple[int, int]
"""(size, mtime_ns) of a local regular file: it changed when this changed."""


class Scan(NamedTuple):
    """What a walk of the local folder found (relative, '/'-separated paths)."""

    files: dict[str, Signature]
    dirs: list[str]


class Op(NamedTuple):
    """One unit of work. kind: sync | move | delete | mkdir | verify."""

    kind: str
    path: str
    dest: str = ""
    is_dir: bool = False
    scan: Scan | None = None
    """verify only: the start-up scan to check against the cluster."""

    def describe(self) -> str:
        if self.kind == "move":
            return f"rename {self.path} -> {self.dest}"
        if self.kind == "verify":
            return "start-up check"
        return f"{self.kind} {self.path or '/'}"


class _Settling:
    """A pending path: the last (size, mtime_ns) seen and since when it has not changed."""

    __slots__ = ("signature", "since", "checked")

    def __init__(self, now: float) -> None:
        self.signature: Signature | None = None
        self.since = now
        self.checked = float("-inf")


def _under(rel: str, prefix: str) -> bool:
    return rel == prefix or rel.startswith(prefix + "/")


def _rename(table: dict[str, T], src: str, dst: str, is_dir: bool) -> None:
    """Re-key the entry ``src`` (or, ``is_dir``, every entry under it) to ``dst``."""
    for rel in [r for r in table if (_under(r, src) if is_dir else r == src)]:
        table[dst + rel[len(src):]] = table.pop(rel)


class ChangeQueue:
    """Pending paths with settle logic, plus ordered operations.

    ``stat(rel)`` returns (size, mtime_ns) of a regular file, or None when the path is gone
    or is not a regular file (the path is then dropped: there is nothing to upload).

    Threads: the watchdog observer thread and the main thread (scans) add; one taker
    thread (the uploader) takes. One lock guards every field; a Condition on it wakes the
    taker. ``stat`` runs outside the lock, so a slow disk never blocks the event thread.
    """

    def __init__(self, settle: float, stat: Callable[[str], Signature | None],
                 clock: Callable[[], float] = time.monotonic,
                 check_interval: float | None = None) -> None:
        self.settle = settle
        self.check_interval = check_interval if check_interval is not None else \
            max(0.02, min(0.25, settle / 4))
        self._stat = stat
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._ops: deque[Op] = deque()
        self._pending: dict[str, _Settling] = {}
        self._ready: dict[str, None] = {}  # in the order they became due
        self._busy = 0
        self._closed = False

    # --- producers ------------------------------------------------------------------------

    def changed(self, rel: str) -> None:
        """``rel`` appeared or changed: sync it once it has been still for ``settle``."""
        with self._lock:
            now = self._clock()
            self._ready.pop(rel, None)
            entry = self._pending.get(rel)
            if entry is None:
                self._pending[rel] = _Settling(now)
                self._wake.notify()
            else:
                entry.since = now

    def moved(self, src: str, dst: str, is_dir: bool) -> None:
        """A local rename: pending syncs follow the file, and the rename is queued."""
        with self._lock:
            _rename(self._pending, src, dst, is_dir)
            _rename(self._ready, src, dst, is_dir)
            self._ops.append(Op("move", src, dst, is_dir))
            self._wake.notify()

    def deleted(self, rel: str, is_dir: bool, mirror: bool) -> None:
        """A local delete: forget pending syncs under it; queue a remote delete if ``mirror``."""
        with self._lock:
            for table in (self._pending, self._ready):
                for r in [r for r in table if (_under(r, rel) if is_dir else r == rel)]:
                    del table[r]
            if mirror:
                self._ops.append(Op("delete", rel, is_dir=is_dir))
                self._wake.notify()

    def add(self, op: Op) -> None:
        with self._lock:
            self._ops.append(op)
            self._wake.notify()

    # --- the taker ----------------------------------------------------------------------

    def take(self, timeout: float) -> Op | None:
        """The next Op (operations first, then due syncs), or None after ``timeout`` seconds
        or once closed. The caller must call ``done()`` after finishing what it took."""
        deadline = self._clock() + timeout
        while True:
            with self._lock:
                if self._closed:
                    return None
                if self._ops:
                    self._busy += 1
                    return self._ops.popleft()
                if self._ready:
                    rel = next(iter(self._ready))
                    del self._ready[rel]
                    self._busy += 1
                    return Op("sync", rel)
                now = self._clock()
                due = [(rel, e) for rel, e in self._pending.items()
                       if now - e.checked >= self.check_interval]
                if not due:
                    if now >= deadline:
                        return None
                    wait = deadline - now
                    if self._pending:
                        wait = min(wait, self.check_interval)
                    self._wake.wait(wait)
                    continue
            self._check(due)

    def _check(self, due: list[tuple[str, _Settling]]) -> None:
        seen = [(rel, entry, self._stat(rel)) for rel, entry in due]
        with self._lock:
            now = self._clock()
            for rel, entry, signature in seen:
                if self._pending.get(rel) is not entry:
                    continue  # changed, moved or deleted meanwhile
                entry.checked = now
                if signature is None:
                    del self._pending[rel]
                elif signature != entry.signature:
                    entry.signature = signature
                    entry.since = now
                elif now - entry.since >= self.settle:
                    del self._pending[rel]
                    self._ready[rel] = None

    def done(self) -> None:
        with self._lock:
            self._busy -= 1

    # --- state ------------------------------------------------------------------------------

    def idle(self) -> bool:
        """Nothing pending, due, queued or being worked on."""
        with self._lock:
            return not (self._ops or self._pending or self._ready or self._busy)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"ops": len(self._ops), "settling": len(self._pending),
                    "due": len(self._ready), "busy": self._busy}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()

"""The mount's short-lived attribute cache.

``ls -l`` of a directory is one ``listdir`` RPC: readdir stores every entry's Stat here,
so the kernel's lookups and getattrs that follow are answered without a round trip.

Every entry lives ``ttl`` seconds (1 s by default, the same as the kernel's attribute
and entry timeouts), so changes made by other clients show up within about that time;
changes this mount makes itself update or drop the entries they touch at once. Only what
exists is cached: a name that is not there is always asked for (another client may have
just created it, and close-to-open consistency promises it is visible).

Thread-safe: one lock around the dict; nothing slow happens under it.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Iterable

from dfs.wire import DirEntry, Stat

SWEEP_EVERY = 4096  # insertions between sweeps of expired entries


def parent_of(path: str) -> str:
    return posixpath.dirname(path) or "/"


class AttrCache:
    def __init__(self, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.guard = threading.Lock()
        self.stats: dict[str, tuple[float, Stat]] = {}  # path -> (expires, Stat)
        self.inserts = 0

    # --- reading -------------------------------------------------------------------------

    def get(self, path: str) -> Stat | None:
        """The cached Stat of ``path``, or None if unknown or expired."""
        if self.ttl <= 0:
            return None
        with self.guard:
            item = self.stats.get(path)
            if item is None or item[0] < self.clock():
                return None
            return item[1]

    def last_known(self, path: str) -> Stat | None:
        """The Stat last cached for ``path``, even expired (kept 2 ttl): the kernel may
        still hold it, since its own timeout started when it was told, later."""
        with self.guard:
            item = self.stats.get(path)
            return item[1] if item is not None else None

    # --- filling -------------------------------------------------------------------------

    def put(self, path: str, stat: Stat) -> None:
        if self.ttl <= 0:
            return
        with self.guard:
            self._put(path, stat)

    def _put(self, path: str, stat: Stat) -> None:
        self.stats[path] = (self.clock() + self.ttl, stat)
        self.inserts += 1
        if self.inserts % SWEEP_EVERY == 0:
            too_old = self.clock() - self.ttl
            for key in [k for k, (expires, _v) in self.stats.items() if expires < too_old]:
                del self.stats[key]

    def put_listing(self, directory: str, entries: Iterable[DirEntry]) -> None:
        """Remember the attributes of a directory's entries: [DirEntry(name, stat)]."""
        if self.ttl <= 0:
            return
        base = directory.rstrip("/")
        with self.guard:
            for entry in entries:
                self._put(f"{base}/{entry.name}", entry.stat)

    # --- this mount's own changes ----------------------------------------------------------

    def added(self, path: str, stat: Stat) -> None:
        """``path`` was just created by this mount with attributes ``stat``."""
        if self.ttl <= 0:
            return
        parent = parent_of(path)
        with self.guard:
            self._put(path, stat)
            item = self.stats.get(parent)
            if item is not None:  # the parent's mtime moved with the new entry
                self.stats[parent] = (item[0], item[1]._replace(
                    mtime_ns=stat.ctime_ns, ctime_ns=stat.ctime_ns))

    def removed(self, path: str, tree: bool = False) -> None:
        """``path`` no longer exists (with ``tree``: nor anything that was below it)."""
        with self.guard:
            self.stats.pop(path, None)
            if tree:
                self._drop_tree(path)
            self.stats.pop(parent_of(path), None)  # mtime and, for directories, nlink changed

    def moved(self, old: str, new: str) -> None:
        """``old`` was renamed to ``new`` (replacing whatever ``new`` was)."""
        with self.guard:
            for path in (old, new):
                self._drop_tree(path)
                self.stats.pop(parent_of(path), None)

    def forget(self, path: str) -> None:
        """Drop what is known about ``path`` itself (its attributes changed)."""
        with self.guard:
            self.stats.pop(path, None)

    def _drop_tree(self, path: str) -> None:
        self.stats.pop(path, None)
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self.stats if k.startswith(prefix)]:
            del self.stats[key]

    def clear(self) -> None:
        with self.guard:
            self.stats.clear()

"""The mount's short-lived attribute cache.

``ls -l`` of a directory is one ``listdir`` RPC: readdir stores every entry's Stat here,
so the kernel's lookups and getattrs that follow are answered without a round trip.

Every entry lives ``ttl`` seconds (1 s by default, the same as the kernel's attribute
and entry timeouts), so changes made by other clients show up within about that time;
changes this mount makes itself update or drop the entries they touch at once.

Missing names are never cached: a name another client has just made and closed must
open at once (close-to-open, DESIGN section 2), so the kernel's lookup of every new name
before a mkdir or a create is a call to the master, as on MooseFS and JuiceFS by default.

Each directory knows its children that are cached or have something cached below them
(``children``), so forgetting a tree (a rename,
an rmdir) costs what is cached below it, not a scan of the whole cache; a new listing of a
directory drops the names it no longer has (another client removed them).

Look-ahead (Lustre's statahead): a program that stats a big folder's files one by one
after listing it (``find | xargs stat``, ``ls -l`` of a folder the kernel forgot, a backup
tool's walk) outlives the listing's second. The cache keeps the names of the last few
listed folders in their listed order, and ``ahead`` gives a miss the names that follow
it, so the mount asks the master for their stats in one call (``stat_many``) instead of
one call each. What comes back is fresh, and cached for ``ttl`` like any listing.
The names follow in the order the walk goes: the listing's, or the inodes' (``Order``):
``find`` (gnulib's fts) sorts a folder of more than 10,000 entries by inode number before
it visits them, and in the listing's (name) order each window of a walk in inode order
was mostly names it does not want (measured at 50,000 files: a stat_many every 47
files instead of every 512).

Hard links: the cache knows which of its paths name the same inode. A change seen through
one name (link, unlink, chmod, a write) updates the others too, or expires them when the
new attributes are not known (an unlink: one link fewer), and ``on_stale`` is told each
such path: the mount makes the kernel drop what it cached of that name (libfuse gives each
name its own kernel inode, so the kernel would show the old link count through the other
names for a whole attribute timeout).

Thread-safe: one lock around the dict; nothing slow happens under it.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Iterable

from dfs.wire import DirEntry, Stat

SWEEP_EVERY = 4096  # insertions between sweeps of expired entries, at least (and at
# least as many as there are entries: a sweep reads them all, so each costs O(1) an insert)
AHEAD_MIN = 64  # entries a listed folder needs for its order to be kept
AHEAD_MAX = 200_000  # ... and at most: the order costs about 100 bytes a name
ORDERS_KEPT = 4  # listed folders whose order is kept (the most recent)
EXPIRED = float("-inf")


def _nothing(path: str) -> None:
    """The on_stale of a cache nobody needs to hear from."""


def parent_of(path: str) -> str:
    return posixpath.dirname(path) or "/"


class Order:
    """A listed folder's names in their listed order, and in their inodes' order (made
    when first needed); ``before``, ``last``: the two latest names looked up in it."""

    def __init__(self, names: list[str], inos: list[int]) -> None:
        self.names = names
        self.position = {name: i for i, name in enumerate(names)}
        self.inos = inos
        self.by_ino: list[str] | None = None
        self.ino_position: dict[str, int] = {}
        self.before = self.last = ""

    def looked(self, name: str) -> None:
        if name != self.last:  # a getattr and a getxattr of one name are one step
            self.before, self.last = self.last, name

    def after(self, name: str, count: int) -> list[str] | None:
        """``name`` and the ``count`` - 1 names after it in the order the lookups follow:
        the listed one, unless the inodes' order brought the previous lookup closer."""
        start = self.position.get(name)
        if start is None:
            return None
        previous = self.position.get(self.before)
        if previous is None or start - previous == 1:  # a walk in the listed order
            return self.names[start:start + count]
        if self.by_ino is None:
            ranks = sorted(range(len(self.names)), key=self.inos.__getitem__)
            self.by_ino = [self.names[i] for i in ranks]
            self.ino_position = {n: i for i, n in enumerate(self.by_ino)}
        at, was = self.ino_position[name], self.ino_position[self.before]
        if at - was > 0 and (start <= previous or at - was < start - previous):
            return self.by_ino[at:at + count]
        return self.names[start:start + count]


class AttrCache:
    def __init__(self, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_stale: Callable[[str], None] = _nothing) -> None:
        self.ttl = ttl
        self.clock = clock
        self.on_stale = on_stale  # called without the lock held
        self.guard = threading.Lock()
        self.stats: dict[str, tuple[float, Stat]] = {}  # path -> (expires, Stat)
        self.names: dict[int, set[str]] = {}  # ino -> its paths in ``stats`` (hard links)
        self.children: dict[str, set[str]] = {}  # directory -> children known below it
        # directory -> (its names as listed, each name's position): for ``ahead``
        self.orders: dict[str, Order] = {}
        self.inserts = 0
        self.next_sweep = SWEEP_EVERY

    # --- reading -------------------------------------------------------------------------

    def get(self, path: str) -> Stat | None:
        """The cached Stat of ``path``, or None if unknown or expired."""
        if self.ttl <= 0:
            return None
        folder, _, name = path.rpartition("/")
        with self.guard:
            if self.orders:
                order = self.orders.get(folder or "/")
                if order is not None:
                    order.looked(name)
            item = self.stats.get(path)
            if item is None or item[0] < self.clock():
                return None
            return item[1]

    def ahead(self, path: str, count: int) -> list[str] | None:
        """``path`` and the names after it in its folder's last listing (in the order the
        lookups go: ``Order.after``), ``count`` at most; None when that folder's order is
        not kept or does not have it."""
        folder, _, name = path.rpartition("/")
        with self.guard:
            order = self.orders.get(folder or "/")
            return None if order is None else order.after(name, count)

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
            stale = self._put(path, stat, self.clock() + self.ttl)
            self._count(1)
        self._tell(stale)

    def _put(self, path: str, stat: Stat, expires: float) -> list[str]:
        """-> the other names of the inode whose cached attributes this changed."""
        old = self.stats.get(path)
        if old is not None and old[1].ino == stat.ino:
            names = self.names.get(stat.ino)
            if names is not None and len(names) == 1 and path in names:
                self.stats[path] = (expires, stat)  # a refresh: already linked and named
                return []
            self._unname(path, old[1].ino)
        elif old is not None:
            self._unname(path, old[1].ino)
        else:
            self._link(path)
        self.stats[path] = (expires, stat)
        names = self.names.setdefault(stat.ino, set())
        names.add(path)
        stale = []
        for other in names:
            if other != path and self.stats[other][1] != stat:
                self.stats[other] = (self.stats[other][0], stat)  # the same inode
                stale.append(other)
        return stale

    def _count(self, inserted: int) -> None:
        """Lock held: ``inserted`` entries were put; sweep out those expired a ttl ago
        once as many were put as the cache holds (SWEEP_EVERY at least)."""
        self.inserts += inserted
        if self.inserts < self.next_sweep:
            return
        too_old = self.clock() - self.ttl
        for key in [k for k, (expires, _v) in self.stats.items() if expires < too_old]:
            self._pop(key)
        self.next_sweep = self.inserts + max(SWEEP_EVERY, len(self.stats))

    def _pop(self, path: str) -> Stat | None:
        item = self.stats.pop(path, None)
        if item is None:
            return None
        self._unname(path, item[1].ino)
        self._unlink(path)
        return item[1]

    def _link(self, path: str) -> None:
        """``path`` is in ``stats``: it and the folders above it, up to one already linked,
        are in their parents' ``children`` (a folder that is not cached itself is linked
        while something below it is, so forgetting a tree finds everything)."""
        while path != "/":
            parent = parent_of(path)
            siblings = self.children.setdefault(parent, set())
            if path in siblings:
                return
            siblings.add(path)
            path = parent

    def _unlink(self, path: str) -> None:
        """``path`` left ``stats``: unlink it, and the folders above it that only linked
        it, unless something below it is still cached."""
        while path != "/" and path not in self.stats and not self.children.get(path):
            self.children.pop(path, None)
            parent = parent_of(path)
            siblings = self.children.get(parent)
            if siblings is None:
                return
            siblings.discard(path)
            if siblings:
                return
            path = parent

    def _unname(self, path: str, ino: int) -> None:
        names = self.names.get(ino)
        if names is not None:
            names.discard(path)
            if not names:
                del self.names[ino]

    def _expire_others(self, ino: int, path: str) -> list[str]:
        """The inode's other names are out of date (their Stat is kept for last_known)."""
        stale = [p for p in self.names.get(ino, ()) if p != path]
        for other in stale:
            self.stats[other] = (EXPIRED, self.stats[other][1])
        return stale

    def _put_all(self, items: Iterable[tuple[str, Stat]]) -> list[str]:
        """Lock held: _put each (path, Stat). -> every other name told of a change."""
        stale: list[str] = []
        expires = self.clock() + self.ttl
        inserted = 0
        for path, stat in items:
            changed = self._put(path, stat, expires)
            if changed:
                stale.extend(changed)
            inserted += 1
        self._count(inserted)
        return stale

    def _tell(self, stale: list[str]) -> None:
        for path in stale:
            self.on_stale(path)

    def put_listing(self, directory: str, entries: Iterable[DirEntry]) -> None:
        """Remember the attributes of a directory's entries: [DirEntry(name, stat)]."""
        if self.ttl <= 0:
            return
        base = directory.rstrip("/")
        with self.guard:
            listed = {f"{base}/{entry.name}": entry.stat for entry in entries}
            for gone in self.children.get(directory, set()) - listed.keys():
                self._drop_tree(gone)  # known here, gone there: another client's change
            stale = self._put_all(listed.items())
            self.orders.pop(directory, None)
            if AHEAD_MIN <= len(listed) <= AHEAD_MAX:
                names = [path.rpartition("/")[2] for path in listed]
                self.orders[directory] = Order(names, [st.ino for st in listed.values()])
                while len(self.orders) > ORDERS_KEPT:
                    del self.orders[next(iter(self.orders))]  # the oldest listing
        self._tell(stale)

    def put_many(self, directory: str, entries: Iterable[DirEntry]) -> None:
        """Remember the attributes of some of a directory's entries (not a listing)."""
        if self.ttl <= 0:
            return
        base = directory.rstrip("/")
        with self.guard:
            stale = self._put_all((f"{base}/{entry.name}", entry.stat) for entry in entries)
        self._tell(stale)

    # --- this mount's own changes ----------------------------------------------------------

    def added(self, path: str, stat: Stat) -> None:
        """``path`` was just created by this mount with attributes ``stat``."""
        if self.ttl <= 0:
            return
        parent = parent_of(path)
        with self.guard:
            # a hard link: the other names' nlink went up
            stale = self._put(path, stat, self.clock() + self.ttl)
            self._count(1)
            item = self.stats.get(parent)
            if item is not None:  # the parent's mtime moved with the new entry
                self.stats[parent] = (item[0], item[1]._replace(
                    mtime_ns=stat.ctime_ns, ctime_ns=stat.ctime_ns))
        self._tell(stale)

    def removed(self, path: str, tree: bool = False) -> None:
        """``path`` no longer exists (with ``tree``: nor anything that was below it)."""
        with self.guard:
            gone = self._pop(path)
            stale = [] if gone is None else self._expire_others(gone.ino, path)  # one link less
            if tree:
                self._drop_tree(path)
            self._expire(parent_of(path))  # mtime and, for directories, nlink changed
        self._tell(stale)

    def moved(self, old: str, new: str) -> None:
        """``old`` was renamed to ``new`` (replacing whatever ``new`` was)."""
        stale: list[str] = []
        with self.guard:
            moved = self.stats.get(old)
            for path in (old, new):  # a replaced inode lost a link, the moved one its ctime
                known = self.stats.get(path)
                self._drop_tree(path)
                if known is not None:
                    stale.extend(self._expire_others(known[1].ino, path))
                self._expire(parent_of(path))
            if moved is not None and not moved[1].is_dir:
                # known by its new name, expired (its ctime changed): an unlink of that name
                # (libfuse's hidden name of an open file, say) still finds the other names
                self.stats[new] = (EXPIRED, moved[1])
                self._link(new)
                self.names.setdefault(moved[1].ino, set()).add(new)
        self._tell(stale)

    def forget(self, path: str) -> None:
        """Drop what is known about ``path`` itself (its attributes changed)."""
        with self.guard:
            self._expire(path)

    def _expire(self, path: str) -> None:
        """Its attributes are out of date; the name is still there (a complete listing of
        its directory keeps it)."""
        item = self.stats.get(path)
        if item is not None:
            self.stats[path] = (EXPIRED, item[1])

    def _drop_tree(self, path: str) -> None:
        """Forget ``path`` and everything known below it: O(what is known below)."""
        below = [path]
        while below:
            item = below.pop()
            gone = self.stats.pop(item, None)
            if gone is not None:
                self._unname(item, gone[1].ino)
            below.extend(self.children.pop(item, ()))
        self._unlink(path)

    def clear(self) -> None:
        with self.guard:
            self.stats.clear()
            self.names.clear()
            self.children.clear()
            self.orders.clear()

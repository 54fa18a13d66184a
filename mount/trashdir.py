"""The mounting user's DFS trash, seen as the freedesktop trash of the mount: what is in it.

The freedesktop Trash spec (https://specifications.freedesktop.org/trash-spec/) has a
desktop keep what it deletes on a mount in ``$topdir/.Trash-$uid/``: ``files/NAME`` is the
deleted item, ``info/NAME.trashinfo`` says where it was and when (``Path=`` relative to
the top dir, URL-escaped; ``DeletionDate=`` local time, ``YYYY-MM-DDThh:mm:ss``). The mount
shows that folder for the DFS user it mounts as, made from the user's DFS trash
(``DfsClient.trash_listing``, asked again only when ``trash_version`` changed); nothing of
it is stored. This module is the folder's contents:
names, generated trashinfo, attributes. mount.trashops turns file operations on it into
DFS trash calls.

- **Where**: ``/.Trash-UID`` at the mount's root, UID being the uid the mount shows for
  the mounting user's files (what ``gio trash`` and Nautilus look for: they take that
  folder only if it is a directory owned by them). Inside: ``files/``, ``info/`` and an
  always empty ``expunged/`` (gvfs deletes an item by renaming it in there first).
- **Names** in ``files/`` are unique and stable while the mount runs: an item keeps the
  name it was moved in under (the one ``gio trash`` chose), or, deleted any other way
  (``dfs rm``, another mount), gets its file name, made unique the way GLib does it
  (``a.txt``, ``a.2.txt``, ...) in the order the items were deleted. After a remount the
  names are given again in that order. A name that ``gio trash`` has reserved by
  creating ``info/NAME.trashinfo`` is never given to another item.
- **info/**: ``NAME.trashinfo`` of every item, generated. Files created there (gio writes
  the trashinfo before moving the file in) are "scratch": accepted, kept empty in memory
  and discarded once an item takes the name, they are removed, or after ten minutes.
- **Attributes**: items show as regular files of the mounting user, mode 0600, with their
  size and their deletion time as mtime; their inode number is the DFS inode's (a trash
  id is that number), so it stays the same through delete and restore.
"""

from __future__ import annotations

import posixpath
import stat as stat_mod
import threading
import time
import urllib.parse
from collections.abc import Callable

from dfs.client.client import DfsClient
from dfs.wire import TrashEntry

Attrs = dict[str, int]

AREAS = ("files", "info", "expunged")
INFO_SUFFIX = ".trashinfo"
NAME_MAX = 255
SCRATCH_SECONDS = 600.0  # a scratch file nobody renamed or removed is forgotten after this
SCRATCH_MAX = 1000  # scratch files at once; more: ENOSPC
DIR_INO = (1 << 63) - 16  # the four folders: DIR_INO + 0..3, far above any DFS inode
INFO_INO = 1 << 62  # info/NAME.trashinfo: INFO_INO + the item's inode number
SCRATCH_INO = 1 << 61


def unique_name(base: str, n: int) -> str:
    """GLib's choice for the n-th item called ``base`` (n = 1, 2, ...): a.txt, a.2.txt;
    shortened so that the name and its .trashinfo stay within NAME_MAX."""
    dot = base.find(".", 1)
    stem, ext = (base, "") if dot < 0 else (base[:dot], base[dot:])
    suffix = f".{n}" if n > 1 else ""
    room = NAME_MAX - len(INFO_SUFFIX) - len(suffix)
    if len(stem.encode()) + len(ext.encode()) > room:
        ext = ext[:room // 2]
        stem = stem.encode()[:room - len(ext.encode())].decode(errors="ignore")
    return stem + suffix + ext


def trashinfo(entry: TrashEntry) -> bytes:
    """The spec's ``[Trash Info]`` of an item: Path relative to the mount's top directory
    (the cluster root), URL-escaped as GLib does; DeletionDate in local time."""
    relative = entry.path.lstrip("/").encode("utf-8", "surrogateescape")
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.deleted_at))
    return (f"[Trash Info]\nPath={urllib.parse.quote(relative, safe='/')}\n"
            f"DeletionDate={when}\n").encode()


class TrashDir:
    """The virtual ``/.Trash-UID`` of one mount.

    Thread safety: the mount's FUSE threads call in at once; one lock guards the names and
    the scratch files and is never held during an RPC (``refresh`` fetches, then applies)."""

    def __init__(self, client: DfsClient, uid: int, gid: int, cache_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.uid, self.gid = uid, gid
        self.name = f".Trash-{uid}"
        self.top = "/" + self.name
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.started_ns = time.time_ns()
        self.guard = threading.Lock()
        self.items: dict[str, TrashEntry] = {}  # trash id -> its record (newest listing)
        self.names: dict[str, str] = {}  # trash id -> its name in files/
        self.ids: dict[str, str] = {}  # name in files/ -> trash id
        self.adopted: dict[str, float] = {}  # trash id -> when moved in here (clock)
        self.scratch: dict[str, tuple[int, float]] = {}  # name in info/ -> (ino, made at)
        self.next_scratch = 0
        self.fetched: float | None = None  # when items were last listed (clock)
        self.version: str | None = None  # the DFS trash's version that listing showed
        self.warned_real = False

    # --- where a path is ------------------------------------------------------------------

    def locate(self, path: str) -> tuple[str, str] | None:
        """None: not in the trash folder. Else (area, name): ("", "") is the folder itself,
        (area, "") one of AREAS, (area, name) something in it ("" area: a name at the top
        that is none of them; a name with "/" in it is below an item: never there)."""
        if path == self.top:
            return "", ""
        if not path.startswith(self.top + "/"):
            return None
        area, _, name = path[len(self.top) + 1:].partition("/")
        return (area, name) if area in AREAS else ("", path[len(self.top) + 1:])

    # --- the items ------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Look at the DFS trash again if the last look is older than the cache time: one
        cheap call (its version) when nothing changed since the last listing, else the
        listing, page by page (a desktop's trash monitor polls the folder all the time)."""
        now = self.clock()
        with self.guard:
            if not force and self.fetched is not None and now - self.fetched < self.cache_seconds:
                return
            known = None if force or self.fetched is None else self.version
        if known is not None and self.client.trash_version() == known:
            with self.guard:
                if self.version == known and self.fetched is not None:
                    self.fetched = max(self.fetched, now)
                    return
        listed, version = self.client.trash_listing()
        with self.guard:
            self._apply(listed, now)
            self.version = version if self.fetched == now else None

    def _apply(self, listed: list[TrashEntry], started: float) -> None:
        self.items = {e.trash_id: e for e in listed}
        for tid in list(self.names):
            if tid not in self.items and self.adopted.get(tid, -1.0) < started:
                self._unname(tid)
        for tid, adopted in list(self.adopted.items()):
            if adopted < started:
                del self.adopted[tid]  # listed (or gone) since: no longer needs keeping
        for entry in reversed(listed):  # oldest first: the first of a name keeps it plain
            if entry.trash_id not in self.names:
                self._name(entry.trash_id, self._free_name(posixpath.basename(entry.path)))
        if not any(adopted >= started for adopted in self.adopted.values()):
            self.fetched = started  # else an item moved in meanwhile is not in this listing

    def _free_name(self, base: str) -> str:
        n = 1
        while True:
            name = unique_name(base or "unnamed", n)
            if name not in self.ids and name + INFO_SUFFIX not in self.scratch:
                return name
            n += 1

    def _name(self, tid: str, name: str) -> None:
        self._unname(tid)
        self.names[tid] = name
        self.ids[name] = tid
        self.scratch.pop(name + INFO_SUFFIX, None)

    def _unname(self, tid: str) -> None:
        name = self.names.pop(tid, None)
        if name is not None:
            self.ids.pop(name, None)

    def adopt(self, tid: str, name: str) -> None:
        """Item ``tid`` was just moved in as files/``name``: it is called that from now on."""
        with self.guard:
            self._name(tid, name)
            self.adopted[tid] = self.clock()
            self.fetched = self.version = None  # its record is not listed yet

    def rename(self, old: str, new: str) -> bool:
        """files/``old`` is called ``new`` from now on. -> False if ``new`` is taken."""
        with self.guard:
            tid = self.ids.get(old)
            if tid is None or self.ids.get(new, tid) != tid:
                return False
            self._name(tid, new)
            return True

    def forget(self, tid: str) -> None:
        """Item ``tid`` left the trash (restored or purged by this mount)."""
        with self.guard:
            self._unname(tid)
            self.items.pop(tid, None)
            self.adopted.pop(tid, None)

    def item(self, name: str) -> tuple[str, TrashEntry | None] | None:
        """(trash id, record) of files/``name`` (record None: moved in, not listed yet)."""
        self.refresh()
        with self.guard:
            tid = self.ids.get(name)
            if tid is None:
                return None
            return tid, self.items.get(tid)

    def listing(self) -> list[tuple[str, TrashEntry]]:
        """[(name, record)] of files/, by name."""
        self.refresh()
        with self.guard:
            return sorted((name, self.items[tid]) for name, tid in self.ids.items()
                          if tid in self.items)

    def info_item(self, name: str) -> tuple[str, TrashEntry | None] | None:
        """The item whose info/``name`` this is (None: not an item's .trashinfo)."""
        if not name.endswith(INFO_SUFFIX) or "/" in name:
            return None
        return self.item(name[:-len(INFO_SUFFIX)])

    # --- scratch files in info/ -----------------------------------------------------------

    def scratch_ino(self, name: str) -> int | None:
        with self.guard:
            self._expire_scratch()
            found = self.scratch.get(name)
            return None if found is None else found[0]

    def scratch_names(self) -> list[str]:
        with self.guard:
            self._expire_scratch()
            return sorted(self.scratch)

    def add_scratch(self, name: str) -> bool:
        """Make info/``name`` a scratch file. -> False if there is no room for it."""
        with self.guard:
            self._expire_scratch()
            if name in self.scratch:
                return True
            if len(self.scratch) >= SCRATCH_MAX:
                return False
            self.next_scratch += 1
            self.scratch[name] = (SCRATCH_INO + self.next_scratch, self.clock())
            return True

    def drop_scratch(self, name: str) -> bool:
        with self.guard:
            return self.scratch.pop(name, None) is not None

    def _expire_scratch(self) -> None:
        old = self.clock() - SCRATCH_SECONDS
        for name in [n for n, (_ino, made) in self.scratch.items() if made < old]:
            del self.scratch[name]

    # --- attributes -----------------------------------------------------------------------

    def dir_attrs(self, area: str) -> Attrs:
        t = self.started_ns
        return {"st_ino": DIR_INO + ("", *AREAS).index(area), "st_nlink": 2,
                "st_mode": stat_mod.S_IFDIR | 0o700, "st_uid": self.uid, "st_gid": self.gid,
                "st_size": 0, "st_blocks": 0, "st_atime": t, "st_mtime": t, "st_ctime": t}

    def file_attrs(self, ino: int, size: int, when_ns: int) -> Attrs:
        return {"st_ino": ino, "st_nlink": 1, "st_mode": stat_mod.S_IFREG | 0o600,
                "st_uid": self.uid, "st_gid": self.gid, "st_size": size,
                "st_blocks": (size + 511) // 512, "st_atime": when_ns, "st_mtime": when_ns,
                "st_ctime": when_ns}

    def item_attrs(self, tid: str, entry: TrashEntry | None) -> Attrs:
        when = int(entry.deleted_at * 1e9) if entry is not None else time.time_ns()
        return self.file_attrs(item_ino(tid), entry.size if entry is not None else 0, when)

    def info_attrs(self, tid: str, entry: TrashEntry | None) -> Attrs:
        size = len(trashinfo(entry)) if entry is not None else 0
        attrs = self.item_attrs(tid, entry)
        return {**attrs, "st_ino": INFO_INO + item_ino(tid), "st_size": size,
                "st_blocks": (size + 511) // 512}

    def root_entries(self, found: list[tuple[str, Attrs]],
                     warn: Callable[[str], None]) -> list[tuple[str, Attrs]]:
        """The root's listing with the virtual folder in place of any real one of its name
        (``warn`` is told about a real one once). Like a real trash folder, it shows once
        something is in it; it is always there to look up (gio and desktops stat it)."""
        real = [e for e in found if e[0] == self.name]
        if real and not self.warned_real:
            self.warned_real = True
            warn(self.top)
        listed = [e for e in found if e[0] != self.name]
        shown = real or self.listing()
        return listed + [(self.name, self.dir_attrs(""))] if shown else listed


def item_ino(tid: str) -> int:
    """A trash id is its inode's number; anything else gets a number far from them."""
    return int(tid) if tid.isdigit() else SCRATCH_INO - 1 - (hash(tid) & 0xFFFFFFFF)

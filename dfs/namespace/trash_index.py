"""The trash, indexed as it changes: ``Namespace.trash`` is a ``TrashIndex``.

It is the plain ``{trash id: TrashItem}`` dict the namespace always had (snapshots, fsck and
trash pressure read it as one), kept in step with three orders as entries put items in and
take them out, so that no call has to walk the whole trash:

- each owner's items, newest first (``page``: one bounded page from a cursor; ``ids_of``),
- every item by expiry (``expired``: the first ones only),
- each owner's items by the path they had (``newest_at``: what a restore by path takes).

Each owner's trash also has a ``version`` that changes whenever that trash does, so a
client that listed it (the mount's .Trash-UID folder) asks one cheap question before
listing it again. Versions are only compared for equality: they carry a token drawn when
the index is made, so a version from another master (or from before a restart, which
rebuilds the index) never matches and the client lists once more.

Cursors are the key of the last item a page gave (``cursor_of``), not a position: a page
from a cursor gives the items after it as the trash is then, so paging through gives every
item that stays in the trash meanwhile exactly once, newest first (an item deleted while
paging is newer than the cursor: the next listing has it).

Not thread-safe, like the namespace: the master holds its lock around every call.
"""

from __future__ import annotations

import math
import secrets
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

from dfs import errors
from dfs.namespace.inode import TrashItem

PAGE_MAX = 1_000  # items in one page, at most
CURSOR_MAX = 64  # characters of a cursor, at most (a float's repr, ":", digits)

Key = tuple[float, int]  # ascending order of a SortedKeys
T = TypeVar("T")


class SortedKeys:
    """Keys in ascending order, in blocks of about BLOCK (a much smaller sortedcontainers
    SortedList): add and discard cost O(log n + BLOCK), reading k keys from a place
    O(log n + k + n / BLOCK), so a page of a large trash costs about the page."""

    BLOCK = 512

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        ordered = sorted(keys)
        step = self.BLOCK
        self._blocks = [ordered[i:i + step] for i in range(0, len(ordered), step)]
        self._maxes = [block[-1] for block in self._blocks]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def add(self, key: Key) -> None:
        if not self._blocks:
            self._blocks, self._maxes = [[key]], [key]
        else:
            if key >= self._maxes[-1]:  # the usual: a file deleted now is the newest
                i = len(self._maxes) - 1
                block = self._blocks[i]
                block.append(key)
            else:
                i = bisect_left(self._maxes, key)
                block = self._blocks[i]
                insort(block, key)
            self._maxes[i] = block[-1]
            if len(block) > 2 * self.BLOCK:
                half = len(block) // 2
                self._blocks[i:i + 1] = [block[:half], block[half:]]
                self._maxes[i:i + 1] = [block[half - 1], block[-1]]
        self._len += 1

    def discard(self, key: Key) -> None:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j == len(block) or block[j] != key:
            return
        del block[j]
        self._len -= 1
        if not block:
            del self._blocks[i], self._maxes[i]
        elif len(block) < self.BLOCK // 4 and len(self._blocks) > 1:
            self._merge(i)
        else:
            self._maxes[i] = block[-1]

    def _merge(self, i: int) -> None:
        """Block ``i`` got small: join it to a neighbour (then split that if too big), so
        the number of blocks stays about n / BLOCK."""
        j = i + 1 if i + 1 < len(self._blocks) else i - 1
        lo, hi = min(i, j), max(i, j)
        joined = self._blocks[lo] + self._blocks[hi]
        if len(joined) > 2 * self.BLOCK:
            half = len(joined) // 2
            self._blocks[lo:hi + 1] = [joined[:half], joined[half:]]
            self._maxes[lo:hi + 1] = [joined[half - 1], joined[-1]]
        else:
            self._blocks[lo:hi + 1] = [joined]
            self._maxes[lo:hi + 1] = [joined[-1]]

    def after(self, key: Key | None) -> Iterator[Key]:
        """The keys greater than ``key`` (all with None), ascending. Do not change the
        keys while reading."""
        if key is None:
            i, j = 0, 0
        else:
            i = bisect_right(self._maxes, key)
            j = bisect_right(self._blocks[i], key) if i < len(self._blocks) else 0
        for block in self._blocks[i:i + 1]:
            yield from block[j:]
        for block in self._blocks[i + 1:]:
            yield from block

    def before(self, key: Key | None) -> Iterator[Key]:
        """The keys less than ``key`` (all with None), descending. Do not change the keys
        while reading."""
        i = len(self._blocks)
        if key is not None:
            i = bisect_left(self._maxes, key)
            if i < len(self._blocks):
                block = self._blocks[i]
                yield from reversed(block[:bisect_left(block, key)])
        for block in reversed(self._blocks[:i]):
            yield from reversed(block)


def _oldest_first(tid: str, item: TrashItem, ino: int | None = None) -> Key:
    """An owner's order (read backwards for newest first): trash_of's, deleted_at then the
    id. The key holds the item's own float, so an index costs a tuple per order."""
    return (item.deleted_at, int(tid) if ino is None else ino)


def cursor_of(tid: str, item: TrashItem) -> str:
    """The cursor that a page ending with item ``tid`` gives for the next one."""
    return f"{item.deleted_at!r}:{tid}"


def parse_cursor(cursor: str | None) -> Key | None:
    """A cursor from a page (None: from the newest); InvalidArgument for anything else."""
    if cursor is None:
        return None
    when, sep, tid = cursor.partition(":")
    try:
        deleted_at = float(when) if sep and len(cursor) <= CURSOR_MAX else math.nan
    except ValueError:
        deleted_at = math.nan
    if not math.isfinite(deleted_at) or not (tid.isascii() and tid.isdigit()):
        raise errors.InvalidArgument("trash cursor: not one a trash page gave")
    return (deleted_at, int(tid))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= PAGE_MAX:
        raise errors.InvalidArgument(f"trash page limit must be 1 to {PAGE_MAX}, not {limit}")
    return limit


class TrashIndex(dict[str, TrashItem]):
    """``{trash id: TrashItem}`` with its orders kept in step (see the module's doc). Every
    way of changing a dict goes through ``_note`` and ``_forget``."""

    def __init__(self, items: Mapping[str, TrashItem] | None = None) -> None:
        super().__init__(items or {})
        self._token = secrets.token_hex(6)
        self._versions: dict[int, int] = {}  # uid -> changes to that trash so far
        # uid -> path -> the trash id deleted there, or the ids when several were
        self._paths: dict[int, dict[str, str | list[str]]] = {}
        mine: dict[int, list[Key]] = {}
        expiry: list[Key] = []
        for tid, item in self.items():
            key = _oldest_first(tid, item)
            mine.setdefault(item.uid, []).append(key)
            expiry.append((item.expires, key[1]))
            self._add_path(tid, item)
        self._by_uid = {uid: SortedKeys(keys) for uid, keys in mine.items()}
        self._expiry = SortedKeys(expiry)

    # --- reading ---------------------------------------------------------------------

    def version(self, uid: int) -> str:
        """Changes whenever ``uid``'s trash does (compare for equality only)."""
        return f"{self._token}.{self._versions.get(uid, 0)}"

    def count(self, uid: int) -> int:
        shelf = self._by_uid.get(uid)
        return len(shelf) if shelf is not None else 0

    def page(self, uid: int, limit: int, cursor: str | None = None
             ) -> tuple[list[tuple[str, TrashItem]], str | None]:
        """Up to ``limit`` of ``uid``'s items after ``cursor``, newest first. -> (items, the
        cursor of the next page, None when this one reached the end)."""
        check_limit(limit)
        start = parse_cursor(cursor)
        shelf = self._by_uid.get(uid)
        if shelf is None:
            return [], None
        found: list[tuple[str, TrashItem]] = []
        for _when, ino in shelf.before(start):
            if len(found) == limit:
                return found, cursor_of(*found[-1])
            tid = str(ino)
            found.append((tid, self[tid]))
        return found, None

    def ids_of(self, uid: int) -> list[str]:
        """All of ``uid``'s trash ids, newest first."""
        shelf = self._by_uid.get(uid)
        return [] if shelf is None else [str(ino) for _when, ino in shelf.before(None)]

    def newest_at(self, uid: int, path: str) -> str | None:
        """The trash id of ``uid``'s newest item deleted at ``path`` (None: none)."""
        tids = self._paths.get(uid, {}).get(path)
        if tids is None or isinstance(tids, str):
            return tids
        return max(tids, key=lambda tid: _oldest_first(tid, self[tid]))

    def expired(self, wall_now: float) -> list[str]:
        """The trash ids whose time is up (expires before ``wall_now``), oldest first."""
        found: list[str] = []
        for expires, ino in self._expiry.after(None):
            if expires >= wall_now:
                break
            found.append(str(ino))
        return found

    # --- keeping the orders in step --------------------------------------------------

    def _add_path(self, tid: str, item: TrashItem) -> None:
        paths = self._paths.get(item.uid)
        if paths is None:
            paths = self._paths[item.uid] = {}
        there = paths.get(item.path)
        if there is None:
            paths[item.path] = tid
        elif isinstance(there, str):
            paths[item.path] = [there, tid]
        else:
            there.append(tid)

    def _drop_path(self, tid: str, item: TrashItem) -> None:
        paths = self._paths.get(item.uid, {})
        there = paths.get(item.path)
        if isinstance(there, list) and tid in there:
            there.remove(tid)
            if len(there) == 1:
                paths[item.path] = there[0]
        elif there == tid:
            del paths[item.path]
            if not paths:
                del self._paths[item.uid]

    def _note(self, tid: str, item: TrashItem) -> None:
        key = _oldest_first(tid, item)
        shelf = self._by_uid.get(item.uid)
        if shelf is None:
            shelf = self._by_uid[item.uid] = SortedKeys()
        shelf.add(key)
        self._expiry.add((item.expires, key[1]))
        self._add_path(tid, item)
        self._versions[item.uid] = self._versions.get(item.uid, 0) + 1

    def _forget(self, tid: str, item: TrashItem) -> None:
        key = _oldest_first(tid, item)
        shelf = self._by_uid.get(item.uid)
        if shelf is not None:
            shelf.discard(key)
            if not len(shelf):
                del self._by_uid[item.uid]
        self._expiry.discard((item.expires, key[1]))
        self._drop_path(tid, item)
        self._versions[item.uid] = self._versions.get(item.uid, 0) + 1

    def __setitem__(self, tid: str, item: TrashItem) -> None:
        old = self.get(tid)
        if old is not None:
            self._forget(tid, old)
        super().__setitem__(tid, item)
        self._note(tid, item)

    def __delitem__(self, tid: str) -> None:
        item = self[tid]
        super().__delitem__(tid)
        self._forget(tid, item)

    @overload
    def pop(self, tid: str, /) -> TrashItem: ...
    @overload
    def pop(self, tid: str, default: TrashItem, /) -> TrashItem: ...
    @overload
    def pop(self, tid: str, default: T, /) -> TrashItem | T: ...

    def pop(self, tid: str, *default: object) -> object:
        if tid not in self:
            if default:
                return default[0]
            raise KeyError(tid)
        item = super().pop(tid)
        self._forget(tid, item)
        return item

    def popitem(self) -> tuple[str, TrashItem]:
        tid, item = super().popitem()
        self._forget(tid, item)
        return tid, item

    def setdefault(self, tid: str, item: TrashItem) -> TrashItem:
        if tid not in self:
            self[tid] = item
        return self[tid]

    def update(self, *others: Any, **more: TrashItem) -> None:
        for tid, item in dict(*others, **more).items():
            self[tid] = item

    def __ior__(self, other: Any) -> TrashIndex:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        for uid in set(self._by_uid):
            self._versions[uid] = self._versions.get(uid, 0) + 1
        super().clear()
        self._by_uid.clear()
        self._paths.clear()
        self._expiry = SortedKeys()

    def __reduce__(self) -> tuple[type[TrashIndex], tuple[dict[str, TrashItem]]]:
        return (TrashIndex, (dict(self),))  # a copy or a pickle is an index of its own

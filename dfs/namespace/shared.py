"""What many inodes share instead of each holding its own copy.

The master holds the whole namespace in memory, and its goal is at most 1 KiB per file
(issue 12): a fresh empty dict costs 64 bytes, an empty list 56, an int above 256 some 28
to 32, so a file with its own empty ``children``, ``xattrs`` and ``chunks`` and its own
copy of a mode that thousands of files have would spend a fifth of that on nothing.

- The empty containers are shared, and read-only where Python has a read-only kind
  (``MappingProxyType``): a change made in place by mistake fails loudly instead of
  changing every inode. An inode that gets children, attributes or chunks gets its own.
- ``SmallInts`` hands out one object per value for ids and modes (few distinct values,
  each used by many inodes); times are shared only between one inode's equal fields.
- ``shrink_if_sparse``: a dict never gives back room as entries leave it (only growing
  rebuilds its table), so the inode table, the parent index and a folder that held 50,000
  names and lost them would keep their big tables for good.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

from dfs.wire import ChunkRef

# Typed as the dict a directory has, so any inode's children read alike; writing to it
# raises TypeError (only directories get children, and each gets its own dict).
NO_CHILDREN = cast(dict[str, int], MappingProxyType({}))
NO_XATTRS: Mapping[str, bytes] = MappingProxyType({})


class _SharedEmptyList(list[ChunkRef]):
    """An empty list that refuses every change in place (TypeError), as the read-only
    mappings do: shared by every file without chunks, it must never gain one."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the shared empty chunk list: replace an inode's chunks whole")

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


# A list, not a tuple: a file's chunks compare equal to a list of refs (the tests' and
# the wire's view). Never changed in place: an inode's chunks are replaced whole.
NO_CHUNKS: Sequence[ChunkRef] = _SharedEmptyList()

SMALL_INTS_MAX = 4096  # distinct values remembered; past that each inode keeps its own


class SmallInts:
    """One int object per value, for values many inodes repeat (uids, gids, modes)."""

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}

    def __call__(self, value: int) -> int:
        seen = self._seen.get(value)
        if seen is not None:
            return seen
        if len(self._seen) < SMALL_INTS_MAX:
            self._seen[value] = value
        return value


small_int = SmallInts()  # the process's one: every namespace (a master holds one or two)


SPARSE_BYTES = 160  # a dict's bytes per entry past which it is rebuilt (a full one: 36-75)
SPARSE_FLOOR = 64 * 1024  # bytes: smaller dicts are left as they are


def shrink_if_sparse(table: dict[Any, Any]) -> None:
    """Rebuild ``table`` in place, compact and in the same order, if most of its room is
    empty: O(len) once its entries fell to under about a quarter of what its table was made
    for, so O(1) per removal over time; one sys.getsizeof otherwise."""
    size = sys.getsizeof(table)
    if size > SPARSE_FLOOR and size > SPARSE_BYTES * len(table):
        kept = dict(table)
        table.clear()
        table.update(kept)

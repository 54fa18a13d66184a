"""Which directories name each inode: derived from the directories' children, never saved.

It makes "can this user reach inode N by some path" cost the path's depth instead of a walk
of the whole tree (``Namespace.reachable``). Directories have exactly one parent; a file
has one per hard link, counted per directory (two names in one directory count 2).

Kept compact, since the master holds an entry per inode (issue 12: at most 1 KiB a file):
an inode with one name, nearly every one, costs a slot holding its directory's ino (the
directory's own int object); only an inode with more names gets a dict of them. The form
is canonical (one name: the int), so two indexes of the same tree compare equal.
"""

from __future__ import annotations

from collections.abc import Iterable

from dfs.namespace.shared import shrink_if_sparse


class ParentIndex:
    """ino -> {directory ino: how many names of the inode it holds}."""

    __slots__ = ("_of",)

    def __init__(self) -> None:
        # the directory of an inode's only name, or {directory: names} for hard links
        self._of: dict[int, int | dict[int, int]] = {}

    @classmethod
    def of(cls, directories: Iterable[tuple[int, Iterable[int]]]) -> ParentIndex:
        """Built from (directory ino, its children's inos) pairs, as at load."""
        index = cls()
        for directory, children in directories:
            for child in children:
                index.add(child, directory)
        return index

    def __getitem__(self, ino: int) -> dict[int, int]:
        held = self._of[ino]
        return {held: 1} if isinstance(held, int) else dict(held)

    def get(self, ino: int, default: dict[int, int] | None = None) -> dict[int, int] | None:
        return self[ino] if ino in self._of else default

    def __contains__(self, ino: object) -> bool:
        return ino in self._of

    def __len__(self) -> int:
        return len(self._of)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParentIndex) and self._of == other._of

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dict it was

    def __repr__(self) -> str:
        return f"ParentIndex({self._of!r})"

    def directories(self, ino: int) -> Iterable[int]:
        """The directories that name ``ino`` (none if it is in none)."""
        held = self._of.get(ino)
        if held is None:
            return ()
        return (held,) if isinstance(held, int) else held.keys()

    def first(self, ino: int) -> int:
        """A directory that names ``ino`` (a directory's only parent). KeyError if none."""
        held = self._of[ino]
        return held if isinstance(held, int) else next(iter(held))

    def add(self, ino: int, parent: int) -> None:
        held = self._of.get(ino)
        if held is None:
            self._of[ino] = parent
        elif isinstance(held, int):
            self._of[ino] = {held: 2} if held == parent else {held: 1, parent: 1}
        else:
            held[parent] = held.get(parent, 0) + 1

    def drop(self, ino: int, parent: int) -> None:
        """One name of ``ino`` in ``parent`` fewer."""
        held = self._of.get(ino)
        if held is None:
            return
        if isinstance(held, int):
            if held == parent:
                del self._of[ino]
            return
        if held.get(parent, 0) > 1:
            held[parent] -= 1
        else:
            held.pop(parent, None)
        if not held:
            del self._of[ino]
        elif len(held) == 1:
            (only, names), = held.items()
            if names == 1:
                self._of[ino] = only

    def forget(self, ino: int) -> None:
        """``ino`` left the tree (deleted, or moved to the trash)."""
        self._of.pop(ino, None)
        shrink_if_sparse(self._of)

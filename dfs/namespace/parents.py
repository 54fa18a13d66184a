"""Which directories name each inode: derived from the directories' children, never saved.

It makes "can this user reach inode N by some path" cost the path's depth instead of a walk
of the whole tree (``Namespace.reachable``). Directories have exactly one parent; a file
has one per hard link, counted per directory (two names in one directory count 2).
"""

from __future__ import annotations

from collections.abc import Iterable


class ParentIndex(dict[int, dict[int, int]]):
    """ino -> {directory ino: how many names of the inode it holds}."""

    @classmethod
    def of(cls, directories: Iterable[tuple[int, Iterable[int]]]) -> ParentIndex:
        """Built from (directory ino, its children's inos) pairs, as at load."""
        index = cls()
        for directory, children in directories:
            for child in children:
                index.add(child, directory)
        return index

    def add(self, ino: int, parent: int) -> None:
        held = self.setdefault(ino, {})
        held[parent] = held.get(parent, 0) + 1

    def drop(self, ino: int, parent: int) -> None:
        """One name of ``ino`` in ``parent`` fewer."""
        held = self.get(ino, {})
        if held.get(parent, 0) > 1:
            held[parent] -= 1
        else:
            held.pop(parent, None)

    def forget(self, ino: int) -> None:
        """``ino`` left the tree (deleted, or moved to the trash)."""
        self.pop(ino, None)

"""The chunks the namespace's files reference, kept up to date as entries apply (never
saved: rebuilt from the inodes at load), so the master's tick finds them without walking
every inode (garbage collection and repair ask for them twice a second).

A chunk is referenced while a regular file lists it, in the tree or in the trash: a
trashed file keeps its chunks until it is purged, a restored one never let them go. Each
listing counts (a hard link is one inode, so one listing), and a chunk stops being
referenced when its last listing goes. The namespace calls ``add`` where a file starts to
count and ``remove`` where it stops (the same places as dfs/namespace/usage.py), and
replaces a file's chunk list only between the two. Allocated chunks not yet committed are
``Namespace.pending``, not here: a commit moves them from there to here.
"""

from __future__ import annotations

from collections.abc import Iterable, KeysView

from dfs.namespace.inode import Inode


class ChunkRefs:
    def __init__(self) -> None:
        self._count: dict[int, int] = {}  # chunk id -> listings of it (always >= 1)

    @classmethod
    def of(cls, inodes: Iterable[Inode]) -> ChunkRefs:
        refs = cls()
        for inode in inodes:
            refs.add(inode)
        return refs

    def add(self, inode: Inode) -> None:
        if inode.kind != "f":
            return
        count = self._count
        for ref in inode.chunks:
            count[ref.chunk_id] = count.get(ref.chunk_id, 0) + 1

    def remove(self, inode: Inode) -> None:
        if inode.kind != "f":
            return
        count = self._count
        for ref in inode.chunks:
            left = count[ref.chunk_id] - 1
            if left:
                count[ref.chunk_id] = left
            else:
                del count[ref.chunk_id]

    def ids(self) -> KeysView[int]:
        """The referenced chunk ids: a live view (read it under the namespace's lock)."""
        return self._count.keys()

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._count

    def __len__(self) -> int:
        return len(self._count)

"""What each owner (uid) holds, kept up to date by the namespace as entries apply (never saved:
rebuilt from the inodes at load), so a quota check costs a dict lookup, not a walk.

A user is charged for the inodes they own and the bytes stored in them (one copy: the
chunks' lengths, so holes and replicas cost nothing), trashed files included until purged,
and ``chunk_size`` bytes for each chunk allocated to them and not yet committed (an
upload in flight reserves its room). Hard links are one inode, charged once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from dfs.namespace.inode import Inode


@dataclass
class Held:
    bytes: int = 0
    inodes: int = 0
    pending_chunks: int = 0


def stored_bytes(inode: Inode) -> int:
    return sum(ref.length for ref in inode.chunks)


class Usage:
    def __init__(self) -> None:
        self._by_owner: defaultdict[int, Held] = defaultdict(Held)

    @classmethod
    def of(cls, inodes: Iterable[Inode], pending_owners: Iterable[int]) -> Usage:
        usage = cls()
        for inode in inodes:
            usage.add(inode)
        for owner in pending_owners:
            usage.pending(owner, 1)
        return usage

    def held(self, owner: int) -> Held:
        held = self._by_owner.get(owner)
        return Held() if held is None else Held(held.bytes, held.inodes, held.pending_chunks)

    def add(self, inode: Inode) -> None:
        held = self._by_owner[inode.uid]
        held.inodes += 1
        held.bytes += stored_bytes(inode)

    def remove(self, inode: Inode) -> None:
        held = self._by_owner[inode.uid]
        held.inodes -= 1
        held.bytes -= stored_bytes(inode)

    def pending(self, owner: int, chunks: int) -> None:
        """``chunks`` more (or, negative, fewer) allocated and not committed."""
        self._by_owner[owner].pending_chunks += chunks

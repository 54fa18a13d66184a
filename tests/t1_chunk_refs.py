"""Pure units: the chunks the namespace references (what garbage collection keeps), kept up
to date as entries apply instead of walked on every tick of the master, must always be
what a walk of every file and trashed file finds: through hard links, truncations, a
file replaced by a rename or a new content, an exchange, the trash and its restores and
purges, and a snapshot's reload. A chunk is never let go while something lists it."""

import json

from dfs.namespace import entries as e
from dfs.namespace.entries import Record
from dfs.namespace.model import Namespace
from dfs.wire import ChunkRef

T = 1_000
A = 10001  # alice's uid and gid
FAR = 9e12  # allocations that do not expire here


def walked(ns: Namespace) -> set[int]:
    """The referenced chunks the slow way (what the master's tick used to compute)."""
    ids = {c.chunk_id for inode in ns.inodes.values() if inode.kind == "f"
           for c in inode.chunks}
    ids.update(c.chunk_id for item in ns.trash.values() for c in item.inode.chunks)
    return ids - set(ns.pending)


def refs(*ids: int) -> tuple[ChunkRef, ...]:
    return tuple(ChunkRef(cid, 1, 100, cid, index) for index, cid in enumerate(ids))


def trash(path: str) -> e.TrashInfo:
    return e.TrashInfo(path, 100.0, 200.0)


STEPS: list[tuple[e.Entry, set[int]]] = [  # (entry, the referenced chunks after it)
    (e.Init(1024, T), set()),
    (e.AddUser("alice", False, "00", 1, A, A), set()),
    (e.Mkdir(1, "d", 2, A, A, 0o755, T), set()),
    (e.Alloc("alice", 1, 6, FAR), set()),  # pending: not referenced, kept by pending
    (e.Put(True, 2, "f", 3, A, A, 0o600, 300, T, refs(1, 2, 3)), {1, 2, 3}),
    (e.Link(1, "hard", 3, T), {1, 2, 3}),  # one inode, two names
    (e.Unlink(2, "f", T), {1, 2, 3}),  # the other name still lists them
    (e.SetChunks(3, 100, refs(1), T), {1}),  # truncated: 2 and 3 are garbage
    (e.Put(True, 2, "g", 4, A, A, 0o600, 100, T, refs(4)), {1, 4}),
    (e.Rename(2, "g", 1, "hard", T), {4}),  # g replaces the file: its chunk 1 goes
    (e.Put(False, 1, "hard", 4, A, A, 0o600, 200, T, refs(4, 5)), {4, 5}),  # grown
    (e.Unlink(1, "hard", T, trash("/hard")), {4, 5}),  # in the trash: still needed
    (e.Create(2, "empty", 5, A, A, 0o600, T), {4, 5}),
    (e.Restore("4", 2, "back", T), {4, 5}),
    (e.Exchange(2, "back", 2, "empty", T), {4, 5}),  # the names swap, the files stay
    (e.Unlink(2, "empty", T, trash("/d/empty")), {4, 5}),
    (e.Purge(("4",)), set()),  # gone for good
    (e.Put(True, 2, "last", 6, A, A, 0o600, 100, T, refs(6)), {6}),
    (e.Unlink(2, "last", T), set()),  # no trash: its last link frees it at once
]


def test_referenced_chunks_are_what_a_walk_finds_after_every_entry():
    ns = Namespace()
    for seq, (entry, expected) in enumerate(STEPS, 1):
        ns.apply(Record(seq, 1, entry))
        assert set(ns.referenced_chunk_ids()) == walked(ns) == expected, (seq, entry)
        assert ns.live_chunk_ids() == expected | set(ns.pending)
        reloaded = Namespace.from_json(json.loads(json.dumps(ns.to_json())))
        assert set(reloaded.referenced_chunk_ids()) == expected  # rebuilt at load


def test_a_chunk_listed_twice_stays_until_its_last_listing_goes():
    ns = Namespace()
    for seq, entry in enumerate([
            e.Init(1024, T), e.AddUser("alice", False, "00", 1, A, A), e.Alloc("alice", 1, 1, FAR),
            e.Put(True, 1, "a", 2, A, A, 0o600, 100, T, refs(1)),
            e.Put(True, 1, "b", 3, A, A, 0o600, 100, T, refs(1))], 1):
        ns.apply(Record(seq, 1, entry))
    ns.apply(Record(6, 1, e.Unlink(1, "a", T)))
    assert 1 in ns.referenced_chunk_ids()
    ns.apply(Record(7, 1, e.SetChunks(3, 0, (), T)))
    assert 1 not in ns.referenced_chunk_ids() and not walked(ns)

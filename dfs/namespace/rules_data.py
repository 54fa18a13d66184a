"""The rules of file data, as pure functions (see dfs/namespace/rules.py for the conventions).

Writing a file takes two steps: ``alloc`` reserves new chunk ids for the writer (pending
until committed, or until ``gc_grace`` seconds have passed), the client stores the bytes
on the workers, then ``commit`` (by inode: an open file may have been renamed meanwhile) or
``put`` (create-or-replace by path, ``dfs put``) makes the file's content exactly the chunk
list it sends. Every chunk in that list is one the file already has or one pending for
this user. The list is sparse (``check_chunks``): a missing index is a hole and costs
nothing, so truncating a file up to any size (up to the kernel's largest) stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from dfs import errors
from dfs.chunks import MAX_FILE_SIZE
from dfs.namespace import access, quota, rules
from dfs.namespace.access import Cred
from dfs.namespace.entries import Alloc, Put, Renew, SetChunks, Unpend
from dfs.namespace.inode import Inode, R, W, X
from dfs.namespace.model import Namespace
from dfs.namespace.usage import stored_bytes
from dfs.wire import ChunkRef

MAX_CHUNKS_PER_CALL = 4096


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_CHUNKS_PER_CALL:
        raise errors.InvalidArgument(f"count must be 1..{MAX_CHUNKS_PER_CALL}")


def writable(ns: Namespace, user: Cred, path: str) -> tuple[Inode, str, Inode | None]:
    """(parent, name, the regular file there or None) if this user may write ``path``:
    w on the file, or w+x on the parent to create it."""
    parent, name = ns.resolve_parent(path, user)
    existing = ns.lookup(parent, name)
    if existing is None:
        ns.require(user, parent, W | X, path)
    else:
        if existing.kind == "d":
            raise errors.IsADirectory(f"{path} is a directory")
        if existing.kind != "f":
            raise errors.InvalidArgument(f"{path} is not a regular file")
        ns.require(user, existing, W, path)
    return parent, name, existing


def alloc(ns: Namespace, user: Cred, count: int, wall_now: float, gc_grace: float) -> Alloc:
    """``count`` fresh chunk ids (the caller checked the path with ``writable`` and found
    room for them on the workers)."""
    quota.check_allocation(ns, user.uid, count)
    return Alloc(user.name, ns.next_chunk_id, count, wall_now + gc_grace)


def check_size(size: object) -> int:
    """A file size from a request: an int from 0 to the largest file the kernel allows."""
    if type(size) is not int or size < 0:
        raise errors.InvalidArgument("size must be a non-negative integer")
    if size > MAX_FILE_SIZE:
        raise errors.FileTooLarge(f"size {size} is past the largest file ({MAX_FILE_SIZE})")
    return size


def check_chunks(ns: Namespace, user: Cred, inode: Inode | None, refs: Sequence[ChunkRef],
                 size: int) -> None:
    """``refs`` is a sparse chunk list (dfs.wire.ChunkRef) inside ``size`` bytes: indices
    ascend, each chunk ends by ``size`` and is at most ``chunk_size`` long. Each chunk is one
    the file has (with the same version, length and checksum) or one pending for this user,
    and appears once."""
    check_size(size)
    current = {c.chunk_id: c for c in inode.chunks} if inode is not None else {}
    seen: set[int] = set()
    previous = -1
    for ref in refs:
        if type(ref) is not ChunkRef or any(type(v) is not int for v in ref):
            raise errors.InvalidArgument("malformed chunk reference")
        if ref.chunk_index <= previous:
            raise errors.InvalidArgument("chunk indices must ascend, each at most once")
        previous = ref.chunk_index
        end = ref.chunk_index * ns.chunk_size + ref.length
        if not 0 < ref.length <= ns.chunk_size or end > size:
            raise errors.InvalidArgument(f"chunk {ref.chunk_id} lies outside the file")
        if ref.chunk_id in seen:
            raise errors.InvalidArgument(f"chunk {ref.chunk_id} is listed twice")
        seen.add(ref.chunk_id)
        have = current.get(ref.chunk_id)
        if have is not None:
            if have[:4] != ref[:4]:
                raise errors.InvalidArgument(f"chunk {ref.chunk_id} is not what the file has")
        elif ns.pending.get(ref.chunk_id, (None,))[0] != user.name:
            raise errors.InvalidArgument(f"chunk {ref.chunk_id} was not allocated to you")


def commit(ns: Namespace, user: Cred, ino: int, refs: Sequence[ChunkRef], size: int,
           time_ns: int) -> SetChunks:
    """File ``ino``'s content becomes exactly ``refs``; ``time_ns`` its new mtime. By inode
    (an open file may have been renamed), so the path rule is checked here: the file must be
    named in a directory the caller can reach. An inode the caller cannot reach gets the same
    answer as one that does not exist: the answer tells nothing about other users' files.
    Write permission was checked at open (``openable``); here again for all but the owner
    (who may chmod it anyway), so another user's write fails at close if it was revoked."""
    inode = ns.inodes.get(ino)
    if inode is None or not ns.reachable(user, ino):
        raise errors.FileNotFound("the file was deleted while open")
    if inode.kind != "f":
        raise errors.InvalidArgument("not a regular file")
    if not access.owns(user, inode.owned()):  # the owner's open (``openable``) decided:
        ns.require(user, inode, W, "file")  # a file created 0444 is written through its fd
    check_chunks(ns, user, inode, refs, size)
    quota.check_bytes_change(ns, inode.uid, stored_bytes(inode), sum(r.length for r in refs))
    mode = access.mode_after_write(user, inode.owned())
    return SetChunks(inode.ino, size, tuple(refs), time_ns,
                     mode if mode != inode.mode else None)


def put(ns: Namespace, user: Cred, path: str, mode: int, refs: Sequence[ChunkRef], size: int,
        overwrite: bool, now_ns: int) -> Put:
    """Create or replace the whole file at ``path`` in one entry (a new file gets ``mode``)."""
    parent, name, inode = writable(ns, user, path)
    if inode is not None and not overwrite:
        raise errors.FileExists(f"{path} already exists")
    check_chunks(ns, user, inode, refs, size)
    if inode is None:
        quota.check_new_inodes(ns, user.uid)
        uid, gid, mode = rules.new_owner(user, parent, mode, is_dir=False)
    else:  # the file keeps its owner; its mode is what the write leaves of it
        uid, gid, mode = inode.uid, inode.gid, access.mode_after_write(user, inode.owned())
    quota.check_bytes_change(ns, uid, 0 if inode is None else stored_bytes(inode),
                             sum(r.length for r in refs))
    return Put(inode is None, parent.ino, name, inode.ino if inode else ns.next_ino, uid, gid,
               mode, size, now_ns, tuple(refs))


def renew(ns: Namespace, user: str, chunk_ids: Sequence[object], wall_now: float,
          gc_grace: float) -> Renew | None:
    """The writer still holds these uploaded chunks (its file is open): the ones pending for
    it get another ``gc_grace`` seconds. None: none of them is."""
    mine = tuple(cid for cid in chunk_ids
                 if type(cid) is int and ns.pending.get(cid, (None,))[0] == user)
    return Renew(user, mine, wall_now + gc_grace) if mine else None


def abandon(ns: Namespace, user: str, chunk_ids: Sequence[object]) -> Unpend | None:
    """The writer gave up on these allocated chunks: the ones pending for it are freed."""
    mine = tuple(cid for cid in chunk_ids
                 if type(cid) is int and ns.pending.get(cid, (None,))[0] == user)
    return Unpend(mine) if mine else None


def expired_allocations(ns: Namespace, wall_now: float) -> Unpend | None:
    """Allocated chunks never committed within their grace time (None: none)."""
    expired = tuple(cid for cid, (_owner, exp) in ns.pending.items() if exp < wall_now)
    return Unpend(expired) if expired else None


def readable(ns: Namespace, user: Cred, path: str) -> Inode:
    """The file or symlink at ``path``, if this user may read its content."""
    return openable(ns, user, path, R)


OPEN_ACCESS = (R, W, R | W)  # open(2)'s access modes (O_TRUNC asks W too)


def openable(ns: Namespace, user: Cred, path: str, want: int) -> Inode:
    """The file (or, to read, symlink) at ``path`` if this user may open it for ``want``:
    as POSIX, the permission is checked once, at open; writes through that open file are
    then committed (``commit``) by its owner whatever the mode is by then."""
    inode = ns.resolve(path, user)
    if inode.kind == "d":
        raise errors.IsADirectory(f"{path} is a directory")
    if want & W and inode.kind != "f":
        raise errors.InvalidArgument(f"{path} is not a regular file")
    ns.require(user, inode, want, path)
    return inode

"""Per-user quotas, as pure rules (see dfs/namespace/rules.py for the conventions).

An admin sets a user's limits on bytes stored and inodes owned (dfs/namespace/usage.py says
what counts). A change that would take a user past a limit is refused with QuotaExceeded
(EDQUOT), and nothing changes; a change that lowers what a user holds is always allowed,
so a user over quota (the limit lowered under them) can still delete and shrink. Bytes are
charged to the file's owner (by uid), inodes to whoever creates them; chunks reserved for
an upload count from the moment they are allocated, so room cannot be double-booked by parallel
uploads. Admins are not limited (as root on a local file system).
"""

from __future__ import annotations

from dfs import errors
from dfs.namespace.entries import SetQuota
from dfs.namespace.model import Namespace
from dfs.namespace.usage import Held

MAX_QUOTA = 1 << 62


def _limited(ns: Namespace, uid: int) -> tuple[int | None, int | None]:
    user = ns.user_with_uid(uid)  # admins (uid 0) are None: not limited
    if user is None:
        return None, None
    return user.quota_bytes, user.quota_inodes


def reserved_bytes(ns: Namespace, held: Held) -> int:
    return held.bytes + held.pending_chunks * ns.chunk_size


def check_new_inodes(ns: Namespace, uid: int, count: int = 1) -> None:
    """The owner ``uid`` is about to own ``count`` more inodes."""
    _, limit = _limited(ns, uid)
    if limit is not None and ns.usage.held(uid).inodes + count > limit:
        raise errors.QuotaExceeded(f"{ns.owner_name(uid)} would pass their quota of {limit} "
                                   "files")


def check_allocation(ns: Namespace, uid: int, chunks: int) -> None:
    """The owner ``uid`` asks for ``chunks`` more chunk ids to upload into."""
    limit, _ = _limited(ns, uid)
    if limit is None:
        return
    after = reserved_bytes(ns, ns.usage.held(uid)) + chunks * ns.chunk_size
    if after > limit:
        raise errors.QuotaExceeded(f"{ns.owner_name(uid)} would pass their quota of {limit} "
                                   "bytes (uploads in flight count)")


def check_bytes_change(ns: Namespace, uid: int, before: int, after: int) -> None:
    """A file of ``uid`` goes from ``before`` to ``after`` stored bytes. Its new chunks
    stop being pending at the same time, so only what is committed is compared."""
    limit, _ = _limited(ns, uid)
    if limit is None or after <= before:
        return
    if ns.usage.held(uid).bytes - before + after > limit:
        raise errors.QuotaExceeded(f"{ns.owner_name(uid)} would pass their quota of {limit} "
                                   "bytes")


def _check_limit(value: object, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_QUOTA:
        raise errors.InvalidArgument(f"{what} quota must be a number 0..{MAX_QUOTA} or none")
    return value


def set_quota(ns: Namespace, name: str, quota_bytes: object, quota_inodes: object) -> SetQuota:
    """(The caller is an admin: checked by the endpoint.) A limit may be set below what the
    user holds now: they can then only delete and shrink until under it."""
    if name not in ns.users:
        raise errors.FileNotFound(f"no user {name}")
    return SetQuota(name, _check_limit(quota_bytes, "byte"),
                    _check_limit(quota_inodes, "inode"))

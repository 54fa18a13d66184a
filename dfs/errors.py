"""The one DfsError hierarchy.

Every failure a user can meet is a DfsError subclass carrying the errno that the mount
returns for it and a one-line message that the CLI prints. Nodes raise these classes;
rpyc carries them to clients by class name (clients connect with
``instantiate_custom_exceptions``), so a ``FileNotFound`` raised in the master arrives as a
``FileNotFound`` in the client. Transport failures (EOFError, timeouts, refused
connections) are turned into ``MasterUnavailable`` / ``WorkerUnavailable`` inside
``dfs.client``, never shown raw.
"""

from __future__ import annotations

import errno as _errno


class DfsError(Exception):
    """Base class. ``errno`` is what the mount returns; ``str(e)`` is the user's message."""

    errno: int = _errno.EIO

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __str__(self) -> str:
        # rpyc appends the remote traceback to str(); users only see the message.
        return self.message


class InvalidArgument(DfsError):
    errno = _errno.EINVAL


class InvalidPath(InvalidArgument):
    errno = _errno.EINVAL


class NameTooLong(DfsError):
    errno = _errno.ENAMETOOLONG


class FileNotFound(DfsError):
    errno = _errno.ENOENT


class FileExists(DfsError):
    errno = _errno.EEXIST


class NotADirectory(DfsError):
    errno = _errno.ENOTDIR


class IsADirectory(DfsError):
    errno = _errno.EISDIR


class DirectoryNotEmpty(DfsError):
    errno = _errno.ENOTEMPTY


class PermissionDenied(DfsError):
    errno = _errno.EACCES


class NotPermitted(DfsError):
    """An operation only the owner or an admin may do."""

    errno = _errno.EPERM


class WorkerRemoved(NotPermitted):
    """This worker's id was removed from the cluster (`dfs workers remove`): it may not
    join again under it."""

    errno = _errno.EPERM


class Busy(DfsError):
    """Still needed: a worker holding the only copy of some chunks is not removed."""

    errno = _errno.EBUSY


class AuthenticationFailed(DfsError):
    errno = _errno.EACCES


class NoSpace(DfsError):
    """The cluster cannot place or store a chunk (every worker with room is full), or a
    node's disk is full: the application sees ENOSPC, as on a local disk."""

    errno = _errno.ENOSPC


NO_SPACE_ERRNOS = frozenset({_errno.ENOSPC, _errno.EDQUOT})
"""OSError errnos that mean "the disk (or a quota on it) is full"."""


def is_no_space(exc: BaseException) -> bool:
    """True for an OSError saying the disk is full (ENOSPC, EDQUOT)."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


class QuotaExceeded(DfsError):
    """The user's byte or inode quota (set by an admin) would be passed."""

    errno = _errno.EDQUOT


class FileTooLarge(DfsError):
    """A size or offset past the largest file (dfs.chunks.MAX_FILE_SIZE), as the kernel's."""

    errno = _errno.EFBIG


class NoMemory(DfsError):
    """A request the client's memory budget (ClientConfig.write_back_bytes) cannot hold."""

    errno = _errno.ENOMEM


class NoSuchOffset(DfsError):
    """lseek's SEEK_DATA/SEEK_HOLE at or past the end (or only holes after the offset)."""

    errno = _errno.ENXIO


class NotSupported(DfsError):
    errno = _errno.ENOTSUP


class NoAttribute(DfsError):
    """No extended attribute of that name (getxattr, removexattr, XATTR_REPLACE)."""

    errno = _errno.ENODATA


class OutOfRange(DfsError):
    """An extended attribute's name is empty or longer than 255 bytes, or an answer does
    not fit the caller's buffer (as the kernel says: ERANGE)."""

    errno = _errno.ERANGE


class TooBig(DfsError):
    """An extended attribute's value is longer than 64 KiB (XATTR_SIZE_MAX: E2BIG)."""

    errno = _errno.E2BIG


class Unavailable(DfsError):
    """A node cannot be reached or cannot serve right now."""

    errno = _errno.EIO


class NoActiveWorkers(Unavailable):
    errno = _errno.EIO

    def __init__(self,
                 message: str = "no active workers: start a worker (dfs worker) and retry"
                 ) -> None:
        super().__init__(message)


class AddressInUse(Unavailable):
    """A node cannot listen: another process has its port."""

    errno = _errno.EADDRINUSE
    SAYS = "is already in use"  # in every message: dfs.local finds it in a node's log

    @classmethod
    def of(cls, host: str, port: int, remedy: str) -> AddressInUse:
        return cls(f"port {port} on {host} {cls.SAYS} (another DFS node or another program "
                   f"listens there): {remedy}")


class MasterUnavailable(Unavailable):
    errno = _errno.ETIMEDOUT


class WorkerUnavailable(Unavailable):
    errno = _errno.EIO


class NotLeader(Unavailable):
    """This metadata server is not the leader; ``leader`` names the one to ask, if known."""

    errno = _errno.EIO

    def __init__(self, message: str = "not the leader", leader: str = "") -> None:
        super().__init__(message)
        self.leader = leader


class ChunkCorrupt(DfsError):
    """A chunk's bytes do not match their checksum on this replica."""

    errno = _errno.EIO


class ChunkMissing(DfsError):
    errno = _errno.EIO


class DataLost(DfsError):
    """Every replica of a chunk is bad or gone: the read fails, never returns zeros."""

    errno = _errno.EIO


class StaleToken(DfsError):
    """A chunk token that is expired, forged, for another chunk or op, or from an old epoch."""

    errno = _errno.EACCES


class WouldBlock(DfsError):
    """A lock that another holder's lock stands in the way of, asked for without waiting."""

    errno = _errno.EAGAIN


class Interrupted(DfsError):
    """A wait for a lock ended by a signal to the waiting process."""

    errno = _errno.EINTR


class LockLost(DfsError):
    """Too many locks (per session, or sessions per user), or a lock that could not be
    reclaimed after a failover: ENOLCK, as a full lock table says it."""

    errno = _errno.ENOLCK


def like(exc: DfsError, message: str) -> DfsError:
    """A new error of ``exc``'s own class (so its errno) saying ``message``: a failure
    reported again later stays what it was (ENOSPC stays ENOSPC, not EIO)."""
    for cls in type(exc).__mro__:
        if cls.__module__ == __name__ and issubclass(cls, DfsError):
            fresh = cls.__new__(cls)
            DfsError.__init__(fresh, message)
            fresh.__dict__.update(exc.__dict__)  # NotLeader's leader, say
            return fresh
    return DfsError(message)


def errno_of(exc: BaseException) -> int:
    """The errno the mount returns for ``exc``; anything unexpected is EIO."""
    if isinstance(exc, DfsError):
        return exc.errno
    return _errno.EIO

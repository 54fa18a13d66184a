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


class AuthenticationFailed(DfsError):
    errno = _errno.EACCES


class NoSpace(DfsError):
    errno = _errno.ENOSPC


class NotSupported(DfsError):
    errno = _errno.ENOTSUP


class Unavailable(DfsError):
    """A node cannot be reached or cannot serve right now."""

    errno = _errno.EIO


class NoActiveWorkers(Unavailable):
    errno = _errno.EIO

    def __init__(self,
                 message: str = "no active workers: start a worker (dfs worker) and retry"
                 ) -> None:
        super().__init__(message)


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


def errno_of(exc: BaseException) -> int:
    """The errno the mount returns for ``exc``; anything unexpected is EIO."""
    if isinstance(exc, DfsError):
        return exc.errno
    return _errno.EIO

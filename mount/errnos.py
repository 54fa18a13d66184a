"""The mount's errno policy, chosen once: how a failed FUSE operation answers the kernel.

Every operation of mount.ops and mount.fileops goes through ``operation``: a DfsError
becomes its ``errno`` (logged at debug level when it is an everyday answer, QUIET_ERRNOS,
else as a warning); anything else is a bug, logged once with its traceback, and EIO. An
operation that decides an errno itself raises ``FuseError``, which passes through as it is.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from dfs import errors

log = logging.getLogger("mount.ops")  # the operations' log, wherever they are defined

QUIET_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EACCES, errno.EPERM,
                errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENAMETOOLONG, errno.ENXIO,
                errno.EFBIG, errno.ENODATA, errno.ERANGE, errno.E2BIG, errno.EOPNOTSUPP,
                errno.EAGAIN, errno.EINTR}
TOLD_AT_FLUSH = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                           errno.EFBIG})  # a close's failures the application saw

P = ParamSpec("P")
R = TypeVar("R")


class Traced(Protocol):
    """What ``operation`` needs of the operations object: whether to time each call."""

    trace: bool


Ops = TypeVar("Ops", bound=Traced)


class FuseError(OSError):
    """Raised by an operation to return ``errno`` to the kernel."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


def operation(func: Callable[Concatenate[Ops, str, P], R]
              ) -> Callable[Concatenate[Ops, str, P], R]:
    """The one place errors become errnos (and, with --debug, each call is timed):
    a DfsError becomes its errno, anything else EIO."""
    name = func.__name__

    @functools.wraps(func)
    def run(self: Ops, path: str, *args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter() if self.trace else 0.0
        try:
            return func(self, path, *args, **kwargs)
        except FuseError:
            raise
        except errors.DfsError as exc:
            code = exc.errno
            if code in QUIET_ERRNOS:
                log.debug("%s %s: %s", name, path, exc.message)
            else:
                log.warning("%s %s failed: %s", name, path, exc.message)
            raise FuseError(code) from None
        except Exception:
            log.exception("unexpected error in %s %s: returning EIO", name, path)
            raise FuseError(errno.EIO) from None
        finally:
            if self.trace:
                log.debug("%s %s: %.2f ms", name, path, (time.perf_counter() - started) * 1000)
    return run

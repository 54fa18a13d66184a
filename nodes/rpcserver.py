"""What every node's rpyc server shares: the tuned server, and one boundary for errors.

``make_server()`` builds a ThreadedServer (one thread per connection) with TCP_NODELAY set
on each accepted socket and compression off (dfs.rpc.tune). ``@boundary`` wraps each
exposed method: DfsErrors go to the caller as they are (their class survives the trip),
anything else is logged once here with its traceback and reaches the caller as a plain
DfsError, never as a remote KeyError. ``expect()`` checks one argument's exact type there.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from rpyc.utils.server import ThreadedServer

from dfs import errors, rpc

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
U = TypeVar("U")

SERVER_CONFIG: dict[str, object] = {
    "allow_public_attrs": False,
    "allow_pickle": False,
    "include_local_traceback": False,
    "instantiate_custom_exceptions": True,
    "sync_request_timeout": 60,
}


def _nodelay_authenticator(sock: socket.socket) -> tuple[socket.socket, None]:
    rpc.set_nodelay(sock)
    return sock, None


def make_server(service: object, host: str, port: int) -> ThreadedServer:
    """A bound (not yet serving) server; ``server.port`` is the real port when port=0."""
    quiet = logging.getLogger("dfs.rpyc-server")
    quiet.setLevel(logging.WARNING)
    return ThreadedServer(service, hostname=host, port=port, reuse_addr=True,
                          protocol_config=SERVER_CONFIG, authenticator=_nodelay_authenticator,
                          logger=quiet)


def peer_host(conn: Any) -> str:
    """The address the rpyc connection ``conn`` comes from, or "" when unknown."""
    try:
        return str(conn._config["endpoints"][1][0])
    except (KeyError, IndexError, TypeError):
        return ""


def is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost")


def boundary(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except errors.DfsError:
            raise
        except Exception:
            log.exception("internal error in %s", method.__name__)
            raise errors.DfsError(f"internal error in {method.__name__.removeprefix('exposed_')}"
                                  " (see the node's log)") from None
    return wrapper


@overload
def expect(value: object, kind: type[T], name: str) -> T: ...
@overload
def expect(value: object, kind: tuple[type[T], type[U]], name: str) -> T | U: ...
@overload
def expect(value: object, kind: tuple[type, ...], name: str) -> object: ...


def expect(value: object, kind: type | tuple[type, ...], name: str) -> object:
    """Validate one argument's type at the boundary (exact types: no proxies, no bools as
    ints). -> the value, typed as checked."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if type(value) not in kinds:
        raise errors.InvalidArgument(f"{name} has the wrong type")
    return value

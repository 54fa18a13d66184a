"""What every node's rpyc server shares: the tuned server, and one boundary for errors.

``make_server()`` builds a ThreadedServer (one thread per connection) with TCP_NODELAY set
on each accepted socket, TLS when the node serves with it (dfs.tls), and compression off
(dfs.rpc.tune). ``@boundary`` wraps each
exposed method: DfsErrors go to the caller as they are (their class survives the trip),
anything else is logged once here with its traceback and reaches the caller as a plain
DfsError, never as a remote KeyError. ``expect()`` checks one argument's exact type there.

Arguments are plain data only. rpyc would hand the server a *netref* for any object that
is not passed by value, and the server's ``==``, ``hash()``, ``str.split()`` on it would
run the client's code (inside the metadata or store lock). So ``PlainConnection`` (every
node service's ``_protocol``) refuses to build a netref to a client object at all, and
``@boundary`` accepts only exact ``str``/``bytes``/``int``/``float``/``bool``/``None`` and
tuples of them (``plain``), before the method runs: no method can forget.

``@boundary`` is also where each call is measured (dfs.metrics: latency by method, errors
by class) and where ``current_call()`` is set for the method's thread: who is asking and
with what, for the master's audit log (nodes/master/events.py). A call made from inside
another exposed method (``Auth_Host`` calling ``login``) counts once, as the outer one.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import inspect
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, NamedTuple, ParamSpec, TypeVar, overload

import rpyc
from rpyc.core import consts
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.server import ThreadedServer

from dfs import errors, metrics, rpc, tls
from nodes.server_limits import GuardedServer, ServerLimits

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


def _authenticator(handshake_timeout: float) -> Callable[[socket.socket],
                                                          tuple[socket.socket, None]]:
    """TCP_NODELAY on each accepted socket, and the TLS handshake when this node serves
    with TLS (dfs.tls.activate): a peer that does not speak it is closed right here."""
    def authenticate(sock: socket.socket) -> tuple[socket.socket, None]:
        rpc.set_nodelay(sock)
        context = tls.serving()
        if context is None:
            return sock, None
        sock.settimeout(handshake_timeout)  # the reaper cannot reach a socket being wrapped
        try:
            wrapped = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            raise AuthenticationError(f"TLS handshake failed: {exc}") from None
        wrapped.settimeout(None)
        return wrapped, None
    return authenticate


def make_server(service: object, host: str, port: int,
                limits: ServerLimits | None = None) -> ThreadedServer:
    """A bound (not yet serving) server; ``server.port`` is the real port when port=0.
    ``limits``: its bounds on frames, connections and idle time (nodes/server_limits.py;
    a node passes ``master_limits(config)`` or ``worker_limits(config)``)."""
    quiet = logging.getLogger("dfs.rpyc-server")
    quiet.setLevel(logging.WARNING)
    limits = limits or ServerLimits()
    try:
        return GuardedServer(service, hostname=host, port=port, reuse_addr=True,
                             protocol_config=SERVER_CONFIG,
                             authenticator=_authenticator(limits.login_timeout),
                             logger=quiet, limits=limits)
    except OSError as exc:
        raise _bind_error(exc, host, port) from None


def _bind_error(exc: OSError, host: str, port: int) -> errors.DfsError:
    """Why a node cannot listen, in one line that says what to do."""
    if exc.errno == errno.EADDRINUSE:
        return errors.AddressInUse.of(host, port, "stop what uses it, or give this node "
                                        "another --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return errors.Unavailable(f"cannot listen on {host}: not an address of this machine "
                                  "(--host names one of its own addresses)")
    if exc.errno == errno.EACCES:
        return errors.PermissionDenied(f"port {port} needs more privileges than this user "
                                       "has: use a port above 1023")
    return errors.Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def peer_host(conn: Any) -> str:
    """The address the rpyc connection ``conn`` comes from, or "" when unknown."""
    try:
        return str(conn._config["endpoints"][1][0])
    except (KeyError, IndexError, TypeError):
        return ""


def is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost")


PLAIN_TYPES: tuple[type, ...] = (str, bytes, int, float, bool, type(None))
NOT_PLAIN = "must be plain data (str, bytes, numbers, booleans, None, tuples)"


def plain(value: object, name: str) -> None:
    """InvalidArgument unless ``value`` is exact plain data, tuples of it at any depth.
    Exact types (``type(x) is``), never isinstance: nothing of the value is called."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is tuple:
            stack.extend(item)
        elif not any(type(item) is plain_type for plain_type in PLAIN_TYPES):
            raise errors.InvalidArgument(f"{name} {NOT_PLAIN}")


class PlainConnection(rpyc.Connection):
    """The server side of a node's connections: a reference to a client object is
    refused as it arrives, so no code of the client can ever run in the server."""

    def _unbox(self, package: Any) -> Any:
        if type(package) is tuple and package and package[0] == consts.LABEL_REMOTE_REF:
            raise errors.InvalidArgument(f"arguments {NOT_PLAIN}, not client objects")
        return super()._unbox(package)


class Call(NamedTuple):
    """One exposed method being served on this thread (``current_call()``)."""

    op: str  # the method's name without "exposed_"
    service: object  # the service object of the connection (who is logged in on it)
    arguments: dict[str, object]  # the plain arguments, by parameter name


_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("dfs_call", default=None)


def current_call() -> Call | None:
    """The exposed method this thread is serving, or None (a node's own background task)."""
    return _CALL.get()


def boundary(method: Callable[P, R]) -> Callable[P, R]:
    name = method.__name__.removeprefix("exposed_")
    parameters = tuple(inspect.signature(method).parameters)[1:]  # without self
    latency = metrics.REQUESTS.labels(name)

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for position, value in enumerate(args[1:], 1):  # args[0] is the service itself
            plain(value, f"{name}: argument {position}")
        for key, value in kwargs.items():
            plain(value, f"{name}: argument {key}")
        if _CALL.get() is not None:  # called by another exposed method: measured there
            return _serve(method, name, args, kwargs)
        started = time.perf_counter()
        given = dict(zip(parameters, args[1:], strict=False))  # more arguments: TypeError
        token = _CALL.set(Call(name, args[0], {**given, **kwargs}))
        try:
            return _serve(method, name, args, kwargs)
        except errors.DfsError as exc:
            metrics.REQUEST_ERRORS.labels(name, type(exc).__name__).inc()
            raise
        finally:
            _CALL.reset(token)
            latency.observe(time.perf_counter() - started)
    return wrapper


def _serve(method: Callable[..., R], name: str, args: tuple[object, ...],
           kwargs: dict[str, object]) -> R:
    """Run one exposed method: a DfsError as it is, anything else logged once here."""
    try:
        return method(*args, **kwargs)
    except errors.DfsError:
        raise
    except Exception as exc:
        if errors.is_no_space(exc):  # ENOSPC to the caller, as a local disk says it
            log.error("%s: the disk is full (%s)", name, exc)
            raise errors.NoSpace(f"{name}: the server's disk is full") from None
        log.exception("internal error in %s", method.__name__)
        raise errors.DfsError(f"internal error in {name} (see the node's log)") from None


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

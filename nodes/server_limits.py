"""Bounds on what a peer can make a node's rpyc server hold: frames, connections, idle time.

Stock rpyc reads a frame's 4-byte length and buffers that many bytes, for anyone, before
any login; it runs a thread per connection without limit or timeout, and its accept loop
ends for good on EMFILE. ``GuardedServer`` (built by nodes.rpcserver.make_server) fixes
each:

- Frames: ``LimitedChannel`` checks the length in the header against the connection's
  current limit and closes the connection when it is over (nothing is buffered). The limit
  starts at ``frame_before_login`` and is raised by ``promote(service, method)`` after a call
  succeeds (a login, a signed peer call). Big frames before login also draw on one budget
  per server, so many connections cannot each buffer a big frame. Compressed frames are
  refused (no DFS peer sends them; a small one can inflate to gigabytes).
- Connections: at most ``max_connections`` in all and ``max_connections_per_peer`` from one
  address; more are closed at accept.
- Idle time: a connection not logged in ``login_timeout`` seconds after it was opened, or
  logged in and idle ``idle_timeout`` seconds, is closed by one reaper task (a half-sent
  frame counts as idle, so a trickle cannot hold a connection). Clients reconnect.
- EMFILE/ENFILE (or a thread that cannot start) at accept: logged, a short pause, serving
  goes on.

Every warning here is throttled: one line per ``LOG_EVERY`` seconds and kind, with a count.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.stream import SocketStream
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.server import ThreadedServer

from dfs import errors
from dfs.config import MIB, MasterConfig, WorkerConfig, default
from dfs.rpc import BIG
from nodes.tasks import Task
from nodes.worker.store import MAX_PIECE

log = logging.getLogger(__name__)

Clock = Callable[[], float]

KIB = 1024
FRAME_BEFORE_LOGIN = 64 * KIB
"""hello, login, worker_login, register, voter and peer pings carry names, nonces and
proofs: well under 1 KiB each. 64 KiB leaves room and bounds what an anonymous peer can
make a master buffer (64 KiB times the connection cap)."""
USER_FRAME = 64 * MIB
"""A logged-in user's biggest request is a commit of a file's chunk list, about 150 bytes a
chunk: 64 MiB is some 400,000 chunks (over 1.5 TiB at 4 MiB chunks)."""
NODE_FRAME = 1024 * MIB
"""A worker's inventory at registration and the leader's snapshot for its standby grow
with the cluster; these peers hold the join token. Far from rpyc's 4 GiB, still bounded."""
WORKER_FRAME = MAX_PIECE + MIB
"""A worker has no login (each call carries a token), so one limit from the first frame:
its biggest request is a write of MAX_PIECE bytes plus the token and arguments."""
BUFFER_BUDGET = 256 * MIB
"""Bytes that frames bigger than FRAME_BEFORE_LOGIN may hold at once, in all, on
connections not logged in (a worker's first call is often a 1 MiB write)."""
ACCEPT_PAUSE = 0.2
"""Seconds to wait after accept() failed for want of descriptors (or a thread)."""
LOG_EVERY = 10.0
"""Seconds between two log lines of one kind (refusals, closes, EMFILE)."""

OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
RETRY_ACCEPT = (errno.EINTR, errno.EAGAIN, errno.ECONNABORTED, errno.EPROTO)

Promote = Callable[[object, str], "int | None"]
"""``(service, method that just succeeded) -> the connection's new frame limit`` (it is
then logged in), or None: no change."""

MASTER_PEER_CALLS = frozenset({"voter", "peer_ping", "peer_replicate", "peer_install"})


def promote_on_any_call(limit: int) -> Promote:
    """Every call that succeeded passed a check (a worker: each needs a token or a signature)."""
    return lambda service, method: limit


def promote_master(service: object, method: str) -> int | None:
    """A master's session is logged in once it names a user or a worker
    (nodes.master.session.Session); the other metadata server signs each call instead."""
    if method in MASTER_PEER_CALLS or getattr(service, "worker_id", None) is not None:
        return NODE_FRAME
    if getattr(service, "user", None) is not None:
        return USER_FRAME
    return None


@dataclass(frozen=True)
class ServerLimits:
    """What one server allows. The defaults never refuse an honest frame of any node
    (nodes pass ``master_limits``/``worker_limits`` for the tight ones)."""

    frame_before_login: int = NODE_FRAME
    promote: Promote = field(default=promote_on_any_call(NODE_FRAME))
    login_timeout: float = default(MasterConfig, "login_timeout")
    idle_timeout: float = default(MasterConfig, "idle_timeout")
    max_connections: int = default(MasterConfig, "max_connections")
    max_connections_per_peer: int = default(MasterConfig, "max_connections_per_peer")
    buffer_budget: int = BUFFER_BUDGET

    def __post_init__(self) -> None:
        if not 0 < self.login_timeout <= self.idle_timeout:
            raise errors.InvalidArgument("login timeout must be positive and at most the "
                                         "idle timeout")
        if not 1 <= self.max_connections_per_peer <= self.max_connections:
            raise errors.InvalidArgument("connections per peer must be between 1 and the "
                                         "total cap")


def master_limits(config: MasterConfig) -> ServerLimits:
    return ServerLimits(FRAME_BEFORE_LOGIN, promote_master, config.login_timeout,
                        config.idle_timeout, config.max_connections,
                        config.max_connections_per_peer)


def worker_limits(config: WorkerConfig) -> ServerLimits:
    return ServerLimits(WORKER_FRAME, promote_on_any_call(WORKER_FRAME), config.login_timeout,
                        config.idle_timeout, config.max_connections,
                        config.max_connections_per_peer)


class Throttle:
    """At most one log line per ``every`` seconds for each kind; the next line says how many
    were left out."""

    def __init__(self, every: float = LOG_EVERY, clock: Clock = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.next_at: dict[str, float] = {}
        self.dropped: Counter[str] = Counter()
        self.lock = threading.Lock()

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """-> True when the line was written."""
        with self.lock:
            now = self.clock()
            if now < self.next_at.get(kind, float("-inf")):
                self.dropped[kind] += 1
                return False
            self.next_at[kind] = now + self.every
            dropped = self.dropped.pop(kind, 0)
        if dropped:
            message += " (and %d more like it in the last %.0fs)"
            args = (*args, dropped, self.every)
        log.log(level, message, *args)
        return True


class Tracked:
    """One accepted connection, as the table sees it."""

    def __init__(self, peer: str, sock: socket.socket, limit: int, now: float) -> None:
        self.peer = peer
        self.sock = sock
        self.frame_limit = limit
        self.logged_in = False
        self.opened = now
        self.idle_since: float | None = now
        """When it began waiting for a frame; None while a request is being handled."""

    def close(self) -> None:
        """Wake its thread: blocked reads return EOF and rpyc ends the connection."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class ConnectionTable:
    """The open connections of one server: the caps, the buffer budget, the timeouts."""

    def __init__(self, limits: ServerLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.open: set[Tracked] = set()
        self.per_peer: Counter[str] = Counter()
        self.buffered = 0
        self.lock = threading.Lock()

    def admit(self, peer: str, sock: socket.socket) -> Tracked | None:
        """-> the new connection's record, or None when a cap is reached."""
        limits = self.limits
        with self.lock:
            if len(self.open) >= limits.max_connections \
                    or self.per_peer[peer] >= limits.max_connections_per_peer:
                return None
            tracked = Tracked(peer, sock, limits.frame_before_login, self.clock())
            self.open.add(tracked)
            self.per_peer[peer] += 1
            return tracked

    def release(self, tracked: Tracked) -> None:
        with self.lock:
            if tracked in self.open:
                self.open.discard(tracked)
                self.per_peer[tracked.peer] -= 1
                if self.per_peer[tracked.peer] <= 0:
                    del self.per_peer[tracked.peer]

    def count(self, peer: str | None = None) -> int:
        with self.lock:
            return len(self.open) if peer is None else self.per_peer[peer]

    def reserve(self, tracked: Tracked, length: int) -> int:
        """Bytes of the budget a frame of ``length`` takes (0: none needed), or -1 when
        the budget cannot hold it."""
        if tracked.logged_in or length <= FRAME_BEFORE_LOGIN:
            return 0
        with self.lock:
            if self.buffered + length > self.limits.buffer_budget:
                return -1
            self.buffered += length
            return length

    def unreserve(self, taken: int) -> None:
        if taken > 0:
            with self.lock:
                self.buffered -= taken

    def promote(self, tracked: Tracked, limit: int) -> None:
        tracked.logged_in = True
        tracked.frame_limit = max(tracked.frame_limit, limit)

    def expired(self) -> list[Tracked]:
        """Connections past their timeout and not handling a request right now."""
        now = self.clock()
        limits = self.limits
        with self.lock:
            found = []
            for tracked in self.open:
                idle_since = tracked.idle_since
                if idle_since is None:
                    continue
                if tracked.logged_in:
                    late = now - idle_since > limits.idle_timeout
                else:
                    late = now - tracked.opened > limits.login_timeout
                if late:
                    found.append(tracked)
            return found


class FrameRefused(EOFError):
    """Ends the connection the way a closed socket does (rpyc then cleans up quietly)."""


class LimitedChannel(Channel):
    """rpyc's Channel, with each frame's length checked before it is read (and a big one's
    body read apart from its flusher, as dfs.rpc's client channel: no copy to slice it)."""

    def __init__(self, stream: SocketStream, table: ConnectionTable, tracked: Tracked,
                 throttle: Throttle) -> None:
        super().__init__(stream, compress=False)
        self.table = table
        self.tracked = tracked
        self.throttle = throttle

    def poll(self, timeout: Any) -> bool:
        if self.tracked.idle_since is None:
            self.tracked.idle_since = self.table.clock()
        ready: bool = super().poll(timeout)
        return ready

    def recv(self) -> bytes:
        tracked = self.tracked
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if compressed:
            self._refuse("compressed frame", "a compressed frame")
        if length > tracked.frame_limit:
            self._refuse("frame", "a frame of %d bytes (limit %d%s)", length,
                         tracked.frame_limit, "" if tracked.logged_in else " before login")
        taken = self.table.reserve(tracked, length)
        if taken < 0:
            self._refuse("budget", "a frame of %d bytes before login: %d bytes of such "
                         "frames are being read already", length, self.table.buffered)
        try:
            if length < BIG:
                data: bytes = self.stream.read(length + len(self.FLUSHER))[:-len(self.FLUSHER)]
            else:  # apart from its flusher, so the body is not sliced off it (a copy)
                data = self.stream.read(length)
                self.stream.read(len(self.FLUSHER))
        finally:
            self.table.unreserve(taken)
        tracked.idle_since = None  # a request: busy until the next poll
        return data

    def _refuse(self, kind: str, what: str, *args: object) -> None:
        self.throttle.log(logging.WARNING, kind, "closing a connection from %s: " + what,
                          self.tracked.peer, *args)
        self.stream.close()
        raise FrameRefused("frame refused")


class GuardedCalls(Connection):
    """Mixed into a service's connection class: tells the table when a call succeeded
    (a login raises the connection's limits)."""

    guard: LimitedChannel

    def _handle_call(self, obj: Any, args: Any, kwargs: Any = ()) -> Any:
        result = super()._handle_call(obj, args, kwargs)
        name = str(getattr(obj, "__name__", ""))
        if name.startswith("exposed_"):  # not rpyc's own safe attributes (``__str__``)
            guard = self.guard
            limit = guard.table.limits.promote(self._local_root, name.removeprefix("exposed_"))
            if limit is not None:
                guard.table.promote(guard.tracked, limit)
        return result


_GUARDED: dict[type, type[GuardedCalls]] = {}


def guarded(protocol: type[Connection]) -> type[GuardedCalls]:
    """The service's own connection class (say, nodes.rpcserver.PlainConnection), guarded."""
    made = _GUARDED.get(protocol)
    if made is None:
        made = _GUARDED[protocol] = type(f"Guarded{protocol.__name__}",
                                         (GuardedCalls, protocol), {})
    return made


class GuardedServer(ThreadedServer):
    """ThreadedServer with the bounds of this module (see its docstring)."""

    def __init__(self, *args: Any, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = ConnectionTable(limits)
        self.throttle = Throttle()
        self.tracked: dict[socket.socket, Tracked] = {}
        reap_every = min(1.0, limits.login_timeout / 4)
        self.reaper = Task(f"rpc-reaper-{self.port}", self.reap, reap_every)

    def start(self) -> None:
        self.reaper.start()
        try:
            super().start()
        finally:
            self.reaper.stop()

    def reap(self) -> None:
        expired = self.table.expired()
        for tracked in expired:
            tracked.close()
        if expired:
            self.throttle.log(logging.INFO, "timeout", "closed %d idle connection(s), e.g. "
                              "from %s", len(expired), expired[0].peer)

    def accept(self) -> None:
        while self.active:
            try:
                sock, address = self.listener.accept()
                break
            except TimeoutError:  # the listener's own timeout: look at self.active again
                continue
            except OSError as exc:
                if not self.active:
                    return
                if exc.errno in RETRY_ACCEPT:
                    continue
                if exc.errno in OUT_OF_RESOURCES:
                    self._pause("emfile", "cannot accept connections: %s; %d open", exc,
                                self.table.count())
                    continue
                raise EOFError(str(exc)) from None  # the listener is gone: stop serving
        else:
            return
        self._admit(sock, str(address[0]) if isinstance(address, tuple) else "")

    def _admit(self, sock: socket.socket, peer: str) -> None:
        tracked = self.table.admit(peer, sock)
        if tracked is None:
            self.throttle.log(logging.WARNING, "cap", "refusing a connection from %s: %d open "
                              "from there, %d in all (caps %d and %d)", peer,
                              self.table.count(peer), self.table.count(),
                              self.table.limits.max_connections_per_peer,
                              self.table.limits.max_connections)
            sock.close()
            return
        sock.setblocking(True)
        self.clients.add(sock)
        self.tracked[sock] = tracked
        try:
            self._accept_method(sock)
        except RuntimeError as exc:  # "can't start new thread"
            self._forget(sock)
            sock.close()
            self._pause("thread", "cannot start a thread for a connection: %s", exc)

    def _pause(self, kind: str, message: str, *args: object) -> None:
        self.throttle.log(logging.WARNING, kind, message, *args)
        time.sleep(ACCEPT_PAUSE)

    def _forget(self, sock: socket.socket) -> None:
        self.clients.discard(sock)
        tracked = self.tracked.pop(sock, None)
        if tracked is not None:
            self.table.release(tracked)

    def _authenticate_and_serve_client(self, sock: socket.socket) -> None:
        tracked = self.tracked[sock]
        try:
            served, credentials = sock, None
            if self.authenticator:
                try:
                    served, credentials = self.authenticator(sock)
                except AuthenticationError:
                    self.throttle.log(logging.INFO, "handshake", "a connection from %s "
                                      "failed its handshake", tracked.peer)
                    return
            tracked.sock = served  # a TLS socket took over the descriptor: close that one
            self._serve(served, credentials, tracked)
        except (OSError, EOFError):
            pass  # the peer went away, or its frame was refused (logged): nothing more
        except Exception:
            log.exception("connection from %s ended by an error", tracked.peer)
        finally:
            self._forget(sock)
            tracked.close()
            tracked.sock.close()
            sock.close()

    def _serve(self, sock: socket.socket, credentials: object, tracked: Tracked) -> None:
        """rpyc's _serve_client, with our channel and connection classes."""
        config = dict(self.protocol_config, credentials=credentials,
                      endpoints=(sock.getsockname(), sock.getpeername()), logger=self.logger)
        channel = LimitedChannel(SocketStream(sock), self.table, tracked, self.throttle)
        root = self.service()
        conn = guarded(getattr(root, "_protocol", Connection))(root, channel, config)
        conn.guard = channel
        root.on_connect(conn)
        conn.serve_all()

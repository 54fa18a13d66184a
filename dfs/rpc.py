"""rpyc tuned for bulk bytes, and the one place connections are made.

Stock rpyc moves about 10 MB/s of chunk data on loopback. Three settings fix it (measured
in the foundation issue): no zlib compression of large frames, TCP_NODELAY on both ends
(the server side is set in nodes/rpcserver.py), and a socket write size big enough that
a 1 MiB frame is not re-sliced and copied 16 times. ``tune()`` applies the class-level
ones; it runs when this module is imported, in every DFS process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import zlib
from collections.abc import Callable
from typing import Any, Literal

import rpyc
from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream

from dfs import auth, errors, tls

IO_CHUNK = 4 * 1024 * 1024

CLIENT_CONFIG: dict[str, Any] = {
    "allow_public_attrs": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": True,
    "include_local_traceback": False,
    "sync_request_timeout": 30,
}


def tune() -> None:
    Channel.COMPRESSION_LEVEL = 0
    Channel.COMPRESSION_THRESHOLD = 1 << 62  # never compress: chunk data is mostly incompressible
    SocketStream.MAX_IO_CHUNK = IO_CHUNK
    _keep_big_buffers()
    _fewer_copies()


def _keep_big_buffers() -> None:
    """rpyc copies each 1 MiB piece several times; glibc maps and unmaps a fresh buffer
    for each copy (page faults every time). Raising its thresholds keeps them reused:
    measured 200-230 -> 470-1000 MB/s for 1 MiB rpyc writes. glibc only; else a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    mallopt(m_trim_threshold, 256 * 1024 * 1024)


BIG = 64 * 1024  # bytes from which a frame or a bytes value is worth not copying


def _fewer_copies() -> None:
    """rpyc copies every 1 MiB piece some ten times between the caller's buffer and the
    kernel (profiled: the mount's and the workers' CPU on big files). Some of them go:
    a bytes value is framed without being concatenated to its tag (brine), a frame is
    sent as its parts in one sendmsg instead of header + data + flusher concatenated,
    and partial sends continue on a view instead of re-slicing the rest; a frame is
    received in one recv when the socket allows it, so there is nothing to join, and
    a big one is not sliced off its flusher."""
    dump_registry = brine._dump_registry
    plain_dump_bytes = dump_registry[bytes]

    def dump_bytes(obj: bytes, stream: list[bytes]) -> None:
        if len(obj) < BIG:
            plain_dump_bytes(obj, stream)
        else:
            stream.append(brine.TAG_STR_L4 + brine.I4.pack(len(obj)))
            stream.append(obj)
    dump_registry[bytes] = dump_bytes
    Channel.send = _channel_send
    Channel.recv = _channel_recv
    SocketStream.write = _stream_write
    SocketStream.read = _stream_read


def _channel_send(self: Channel, data: bytes) -> None:
    if self.compress and len(data) > self.COMPRESSION_THRESHOLD:
        data = zlib.compress(data, self.COMPRESSION_LEVEL)
        header = self.FRAME_HEADER.pack(len(data), 1)
    else:
        header = self.FRAME_HEADER.pack(len(data), 0)
    if len(data) < BIG:
        self.stream.write(header + data + self.FLUSHER)
    else:
        _send_parts(self.stream, (header, data, self.FLUSHER))


def _channel_recv(self: Channel) -> bytes:
    """rpyc's recv; a big frame's body is read apart from the flusher after it, so it
    is not sliced off (a copy). A node's server reads with its own (LimitedChannel)."""
    header = self.stream.read(self.FRAME_HEADER.size)
    length, compressed = self.FRAME_HEADER.unpack(header)
    if length < BIG:
        data: bytes = self.stream.read(length + len(self.FLUSHER))[:-len(self.FLUSHER)]
    else:
        data = self.stream.read(length)
        self.stream.read(len(self.FLUSHER))
    return zlib.decompress(data) if compressed else data


def _send_parts(stream: SocketStream, parts: tuple[bytes, ...]) -> None:
    """sendmsg of every part, continuing after a partial send without copying; TLS has
    no sendmsg: each part is sent whole."""
    sock = stream.sock
    try:
        if type(sock) is not socket.socket:
            for part in parts:
                sock.sendall(part)
            return
        views = [memoryview(part) for part in parts if part]
        while views:
            sent = sock.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if sent:
                views[0] = views[0][sent:]
    except OSError as exc:
        stream.close()
        raise EOFError(exc) from None


def _stream_write(self: SocketStream, data: bytes) -> None:
    try:
        self.sock.sendall(data)
    except OSError as exc:
        self.close()
        raise EOFError(exc) from None


def _stream_read(self: SocketStream, count: int) -> bytes:
    """rpyc's read, asking a plain blocking socket for the whole ``count`` at once
    (MSG_WAITALL): one buffer, so no join copies it."""
    sock = self.sock
    flags = socket.MSG_WAITALL if (type(sock) is socket.socket
                                   and sock.gettimeout() is None) else 0
    data = []
    while count > 0:
        try:
            buf = sock.recv(min(self.MAX_IO_CHUNK, count), flags)
        except TimeoutError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                continue
            self.close()
            raise EOFError(exc) from None
        if not buf:
            self.close()
            raise EOFError("connection closed by peer")
        data.append(buf)
        count -= len(buf)
    return data[0] if len(data) == 1 else b"".join(data)


tune()


def set_nodelay(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP (e.g. a unix socket): nothing to tune


def connect(host: str, port: int, timeout: float = 30.0, connect_timeout: float = 5.0,
            trust: tls.Trust | None | Literal["process"] = "process") -> rpyc.Connection:
    """An rpyc connection with nodelay and no compression; raises Unavailable on failure.
    ``trust``: TLS, the server checked that way (dfs.tls); None: plain TCP; by default
    what this process uses (``tls.trust()``: a node's cluster CA, or auth.txt's pin)."""
    trust = tls.trust() if trust == "process" else trust
    try:
        stream = SocketStream.connect(host, port, timeout=connect_timeout, nodelay=True,
                                      keepalive=True, attempts=1)
        if isinstance(trust, tls.Trust):
            stream.sock = tls.wrap(stream.sock, trust, connect_timeout)
        stream.sock.settimeout(None)
        config = dict(CLIENT_CONFIG, sync_request_timeout=timeout)
        return rpyc.utils.factory.connect_channel(Channel(stream, compress=False), config=config)
    except (OSError, EOFError) as exc:
        raise errors.Unavailable(f"cannot reach {host}:{port}: {exc}") from None


def call(conn: rpyc.Connection, name: str, *args: Any, **kwargs: Any) -> Any:
    """``conn.root.<name>(*args, **kwargs)`` in one round trip: the plain spelling costs a
    getattr request, the call, and a release message (measured 860 -> 240 us)."""
    return conn.sync_request(consts.HANDLE_CALLATTR, conn.root, name, args,
                             tuple(kwargs.items()))


def call_async(conn: rpyc.Connection, name: str, *args: Any, timeout: float) -> Any:
    """``call`` without waiting for the answer: -> an AsyncResult, whose ``value`` waits
    (at most ``timeout`` seconds) and returns the answer or raises the error."""
    return conn.async_request(consts.HANDLE_CALLATTR, conn.root, name, args, (),
                              timeout=timeout)


def hard_close(conn: rpyc.Connection) -> None:
    """Close a connection whose peer may be dead or paused: drop the socket first, so the
    polite close message rpyc sends cannot block on it."""
    try:
        conn._channel.stream.close()
    except Exception:
        pass
    try:
        conn.close()
    except Exception:
        pass


TRANSPORT_ERRORS = (EOFError, ConnectionError, TimeoutError, socket.timeout, BrokenPipeError)


def login(conn: rpyc.Connection, method: str, name: str, key: str) -> Any:
    """The login handshake, the one copy of it: ``hello()`` gives the server's nonce, then
    ``<method>(name, client nonce, proof)`` proves we hold ``key`` without sending it
    (dfs.auth). -> what the login method answered."""
    nonce, _role, _epoch = call(conn, "hello")
    client_nonce = auth.new_nonce()
    proof = auth.make_proof(key, name, nonce, client_nonce)
    return call(conn, method, name, client_nonce, proof)


def read_pieces(read_piece: Callable[[int], tuple[bytes, int]], length: int | None,
                what: str) -> bytes:
    """The one piece-read loop: ``read_piece(offset) -> (data, chunk size)`` until the
    whole chunk is in (``length`` if known, else the size the worker reports). A piece
    that comes back empty before the end means the copy is shorter than recorded."""
    pieces: list[bytes] = []
    offset = 0
    while length is None or offset < length:
        data, size = read_piece(offset)
        if length is None:
            length = size
        if not data:
            if offset < length:
                raise errors.ChunkCorrupt(f"{what} is shorter than recorded")
            break
        pieces.append(data)
        offset += len(data)
    return b"".join(pieces)

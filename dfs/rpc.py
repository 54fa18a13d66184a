"""rpyc tuned for bulk bytes, and the one place connections are made.

Stock rpyc moves about 10 MB/s of chunk data on loopback. Three settings fix it (measured
in the foundation issue): no zlib compression of large frames, TCP_NODELAY on both ends
(the server side is set in nodes/service.py), and a socket write size big enough that
a 1 MiB frame is not re-sliced and copied 16 times. ``tune()`` applies the class-level
ones; it runs when this module is imported, in every DFS process.
"""

import socket

import rpyc
from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream

from dfs import errors

IO_CHUNK = 4 * 1024 * 1024

CLIENT_CONFIG = {
    "allow_public_attrs": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": True,
    "include_local_traceback": False,
    "sync_request_timeout": 30,
}


def tune():
    Channel.COMPRESSION_LEVEL = 0
    Channel.COMPRESSION_THRESHOLD = 1 << 62  # never compress: chunk data is mostly incompressible
    SocketStream.MAX_IO_CHUNK = IO_CHUNK


tune()


def set_nodelay(sock):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP (e.g. a unix socket): nothing to tune


def connect(host, port, timeout=30.0, connect_timeout=5.0):
    """An rpyc connection with nodelay and no compression; raises Unavailable on failure."""
    try:
        stream = SocketStream.connect(host, port, timeout=connect_timeout, nodelay=True,
                                      keepalive=True, attempts=1)
        stream.sock.settimeout(None)
        config = dict(CLIENT_CONFIG, sync_request_timeout=timeout)
        return rpyc.utils.factory.connect_channel(Channel(stream, compress=False), config=config)
    except (OSError, EOFError) as exc:
        raise errors.Unavailable(f"cannot reach {host}:{port}: {exc}") from None


def hard_close(conn):
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

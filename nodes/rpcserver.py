"""What every node's rpyc server shares: the tuned server, and one boundary for errors.

``serve()`` starts a ThreadedServer (one thread per connection) with TCP_NODELAY set on
each accepted socket and compression off (dfs.rpc.tune). ``@boundary`` wraps each exposed
method: DfsErrors go to the caller as they are (their class survives the trip), anything
else is logged once here with its traceback and reaches the caller as a plain DfsError,
never as a remote KeyError.
"""

import functools
import logging
import threading

from rpyc.utils.server import ThreadedServer

from dfs import errors, rpc

log = logging.getLogger(__name__)

SERVER_CONFIG = {
    "allow_public_attrs": False,
    "allow_pickle": False,
    "include_local_traceback": False,
    "instantiate_custom_exceptions": True,
    "sync_request_timeout": 60,
}


def _nodelay_authenticator(sock):
    rpc.set_nodelay(sock)
    return sock, None


def make_server(service, host, port):
    """A bound (not yet serving) server; ``server.port`` is the real port when port=0."""
    quiet = logging.getLogger("dfs.rpyc-server")
    quiet.setLevel(logging.WARNING)
    return ThreadedServer(service, hostname=host, port=port, reuse_addr=True,
                          protocol_config=SERVER_CONFIG, authenticator=_nodelay_authenticator,
                          logger=quiet)


def serve_in_thread(server):
    thread = threading.Thread(target=server.start, name=f"rpyc-{server.port}", daemon=True)
    thread.start()
    return thread


def peer_host(conn):
    try:
        return conn._config["endpoints"][1][0]
    except (KeyError, IndexError, TypeError):
        return ""


def is_loopback(host):
    return host.startswith("127.") or host in ("::1", "localhost")


def boundary(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except errors.DfsError:
            raise
        except Exception:
            log.exception("internal error in %s", method.__name__)
            raise errors.DfsError(f"internal error in {method.__name__.removeprefix('exposed_')}"
                                  " (see the node's log)") from None
    return wrapper


def expect(value, kind, name):
    """Validate one argument's type at the boundary (exact types: no proxies, no bools as ints)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if type(value) not in kinds:
        raise errors.InvalidArgument(f"{name} has the wrong type")
    return value

"""A node's read-only HTTP port: ``/metrics`` for Prometheus and, on a metadata server, ``/``
(the status page, nodes/master/status_page.py).

Nothing here can change the node: GET and HEAD only (anything else is 501, from the
standard library), no query string is read, no file is served. What it costs the node is
bounded: at most ``MAX_CLIENTS`` connections are served at once (more are closed as they
arrive), each socket waits at most ``CLIENT_TIMEOUT`` seconds for a read, and each page is
made at most once per ``CACHE_SECONDS`` however often it is asked for (making one takes the
metadata lock for a moment). It listens on loopback unless configured
(MasterConfig.metrics_host) and runs on its own threads, beside the rpyc server.

``DATA/web-address`` holds ``host:port`` once it listens (tests and scripts read it; the
port is the configured one, or the OS's choice for 0).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dfs import errors
from dfs.fsutil import write_atomic

log = logging.getLogger(__name__)

MAX_CLIENTS = 8
CLIENT_TIMEOUT = 5.0
CACHE_SECONDS = 1.0
ADDRESS_FILE = "web-address"
PAGE_HEADERS = {
    # the page is static HTML: no script, no frame, nothing loaded from elsewhere
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Page = Callable[[], str]
"""Makes the status page's HTML (already escaped)."""


class _Cached:
    """One response body, made again at most every CACHE_SECONDS (thread-safe)."""

    def __init__(self, make: Callable[[], bytes]) -> None:
        self.make = make
        self.lock = threading.Lock()
        self.body = b""
        self.made = -CACHE_SECONDS

    def get(self) -> bytes:
        with self.lock:
            now = time.monotonic()
            if now - self.made >= CACHE_SECONDS:
                self.body, self.made = self.make(), now
            return self.body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = MAX_CLIENTS

    def __init__(self, address: tuple[str, int], routes: dict[str, tuple[_Cached, str]]) -> None:
        self.routes = routes
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket],
                        client_address: object) -> None:
        if not self.slots.acquire(blocking=False):  # busy: this one is simply closed
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket | tuple[bytes, socket.socket],
                               client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT
    server_version = "dfs"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_error(404, "not here: try / or /metrics")
            return
        cached, content_type = route
        try:
            body = cached.get()
        except Exception:
            log.exception("cannot make %s", self.path.split("?", 1)[0])
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if content_type.startswith("text/html"):
            for name, value in PAGE_HEADERS.items():
                self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("%s %s", self.address_string(), format % args)


class WebServer:
    """``/metrics`` of ``registry`` and, with ``page``, the status page at ``/``."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 page: Page | None = None) -> None:
        routes = {"/metrics": (_Cached(lambda: generate_latest(registry)), CONTENT_TYPE_LATEST)}
        if page is not None:
            html = _Cached(lambda: page().encode("utf-8"))
            routes["/"] = routes["/index.html"] = (html, "text/html; charset=utf-8")
        try:
            self.server = _Server((host, port), routes)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise errors.InvalidArgument(
                    f"metrics port {port} on {host} is already in use: stop what holds it, "
                    "or choose another with --metrics-port (off: none)") from None
            raise errors.InvalidArgument(f"cannot listen on {host}:{port} for metrics: "
                                         f"{exc.strerror}") from None
        self.host = host
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="web",
                                       daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, data_dir: str) -> WebServer:
        """Serve on a thread; write ``data_dir``/web-address."""
        self.thread.start()
        write_atomic(os.path.join(data_dir, ADDRESS_FILE), f"{self.host}:{self.port}\n".encode())
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

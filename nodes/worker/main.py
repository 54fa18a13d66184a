"""Run one worker in this process: its rpyc service, its scrubber, a reporter per
metadata server, its HTTP port for /metrics (nodes/web.py).

Threads: rpyc's server (one thread per connection), one Task per reporter (each with a
small command executor), one Task for the scrubber, the HTTP server's (a few). Everything
stops when the server does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rpyc.utils.helpers import classpartial

from dfs import metrics
from dfs.config import WorkerConfig, metrics_port
from dfs.retry import RetryPolicy
from nodes.rpcserver import make_server
from nodes.server_limits import worker_limits
from nodes.web import WebServer
from nodes.worker.metrics import WorkerCollector
from nodes.worker.node import Worker
from nodes.worker.reporter import Reporter
from nodes.worker.scrubber import Scrubber
from nodes.worker.service import WorkerService

log = logging.getLogger(__name__)

# Worker settings WorkerConfig does not have yet (asked of its owner); until then, here once.
SCRUB_MIN_PASS = 5.0
"""Seconds from the start of one scrub pass to the start of the next, at least."""
RECONNECT = RetryPolicy(deadline=None, first=0.2, cap=1.0)
"""How a reporter waits before logging in again to a metadata server it lost."""
MASTER_CALL_TIMEOUT = 10.0
"""Deadline for each call a reporter makes to a metadata server."""
COMMAND_THREADS = 2
"""Master commands (copy or delete a replica) one reporter runs at once."""


def run(config: WorkerConfig, ready: Callable[[int], object] | None = None) -> None:
    """Serve until interrupted; ``ready(port)`` is called once the server is bound."""
    config.validate()
    worker = Worker(config)
    server = make_server(classpartial(WorkerService, worker), config.host, config.port,
                         limits=worker_limits(config))
    worker.address = (config.host, server.port)
    web_port = metrics_port(config.port, config.metrics_port)
    web = None if web_port is None else WebServer(
        config.metrics_host, web_port,
        metrics.node_registry((*metrics.WORKER_METRICS, WorkerCollector(worker)))
    ).start(config.data_dir)
    reporters = [Reporter(worker, address, RECONNECT, MASTER_CALL_TIMEOUT, COMMAND_THREADS)
                 for address in config.masters]
    for reporter in reporters:
        reporter.start()
    scrubber = Scrubber(worker.store, config.scrub_bytes_per_second, SCRUB_MIN_PASS,
                        keep_quarantine=config.keep_quarantine)
    scrubber.start()
    log.info("worker %s serving on %s:%d (data in %s)%s", worker.worker_id, config.host,
             server.port, config.data_dir, f"; metrics on {web.url}metrics" if web else "")
    if ready is not None:
        ready(server.port)
    try:
        server.start()
    finally:
        scrubber.stop()
        for reporter in reporters:
            reporter.stop()
        if web is not None:
            web.stop()
        server.close()

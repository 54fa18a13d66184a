"""Run one metadata server (master or shadow) in this process."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rpyc.utils.helpers import classpartial

from dfs import metrics
from dfs.config import MasterConfig, metrics_port
from nodes.master import status_page
from nodes.master.heap import Heap
from nodes.master.metrics import MasterCollector
from nodes.master.service import MasterService
from nodes.master.state import MasterState
from nodes.master.trash_pressure import TrashPressure
from nodes.rpcserver import make_server
from nodes.server_limits import master_limits
from nodes.tasks import Task
from nodes.web import WebServer

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.5  # seconds between attempts to bring a lagging standby back in sync


def run(config: MasterConfig, ready: Callable[[int], object] | None = None) -> None:
    """Run a master in this process until interrupted. ``ready(port)`` once listening."""
    config.validate()
    heap = Heap()  # before the threads: glibc gives freed memory back (nodes/master/heap.py)
    state = MasterState(config)
    server = make_server(classpartial(MasterService, state), config.host, config.port,
                         limits=master_limits(config))
    state.address = (config.host, server.port)
    collector = MasterCollector(state)
    web = _web_server(config, state, collector)
    loops = [Task("master-tick", state.tick, config.tick_interval),
             Task("master-metrics", collector.tick, config.tick_interval),
             Task("master-elect", state.elect, config.lease / 6),  # several tries per lease
             Task("master-sync", state.sync_standby, SYNC_INTERVAL),
             Task("trash-pressure", TrashPressure(state).tick, config.tick_interval),
             Task("master-locks", lambda: state.locks.tick(
                 state.leadership.term if state.serving() else None, state.ns.initialised),
                 config.tick_interval),
             Task("master-heap", heap.tick, config.tick_interval)]
    for loop in loops:
        loop.start()
    log.info("%s listening on %s:%d (data in %s)", config.role, config.host, server.port,
             config.data_dir)
    if ready is not None:
        ready(server.port)
    try:
        server.start()
    finally:
        for loop in loops:
            loop.stop()
        if web is not None:
            web.stop()
        server.close()
        state.snapshot_and_close()


def _web_server(config: MasterConfig, state: MasterState,
                collector: MasterCollector) -> WebServer | None:
    """The HTTP port (/metrics and the status page), serving; None when it is off."""
    web_port = metrics_port(config.port, config.metrics_port)
    if web_port is None:
        return None
    registry = metrics.node_registry((*metrics.MASTER_METRICS, collector))
    web = WebServer(config.metrics_host, web_port, registry,
                    page=lambda: status_page.page(state)).start(config.data_dir)
    state.web_url = web.url
    log.info("metrics and status page on %s", web.url)
    return web

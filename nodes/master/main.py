"""Run one metadata server (master or shadow) in this process."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rpyc.utils.helpers import classpartial

from dfs.config import MasterConfig
from nodes.master.service import MasterService
from nodes.master.state import MasterState
from nodes.master.trash_pressure import TrashPressure
from nodes.rpcserver import make_server
from nodes.server_limits import master_limits
from nodes.tasks import Task

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.5  # seconds between attempts to bring a lagging standby back in sync


def run(config: MasterConfig, ready: Callable[[int], object] | None = None) -> None:
    """Run a master in this process until interrupted. ``ready(port)`` once listening."""
    config.validate()
    state = MasterState(config)
    server = make_server(classpartial(MasterService, state), config.host, config.port,
                         limits=master_limits(config))
    state.address = (config.host, server.port)
    loops = [Task("master-tick", state.tick, config.tick_interval),
             Task("master-elect", state.elect, config.lease / 6),  # several tries per lease
             Task("master-sync", state.sync_standby, SYNC_INTERVAL),
             Task("trash-pressure", TrashPressure(state).tick, config.tick_interval)]
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
        server.close()
        state.snapshot_and_close()

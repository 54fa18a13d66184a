"""Keeps this worker known to one metadata server.

A Reporter logs in, registers with the full inventory, heartbeats with what changed, and
hands the commands the leader sends back to a small executor (so a slow replication never
delays a heartbeat); after any failure it reconnects with backoff (dfs.retry). One
Reporter per metadata server, so the standby knows every chunk's location before it has
to take over.

Threads: one Task named ``reporter-HOST:PORT`` does the talking; only it touches the
connection. Its changes feed in the ChunkStore (named ``HOST:PORT``) is what this server
has not been told yet; a failed heartbeat gives its changes back to the feed.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dfs import errors, rpc
from dfs.config import Address
from dfs.retry import RetryPolicy
from nodes.tasks import Task
from nodes.worker.node import Worker

log = logging.getLogger(__name__)

EXPECTED_FAILURES = (errors.DfsError, *rpc.TRANSPORT_ERRORS, OSError)
"""Failures that are part of life (a server down, restarting, not the leader): one line
in the log, no traceback."""
REMOVED_RETRY = 30.0
"""Seconds between tries of a worker whose id was removed from the cluster: it asks now and
then (the removal cannot be undone, but the operator sees one warning, not a flood)."""


class Reporter:
    def __init__(self, worker: Worker, address: Address, retry: RetryPolicy,
                 timeout: float, command_threads: int) -> None:
        """``retry``: how long to wait before reconnecting; ``timeout``: for each call to the
        metadata server; ``command_threads``: master commands run at once."""
        self.worker = worker
        self.address = address
        self.feed = "%s:%d" % address
        self.timeout = timeout
        self.backoff = retry.start()
        self.conn: Any = None  # an rpyc connection once logged in and registered
        self.interval = 0.0  # between heartbeats: the metadata server says at login
        self.pause = 0.0  # before the next step: at once, then interval or backoff
        self.removed = False  # told that this worker was removed from the cluster
        self.executor = ThreadPoolExecutor(max_workers=command_threads,
                                           thread_name_prefix="worker-cmd")
        self.task = Task(f"reporter-{self.feed}", self.step, lambda: self.pause,
                         on_stop=self._disconnect)

    def start(self) -> None:
        self.task.start()

    def stop(self) -> None:
        self.task.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def step(self) -> None:
        """Register when not connected, else heartbeat once; a failure drops the
        connection and sets the pause before the next try."""
        try:
            if self.conn is None:
                self._register()
            else:
                self._heartbeat()
        except errors.WorkerRemoved as exc:
            if not self.removed:
                log.warning("metadata server %s: %s", self.feed, exc)
                self.removed = True
            self._failed()
            self.pause = REMOVED_RETRY
        except EXPECTED_FAILURES as exc:
            log.info("metadata server %s: %s", self.feed, exc)
            self._failed()
        except Exception:
            self._failed()
            raise  # the task logs it with its traceback

    def _failed(self) -> None:
        self._disconnect()
        self.pause = self._next_delay()

    def _next_delay(self) -> float:
        delay = self.backoff.next_delay()
        return self.backoff.policy.cap if delay is None else delay

    def _disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def _register(self) -> None:
        worker, store = self.worker, self.worker.store
        host, port = self.address
        conn = rpc.connect(host, port, timeout=self.timeout)
        try:
            interval, _epoch = rpc.login(conn, "worker_login", worker.worker_id,
                                         worker.config.join_token)
            store.take_changes(self.feed)  # the full inventory below supersedes them
            chunk_size, _epoch = conn.root.worker_register(
                worker.address[0], worker.address[1], store.free(), store.used,
                tuple(store.inventory()))
        except BaseException:
            conn.close()
            raise
        if chunk_size:
            store.chunk_size = chunk_size
        log.info("registered with %s:%d as %s", host, port, worker.worker_id)
        self.conn, self.interval = conn, interval
        self.backoff.reset()
        self.pause = interval

    def _heartbeat(self) -> None:
        store = self.worker.store
        changes = store.take_changes(self.feed)
        try:
            commands = self.conn.root.worker_heartbeat(store.free(), store.used, store.busy,
                                                       *changes)
        except Exception:
            store.give_back(self.feed, changes)
            raise
        if commands is None:  # the master forgot us (restart, or we were declared dead)
            self._disconnect()
            self.backoff.reset()
            self.pause = self._next_delay()
            return
        for command in commands:
            self.executor.submit(self.worker.execute, command)
        self.pause = self.interval

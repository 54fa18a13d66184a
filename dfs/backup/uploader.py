"""The uploader thread of `dfs backup`: takes work from the queue, applies it to the
cluster (dfs.backup.operations), and retries what fails because the cluster is away."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING

from dfs import errors
from dfs.backup.changes import ChangeQueue, Op, Signature
from dfs.backup.operations import Operations, Stopped
from dfs.backup.state import StateStore
from dfs.backup.tree import Tree
from dfs.retry import Backoff, RetryPolicy

if TYPE_CHECKING:
    from dfs.client import DfsClient

log = logging.getLogger(__name__)

RETRY = RetryPolicy(deadline=None, first=0.5, cap=5.0)
"""While the cluster is unavailable an operation is tried again after 0.5 s, 1 s, ...
then every 5 s; with a patience (--once) no later than that after the first failure."""

TRANSIENT = (errors.Unavailable, errors.NoSpace, ConnectionError, TimeoutError, EOFError)
"""Failures that say "not now": the operation is kept and retried with backoff."""

TAKE_TIMEOUT = 0.5
"""How long the loop waits for work before it looks at whether it is idle or stopped."""


class Uploader:
    """Takes work from the queue and applies it to the cluster, one operation at a time.

    Runs in its own thread (``run()`` until ``stop()``). It is the only thread that calls
    the cluster and the only writer of the state store. An operation that fails because the
    cluster is unavailable is held and retried with exponential backoff (``RETRY``) until
    it succeeds or the watcher stops: the queue keeps collecting changes meanwhile, and
    nothing is dropped. Other failures (a name the cluster refuses, a file we may not read)
    are logged once and the file is skipped until it changes again. ``_failed_lock`` guards
    ``failed``, which the main thread reads during rescans.
    """

    def __init__(self, client: DfsClient, tree: Tree, queue: ChangeQueue, state: StateStore,
                 mirror_deletes: bool = False, patience: float | None = None) -> None:
        self.tree = tree
        self.queue = queue
        self.state = state
        self.retry = dataclasses.replace(RETRY, deadline=patience)
        """``patience``: seconds of unavailability after which to give up (None: never;
        --once uses it)."""
        self.gave_up = False
        self.failed: dict[str, Signature] = {}  # rel -> local signature when it failed for good
        self._failed_lock = threading.Lock()
        self._stop = threading.Event()
        self._did_work = True  # report "in sync" at the first idle moment
        self.operations = Operations(client, tree, queue, state, mirror_deletes,
                                     stopping=self._stop.is_set)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stop.is_set():
            op = self.queue.take(timeout=TAKE_TIMEOUT)
            if op is None:
                if not self.stopping:
                    self._when_idle()
                continue
            try:
                self._apply_with_retry(op)
            finally:
                self.queue.done()
            self.state.flush_if_due()

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _when_idle(self) -> None:
        if self._did_work and self.queue.idle():
            self._did_work = False
            self.state.flush()
            log.info("in sync: %d files in %s; since start %s", len(self.state),
                     self.tree.remote_root, self.summary())
        else:
            self.state.flush_if_due()

    def _apply_with_retry(self, op: Op) -> None:
        self._did_work = True
        if op.kind == "sync":  # it is tried again: forget that it failed before
            with self._failed_lock:
                self.failed.pop(op.path, None)
        backoff: Backoff | None = None  # started at the first failure
        failures = 0
        first_failure = 0.0
        while not self._stop.is_set():
            try:
                self.operations.apply(op)
                if failures:
                    log.info("the cluster is back; %s done", op.describe())
                return
            except Stopped:
                return
            except TRANSIENT as exc:
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "cluster unavailable (%s); %s waits and is retried", exc, op.describe())
            except errors.DfsError as exc:
                self._give_up(op, exc)
                return
            except OSError as exc:
                self._give_up(op, f"{exc.strerror or exc} ({exc.filename or 'local'})")
                return
            except Exception:
                log.exception("unexpected error during %s; skipped until it changes again",
                              op.describe())
                self._give_up(op, None)
                return
            if backoff is None:
                first_failure = time.monotonic()
                backoff = self.retry.start(sleep=self._stop.wait)  # stop() cuts a pause short
            if not backoff.wait():
                log.error("the cluster has been unavailable for %.0fs; giving up for now",
                          time.monotonic() - first_failure)
                self.gave_up = True
                self.stop()
                return

    def _give_up(self, op: Op, reason: object) -> None:
        if reason is not None:
            log.warning("%s failed: %s; skipped until it changes again", op.describe(), reason)
        if op.kind == "sync":
            signature = self.tree.stat(op.path)
            if signature is not None:
                with self._failed_lock:
                    self.failed[op.path] = signature

    def summary(self) -> str:
        c = self.operations.counts
        with self._failed_lock:
            skipped = len(self.failed)
        return (f"{c.uploaded} uploaded, {c.renamed} renamed, {c.deleted} deleted, "
                f"{c.already} found already there, {skipped} skipped")

    def should_check(self, rel: str, signature: Signature) -> bool:
        """False for a file that failed for good and has not changed since."""
        with self._failed_lock:
            return self.failed.get(rel) != signature

"""The metadata server's cluster-facing endpoints: workers logging in and reporting, the
other metadata server (voter calls, and journal replication on its own signed methods),
and the admin's view of the cluster (status, statfs, fsck). MasterService adds the
file-system methods on top."""

from __future__ import annotations

import logging
from typing import cast

from dfs import auth, errors, wire
from nodes.master import status_page
from nodes.master.links import PeerAnswer, serve_voter_call, verify_peer_call
from nodes.master.placement import Command
from nodes.master.session import Session
from nodes.master.user_service import join_token_guesses
from nodes.master.voter import Answer
from nodes.rpcserver import boundary, expect

log = logging.getLogger(__name__)


def _chunk_list(value: object, name: str) -> list[tuple[int, str]]:
    """((chunk id, kind), ...) as a worker reports them, each pair checked."""
    pairs = []
    for item in expect(value, tuple, name):
        pair = expect(item, tuple, name)
        if len(pair) != 2:
            raise errors.InvalidArgument(f"{name} must hold (chunk id, kind) pairs")
        pairs.append((expect(pair[0], int, "chunk id"), expect(pair[1], str, "kind")))
    return pairs


class ClusterEndpoints(Session):
    """The exposed methods for workers, the peer server and cluster administration."""

    # --- workers ---------------------------------------------------------------------

    @boundary
    def exposed_worker_login(self, worker_id: object, client_nonce: object,
                             proof: object) -> tuple[float, int]:
        worker_id, client_nonce, proof, nonce = self._login_arguments(
            worker_id, client_nonce, proof, "worker id")
        self.state.login_limits.check(self.peer, join_token_guesses(self.peer))
        if not auth.check_proof(auth.stored_form(self.state.join_token), worker_id, nonce,
                                client_nonce, proof):
            raise self._secret_failed(join_token_guesses(self.peer), "wrong join token")
        self.worker_id = worker_id
        self.state.events.login(f"worker:{worker_id}", self.peer, accepted=True)
        return self.state.config.heartbeat_interval, self.state.epoch

    @boundary
    def exposed_worker_register(self, host: object, port: object, free: object, used: object,
                                inventory: object) -> tuple[int, int]:
        worker_id = self._worker()
        chunks = _chunk_list(inventory, "inventory")
        host = expect(host, str, "host")
        port = expect(port, int, "port")
        free, used = expect(free, int, "free"), expect(used, int, "used")
        with self.state.lock:
            if self.state.ns.members.get(worker_id) == "removed":
                raise errors.WorkerRemoved(
                    f"worker {worker_id} was removed from this cluster (dfs workers remove): "
                    "start it with an empty data directory to join as a new worker")
            self.state.workers.register(worker_id, host, port, free, used, chunks,
                                        self.state.clock())
            if self.state.serving():
                self.state.admit_workers()
            return self.state.ns.chunk_size, self.state.epoch

    @boundary
    def exposed_worker_heartbeat(self, free: object, used: object, load: object, added: object,
                                 removed: object,
                                 bad: object = ()) -> tuple[Command, ...] | None:
        """``bad``: ((chunk id, kind), ...) the worker found corrupt itself (its scrubber,
        or a check asked for after a client's report): only these take a copy out."""
        worker_id = self._worker()
        self.state.workers.arrived(worker_id, self.state.clock())  # before waiting for the lock
        corrupt = _chunk_list(bad, "bad chunks")
        gained, lost = _chunk_list(added, "added"), _chunk_list(removed, "removed")
        free, used = expect(free, int, "free"), expect(used, int, "used")
        load = expect(load, int, "load")
        with self.state.lock:
            if corrupt and self.state.serving():  # the leader acts; the worker reports again
                for chunk_id, _kind in corrupt:
                    self.state.workers.drop_corrupt(chunk_id, worker_id)
            commands = self.state.workers.heartbeat(worker_id, free, used, load, gained, lost,
                                                    self.state.clock())
            if commands is None:
                return None  # unknown here: register again
            return tuple(commands) if self.state.serving() else ()

    # --- the other metadata server ----------------------------------------------------

    @boundary
    def exposed_voter(self, method: object, args: object, stamp: object, mac: object) -> Answer:
        """Leases, votes and stale marks for the other server (signed)."""
        return serve_voter_call(self.state.voter_secret, self.state.voter, self.state.me,
                                method, args, stamp, mac)

    @boundary
    def exposed_peer_ping(self, stamp: object, mac: object) -> PeerAnswer:
        """The leader checks we are here. -> ("ok", our last entry)."""
        verify_peer_call(self.state.voter_secret, self.state.me, "peer_ping", (), stamp, mac)
        return self.state.standby.ping()

    @boundary
    def exposed_peer_replicate(self, epoch: object, entries: object, stamp: object,
                               mac: object) -> PeerAnswer:
        """The leader's new journal lines, fsynced here before the answer.
        -> ("ok" | "gap", our last entry) or ("old", our newer epoch)."""
        verify_peer_call(self.state.voter_secret, self.state.me, "peer_replicate",
                         (epoch, entries), stamp, mac)
        epoch = expect(epoch, int, "epoch")
        lines = expect(entries, tuple, "entries")
        for line in lines:
            expect(line, str, "entry")
        return self.state.standby.replicate(epoch, cast(tuple[str, ...], lines))

    @boundary
    def exposed_peer_install(self, epoch: object, snapshot: object, stamp: object,
                             mac: object) -> PeerAnswer:
        """The leader's whole namespace replaces ours. -> ("ok", its last entry) or
        ("old", our newer epoch)."""
        verify_peer_call(self.state.voter_secret, self.state.me, "peer_install",
                         (epoch, snapshot), stamp, mac)
        return self.state.standby.install(expect(epoch, int, "epoch"),
                                          expect(snapshot, bytes, "snapshot"))

    # --- cluster administration -------------------------------------------------------

    @boundary
    def exposed_fsck_start(self, repair: object = False) -> int:
        """Admin: start checking the namespace against the workers' chunks
        (nodes/master/fsck.py). -> job id for fsck_result."""
        repair = expect(repair, bool, "repair")
        self._admin()
        with self.state.lock:
            self.state.require_serving()
        return self.state.fsck.start(repair)

    @boundary
    def exposed_fsck_result(self, job: object) -> wire.Wire:
        """-> where the job is (wire.FsckResult)."""
        job = expect(job, int, "job")
        self._admin()
        return wire.fsck_result_to_wire(self.state.fsck.result(job))

    @boundary
    def exposed_statfs(self) -> wire.Wire:
        """-> the whole cluster's capacity after replication (wire.StatFs)."""
        with self.state.lock:
            self._serving()
            total, free = status_page.capacity(self.state)
            return wire.statfs_to_wire(wire.StatFs(total, free, self.state.ns.chunk_size,
                                                   len(self.state.ns.inodes)))

    @boundary
    def exposed_status(self) -> wire.Wire:
        """-> what this server knows of the cluster (wire.ClusterStatus)."""
        self._me()
        return wire.status_to_wire(status_page.cluster_status(self.state))

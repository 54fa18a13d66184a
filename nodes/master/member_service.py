"""The metadata server's membership endpoints (admin): `dfs workers list | drain | remove`.
The decisions are in nodes/master/membership.py."""

from __future__ import annotations

from dfs import wire
from nodes.master import membership
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect


class MemberEndpoints(Session):
    @boundary
    def exposed_workers_list(self) -> wire.Wire:
        """-> every worker the leader knows (wire.WorkerMember)."""
        self._admin()
        with self.state.lock:
            self.state.require_serving()
            return wire.members_to_wire(membership.members(self.state))

    @boundary
    def exposed_workers_drain(self, worker_id: object) -> int:
        """Copy the worker's chunks elsewhere, place nothing new on it. -> its chunks."""
        worker_id = expect(worker_id, str, "worker id")
        self._admin()
        with self.state.lock:
            self.state.require_serving()
            return membership.drain(self.state, worker_id)

    @boundary
    def exposed_workers_remove(self, worker_id: object, force: object = False) -> int:
        """Take the worker out of the cluster and the electorate. -> chunks lost (forced)."""
        worker_id = expect(worker_id, str, "worker id")
        force = expect(force, bool, "force")
        self._admin()
        with self.state.lock:
            self.state.require_serving()
            return membership.remove(self.state, worker_id, force)

"""Who belongs to the cluster: `dfs workers list | drain ID | remove ID` (admin).

- **list**: every worker the leader knows (registered since it started, or a voter in the
  namespace), its state, chunks, space and whether it votes.
- **drain**: a ``Member(id, "draining")`` entry. Placement (nodes/master/placement.py) puts
  nothing new there and copies each of its chunks to other workers through the usual
  repair path; once a chunk has its copies elsewhere, the draining copy is deleted. A
  draining worker that holds no chunk is *drained*. It still votes and serves reads.
- **remove**: a ``Member(id, "removed")`` entry: the worker leaves the electorate, its
  chunk locations are forgotten, and its id may not register again (a worker that is still
  running is refused; started with an empty data directory it joins as a new worker).
  Refused (errors.Busy) while it holds the only copy of a chunk, unless forced.

Election safety (DESIGN section 5). The electorate is journaled state: both metadata
servers change it by applying the same entry, one voter per entry, so the two views differ
by at most that one voter, and only while the entry is on its way (the standby applies it
before the leader does). A majority of n voters and a majority of the n - 1 others always
share a voter (floor(n/2) + 1 + floor((n-1)/2) + 1 = n + 1 > n), so a leader counting one
view and a candidate counting the other can never both win, and a voter grants one lease
or vote at a time. After the entry the removed voter counts for nobody: ``links()`` comes
from the namespace. A standby marked stale keeps the electorate it had when it was marked
(it receives no entries until it is in sync again), and a majority of *that* electorate
holds the mark, so removals meanwhile do not make it electable. A new worker joins through
``MasterState.admit_workers``: it first takes the standby's stale mark, if any, then grants
the leader a lease, and only then is its ``Voter`` entry committed.

Removal is never automatic: a worker that looks dead may come back with the only copy of
some chunks, and whether it will is the operator's call. `dfs workers list` shows a dead
voter, so the operator sees what keeps the majority small.

Everything here runs under the metadata lock, on the serving leader only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dfs import errors, wire
from dfs.namespace import entries

if TYPE_CHECKING:
    from nodes.master.state import MasterState

log = logging.getLogger(__name__)

DRAINING, REMOVED = "draining", "removed"
SHOWN_PATHS = 3  # files named when a removal is refused


def members(state: MasterState) -> list[wire.WorkerMember]:
    """Every worker the leader knows of, by id. Lock held."""
    now = state.clock()
    table, voters = state.workers, state.ns.voters
    found: dict[str, wire.WorkerMember] = {}
    for wid, worker in table.workers.items():
        if worker.alive:
            status = ("drained" if table.drained(wid) else DRAINING) \
                if wid in table.draining else "alive"
        else:
            status = "dead, draining" if wid in table.draining else "dead"
        found[wid] = wire.WorkerMember(wid, worker.host, worker.port, status,
                                       len(worker.chunks), worker.used, worker.free,
                                       wid in voters, round(now - worker.last_seen, 1))
    for wid, (host, port) in voters.items():
        if wid not in found:  # a voter that has not reported since this server started
            status = "dead, draining" if wid in table.draining else "dead"
            found[wid] = wire.WorkerMember(wid, host, port, status, 0, 0, 0, True, -1.0)
    return [found[wid] for wid in sorted(found)]


def _known(state: MasterState, worker_id: str) -> None:
    if worker_id not in state.workers.workers and worker_id not in state.ns.voters:
        if state.ns.members.get(worker_id) == REMOVED:
            raise errors.FileNotFound(f"worker {worker_id} was already removed")
        raise errors.FileNotFound(f"no worker {worker_id} (dfs workers list shows them)")


def drain(state: MasterState, worker_id: str) -> int:
    """Start draining a worker. -> chunks it holds (to be copied elsewhere). Lock held."""
    _known(state, worker_id)
    table = state.workers
    others = [w for w in table.live() if w.worker_id != worker_id
              and w.worker_id not in table.draining]
    if len(others) < table.replication:
        raise errors.NoSpace(f"cannot drain {worker_id}: {len(others)} other live worker(s) "
                             f"left, each chunk needs {table.replication}")
    if worker_id not in table.draining:
        state.commit(entries.Member(worker_id=worker_id, state=DRAINING))
        log.info("worker %s is draining: its chunks are copied to other workers", worker_id)
    worker = table.workers.get(worker_id)
    return len(worker.chunks) if worker is not None else 0


def remove(state: MasterState, worker_id: str, force: bool) -> int:
    """Take a worker out of the cluster and the electorate. -> chunks whose last copy went
    with it (0 unless ``force``). Lock held."""
    _known(state, worker_id)
    lost = state.workers.only_copies(worker_id, state.ns.live_chunk_ids())
    if lost and not force:
        paths = state.fsck.file_paths(state.ns)
        named = sorted({paths[c] for c in lost if c in paths})[:SHOWN_PATHS]
        where = f" (of {', '.join(named)})" if named else ""
        raise errors.Busy(
            f"worker {worker_id} may hold the only copy of {len(lost)} chunk(s){where}: "
            f"drain it first (dfs workers drain {worker_id}) or bring it back; "
            "--force removes it anyway and those chunks are lost")
    state.commit(entries.Member(worker_id=worker_id, state=REMOVED))
    if lost:
        log.warning("worker %s removed by force: the last copy of %d chunk(s) went with it",
                    worker_id, len(lost))
    else:
        log.info("worker %s removed from the cluster and the electorate", worker_id)
    return len(lost)

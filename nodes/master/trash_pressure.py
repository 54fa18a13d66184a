"""Trash pressure: the trash gives way first when the cluster runs out of space, as
MooseFS's does.

A deleted file waits in its owner's trash (MasterConfig.trash_seconds) and its chunks keep
their space meanwhile. When the live workers' free space falls under the low mark
(``low_mark``: MasterConfig.low_space of their space, or low_space_bytes), the leader
purges trashed files, the ones deleted longest ago first, until the bytes their chunks
hold (every stored copy counted) bring free space back over the mark, committing the
usual ``Purge`` entry through ``MasterState.commit``. A purged chunk leaves a worker's disk
only after the tick's garbage collection, the heartbeat that carries the delete and the one
that reports the space, so until each worker that held a purged file's chunks has
heartbeated ``SETTLE_REPORTS`` times since, those bytes count as free already
(``freeing``): one shortage does not purge twice. A trashed file whose chunks free nothing
(an empty file, copies on no live worker) is not purged for room.

Free space is what the workers report: workers sharing one disk each report that disk's
free space, so their sum overstates it (use ``--capacity`` to give each its share).

Threads: one Task named ``trash-pressure`` on every metadata server; a pass does nothing
unless this server is the serving leader, and holds ``MasterState.lock`` throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from dfs.cli.output import human
from dfs.config import MasterConfig
from dfs.namespace.entries import Purge
from dfs.namespace.inode import TrashItem
from nodes.master.placement import Worker, WorkerTable

if TYPE_CHECKING:
    from nodes.master.state import MasterState

log = logging.getLogger(__name__)

SETTLE_REPORTS = 3
"""Heartbeats of a worker after a purge by which the space it freed has been reported."""


def space(workers: Iterable[Worker]) -> tuple[int, int]:
    """(free, total) bytes of these workers as they last reported (all copies counted)."""
    free = total = 0
    for worker in workers:
        free += worker.free
        total += worker.free + worker.used
    return free, total


def low_mark(config: MasterConfig, total: int) -> int:
    """Free bytes under which space is low, for workers of ``total`` bytes."""
    return config.low_space_bytes if config.low_space_bytes else int(total * config.low_space)


def warning(config: MasterConfig, workers: Iterable[Worker]) -> str:
    """A line for `dfs status` when free space is low ("" when it is not)."""
    free, total = space(workers)
    if not total or free >= low_mark(config, total):
        return ""
    return (f"space is low: {human(free)} of {human(total)} free on the workers (low under "
            f"{human(low_mark(config, total))}); deleted files in the trash are purged first, "
            "oldest first")


def choose(trash: Mapping[str, TrashItem], needed: int,
           stored: Mapping[int, int]) -> tuple[list[str], dict[int, int]]:
    """The trashed files to purge, oldest deleted first, until their chunks free at least
    ``needed`` bytes (or the trash is empty). ``stored``: chunk id -> bytes its copies hold
    on the workers. -> (trash ids, {chunk id: bytes freed})."""
    chosen: list[str] = []
    freed: dict[int, int] = {}
    for tid, item in sorted(trash.items(), key=lambda pair: (pair[1].deleted_at, pair[0])):
        if sum(freed.values()) >= needed:
            break
        mine = {ref.chunk_id: stored.get(ref.chunk_id, 0)
                for ref in item.inode.chunks if ref is not None}  # a hole holds nothing
        if sum(mine.values()):
            chosen.append(tid)
            freed.update(mine)
    return chosen, freed


def stored_bytes(trash: Mapping[str, TrashItem],
                 copies: Mapping[int, Mapping[str, str]]) -> dict[int, int]:
    """Chunk id -> bytes its copies hold (its length times the copies the workers report),
    for every chunk of a trashed file."""
    return {ref.chunk_id: ref.length * len(copies.get(ref.chunk_id, ()))
            for item in trash.values() for ref in item.inode.chunks if ref is not None}


class _Freeing:
    """Bytes one purge frees, until the workers that held them have reported since."""

    def __init__(self, nbytes: int, holders: Iterable[Worker]) -> None:
        self.nbytes = nbytes
        self.waits = [(worker, worker.reports + SETTLE_REPORTS) for worker in holders]

    def settled(self, table: WorkerTable) -> bool:
        """Every holder has reported enough since, or is gone (dead, registered anew)."""
        return all(table.workers.get(w.worker_id) is not w or not w.alive or w.reports >= due
                   for w, due in self.waits)


class TrashPressure:
    def __init__(self, state: MasterState) -> None:
        self.state = state
        self.freeing: list[_Freeing] = []
        """Purges whose space the workers have not reported yet."""

    def tick(self) -> None:
        """Purge what low space asks for (leader only)."""
        state = self.state
        with state.lock:
            if not state.serving() or not state.ns.initialised:
                self.freeing.clear()
                return
            table = state.workers
            self.freeing = [f for f in self.freeing if not f.settled(table)]
            free, total = space(table.live())
            soon = free + sum(f.nbytes for f in self.freeing)
            mark = low_mark(state.config, total)
            trash = state.ns.trash
            if not total or soon >= mark or not trash:
                return
            chosen, freed = choose(trash, mark - soon, stored_bytes(trash, table.locations))
            if not chosen:
                return  # nothing in the trash would free anything
            log.warning("space is low (%d of %d bytes free, low under %d): purging %d "
                        "trashed file(s), oldest first, freeing %d bytes", free, total, mark,
                        len(chosen), sum(freed.values()))
            holders = {wid for cid in freed for wid in table.locations.get(cid, {})}
            state.commit(Purge(tuple(chosen)))
            self.freeing.append(_Freeing(sum(freed.values()),
                                         [table.workers[wid] for wid in sorted(holders)]))

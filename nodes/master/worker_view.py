"""One worker as the master sees it (nodes/master/placement.py ranks them).

Its figures are its last report (``free``, ``used``, ``load``, the chunks it holds) plus the
chunks placed on it that the report does not include yet (``pending``,
nodes/master/reservations.py): placement ranks workers by what they will hold once those are
stored (``projected_fill``, ``projected_chunks``), and a worker has room for a chunk only
beyond what those may still take (``has_room``).

Not thread-safe: the master uses it under its metadata lock, as the WorkerTable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfs.wire import Replica
from nodes.master.reservations import Releases, Reservations

Command = tuple[str | int, ...]  # ("delete", ...) or ("replicate", ...): see placement.py


@dataclass
class Worker:
    worker_id: str
    host: str
    port: int
    free: int = 0
    used: int = 0
    load: int = 0
    last_seen: float = 0.0
    alive: bool = True
    chunks: dict[int, str] = field(default_factory=dict)  # chunk_id -> kind
    commands: list[Command] = field(default_factory=list)
    pending: Reservations = field(default_factory=Reservations)  # placed, not reported yet
    releasing: Releases = field(default_factory=Releases)  # deletes asked, not reported yet
    repairs: int = 0  # replications in flight towards this worker
    verifying: dict[int, float] = field(default_factory=dict)  # chunk id -> asked until
    reports: int = 0  # heartbeats received since it registered
    lost: set[int] = field(default_factory=set)  # chunks it held when it was declared dead

    @property
    def assigned(self) -> int:
        """Chunks placed here that its reports do not include yet."""
        return len(self.pending)

    def total(self) -> int:
        return self.used + self.free

    def fill(self) -> float:
        """Share of its space in use, as last reported."""
        total = self.total()
        return self.used / total if total else 1.0

    def projected_fill(self, chunk_size: int, typical: float) -> float:
        """Share in use once the chunks placed here since its report are stored (one of
        unknown length taking ``typical`` bytes) and those it was told to delete are gone."""
        total = self.total()
        expected = (self.used - self.releasing.nbytes +
                    self.pending.expected_bytes(chunk_size, typical))
        return expected / total if total else 1.0

    def projected_chunks(self) -> int:
        """Chunks held once those placed here are stored (a committed one is listed in
        ``chunks`` already)."""
        return len(self.chunks) + len(self.pending) - self.pending.listed(self.chunks)

    def has_room(self, chunk_size: int) -> bool:
        return self.free - self.pending.room >= chunk_size

    def replica(self, kind: str) -> Replica:
        return Replica(self.worker_id, self.host, self.port, kind)

"""Placement spread: how evenly a workload's chunk copies landed on the DFS workers.

The copies of every chunk of every file under a path are counted per worker from the
master's layouts (``DfsClient.layout``: each chunk's replicas and stored length), so the
figure is the workload's own data, not what earlier workloads left for the collector.
Issue 12 asks every workload to leave the workers within 10 % of even, by bytes and by
chunk count: deviation = max |worker - mean| / mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dfs.client import DfsClient

GOAL_PERCENT = 10.0


@dataclass
class Spread:
    chunks: dict[str, int] = field(default_factory=dict)  # worker id -> chunk copies
    nbytes: dict[str, int] = field(default_factory=dict)  # worker id -> bytes of them

    def add(self, worker_id: str, length: int) -> None:
        self.chunks[worker_id] = self.chunks.get(worker_id, 0) + 1
        self.nbytes[worker_id] = self.nbytes.get(worker_id, 0) + length

    @property
    def worst(self) -> float:
        return max(deviation(self.chunks.values()), deviation(self.nbytes.values()))


def deviation(values: Iterable[int]) -> float:
    """Max distance from the mean, in % of the mean (0 for no data)."""
    values = list(values)
    if not values or not sum(values):
        return 0.0
    mean = sum(values) / len(values)
    return max(abs(v - mean) for v in values) / mean * 100


def measure(admin: DfsClient, path: str) -> Spread:
    """Count the copies of everything under ``path`` (a DFS path) per worker."""
    spread = Spread()
    for worker in admin.status().workers:
        if worker.alive:
            spread.chunks[worker.worker_id] = 0
            spread.nbytes[worker.worker_id] = 0
    stack = [path]
    while stack:
        folder = stack.pop()
        for entry in admin.listdir(folder):
            child = folder.rstrip("/") + "/" + entry.name
            if entry.stat.is_dir:
                stack.append(child)
            elif entry.stat.kind == "f" and entry.stat.size:
                for chunk in admin.layout(child).chunks:
                    for replica in chunk.replicas:
                        spread.add(replica.worker_id, chunk.ref.length)
    return spread


def row(label: str, spread: Spread | None) -> tuple[str, ...]:
    """A row under HEADER."""
    if spread is None or not sum(spread.chunks.values()):
        return (label, "no chunks", "-", "-", "-", "-")
    ids = sorted(spread.chunks)
    counts = "/".join(str(spread.chunks[i]) for i in ids)
    mib = "/".join(f"{spread.nbytes[i] / 2**20:.1f}" for i in ids)
    by_chunks = deviation(spread.chunks.values())
    by_bytes = deviation(spread.nbytes.values())
    ok = "yes" if max(by_chunks, by_bytes) <= GOAL_PERCENT else "NO"
    return (label, counts, mib, f"{by_chunks:.1f}%", f"{by_bytes:.1f}%", ok)


HEADER = ("workload (worst rep)", "chunk copies per worker", "MiB per worker",
          "max dev chunks", "max dev bytes", f"within {GOAL_PERCENT:.0f}%")

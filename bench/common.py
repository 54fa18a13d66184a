"""Helpers shared by the bench modules: timing, formatting, comparisons, a local cluster."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from dfs.config import MIB

if TYPE_CHECKING:
    from dfs.client import DfsClient
    from dfs.local.cluster import LocalCluster

T = TypeVar("T")

Cell = str | int | float | None
Row = tuple[Cell, ...]
Table = tuple[str, Sequence[str], list[Row]]
"""(title, header, rows): what a bench module's ``run(workdir)`` returns a list of."""

PIECE = 64 * MIB  # random data is generated this much at a time

COMPARE_HEADER = ("operation", "DFS", "local", "unit", "DFS/local", "")


class Skip(Exception):
    """Raised by a module that cannot run on this machine; the harness prints the reason."""


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (monotonic, high resolution)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """-> (seconds, fn's result)."""
    with Timer() as t:
        result = fn(*args, **kwargs)
    return t.seconds, result


def mb_per_s(nbytes: float, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes, as dd and fio print)."""
    return nbytes / 1e6 / seconds if seconds > 0 else float("inf")


def per_s(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def fmt_number(value: Cell) -> str:
    """3 significant digits for small values, no decimals for big ones."""
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_mbs(nbytes: float, seconds: float) -> str:
    return fmt_number(mb_per_s(nbytes, seconds))


def compare(label: str, dfs_value: float | None, local_value: float | None, unit: str,
            higher_is_better: bool = True) -> Row:
    """A row under COMPARE_HEADER: the two figures, the ratio DFS/local, and a verdict."""
    if not local_value or dfs_value is None:
        return (label, fmt_number(dfs_value), fmt_number(local_value), unit, "-", "")
    ratio = dfs_value / local_value
    better = ratio >= 1 if higher_is_better else ratio <= 1
    factor = ratio if ratio >= 1 else (1 / ratio if ratio else float("inf"))
    verdict = f"{factor:.1f}x {'faster' if better else 'slower'}"
    if abs(ratio - 1) < 0.05:
        verdict = "same"
    elif not higher_is_better:
        verdict = f"{factor:.1f}x {'less' if better else 'more'}"
    shown = f"x{ratio:.2f}" if ratio >= 0.1 else f"x{ratio:.2g}"
    return (label, fmt_number(dfs_value), fmt_number(local_value), unit, shown, verdict)


def failed(label: str, local_value: float | None, unit: str, exc: BaseException) -> Row:
    """A row under COMPARE_HEADER for a DFS measurement that raised: the error, not a number."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return (label, "FAILED", fmt_number(local_value), unit, "-", message[:80])


def format_table(title: str, header: Sequence[str], rows: Sequence[Row]) -> str:
    """Aligned plain text: text columns to the left, numbers to the right."""
    cells = [[str(c) for c in header]] + [[fmt_number(c) if not isinstance(c, str) else c
                                           for c in row] for row in rows]
    width = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(header))]

    def numeric(text: str) -> bool:
        text = text.lstrip("x").rstrip("%")
        try:
            float(text)
            return True
        except ValueError:
            return False

    lines = [title, "=" * len(title)]
    for n, row in enumerate(cells):
        parts = []
        for i, cell in enumerate(row):
            if n and numeric(cell):
                parts.append(cell.rjust(width[i]))
            else:
                parts.append(cell.ljust(width[i]))
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in width))
    return "\n".join(lines)


# --- data and the local disk ------------------------------------------------------------

def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def random_file(path: str, size: int) -> str:
    """Write ``size`` random bytes to ``path`` (64 MiB at a time; no fsync)."""
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(min(PIECE, left))
            f.write(piece)
            left -= len(piece)
    return path


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache. -> True if it worked (needs root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def copy_file(src: str, dst: str, fsync: bool = False, block: int = 4 * MIB) -> None:
    """The local-disk baseline for a transfer: read ``src``, write ``dst``."""
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        buf = bytearray(block)
        view = memoryview(buf)
        while True:
            n = fin.readinto(buf)
            if not n:
                break
            fout.write(view[:n])
        if fsync:
            os.fsync(fout.fileno())


# --- a local cluster ---------------------------------------------------------------------

def start_cluster(workdir: str, workers: int = 4, client_options: dict[str, Any] | None = None,
                  **cluster_options: Any) -> tuple[LocalCluster, DfsClient]:
    """Start a LocalCluster under ``workdir/cluster``. -> (cluster, client "bench"), the
    root folder bench's.

    ``cluster_options`` go to ClusterConfig (e.g. chunk_size), ``client_options`` to the
    client (e.g. piece_size, parallel_chunks, cache_dir="" to disable the chunk cache).
    """
    from dfs.config import ClusterConfig
    from dfs.local.cluster import LocalCluster

    data_dir = os.path.join(workdir, "cluster")
    config = ClusterConfig(data_dir=data_dir, base_port=0, workers=workers, **cluster_options)
    cluster = LocalCluster(config).start()
    try:
        client = cluster.client("bench", **(client_options or {}))
        cluster.give_root_to("bench")  # as `dfs up` does: the root folder is the user's
    except BaseException:
        cluster.stop()
        raise
    return cluster, client


def stop(cluster: LocalCluster, client: DfsClient) -> None:
    try:
        client.close()
    finally:
        cluster.stop()


@contextlib.contextmanager
def cluster(workdir: str, workers: int = 4, client_options: dict[str, Any] | None = None,
            **cluster_options: Any) -> Iterator[tuple[LocalCluster, DfsClient]]:
    """``with cluster(workdir) as (cluster, client):`` -- always stopped."""
    running, client = start_cluster(workdir, workers, client_options, **cluster_options)
    try:
        yield running, client
    finally:
        stop(running, client)


# --- memory ------------------------------------------------------------------------------

def node_pids(cluster: LocalCluster) -> dict[str, int]:
    """{name: pid} of a LocalCluster's running nodes."""
    nodes = [cluster.master, *cluster.workers]
    return {node.name: node.pid for node in nodes if node is not None and node.pid}


def reset_peak_rss(pids: Sequence[int]) -> None:
    """Start measuring peak RSS afresh (Linux: clear_refs 5); silently skipped elsewhere."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5\n")
        except OSError:
            pass


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory of ``pid`` in MiB since start or reset_peak_rss (Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

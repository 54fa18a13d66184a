"""Issue 12's table: every workload through a DFS mount, the local disk and MooseFS.

The same programs (dd, cp, tar, ls, find | xargs stat, Python loops of open/write/close,
mkdir, rename, ...) run in three folders: a DFS mount (fresh LocalCluster: master + shadow
+ 4 workers, 4 MiB chunks, replication 2, mounted as `dfs up` mounts it), a folder on the
same local disk, and the MooseFS mount of ``../shared/bench/mfs_cluster.sh`` when it is
running (else that column is skipped, saying why). Interleaved rep by rep (each rep runs
every target, in a rotated order), medians over the reps; "cold" = remount (FUSE) + drop
caches. Workloads and sizes: bench/fs_workloads.py; a quick run: DFS_BENCH_QUICK=1
(``python -m bench --quick fs``), one size: DFS_BENCH_FS_BIG_MIB=256 etc., a subset:
DFS_BENCH_FS_ONLY=big,small, targets: DFS_BENCH_FS_TARGETS=dfs,moosefs.

Durability is each system's own: a DFS close/fsync returns once the data is on 2 workers
and the metadata on both metadata servers; the local disk and MooseFS (default: chunk files
not fsynced) are only asked for what the program asks (dd conv=fsync). After the table, the
placement spread of each workload's chunk copies over the 4 DFS workers (bench/fs_spread.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time

from bench import fs_spread, fs_targets
from bench import fs_workloads as w
from bench.common import Row, Table

NAMES = ("DFS", "local", "MooseFS")


def _progress(line: str) -> None:
    print(f"[b_fs {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


class Results:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[float]] = {}  # (target, key) -> per rep
        self.errors: dict[tuple[str, str], str] = {}
        self.spreads: dict[str, fs_spread.Spread] = {}  # group -> worst rep

    def spread_hook(self, target: fs_targets.Target) -> w.Spread:
        def hook(group: str, path: str) -> None:
            dfs_path = target.dfs_path(path)
            if dfs_path is None or not isinstance(target, fs_targets.DfsTarget):
                return
            found = fs_spread.measure(target.admin, dfs_path)
            kept = self.spreads.get(group)
            if kept is None or found.worst > kept.worst:
                self.spreads[group] = found
        return hook

    def median(self, target: str, key: str) -> float | None:
        got = self.values.get((target, key))
        return statistics.median(got) if got else None


def run_group(name: str, targets: list[fs_targets.Target], inputs: w.Inputs, z: w.Sizes,
              results: Results) -> None:
    group = w.GROUPS[name]
    keys = [k for k, g in w.GROUP_OF.items() if g == name]
    for rep in range(z.reps):
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        for target in order:
            folder = os.path.join(target.root, f"{name}-{rep}")
            began = time.monotonic()
            try:
                os.mkdir(folder)
                got = group(target, folder, inputs, z, results.spread_hook(target))
                for key, value in got.items():
                    results.values.setdefault((target.name, key), []).append(value)
                outcome = ", ".join(f"{k} {v:.3g}" for k, v in got.items())
            except Exception as exc:  # the row says FAILED, the others go on
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:100]
                for key in keys:
                    results.errors.setdefault((target.name, key), message)
                outcome = "FAILED " + message
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            _progress(f"{name} rep {rep + 1}/{z.reps} {target.name}: {outcome} "
                      f"({time.monotonic() - began:.0f} s, load {_load()})")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def table_row(spec: w.RowSpec, results: Results, present: set[str]) -> Row:
    cells: list[str | float | None] = [spec.label, spec.unit]
    med = {}
    for name in NAMES:
        med[name] = results.median(name, spec.key)
        if med[name] is not None:
            cells.append(med[name])
        elif (name, spec.key) in results.errors:
            cells.append("FAILED")
        else:
            cells.append("-" if name in present else "n/a")
    to_local, to_mfs = ratio(med["DFS"], med["local"]), ratio(med["DFS"], med["MooseFS"])
    cells += [f"{to_local:.2f}x" if to_local is not None else "-",
              f"{to_mfs:.2f}x" if to_mfs is not None else "-"]
    if spec.goal is None:
        cells += ["", ""]
    else:
        cells.append(f"{'>=' if spec.higher_is_better else '<='}{spec.goal:g}x")
        if to_mfs is None:
            cells.append("-")
        else:
            met = to_mfs >= spec.goal if spec.higher_is_better else to_mfs <= spec.goal
            cells.append("yes" if met else "NO")
    return tuple(cells)


HEADER = ("workload", "unit", *NAMES, "DFS/local", "DFS/MooseFS", "goal DFS/MooseFS", "met")


def run(workdir: str) -> list[Table]:
    z = w.sizes_from_env()
    only = [g for g in os.environ.get("DFS_BENCH_FS_ONLY", "").split(",") if g]
    unknown = [g for g in only if g not in w.GROUPS]
    if unknown:
        raise ValueError(f"DFS_BENCH_FS_ONLY: no group {unknown}; have {', '.join(w.GROUPS)}")
    wanted = {t for t in os.environ.get("DFS_BENCH_FS_TARGETS", "").split(",") if t} or None
    _progress(f"making the inputs ({max(z.big_mib, z.procs * z.par_mib)} MiB random, "
              f"a {z.tree_files}-file tree, a tarball)")
    inputs = w.make_inputs(os.path.join(workdir, "inputs"), z)
    load_before = _load()
    started = time.monotonic()
    targets, notes = fs_targets.targets(workdir, wanted)
    results = Results()
    try:
        for name in only or list(w.GROUPS):
            run_group(name, targets, inputs, z, results)
    finally:
        fs_targets.close_all(targets)
    present = {t.name for t in targets}
    specs = [s for s in w.rows(z, inputs) if not only or w.GROUP_OF[s.key] in only]
    rows = [table_row(s, results, present) for s in specs]
    for (target, key), message in sorted(results.errors.items()):
        rows.append((f"  {target} {key} failed: {message}", "", "", "", "", "", "", "", ""))
    title = (f"File systems side by side (issue 12): medians of {z.reps} interleaved rep(s); "
             "ratios of the row's unit (time rows: >1x is slower)")
    notes += [f"cold reads, {t.name}: {t.cold_note}" for t in targets]
    notes.append(f"1-min load {load_before} before, {_load()} after "
                 f"{time.monotonic() - started:.0f} s (a shared 2-core machine: compare ratios)")
    spread_rows = []
    for group in only or list(w.GROUPS):
        keys = ", ".join(k for k, g in w.GROUP_OF.items() if g == group)
        spread_rows.append(fs_spread.row(f"{group} ({keys})", results.spreads.get(group)))
    return [(title, HEADER, rows), ("Notes", ("note",), [(n,) for n in notes]),
            ("Placement spread on the 4 DFS workers: each workload's chunk copies "
             "(replication 2), the rep furthest from even; goal: within 10 %",
             fs_spread.HEADER, spread_rows)]


if __name__ == "__main__":
    sys.exit(__import__("bench.__main__", fromlist=["main"]).main(["fs"]))

"""Directory scaling (issue 12): folders of 1,000 / 10,000 / 50,000 files, per file.

In each target of bench/fs_targets.py (the DFS mount, the local disk, MooseFS when
mfs_cluster.sh runs it), one folder per size, interleaved size by size: create the empty
files (a Python loop of open(O_CREAT)/close), then ``ls -l`` of the folder and ``find |
xargs stat`` of its files, each after a cold reset (remount + drop caches), so neither
the kernel's nor the client's caches answer from what the create left. The DFS master's
resident memory (/proc/PID/status VmRSS, what psutil reads) is taken before and after
each folder's creation: its growth per file, and what is left after the middle folder is
deleted at the end (the largest is not deleted, to keep the run short).

Goals: the cost per file does not grow with the folder (largest vs smallest within 20 %),
master memory at most 1 KiB per file. Sizes: DFS_BENCH_DIRS_SIZES=1000,10000,50000
(DFS_BENCH_QUICK=1: 500,2000,5000); targets: DFS_BENCH_FS_TARGETS=dfs,moosefs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench import fs_targets
from bench.common import Row, Table, Timer

KIB = 1024
GROWTH_GOAL = 1.2
MEMORY_GOAL = 1 * KIB  # bytes per file


def sizes_from_env() -> list[int]:
    quick = os.environ.get("DFS_BENCH_QUICK", "") not in ("", "0")
    text = os.environ.get("DFS_BENCH_DIRS_SIZES") or ("500,2000,5000" if quick else
                                                     "1000,10000,50000")
    return sorted(int(x) for x in text.split(",") if x.strip())


def rss_bytes(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * KIB
    except OSError:
        pass
    return None


def _progress(line: str) -> None:
    print(f"[b_fsdirs {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def one_folder(target: fs_targets.Target, folder: str, count: int) -> dict[str, float]:
    """Create ``count`` empty files in ``folder``, list and stat them. -> ms per file."""
    os.mkdir(folder)
    with Timer() as made:
        for i in range(count):
            os.close(os.open(f"{folder}/e{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    target.cold()
    with Timer() as listed:
        subprocess.run(["ls", "-l", folder], check=True, stdout=subprocess.DEVNULL)
    target.cold()
    with Timer() as statted:
        subprocess.run(f"cd '{folder}' && find . -type f | xargs stat > /dev/null",
                       shell=True, check=True)
    return {"create": made.seconds * 1000 / count, "ls_l": listed.seconds * 1000 / count,
            "stat": statted.seconds * 1000 / count}


def growth_row(name: str, per: dict[int, dict[str, float]], sizes: list[int]) -> Row:
    small, big = per.get(sizes[0]), per.get(sizes[-1])
    label = f"per file at {sizes[-1]} / at {sizes[0]}"
    if not small or not big or len(sizes) < 2:
        return (label, name, "-", "-", "-", "", "", "")
    ratios = [big[k] / small[k] if small[k] else float("inf") for k in ("create", "ls_l",
                                                                          "stat")]
    ok = "yes" if max(ratios) <= GROWTH_GOAL else "NO"
    return (f"{label} (goal <= {GROWTH_GOAL}x: {ok})", name, *(f"{r:.2f}x" for r in ratios),
            "", "", "")


def run(workdir: str) -> list[Table]:
    sizes = sizes_from_env()
    wanted = {t for t in os.environ.get("DFS_BENCH_FS_TARGETS", "").split(",") if t} or None
    targets, notes = fs_targets.targets(workdir, wanted)
    per: dict[str, dict[int, dict[str, float]]] = {t.name: {} for t in targets}
    memory: dict[int, tuple[int | None, int | None]] = {}  # size -> (RSS before, after)
    errors: list[str] = []
    rows: list[Row] = []
    dfs = next((t for t in targets if isinstance(t, fs_targets.DfsTarget)), None)
    pid = dfs.master_pid if dfs else None
    baseline = rss_bytes(pid)
    held = None
    try:
        for count in sizes:
            for target in targets:
                folder = os.path.join(target.root, f"files-{count}")
                began = time.monotonic()
                before = rss_bytes(pid) if target is dfs else None
                try:
                    per[target.name][count] = one_folder(target, folder, count)
                except Exception as exc:  # the row says FAILED, the others go on
                    errors.append(f"{target.name} {count}: {type(exc).__name__}: {exc}"
                                  .splitlines()[0][:120])
                    continue
                finally:
                    if target is dfs:
                        memory[count] = (before, rss_bytes(pid))
                _progress(f"{count} files, {target.name}: {per[target.name][count]} "
                          f"({time.monotonic() - began:.0f} s)")
        held = rss_bytes(pid)
        after_delete = None
        if dfs is not None and len(sizes) >= 2:
            middle = sizes[len(sizes) // 2] if len(sizes) > 2 else sizes[0]
            subprocess.run(["rm", "-rf", os.path.join(dfs.root, f"files-{middle}")],
                           check=False)
            after_delete = (middle, rss_bytes(pid))
    finally:
        fs_targets.close_all(targets)

    for count in sizes:
        for target in targets:
            got = per[target.name].get(count)
            cells: list[str | float | None] = [f"{count} files", target.name]
            cells += [got[k] for k in ("create", "ls_l", "stat")] if got else ["FAILED"] * 3
            if target is dfs and count in memory and None not in memory[count]:
                rss_before, rss_after = memory[count]
                assert rss_before is not None and rss_after is not None
                cells += [rss_after / 2**20, (rss_after - rss_before) / count / KIB]
                cells.append("yes" if rss_after - rss_before <= MEMORY_GOAL * count else "NO")
            else:
                cells += ["", "", ""]
            rows.append(tuple(cells))
    for target in targets:
        rows.append(growth_row(target.name, per[target.name], sizes))
    if baseline is not None and held is not None:
        total = sum(sizes)
        per_file = (held - baseline) / total
        rows.append((f"DFS master: all {total} files held (from {baseline / 2**20:.0f} MiB)",
                     "", "", "", "", held / 2**20, per_file / KIB,
                     "yes" if per_file <= MEMORY_GOAL else "NO"))
    if after_delete is not None and after_delete[1] is not None:
        rows.append((f"DFS master RSS after deleting the {after_delete[0]}-file folder", "",
                     "", "", "", after_delete[1] / 2**20, "", ""))
    notes += errors
    return [("Directory scaling: empty files per folder, ms per file (ls -l and stat after "
             "remount + drop caches); the DFS master's RSS (goal <= 1 KiB per file)",
             ("folder", "target", "create ms/file", "ls -l ms/file", "stat ms/file",
              "master RSS MiB", "master KiB/file", "<= 1 KiB"), rows),
            *([("Notes", ("note",), [(n,) for n in notes])] if notes else [])]


if __name__ == "__main__":
    sys.exit(__import__("bench.__main__", fromlist=["main"]).main(["fsdirs"]))

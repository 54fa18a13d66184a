"""The file-system benchmarks' own logic (bench/b_fs.py, fs_spread, fs_targets, fs_workloads):
spread, goals and ratios, sizes, MooseFS detection, the inputs. No timing is asserted."""

from __future__ import annotations

import os
import tarfile

import pytest

from bench import b_fs, b_fsdirs, fs_spread, fs_targets
from bench import fs_workloads as w


def test_deviation_is_the_worst_worker_against_the_mean() -> None:
    assert fs_spread.deviation([1000, 1000, 1000, 1000]) == 0
    # the small-file run: one worker held 2000 of 4000 copies, two others 240
    assert fs_spread.deviation([2000, 240, 240, 1520]) == pytest.approx(100.0)
    assert fs_spread.deviation([]) == 0 and fs_spread.deviation([0, 0]) == 0


def test_spread_row_says_whether_the_goal_is_met() -> None:
    even = fs_spread.Spread()
    for worker in "abcd":
        for _ in range(10):
            even.add(worker, 4096)
    assert fs_spread.row("even", even)[-1] == "yes"
    even.add("a", 4 * 2**20)  # one big chunk more on a: bytes far from even
    row = fs_spread.row("uneven", even)
    assert row[1] == "11/10/10/10" and row[-1] == "NO"
    assert fs_spread.row("metadata only", None)[1] == "no chunks"
    assert fs_spread.row("empty", fs_spread.Spread({"a": 0}, {"a": 0}))[1] == "no chunks"


def _results(values: dict[tuple[str, str], list[float]]) -> b_fs.Results:
    results = b_fs.Results()
    results.values = values
    return results


def test_rows_give_medians_ratios_and_the_goal_in_the_rows_unit() -> None:
    faster = w.RowSpec("write", "write", "MB/s", True, 1.5)
    results = _results({("DFS", "write"): [90, 100, 300], ("local", "write"): [400],
                        ("MooseFS", "write"): [50, 60, 70]})
    row = b_fs.table_row(faster, results, {"DFS", "local", "MooseFS"})
    assert row[2:] == (100, 400, 60, "0.25x", "1.67x", ">=1.5x", "yes")
    slower = w.RowSpec("create_small", "create", "s", False, 0.5)
    results = _results({("DFS", "create_small"): [3.0], ("MooseFS", "create_small"): [2.0]})
    results.errors[("local", "create_small")] = "OSError: boom"
    row = b_fs.table_row(slower, results, {"DFS", "local", "MooseFS"})
    assert row[2:] == (3.0, "FAILED", 2.0, "-", "1.50x", "<=0.5x", "NO")
    del results.values[("MooseFS", "create_small")]
    row = b_fs.table_row(slower, results, {"DFS", "local"})  # no MooseFS mounted
    assert row[4] == "n/a" and row[-1] == "-"


def test_every_row_belongs_to_a_group() -> None:
    inputs = w.Inputs("src", "tree", 4000, 50_000_000, "tar", "/usr/include, 7911 files")
    keys = [spec.key for spec in w.rows(w.Sizes(), inputs)]
    assert sorted(keys) == sorted(w.GROUP_OF) and set(w.GROUP_OF.values()) == set(w.GROUPS)
    assert "1024 MiB" in w.rows(w.Sizes(), inputs)[0].label


def test_sizes_from_env() -> None:
    assert w.sizes_from_env({}) == w.Sizes()
    assert w.sizes_from_env({"DFS_BENCH_QUICK": "1"}) == w.QUICK
    changed = w.sizes_from_env({"DFS_BENCH_QUICK": "1", "DFS_BENCH_FS_BIG_MIB": "64",
                                "DFS_BENCH_FS_REPS": "2"})
    assert changed.big_mib == 64 and changed.reps == 2 and changed.small == w.QUICK.small


def test_dir_sizes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DFS_BENCH_QUICK", raising=False)
    monkeypatch.delenv("DFS_BENCH_DIRS_SIZES", raising=False)
    assert b_fsdirs.sizes_from_env() == [1000, 10000, 50000]
    monkeypatch.setenv("DFS_BENCH_DIRS_SIZES", "30,10")
    assert b_fsdirs.sizes_from_env() == [10, 30]


def test_moosefs_is_found_on_bench_work_or_else_skipped(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: str) -> None:
    work = os.path.realpath(str(tmp_path))
    mounts = [("mfs#127.0.0.1:9421", os.path.join(work, "mnt"), "fuse"),
              ("dfs", "/tmp/other", "fuse.dfs")]
    monkeypatch.setattr(fs_targets, "_mountinfo", lambda: mounts)
    monkeypatch.setenv("BENCH_WORK", work)
    assert fs_targets.find_moosefs()[0] == os.path.join(work, "mnt")
    monkeypatch.setattr(fs_targets, "_mountinfo", lambda: mounts[1:])
    found, line = fs_targets.find_moosefs()
    assert found is None and "MooseFS column skipped" in line and "mfs_cluster.sh" in line
    monkeypatch.delenv("BENCH_WORK")
    assert fs_targets.find_moosefs()[0] is None


def test_inputs_tree_and_tarball(tmp_path: str) -> None:
    tree = os.path.join(tmp_path, "tree")
    files, nbytes = w.build_tree(tree, 25)
    found = [os.path.join(r, n) for r, _d, names in os.walk(tree) for n in names]
    assert files == len(found) == 25 and nbytes == sum(os.path.getsize(p) for p in found)
    tarball = os.path.join(tmp_path, "src.tar")
    held = w.build_tarball(tarball, 7, tree)
    with tarfile.open(tarball) as tar:
        assert sum(m.isfile() or m.issym() for m in tar.getmembers()) == 7
    assert "7 files" in held

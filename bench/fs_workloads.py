"""The workloads of issue 12's table, each run the same way in any folder (DFS mount, local
disk, MooseFS mount), with the sizes they are run at.

A group is a function ``(target, folder, inputs, sizes, spread) -> {row key: value}``: it
works in ``folder`` (empty, made for it and removed after it by the caller), times only the
steps its rows name, and calls ``spread(group, path)`` while the data it wrote is still
there (bench/fs_spread.py counts the DFS workers' copies of it).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from bench import common
from bench.common import MIB, Timer
from bench.fs_targets import Target

Spread = Callable[[str, str], None]
Values = dict[str, float]
STDLIB = os.path.dirname(os.__file__)
SMALL = 4096
RANDOM_READ = 4096


@dataclass(frozen=True)
class Sizes:
    """What the workloads are run at (env: DFS_BENCH_FS_REPS=1, DFS_BENCH_FS_BIG_MIB=...,
    one variable per field; DFS_BENCH_QUICK=1 starts from QUICK instead)."""

    reps: int = 3
    big_mib: int = 1024  # write + fsync, then cold read
    small: int = 2000  # 4 KiB files: create, ls -l, stat, rename, rm
    empty: int = 10000  # empty files
    dirs: int = 1000  # mkdir, then rmdir
    tree_files: int = 4000  # cp -r, rm -r
    par_mib: int = 256  # each of 4 writers; the random reads' file
    par_small: int = 500  # each of 4 small-file creators
    rand_reads: int = 2000  # random 4 KiB reads
    tar_files: int = 1000  # files of /usr/include in the tarball (0: all 7911 here)
    procs: int = 4


QUICK = Sizes(reps=1, big_mib=128, small=300, empty=1000, dirs=200, tree_files=500,
              par_mib=32, par_small=100, rand_reads=500, tar_files=300)


def sizes_from_env(env: dict[str, str] | None = None) -> Sizes:
    env = dict(os.environ if env is None else env)
    base = QUICK if env.get("DFS_BENCH_QUICK", "") not in ("", "0") else Sizes()
    changes: dict[str, Any] = {}
    for f in fields(Sizes):
        value = env.get(f"DFS_BENCH_FS_{f.name.upper()}")
        if value:
            changes[f.name] = int(value)
    return replace(base, **changes)


# --- inputs, made once on the local disk ------------------------------------------------------

@dataclass
class Inputs:
    source: str  # random bytes: the big write and the parallel writers read from it
    tree: str  # cp -r's source
    tree_files: int
    tree_bytes: int
    tarball: str
    tar_source: str  # what the tarball holds (e.g. "/usr/include, 7911 files")


def build_tree(dst: str, files: int) -> tuple[int, int]:
    """Copy Python's stdlib (sorted; no site-packages, no config-* with its static library)
    to ``dst`` until it holds ``files`` files (4000: about 90 MB, a source tree's mix of
    small and larger files, as /usr/share/doc). -> (files, bytes)."""
    count = total = 0
    for root, dirs, names in os.walk(STDLIB):
        dirs[:] = sorted(d for d in dirs if d != "site-packages" and not d.startswith("config-")
                         and not os.path.islink(os.path.join(root, d)))
        rel = os.path.relpath(root, STDLIB)
        for name in sorted(names):
            src = os.path.join(root, name)
            if os.path.islink(src) or not os.path.isfile(src):
                continue
            os.makedirs(os.path.join(dst, rel), exist_ok=True)
            shutil.copyfile(src, os.path.join(dst, rel, name))
            count += 1
            total += os.path.getsize(src)
            if count >= files:
                return count, total
    return count, total


def build_tarball(path: str, limit: int, fallback: str) -> str:
    """A tar of /usr/include (its first ``limit`` files, sorted; 0: all), else of
    ``fallback``. -> what it holds."""
    source = "/usr/include" if os.path.isdir("/usr/include") else fallback
    count = 0
    with tarfile.open(path, "w") as tar:
        for root, dirs, names in os.walk(source):
            dirs.sort()
            arc = os.path.join("src", os.path.relpath(root, source))
            tar.add(root, arcname=arc, recursive=False)
            for name in sorted(names):
                tar.add(os.path.join(root, name), arcname=os.path.join(arc, name),
                        recursive=False)
                count += 1
                if limit and count >= limit:
                    return f"{source}, first {count} files"
    return f"{source}, {count} files"


def make_inputs(folder: str, z: Sizes) -> Inputs:
    os.makedirs(folder)
    source = common.random_file(os.path.join(folder, "random.bin"),
                                max(z.big_mib, z.procs * z.par_mib) * MIB)
    tree = os.path.join(folder, "tree")
    tree_files, tree_bytes = build_tree(tree, z.tree_files)
    tarball = os.path.join(folder, "src.tar")
    held = build_tarball(tarball, z.tar_files, tree)
    return Inputs(source, tree, tree_files, tree_bytes, tarball, held)


def warm(path: str) -> None:
    """Read ``path`` (a file or a tree) so that a copy from it measures the target only."""
    paths = [path] if os.path.isfile(path) else \
        [os.path.join(r, n) for r, _d, names in os.walk(path) for n in names]
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(4 * MIB):
                pass


def sh(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def seconds(fn: Callable[[], object]) -> float:
    with Timer() as t:
        fn()
    return t.seconds


# --- the groups --------------------------------------------------------------------------------

def g_big(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    size = z.big_mib * MIB
    dst = os.path.join(d, "big.bin")
    warm(inp.source)
    wrote = seconds(lambda: sh(["dd", f"if={inp.source}", f"of={dst}", "bs=1M",
                                f"count={z.big_mib}", "conv=fsync", "status=none"]))
    spread("big", d)
    t.cold()
    read = seconds(lambda: sh(["dd", f"if={dst}", "of=/dev/null", "bs=1M", "status=none"]))
    return {"write": common.mb_per_s(size, wrote), "read_cold": common.mb_per_s(size, read)}


def g_small(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    folder = os.path.join(d, "small")
    os.mkdir(folder)
    data = os.urandom(z.small * SMALL)

    def create() -> None:
        for i in range(z.small):
            with open(f"{folder}/f{i}", "wb") as f:
                f.write(data[i * SMALL:(i + 1) * SMALL])

    def rename() -> None:
        for i in range(z.small):
            os.rename(f"{folder}/f{i}", f"{folder}/g{i}")

    out = {"create_small": seconds(create)}
    spread("small", folder)
    out["ls_l"] = seconds(lambda: sh(["ls", "-l", folder]))
    out["stat"] = seconds(lambda: subprocess.run(
        f"cd '{folder}' && find . -type f | xargs stat > /dev/null", shell=True, check=True))
    out["rename"] = seconds(rename) * 1000 / z.small
    out["rm_small"] = seconds(lambda: sh(["rm", "-rf", folder]))
    return out


def g_empty(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    folder = os.path.join(d, "empty")
    os.mkdir(folder)

    def create() -> None:
        for i in range(z.empty):
            os.close(os.open(f"{folder}/e{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    return {"create_empty": seconds(create) * 1000 / z.empty}


def g_dirs(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    folder = os.path.join(d, "dirs")
    os.mkdir(folder)
    made = seconds(lambda: [os.mkdir(f"{folder}/d{i}") for i in range(z.dirs)])
    gone = seconds(lambda: [os.rmdir(f"{folder}/d{i}") for i in range(z.dirs)])
    return {"mkdir": made * 1000 / z.dirs, "rmdir": gone * 1000 / z.dirs}


def g_tree(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    dst = os.path.join(d, "tree")
    warm(inp.tree)
    copied = seconds(lambda: sh(["cp", "-r", inp.tree, dst]))
    spread("tree", dst)
    return {"cp_r": common.mb_per_s(inp.tree_bytes, copied),
            "rm_r": seconds(lambda: sh(["rm", "-rf", dst]))}


def g_par_write(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    warm(inp.source)

    def write() -> None:
        procs = [subprocess.Popen(["dd", f"if={inp.source}", f"of={d}/p{k}", "bs=1M",
                                   f"count={z.par_mib}", f"skip={k * z.par_mib}",
                                   "conv=fsync", "status=none"], stdin=subprocess.DEVNULL)
                 for k in range(z.procs)]
        if any(p.wait() for p in procs):
            raise RuntimeError("a dd writer failed")

    wrote = seconds(write)
    spread("par_write", d)
    t.cold()
    rng = random.Random(12)
    offsets = [rng.randrange(z.par_mib * MIB // RANDOM_READ) * RANDOM_READ
               for _ in range(z.rand_reads)]
    fd = os.open(f"{d}/p0", os.O_RDONLY)
    try:
        read = seconds(lambda: [os.pread(fd, RANDOM_READ, o) for o in offsets])
    finally:
        os.close(fd)
    return {"par_write": common.mb_per_s(z.procs * z.par_mib * MIB, wrote),
            "rand_read": common.per_s(z.rand_reads, read)}


CHILD = """
import os, sys
folder, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    with open(f"{folder}/f{i}", "wb") as f:
        f.write(data)
print("done", flush=True)
"""


def g_par_small(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    """``procs`` processes, each creating ``par_small`` 4 KiB files in a folder of its own;
    timed from the moment all are ready (interpreters started) until the last one ends."""
    procs = []
    try:
        for k in range(z.procs):
            os.mkdir(f"{d}/c{k}")
            procs.append(subprocess.Popen([sys.executable, "-c", CHILD, f"{d}/c{k}",
                                           str(z.par_small), str(SMALL)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True))
        for p in procs:
            if p.stdout is None or p.stdout.readline().strip() != "ready":
                raise RuntimeError("a creator did not start")
        with Timer() as timer:
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.close()
            if any(p.wait() for p in procs):
                raise RuntimeError("a creator failed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    spread("par_small", d)
    return {"par_small": common.per_s(z.procs * z.par_small, timer.seconds)}


def g_tar(t: Target, d: str, inp: Inputs, z: Sizes, spread: Spread) -> Values:
    warm(inp.tarball)
    took = seconds(lambda: sh(["tar", "xf", inp.tarball, "-C", d, "--no-same-owner"]))
    spread("tar", d)
    return {"tar_x": took}


GROUPS: dict[str, Callable[[Target, str, Inputs, Sizes, Spread], Values]] = {
    "big": g_big, "small": g_small, "empty": g_empty, "dirs": g_dirs, "tree": g_tree,
    "par_write": g_par_write, "par_small": g_par_small, "tar": g_tar,
}


@dataclass(frozen=True)
class RowSpec:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    goal: float | None  # DFS/MooseFS ratio of the row's figure the issue asks for


def rows(z: Sizes, inp: Inputs) -> list[RowSpec]:
    """The table's rows, in the issue's order, labelled with the sizes they ran at."""
    big, p = f"{z.big_mib} MiB", f"{z.procs} processes"
    return [
        RowSpec("write", f"write {big} random + fsync", "MB/s", True, 1.5),
        RowSpec("read_cold", f"read {big} cold", "MB/s", True, 1.0),
        RowSpec("create_small", f"create {z.small} x 4 KiB files", "s", False, 0.5),
        RowSpec("create_empty", f"create {z.empty} empty files", "ms/file", False, 1.0),
        RowSpec("rm_small", f"rm of {z.small} files", "s", False, 1.0),
        RowSpec("rename", f"rename of {z.small} files", "ms/op", False, 1.0),
        RowSpec("mkdir", f"mkdir x{z.dirs}", "ms/op", False, 1.0),
        RowSpec("rmdir", f"rmdir x{z.dirs}", "ms/op", False, 1.0),
        RowSpec("cp_r", f"cp -r of a {inp.tree_files}-file tree "
                f"({inp.tree_bytes / 1e6:.0f} MB)", "MB/s", True, 2.0),
        RowSpec("rm_r", "rm -r of that tree", "s", False, 1.0),
        RowSpec("ls_l", f"ls -l of {z.small} files", "s", False, 1.0),
        RowSpec("stat", f"stat of {z.small} files (find | xargs stat)", "s", False, 1.0),
        RowSpec("par_write", f"{p} writing {z.par_mib} MiB each + fsync", "MB/s", True, 1.5),
        RowSpec("par_small", f"{p} creating {z.par_small} x 4 KiB each", "files/s", True, 1.5),
        RowSpec("rand_read", f"random 4 KiB reads of a {z.par_mib} MiB file, cold "
                f"({z.rand_reads})", "IOPS", True, 1.0),
        RowSpec("tar_x", f"tar x of a source tree ({inp.tar_source})", "s", False, 1.0),
    ]


GROUP_OF = {"write": "big", "read_cold": "big", "create_small": "small", "ls_l": "small",
            "stat": "small", "rename": "small", "rm_small": "small",
            "create_empty": "empty", "mkdir": "dirs", "rmdir": "dirs", "cp_r": "tree",
            "rm_r": "tree", "par_write": "par_write", "rand_read": "par_write",
            "par_small": "par_small", "tar_x": "tar"}

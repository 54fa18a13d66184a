"""`python -m bench [MODULE ...]`: run the bench modules and print their tables.

MODULE is ``b_data`` or ``data``; without one every ``bench/b_*.py`` runs, sorted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shutil
import sys
import tempfile
import time
import traceback

import bench
from bench.common import Skip, format_table


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("b_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="b_NAME (or NAME) to run; default: all")
    parser.add_argument("--keep", action="store_true", help="keep the temp work dir")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and one rep where a module has them "
                             "(DFS_BENCH_QUICK=1: b_fs, b_fsdirs)")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["DFS_BENCH_QUICK"] = "1"

    available = discover()
    wanted: list[str] = []
    for name in args.modules or available:
        name = name if name.startswith("b_") else "b_" + name
        name = name.removesuffix(".py")
        if name not in available:
            print(f"no bench module {name!r}; have: {', '.join(available)}", file=sys.stderr)
            return 2
        wanted.append(name)

    workdir = tempfile.mkdtemp(prefix="dfs-bench-", dir="/tmp")
    failed = 0
    started = time.monotonic()
    try:
        for name in wanted:
            here = os.path.join(workdir, name)
            os.makedirs(here)
            began = time.monotonic()
            try:
                module = importlib.import_module(f"bench.{name}")
                tables = module.run(here)
            except Skip as exc:
                print(f"[{name}] skipped: {exc}\n", flush=True)
                continue
            except Exception:
                failed += 1
                print(f"[{name}] failed:", file=sys.stderr)
                traceback.print_exc()
                continue
            for title, header, rows in tables:
                print(format_table(title, header, rows) + "\n", flush=True)
            print(f"[{name}: {time.monotonic() - began:.0f} s]\n", flush=True)
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"[bench total: {time.monotonic() - started:.0f} s]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

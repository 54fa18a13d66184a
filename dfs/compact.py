"""`python -m dfs.compact DIR NAME`: fold a metadata server's sealed journal into a snapshot.

Run as a child process by the metadata server (nodes/master/snapshots.py), so the work of
a snapshot (loading, applying, serialising the whole namespace) never holds the server's
lock nor its interpreter: the server keeps answering meanwhile. Reads
``DIR/saved-files.json`` and ``DIR/journal.sealed.jsonl`` (both complete and fsynced:
the server never writes to them again), writes ``DIR/NAME`` atomically
(Journal.compacted_name) and prints its entry number. The server adopts it
(dfs.journal.Journal.adopt_compacted).

Exit status: 0 done, 3 the disk is full (nothing left behind), 1 anything else.
"""

from __future__ import annotations

import os
import sys

from dfs.fsutil import write_atomic
from dfs.journal import FULL, SEALED, SNAPSHOT, encode, read_snapshot, replay

NO_SPACE = 3


def compact(directory: str, name: str) -> int:
    """Write the snapshot of snapshot + sealed journal to ``directory/name``. -> its
    entry number."""
    if not name.startswith(SNAPSHOT + ".") or os.sep in name:
        raise ValueError(f"{name!r} is not a compaction's file name")
    sealed = os.path.join(directory, SEALED)
    if not os.path.exists(sealed):
        raise FileNotFoundError(f"{sealed}: nothing to compact")
    ns = read_snapshot(directory)
    replay(sealed, ns, last=False)
    target = os.path.join(directory, name)
    try:
        write_atomic(target, encode(ns.to_json()))
    except OSError:
        for leftover in (target, target + ".tmp"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        raise
    return ns.seq


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m dfs.compact METADATA_DIR NAME", file=sys.stderr)
        return 1
    try:
        os.nice(10)  # the server's own threads come first
    except OSError:
        pass
    try:
        print(compact(args[0], args[1]))
    except OSError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return NO_SPACE if exc.errno in FULL else 1
    except Exception as exc:  # reported by the server, which keeps the sealed journal
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

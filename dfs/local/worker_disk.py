"""What a local cluster's workers hold on their own disks: the files in every worker's
chunks and backups folders, as the tests and the benches count them (a hole in a sparse
file stores nothing)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dfs.local.cluster import LocalCluster

KINDS = ("chunks", "backups")


def worker_files(cluster: LocalCluster) -> Iterator[tuple[str, str]]:
    """(name, path) of every file in every worker's chunks and backups folders."""
    for index in range(len(cluster.workers)):
        for kind in KINDS:
            folder = os.path.join(cluster.worker_dir(index), kind)
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                yield name, os.path.join(folder, name)


def worker_bytes(cluster: LocalCluster) -> int:
    """The bytes of those files, every copy counted."""
    return sum(os.path.getsize(path) for _name, path in worker_files(cluster))


def chunk_file_count(cluster: LocalCluster) -> int:
    """How many of them are chunk files (named by their chunk id), every copy counted."""
    return sum(name.isdigit() for name, _path in worker_files(cluster))

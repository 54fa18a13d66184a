"""Shared fixtures: real clusters of real processes on free ports, always stopped.

``cluster`` is a fresh LocalCluster (master + 4 workers, 1 MiB chunks, workers declared
dead after 3 s) in a temp dir; ``dfs`` is a client for user alice on it. Readiness is
polled with deadlines inside LocalCluster; nothing here sleeps a fixed time.

Every test also fails when a node, a mount or a backup watcher logged a WARNING or ERROR it did
not expect: ``logs_stay_clean`` reads what every ``*.log`` under pytest's temp dir gained
during the test. A test that provokes a warning on purpose says which, with
``@pytest.mark.log_allows(r"regex", ...)``; ``EXPECTED_ANYWHERE`` lists the few that any
test may cause, each with the reason.
"""

import os
import re
from pathlib import Path

import pytest
from helpers import random_bytes, sha256

from dfs.config import MIB, ClusterConfig
from dfs.local.cluster import LocalCluster

TEST_CHUNK = 1 * MIB


def cluster_config(path, **overrides):
    options = dict(data_dir=str(path), base_port=0, workers=4, chunk_size=TEST_CHUNK,
                   dead_after=3.0, heartbeat_interval=0.3, root_mode=0o1777,
                   scrub_bytes_per_second=MIB)  # slow: scrubbing has its own test
    options.update(overrides)
    return ClusterConfig(**options)


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "cluster")) as running:
        yield running


@pytest.fixture
def dfs(cluster):
    with cluster.client("alice") as client:
        yield client


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One cluster for a module's tests that do not break anything."""
    with LocalCluster(cluster_config(tmp_path_factory.mktemp("shared"))) as running:
        yield running


@pytest.fixture(scope="module")
def shared_dfs(shared_cluster):
    with shared_cluster.client("alice") as client:
        yield client


__all__ = ["TEST_CHUNK", "chunk_files", "cluster_config", "random_bytes", "sha256"]

PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) ")

# Warnings that any test may cause, and why they are not a fault of the test.
EXPECTED_ANYWHERE = [re.compile(p) for p in (
    # a change of leader is a WARNING so that operators see failovers; every new cluster
    # starts with one
    r"nodes\.master\.election: \w+ is now the leader \(epoch \d+\)",
)]


def _log_sizes(base):
    sizes = {}
    for path in Path(base).rglob("*.log"):
        try:
            sizes[path] = path.stat().st_size
        except FileNotFoundError:  # removed meanwhile (a mount's log at unmount)
            pass
    return sizes


def _new_problems(base, before, allowed):
    problems = []
    for path, size in _log_sizes(base).items():
        start = before.get(path, 0)
        if size <= start:
            continue
        with open(path, errors="replace") as f:
            f.seek(start)
            text = f.read(size - start)
        for line in text.splitlines():
            if PROBLEM.search(line) and not any(p.search(line) for p in allowed):
                problems.append(f"{path.parent.name}/{path.name}: {line}")
    return problems


@pytest.fixture(autouse=True, scope="session")
def cache_under_tmp(tmp_path_factory):
    """Client chunk caches and the mounts' records and logs go below pytest's temp dir: the
    tests leave nothing in ~/.cache, and the mounts' logs are checked like the nodes'."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.getbasetemp() / "xdg-cache")
    yield
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(autouse=True)
def logs_stay_clean(request, tmp_path_factory, cache_under_tmp):
    base = tmp_path_factory.getbasetemp()
    before = _log_sizes(base)
    yield
    allowed = [re.compile(pattern) for marker in request.node.iter_markers("log_allows")
               for pattern in marker.args] + EXPECTED_ANYWHERE
    problems = _new_problems(base, before, allowed)
    if problems:
        shown = "\n".join(problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        pytest.fail(f"unexpected warnings or errors in node logs:\n{shown}{more}",
                    pytrace=False)


def chunk_files(cluster, kind):
    """{chunk_id: [worker index, ...]} of the chunk files in every worker's ``kind`` folder."""
    found = {}
    for index in range(len(cluster.workers)):
        folder = os.path.join(cluster.worker_dir(index), kind)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.isdigit():
                found.setdefault(int(name), []).append(index)
    return found

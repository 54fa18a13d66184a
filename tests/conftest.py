"""Shared fixtures: real clusters of real processes on free ports, always stopped.

``cluster`` is a fresh LocalCluster (master + 4 workers, 1 MiB chunks, workers declared
dead after 3 s) in a temp dir; ``dfs`` is a client for user alice on it. Readiness is
polled with deadlines inside LocalCluster; nothing here sleeps a fixed time.
"""

import os

import pytest

from dfs.config import MIB, ClusterConfig
from dfs.local.cluster import LocalCluster

TEST_CHUNK = 1 * MIB


def cluster_config(path, **overrides):
    options = dict(data_dir=str(path), base_port=0, workers=4, chunk_size=TEST_CHUNK,
                   dead_after=3.0, heartbeat_interval=0.3,
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


def random_bytes(size, seed=0):
    """Incompressible test data, reproducible per seed (os.urandom is fine too)."""
    import random
    return random.Random(seed).randbytes(size) if size else b""


def sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


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

"""``DATA/cluster.json``: what a local cluster leaves behind so that `dfs down` and a later
`dfs up` find it — each node's port (kept, so a restart reuses them) and pid (while it
runs)::

    {"ports": {"master": 18861, "shadow": 18862, "worker-1": 18870},
     "pids": {"master": 4242, "shadow": 4243, "worker-1": 4244}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from dfs.fsutil import write_atomic
from dfs.local.processes import Node, pid_alive

STATE_FILE = "cluster.json"
METADATA_NODES = ("master", "shadow")


def state_path(data_dir: str) -> str:
    return os.path.join(data_dir, STATE_FILE)


def _load(data_dir: str) -> dict[str, Any]:
    try:
        with open(state_path(data_dir)) as f:
            state = json.load(f)
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def saved_ports(data_dir: str) -> dict[str, int]:
    """{node name: port} of the last run ({} for a new cluster)."""
    return dict(_load(data_dir).get("ports", {}))


def save(data_dir: str, nodes: Iterable[Node]) -> None:
    """Record the running nodes' ports and pids."""
    started = list(nodes)
    state = {"ports": {n.name: n.port for n in started},
             "pids": {n.name: n.pid for n in started}}
    write_atomic(state_path(data_dir), json.dumps(state, indent=1).encode())


def forget_pids(data_dir: str) -> None:
    """The nodes are stopped: keep the ports (a restart reuses them), drop the pids."""
    state = _load(data_dir)
    if not state:
        return
    state["pids"] = {}
    write_atomic(state_path(data_dir), json.dumps(state, indent=1).encode())


def running_pids(data_dir: str) -> dict[str, int]:
    """{name: pid} of a detached local cluster's nodes that are still alive."""
    pids = _load(data_dir).get("pids", {})
    return {name: pid for name, pid in pids.items() if pid and pid_alive(pid)}


def expected_nodes(data_dir: str) -> set[str]:
    """Names of the nodes a local cluster in ``data_dir`` was started with."""
    return set(_load(data_dir).get("ports", {}))


def stop_detached(data_dir: str) -> list[str]:
    """Stop the nodes of a cluster `dfs up` left running. -> names stopped."""
    pids = running_pids(data_dir)
    nodes = []
    for name, pid in pids.items():
        node = Node(name, [], data_dir, 0, os.path.join(data_dir, "logs"))
        node.pid = pid
        nodes.append(node)
    for node in sorted(nodes, key=lambda n: n.name in METADATA_NODES):  # workers first
        node.stop()
    forget_pids(data_dir)
    return sorted(pids)

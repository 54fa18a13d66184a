"""LocalCluster: a master, a shadow and N workers on this machine, as subprocesses.

The same cluster `dfs up` starts, as a context manager for tests and Python users:

    with LocalCluster(ClusterConfig(data_dir=tmp, base_port=0)) as cluster:
        with cluster.client() as dfs:
            dfs.put_bytes("/hello", b"hi")

Layout under ``data_dir``::

    master/            the master's data (cache-metadata/, join-token, admin-auth.txt)
    shadow/            the shadow master's data
    worker-N/          each worker's chunks/ and backups/
    logs/NAME.log      each node's log
    cluster.json       ports and pids, so `dfs down` and a later `dfs up` find them
    auth.txt           the local user's credentials

Every node is started with ``--ready-file`` and start-up polls for it with a deadline
(dfs.local.processes). ``base_port=0`` gives every node a free port chosen by the OS.
Every directory here is 0700 and every file 0600 (dfs.fsutil), whatever the umask.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dfs import auth, errors, tls
from dfs.config import Address, ClusterConfig
from dfs.fsutil import private_dir
from dfs.local import detached
from dfs.local.detached import expected_nodes, running_pids, stop_detached
from dfs.local.processes import START_DEADLINE, Node, free_port, pid_alive, tail, wait_for

if TYPE_CHECKING:
    from dfs.client import DfsClient

SHADOW_OFFSET = 1
WORKER_OFFSET = 9
"""Ports from ``base_port``: master on it, shadow on +1, workers from +9."""
ADMIN_FAILOVER_DEADLINE = 5.0
"""The cluster's own admin client gives up soon: start-up polls it again anyway."""
STATUS_POLL = 0.1
"""Start-up asks the masters this often whether the cluster is fully up."""
PROBE_TIMEOUT = 2.0
PROBE_CONNECT_TIMEOUT = 1.0
"""``leader()`` asks each metadata server with these deadlines (it may be stopped)."""
LOOPBACK = "127.0.0.1"
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The directory holding dfs/ and nodes/: on the nodes' PYTHONPATH."""


class LocalCluster:
    def __init__(self, config: ClusterConfig, detach: bool = False) -> None:
        self.config = config.validate()
        self.detach = detach
        self.data_dir = os.path.abspath(config.data_dir)
        self.log_dir = os.path.join(self.data_dir, "logs")
        self.state_file = detached.state_path(self.data_dir)
        self.auth_file = os.path.join(self.data_dir, "auth.txt")
        self.master: Node | None = None
        self.shadow: Node | None = None
        self.workers: list[Node] = []
        self.env = dict(os.environ, **config.extra_env)
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [SOURCE_ROOT, self.env.get("PYTHONPATH", "")]))
        if config.tls is not None:
            self.env[tls.ENV] = "1" if config.tls else "0"

    # --- addresses and files -------------------------------------------------------------

    @property
    def master_address(self) -> Address:
        return (LOOPBACK, self._started(self.master).port)

    @property
    def masters(self) -> tuple[Address, ...]:
        """Addresses of the metadata servers, as clients and workers list them."""
        return tuple((LOOPBACK, node.port) for node in self.metadata_nodes)

    @property
    def metadata_nodes(self) -> list[Node]:
        return [n for n in (self.master, self.shadow) if n is not None]

    @property
    def master_dir(self) -> str:
        return os.path.join(self.data_dir, "master")

    @property
    def shadow_dir(self) -> str:
        return os.path.join(self.data_dir, "shadow")

    @property
    def admin_auth_file(self) -> str:
        return os.path.join(self.master_dir, "admin-auth.txt")

    @property
    def token_file(self) -> str:
        return os.path.join(self.master_dir, "join-token")

    def worker_dir(self, index: int) -> str:
        return os.path.join(self.data_dir, f"worker-{index + 1}")

    @staticmethod
    def _started(node: Node | None) -> Node:
        if node is None:
            raise errors.Unavailable("the local cluster is not started")
        return node

    def _port(self, offset: int) -> int:
        return self.config.base_port + offset if self.config.base_port else 0

    def _fixed_port(self, saved: int | None, offset: int) -> int:
        """Metadata servers must know each other's port before either starts."""
        return saved or self._port(offset) or free_port()

    # --- lifecycle -------------------------------------------------------------------------

    def _master_options(self) -> list[str]:
        """What master and shadow are started with: the cluster's settings."""
        c = self.config
        return ["--chunk-size", str(c.chunk_size), "--dead-after", str(c.dead_after),
                "--heartbeat", str(c.heartbeat_interval), "--snapshot-every",
                str(c.snapshot_every), "--lease", str(c.lease), "--open-registration",
                "--lock-lease", repr(c.lock_lease), "--trash-hours",
                repr(c.trash_seconds / 3600), "--low-space", repr(c.low_space),
                *self._metrics_options()]

    def _metrics_options(self) -> list[str]:
        """Free ports picked by the OS: their port + 1000 may be anyone's (DATA/web-address
        says which; nodes/web.py)."""
        return [] if self.config.base_port else ["--metrics-port", "0"]

    def node_names(self) -> set[str]:
        """The nodes this configuration runs, named as cluster.json names them."""
        c = self.config
        return {"master", *(["shadow"] if c.shadow else []),
                *(f"worker-{index + 1}" for index in range(c.workers))}

    def _launch(self, node: Node, keep: Mapping[str, int], launched: list[Node]) -> None:
        """Start ``node``, unless it still runs (``keep``: name -> pid): then adopt it."""
        if node.name in keep:
            node.pid = keep[node.name]
        else:
            node.start(self.env, self.detach)
            launched.append(node)

    def start(self, keep: Mapping[str, int] | None = None) -> LocalCluster:
        """Start every node; with ``keep`` ({name: pid} of this cluster's nodes that still
        run, from a later `dfs up`), only the others: the kept ones go on untouched, and a
        failure stops only what this start started."""
        keep = dict(keep or {})
        launched: list[Node] = []
        private_dir(self.data_dir)  # every node's data, logs and credentials are below it
        private_dir(self.log_dir)
        saved = detached.saved_ports(self.data_dir)
        c = self.config
        common = self._master_options()
        master_port = self._fixed_port(saved.get("master"), 0)
        shadow_port = self._fixed_port(saved.get("shadow"), SHADOW_OFFSET) if c.shadow else 0
        master_args = ["master", *common]
        if c.shadow:
            master_args += ["--peer", f"{LOOPBACK}:{shadow_port}"]
        master = self.master = Node("master", master_args, self.master_dir, master_port,
                                    self.log_dir)
        if c.shadow:
            self.shadow = Node("shadow", ["shadow", *common, "--peer", f"{LOOPBACK}:{master_port}",
                                          "--token-file", self.token_file],
                               self.shadow_dir, shadow_port, self.log_dir)
        try:
            self._launch(master, keep, launched)
            if master in launched:
                master.wait_ready()  # it writes the join token the others need
            self.trust_cluster()
            if self.shadow is not None:
                self._launch(self.shadow, keep, launched)
                if self.shadow in launched:
                    self.shadow.wait_ready()
            for index in range(c.workers):
                self.workers.append(self._worker_node(index, saved.get(f"worker-{index + 1}")))
                self._launch(self.workers[-1], keep, launched)
            for worker in self.workers:
                if worker in launched:
                    worker.wait_ready()
            detached.save(self.data_dir, [*self.metadata_nodes, *self.workers])
            if c.workers:
                self.wait_workers(c.workers)
                if c.root_mode is not None:
                    with self.admin_client() as admin:
                        if admin.stat("/").mode != c.root_mode:
                            admin.chmod("/", c.root_mode)
            else:
                wait_for(self.leader, START_DEADLINE, "a leader to be elected",
                         interval=STATUS_POLL)
        except BaseException:
            if keep:
                for node in reversed(launched):
                    node.stop()
            else:
                self.stop()
            raise
        return self

    @property
    def tls_pin(self) -> str:
        """The cluster CA's fingerprint (auth files pin it); "" when the cluster has no TLS."""
        return tls.pin_of(self.master_dir) if self.config.tls else ""

    def trust_cluster(self) -> None:
        """This process's connections check the cluster's CA (or use plain TCP)."""
        pin = self.tls_pin
        tls.use(tls.Trust(pin=pin) if pin else None)

    def _worker_node(self, index: int, saved_port: int | None = None) -> Node:
        port = saved_port or self._port(WORKER_OFFSET + index)
        masters = ",".join("%s:%d" % address for address in self.masters)
        args = ["worker", "--master", masters, "--token-file", self.token_file,
                "--scrub-rate", str(self.config.scrub_bytes_per_second),
                "--capacity", str(self.config.worker_capacity), *self._metrics_options()]
        return Node(f"worker-{index + 1}", args, self.worker_dir(index), port, self.log_dir)

    def wait_workers(self, count: int, deadline: float = START_DEADLINE) -> None:
        """Wait until ``count`` workers are alive, every voter (those workers and the
        shadow) grants the leader its lease, and the standby is in sync: fully up."""
        voters = count + (1 if self.shadow is not None else 0)

        def enough() -> bool:
            try:
                with self.admin_client() as admin:
                    status = admin.status()
                live = [w for w in status.workers if w.alive]
                in_sync = self.shadow is None or status.standby == "in sync"
                return len(live) >= count and len(status.lease_holders) >= voters and in_sync
            except errors.DfsError:
                return False
        wait_for(enough, deadline, f"{count} workers to register", interval=STATUS_POLL)

    def stop(self) -> None:
        for node in [*self.workers, self.shadow, self.master]:
            if node is not None:
                node.stop()
        detached.forget_pids(self.data_dir)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests need -----------------------------------------------------------------

    def restart_master(self, sig: int = signal.SIGKILL) -> None:
        self.restart(self._started(self.master), sig)

    def restart(self, node: Node, sig: int = signal.SIGKILL) -> None:
        """Stop ``node`` with ``sig`` and start it again on the same port and data."""
        node.stop(sig)
        node.start(self.env, self.detach)
        node.wait_ready()

    def leader(self) -> Node | None:
        """The metadata node that currently leads (asks each one), or None."""
        from dfs import rpc
        pin = self.tls_pin
        trust = tls.Trust(pin=pin) if pin else None
        for node in self.metadata_nodes:
            try:
                conn = rpc.connect(LOOPBACK, node.port, timeout=PROBE_TIMEOUT,
                                   connect_timeout=PROBE_CONNECT_TIMEOUT, trust=trust)
            except errors.Unavailable:
                continue
            try:
                if conn.root.hello()[1] == "leader":
                    return node
            except Exception:
                pass
            finally:
                conn.close()
        return None

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        self.workers[index].stop(sig)

    def start_worker(self, index: int) -> None:
        self.workers[index].start(self.env, self.detach)
        self.workers[index].wait_ready()

    def admin_client(self, **options: Any) -> DfsClient:
        from dfs.client import DfsClient
        options.setdefault("failover_deadline", ADMIN_FAILOVER_DEADLINE)
        return DfsClient.from_auth_file(self.admin_auth_file, cache_dir="", **options)

    def register(self, name: str, auth_file: str | None = None) -> str:
        """Register user ``name`` and write its auth file; -> the file's path."""
        from dfs.client import register
        self.trust_cluster()
        key = register(self.masters, name)
        path = auth_file or os.path.join(self.data_dir, f"auth-{name}.txt")
        auth.write_auth_file(path, self.masters, name, key, ca=self.tls_pin)
        return path

    def give_root_to(self, name: str) -> None:
        """A local cluster is its user's: the root folder becomes theirs (still 0755), so
        the folder `dfs up` mounts is one they can write into at once. (A cluster of
        several users keeps the admin's root and gives each a home: README.)"""
        with self.admin_client() as admin:
            user = next(u for u in admin.users_list() if u.name == name)
            admin.chown("/", user.uid, user.gid)

    def client(self, name: str = "tester", **options: Any) -> DfsClient:
        """A DfsClient for ``name`` (registered on first use), cache under the data dir."""
        from dfs.client import DfsClient
        path = os.path.join(self.data_dir, f"auth-{name}.txt")
        if not os.path.exists(path):
            self.register(name, path)
        options.setdefault("cache_dir", os.path.join(self.data_dir, f"cache-{name}"))
        return DfsClient.from_auth_file(path, **options)


__all__ = ["LocalCluster", "ClusterConfig", "Node", "expected_nodes", "free_port", "pid_alive",
           "running_pids", "stop_detached", "tail", "wait_for"]

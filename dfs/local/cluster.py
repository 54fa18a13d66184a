"""LocalCluster: a master and N workers on this machine, as subprocesses.

The same cluster `dfs up` starts, as a context manager for tests and Python users:

    with LocalCluster(ClusterConfig(data_dir=tmp, base_port=0)) as cluster:
        with cluster.client() as dfs:
            dfs.put_bytes("/hello", b"hi")

Layout under ``data_dir``::

    master/            the master's data (cache-metadata/, join-token, admin-auth.txt)
    worker-N/          each worker's chunks/ and backups/
    logs/NAME.log      each node's log
    cluster.json       ports and pids, so `dfs down` and a later `dfs up` find them
    auth.txt           the local user's credentials

Every node is started with ``--ready-file``: it writes its real port there once it
listens, and start-up polls for that file with a deadline (never a fixed sleep).
``base_port=0`` gives every node a free port chosen by the OS.
"""

import json
import os
import signal
import subprocess
import sys
import time

from dfs import auth, errors
from dfs.config import ClusterConfig
from dfs.fsutil import write_atomic

START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


def wait_for(condition, deadline, what, interval=0.05):
    """Poll ``condition()`` until it returns something truthy or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > end:
            raise errors.Unavailable(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid):
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)  # our child: reap it if it exited
        return done == 0
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")


class Node:
    """One node process: how to start it, and the process once started."""

    def __init__(self, name, args, data_dir, port, log_dir):
        self.name = name
        self.args = args
        self.data_dir = data_dir
        self.port = port
        self.log_path = os.path.join(log_dir, name + ".log")
        self.ready_file = os.path.join(log_dir, name + ".port")
        self.process = None
        self.pid = None

    def start(self, env, detach):
        try:
            os.unlink(self.ready_file)
        except FileNotFoundError:
            pass
        argv = [sys.executable, "-m", "dfs.cli", *self.args, "--data", self.data_dir,
                "--port", str(self.port), "--ready-file", self.ready_file]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env,
                                            start_new_session=detach)
        self.pid = self.process.pid

    def wait_ready(self, deadline=START_DEADLINE):
        def ready():
            if self.process is not None and self.process.poll() is not None:
                raise errors.Unavailable(f"{self.name} exited at start; see {self.log_path}:\n"
                                         + tail(self.log_path))
            try:
                with open(self.ready_file) as f:
                    return int(f.read().strip() or 0)
            except (FileNotFoundError, ValueError):
                return 0
        self.port = wait_for(ready, deadline, f"{self.name} to listen")
        return self.port

    def alive(self):
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def send_signal(self, sig):
        if self.pid is not None and self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM):
        self.send_signal(sig)
        try:
            wait_for(lambda: not self.alive(), STOP_DEADLINE, f"{self.name} to stop")
        except errors.Unavailable:
            self.send_signal(signal.SIGKILL)
            wait_for(lambda: not self.alive(), STOP_DEADLINE, f"{self.name} to die")
        if self.process is not None:
            self.process.wait()


def tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def free_port():
    """A port nothing listens on right now (the OS picks it)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    def __init__(self, config, detach=False):
        self.config = config.validate()
        self.detach = detach
        self.data_dir = os.path.abspath(config.data_dir)
        self.log_dir = os.path.join(self.data_dir, "logs")
        self.state_file = os.path.join(self.data_dir, "cluster.json")
        self.auth_file = os.path.join(self.data_dir, "auth.txt")
        self.master = None
        self.shadow = None
        self.workers = []
        self.env = dict(os.environ, **config.extra_env)
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          self.env.get("PYTHONPATH", "")]))

    # --- addresses and files -------------------------------------------------------------

    @property
    def master_address(self):
        return ("127.0.0.1", self.master.port)

    @property
    def masters(self):
        """Addresses of the metadata servers, as clients and workers list them."""
        return tuple(("127.0.0.1", node.port) for node in self.metadata_nodes)

    @property
    def metadata_nodes(self):
        return [n for n in (self.master, self.shadow) if n is not None]

    @property
    def master_dir(self):
        return os.path.join(self.data_dir, "master")

    @property
    def shadow_dir(self):
        return os.path.join(self.data_dir, "shadow")

    @property
    def admin_auth_file(self):
        return os.path.join(self.master_dir, "admin-auth.txt")

    def worker_dir(self, index):
        return os.path.join(self.data_dir, f"worker-{index + 1}")

    def _port(self, offset):
        return self.config.base_port + offset if self.config.base_port else 0

    def _fixed_port(self, saved, offset):
        """Metadata servers must know each other's port before either starts."""
        return saved or self._port(offset) or free_port()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        os.makedirs(self.log_dir, exist_ok=True)
        saved = self._load_state()
        c = self.config
        common = ["--chunk-size", str(c.chunk_size), "--dead-after", str(c.dead_after),
                  "--heartbeat", str(c.heartbeat_interval), "--snapshot-every",
                  str(c.snapshot_every), "--lease", str(c.lease), "--open-registration",
                  "--trash-hours", repr(c.trash_seconds / 3600)]
        master_port = self._fixed_port(saved.get("master"), 0)
        shadow_port = self._fixed_port(saved.get("shadow"), 1) if c.shadow else None
        master_args = ["master", *common]
        if c.shadow:
            master_args += ["--peer", f"127.0.0.1:{shadow_port}"]
        self.master = Node("master", master_args, self.master_dir, master_port, self.log_dir)
        if c.shadow:
            self.shadow = Node("shadow", ["shadow", *common, "--peer", f"127.0.0.1:{master_port}",
                                          "--token-file", self.token_file],
                               self.shadow_dir, shadow_port, self.log_dir)
        try:
            self.master.start(self.env, self.detach)
            self.master.wait_ready()  # it writes the join token the others need
            if self.shadow is not None:
                self.shadow.start(self.env, self.detach)
                self.shadow.wait_ready()
            for index in range(c.workers):
                self.workers.append(self._worker_node(index, saved.get(f"worker-{index + 1}")))
                self.workers[-1].start(self.env, self.detach)
            for worker in self.workers:
                worker.wait_ready()
            self._save_state()
            if c.workers:
                self.wait_workers(c.workers)
            else:
                wait_for(self.leader, START_DEADLINE, "a leader to be elected", interval=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def token_file(self):
        return os.path.join(self.master_dir, "join-token")

    def _worker_node(self, index, saved_port=None):
        port = saved_port or self._port(9 + index)
        masters = ",".join("%s:%d" % address for address in self.masters)
        args = ["worker", "--master", masters, "--token-file", self.token_file,
                "--scrub-rate", str(self.config.scrub_bytes_per_second)]
        return Node(f"worker-{index + 1}", args, self.worker_dir(index), port, self.log_dir)

    def wait_workers(self, count, deadline=START_DEADLINE):
        """Wait until ``count`` workers are alive, every voter (those workers and the
        shadow) grants the leader its lease, and the standby is in sync: fully up."""
        voters = count + (1 if self.shadow is not None else 0)

        def enough():
            try:
                with self.admin_client() as admin:
                    status = admin.status()
                live = [w for w in status["workers"] if w.alive]
                in_sync = self.shadow is None or status["standby"] == "in sync"
                return len(live) >= count and len(status["lease_holders"]) >= voters and in_sync
            except errors.DfsError:
                return False
        wait_for(enough, deadline, f"{count} workers to register", interval=0.1)

    def stop(self):
        for node in [*self.workers, self.shadow, self.master]:
            if node is not None:
                node.stop()
        self._forget_state()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- what tests need -----------------------------------------------------------------

    def restart_master(self, sig=signal.SIGKILL):
        self.restart(self.master, sig)

    def restart(self, node, sig=signal.SIGKILL):
        """Stop ``node`` with ``sig`` and start it again on the same port and data."""
        node.stop(sig)
        node.start(self.env, self.detach)
        node.wait_ready()

    def leader(self):
        """The metadata node that currently leads (asks each one), or None."""
        from dfs import rpc
        for node in self.metadata_nodes:
            try:
                conn = rpc.connect("127.0.0.1", node.port, timeout=2, connect_timeout=1)
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

    def kill_worker(self, index, sig=signal.SIGKILL):
        self.workers[index].stop(sig)

    def start_worker(self, index):
        self.workers[index].start(self.env, self.detach)
        self.workers[index].wait_ready()

    def admin_client(self, **options):
        from dfs.client import DfsClient
        options.setdefault("failover_deadline", 5.0)
        return DfsClient.from_auth_file(self.admin_auth_file, cache_dir="", **options)

    def register(self, name, auth_file=None):
        """Register user ``name`` and write its auth file; -> the file's path."""
        from dfs.client import register
        key = register(self.masters, name)
        path = auth_file or os.path.join(self.data_dir, f"auth-{name}.txt")
        auth.write_auth_file(path, self.masters, name, key)
        return path

    def client(self, name="tester", **options):
        """A DfsClient for ``name`` (registered on first use), cache under the data dir."""
        from dfs.client import DfsClient
        path = os.path.join(self.data_dir, f"auth-{name}.txt")
        if not os.path.exists(path):
            self.register(name, path)
        options.setdefault("cache_dir", os.path.join(self.data_dir, f"cache-{name}"))
        return DfsClient.from_auth_file(path, **options)

    # --- cluster.json ---------------------------------------------------------------------

    def _load_state(self):
        try:
            with open(self.state_file) as f:
                state = json.load(f)
        except (FileNotFoundError, ValueError):
            return {}
        return state.get("ports", {})

    def _save_state(self):
        nodes = [*self.metadata_nodes, *self.workers]
        state = {"ports": {n.name: n.port for n in nodes},
                 "pids": {n.name: n.pid for n in nodes}}
        write_atomic(self.state_file, json.dumps(state, indent=1).encode())

    def _forget_state(self):
        """Keep the ports (a restart reuses them), drop the pids."""
        try:
            with open(self.state_file) as f:
                state = json.load(f)
        except (FileNotFoundError, ValueError):
            return
        state["pids"] = {}
        write_atomic(self.state_file, json.dumps(state, indent=1).encode())


def running_pids(data_dir):
    """{name: pid} of a detached local cluster's nodes that are still alive."""
    try:
        with open(os.path.join(data_dir, "cluster.json")) as f:
            pids = json.load(f).get("pids", {})
    except (FileNotFoundError, ValueError):
        return {}
    return {name: pid for name, pid in pids.items() if pid and pid_alive(pid)}


def expected_nodes(data_dir):
    """Names of the nodes a local cluster in ``data_dir`` was started with."""
    try:
        with open(os.path.join(data_dir, "cluster.json")) as f:
            return set(json.load(f).get("ports", {}))
    except (FileNotFoundError, ValueError):
        return set()


def stop_detached(data_dir):
    """Stop the nodes of a cluster `dfs up` left running. -> names stopped."""
    pids = running_pids(data_dir)
    nodes = []
    for name, pid in pids.items():
        node = Node(name, [], data_dir, 0, os.path.join(data_dir, "logs"))
        node.pid = pid
        nodes.append(node)
    for node in sorted(nodes, key=lambda n: n.name in ("master", "shadow")):  # workers first
        node.stop()
    state_path = os.path.join(data_dir, "cluster.json")
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
        state["pids"] = {}
        write_atomic(state_path, json.dumps(state, indent=1).encode())
    return sorted(pids)


__all__ = ["LocalCluster", "ClusterConfig", "running_pids", "stop_detached", "wait_for"]

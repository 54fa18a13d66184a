"""HostsCluster: a master, a shadow, N workers and client hosts, each on a host of its own
(a network namespace with its own address, dfs.local.netns), all on this machine.

The nodes are started the way an operator starts them on separate machines (README,
"Running nodes on several machines"): every node on its own address and the default
ports, the join token copied to each host as a file, TLS on (they listen beyond
loopback), users registered with the token and the cluster CA pinned (``dfs register
--ca``). Only addresses inside the namespaces are used; this process reaches the cluster
through a client host's agent (dfs.local.hosts_agent) or the ``dfs`` command run there.

    with HostsCluster(ClusterConfig(data_dir=tmp, workers=4)) as hosts:
        client = hosts.clients["client"]
        print(client.call("roles", auth=client.auth_file))
        hosts.net.cut(hosts.leader())          # pull the leader's cable

Layout under ``data_dir``: ``master/``, ``shadow/``, ``w1/`` ... (each node's data and its
copy of the join token), ``<client>/`` (the token, ``admin.txt`` and ``auth.txt``; its user is
named as the host, with a folder of its own in the cluster), and ``logs/NAME.log`` for
every node and agent.

``python -m dfs.local.hosts`` (``make hosts-demo``) starts one, says how to reach it, and
removes it all on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import IO, Any

from dfs import auth, errors, tls
from dfs.config import (
    DEFAULT_MASTER_PORT,
    DEFAULT_SHADOW_PORT,
    DEFAULT_WORKER_BASE_PORT,
    ClusterConfig,
    default,
)
from dfs.fsutil import open_private, private_dir
from dfs.local.cluster import SOURCE_ROOT
from dfs.local.netns import Network, unavailable
from dfs.local.processes import START_DEADLINE, Node, wait_for

CALL_DEADLINE = 120.0
"""Seconds one request to an agent may take (a final read of every key, say)."""
HEALTH_POLL = 0.3
TOKEN, ADMIN_AUTH = "join-token", "admin-auth.txt"


class ClientHost:
    """A client host: its agent process, and the ``dfs`` command run on it."""

    def __init__(self, name: str, net: Network, directory: str, log_path: str,
                 env: dict[str, str]) -> None:
        self.name, self.net, self.directory, self.env = name, net, directory, env
        self.log_path = log_path
        self.auth_file = os.path.join(directory, "auth.txt")
        self.admin_file = os.path.join(directory, "admin.txt")
        self.home = ""
        """The cluster folder of this host's user (``/home/NAME``, or one the admin makes)."""
        self.process: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()

    def start(self) -> None:
        with open_private(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.net.exec_prefix(self.name), sys.executable, "-m",
                 "dfs.local.hosts_agent"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, env=self.env, text=True)
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put("")  # the agent is gone

    def call(self, op: str, deadline: float = CALL_DEADLINE, **arguments: Any) -> Any:
        """One request to the agent. -> its result; DfsError with the agent's message."""
        if self.process is None or self.process.stdin is None:
            raise errors.Unavailable(f"the agent on {self.name} is not running")
        self.process.stdin.write(json.dumps(dict(arguments, op=op)) + "\n")
        self.process.stdin.flush()
        try:
            line = self.lines.get(timeout=deadline)
        except queue.Empty:
            raise errors.Unavailable(f"{self.name}: no answer to {op} in {deadline:.0f}s") \
                from None
        if not line:
            raise errors.Unavailable(f"the agent on {self.name} exited; see {self.log_path}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise errors.DfsError(f"{self.name}: {op}: {answer['error']}")
        return answer["result"]

    def dfs(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``dfs ARGS`` run on this host, as its user types it."""
        return subprocess.run([*self.net.exec_prefix(self.name), sys.executable, "-m",
                               "dfs.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=CALL_DEADLINE, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class HostsCluster:
    def __init__(self, config: ClusterConfig, clients: Sequence[str] = ("client",)) -> None:
        self.config = config.validate()
        self.data_dir = os.path.abspath(config.data_dir)
        self.log_dir = os.path.join(self.data_dir, "logs")
        self.net = Network()
        self.worker_names = [f"w{i + 1}" for i in range(config.workers)]
        self.client_names = list(clients)
        self.nodes: dict[str, Node] = {}
        self.clients: dict[str, ClientHost] = {}
        self.env = dict(os.environ)
        self.env.pop(tls.ENV, None)  # TLS decided by the addresses, as on real hosts
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [SOURCE_ROOT, self.env.get("PYTHONPATH", "")]))

    # --- addresses ----------------------------------------------------------------------

    def address(self, name: str) -> str:
        return self.net.hosts[name].address

    @property
    def masters(self) -> str:
        return (f"{self.address('master')}:{DEFAULT_MASTER_PORT},"
                f"{self.address('shadow')}:{DEFAULT_SHADOW_PORT}")

    def server(self, name: str) -> str:
        """"host:port" of metadata host ``name`` (master or shadow)."""
        port = DEFAULT_MASTER_PORT if name == "master" else DEFAULT_SHADOW_PORT
        return f"{self.address(name)}:{port}"

    def name_of(self, address: str) -> str:
        """The host name of "ip" or "ip:port"."""
        ip = address.split(":", 1)[0]
        for name, host in self.net.hosts.items():
            if host.address == ip:
                return name
        raise errors.InvalidArgument(f"no host has address {address}")

    def directory(self, name: str) -> str:
        return os.path.join(self.data_dir, name)

    # --- starting and stopping -----------------------------------------------------------

    def _node(self, name: str, args: list[str], port: int) -> Node:
        node = Node(name, [*args, "--host", self.address(name)], self.directory(name), port,
                    self.log_dir)
        node.wrapper = self.net.exec_prefix(name)
        self.nodes[name] = node
        return node

    def _give_token(self, name: str) -> str:
        """Copy the join token to host ``name`` (0600), as an operator does. -> its path."""
        path = os.path.join(private_dir(self.directory(name)), TOKEN)
        with open(os.path.join(self.directory("master"), TOKEN), "rb") as source:
            token = source.read()
        with open_private(path) as f:
            f.write(token)
        return path

    def _master_options(self) -> list[str]:
        c = self.config
        return ["--chunk-size", str(c.chunk_size), "--dead-after", str(c.dead_after),
                "--heartbeat", str(c.heartbeat_interval), "--snapshot-every",
                str(c.snapshot_every), "--lease", str(c.lease),
                "--trash-hours", repr(c.trash_seconds / 3600)]

    def start(self) -> HostsCluster:
        private_dir(self.data_dir)
        private_dir(self.log_dir)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.net.create()
        for name in ["master", "shadow", *self.worker_names, *self.client_names]:
            self.net.add_host(name)
        options = self._master_options()
        master = self._node("master", ["master", *options, "--peer",
                                       f"{self.address('shadow')}:{DEFAULT_SHADOW_PORT}"],
                            DEFAULT_MASTER_PORT)
        master.start(self.env, detach=False)
        master.wait_ready()  # it has written the join token
        shadow = self._node("shadow", ["shadow", *options, "--peer",
                                       f"{self.address('master')}:{DEFAULT_MASTER_PORT}",
                                       "--token-file", self._give_token("shadow")],
                            DEFAULT_SHADOW_PORT)
        shadow.start(self.env, detach=False)
        for name in self.worker_names:
            self._node(name, ["worker", "--master", self.masters, "--token-file",
                              self._give_token(name), "--scrub-rate",
                              str(self.config.scrub_bytes_per_second)],
                       DEFAULT_WORKER_BASE_PORT).start(self.env, detach=False)
        for node in self.nodes.values():
            if node is not master:
                node.wait_ready()
        admin_file = os.path.join(self.directory("master"), ADMIN_AUTH)
        wait_for(lambda: os.path.exists(admin_file), START_DEADLINE,
                 "the first worker to initialise the cluster")
        for name in self.client_names:
            self._start_client(name, admin_file)
        self.wait_healthy()

    def _start_client(self, name: str, admin_file: str) -> None:
        """The client host gets the token and the admin's credentials (copied from the
        master, as an operator would), and its user registers with the CA pinned."""
        token = self._give_token(name)
        client = ClientHost(name, self.net, self.directory(name),
                            os.path.join(self.log_dir, f"agent-{name}.log"), self.env)
        shutil.copyfile(admin_file, client.admin_file)
        os.chmod(client.admin_file, 0o600)
        client.start()
        self.clients[name] = client
        done = client.dfs("register", name, "--master", self.masters, "--token-file", token,
                          "--ca", auth.read_auth_pin(admin_file), "--auth", client.auth_file)
        if done.returncode != 0:
            raise errors.Unavailable(f"dfs register {name} on its host failed: "
                                     f"{done.stdout}{done.stderr}")
        client.home = client.call("home", auth=client.admin_file, owner=name)

    def stop(self) -> None:
        for client in self.clients.values():
            client.stop()
        for node in self.nodes.values():
            if node.process is not None:
                node.stop()
        self.net.destroy()

    def __enter__(self) -> HostsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests need -----------------------------------------------------------------

    @property
    def probe(self) -> ClientHost:
        """The client host the harness asks about the cluster (the first one)."""
        return self.clients[self.client_names[0]]

    def roles(self, via: ClientHost | None = None,
              only: Sequence[str] = ()) -> dict[str, Any]:
        """{host name: [role, epoch] or None} of the metadata hosts (or those in ``only``)
        as ``via`` (the probe) reaches them."""
        client = via or self.probe
        found = client.call("roles", auth=client.admin_file,
                            only=[self.server(name) for name in only])
        return {self.name_of(address): value for address, value in found.items()}

    def role(self, name: str, via: ClientHost | None = None) -> str:
        """"leader" or "standby" as metadata host ``name`` says, "" if ``via`` cannot reach it."""
        found = self.roles(via, only=[name]).get(name)
        return str(found[0]) if found else ""

    def leader(self, via: ClientHost | None = None) -> str | None:
        """The metadata host that says it leads, as ``via`` reaches them; None if none."""
        leading = [name for name, v in self.roles(via).items() if v and v[0] == "leader"]
        return leading[0] if len(leading) == 1 else None

    def status(self, name: str, via: ClientHost | None = None) -> dict[str, Any]:
        """Metadata host ``name``'s view of the cluster (wire.ClusterStatus as a dict)."""
        client = via or self.probe
        result: dict[str, Any] = client.call("status", auth=client.admin_file,
                                             address=self.server(name))
        return result

    def healthy(self) -> dict[str, Any] | None:
        """The leader's status when every worker is alive, every voter grants it a lease
        and the standby is in sync; else None."""
        try:
            leader = self.leader()
            if leader is None:
                return None
            st = self.status(leader)
        except errors.DfsError:
            return None
        live = [w for w in st["workers"] if w["alive"]]
        voters = len(self.worker_names) + 1
        if (len(live) == len(self.worker_names) and len(st["lease_holders"]) >= voters
                and st["standby"] == "in sync"):
            return st
        return None

    def wait_healthy(self, deadline: float = 60.0) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(self.healthy, deadline, "the cluster to be healthy",
                                          interval=HEALTH_POLL)
        return result


# --- make hosts-demo ---------------------------------------------------------------------------

def demo(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfs.local.hosts",
                                     description="a DFS cluster on network namespaces")
    parser.add_argument("--workers", type=int, default=default(ClusterConfig, "workers"))
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cannot build the hosts: {reason}", file=sys.stderr)
        return 1
    data = tempfile.mkdtemp(prefix="dfs-hosts-")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # set even where a shell ignored SIGINT
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        with HostsCluster(ClusterConfig(data_dir=data, workers=args.workers)) as hosts:
            _explain(hosts)
            stop.wait()
            print("\nstopping: nodes, namespaces and links are removed")
    except errors.DfsError as exc:
        print(f"hosts demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


def _explain(hosts: HostsCluster) -> None:
    net = hosts.net
    print(f"DFS on {len(net.hosts)} hosts (network namespaces), data and logs in "
          f"{hosts.data_dir}:")
    for name, host in net.hosts.items():
        print(f"  {name:8} {host.address:15} namespace {host.namespace}")
    client = hosts.probe
    run = " ".join([*net.exec_prefix(client.name), sys.executable, "-m", "dfs.cli"])
    print(f"\nleader: {hosts.leader()}; a user's commands run on the client host:")
    print(f"  {run} ls -l / --auth {client.auth_file}")
    print(f"  {run} status --auth {client.admin_file}")
    print(f"pull a host's cable:  ip -n {net.hub} link set v<host> down   (up again: up)")
    print("Ctrl-C stops it all.")


if __name__ == "__main__":
    sys.exit(demo())

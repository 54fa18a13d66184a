"""A private network of hosts on one machine: Linux network namespaces on a bridge.

    net = Network().create()
    try:
        master = net.add_host("master")        # its own namespace, eth0 with 10.213.X.2/24
        subprocess.Popen(net.exec_prefix("master") + ["python", ...])
        net.cut("master")                      # its cable is pulled: it reaches nobody
        net.heal()
    finally:
        net.destroy()

Everything lives inside namespaces; nothing is added to the caller's own network:

- ``PREFIX-net`` holds the bridge ``br0`` (and ``br1`` for partitions) and one end of each
  host's veth pair, named ``v<host>``;
- ``PREFIX-<host>`` holds the other end as ``eth0`` with its address, and ``lo``.

PREFIX is ``dfsnet-<pid>-<random>`` and X (10.213.X.0/24) is random per run, so parallel
runs never collide. Namespaces left by a run that died (its pid is gone) are removed by the
next ``create``.

Ways to break links, each as a real network does (packets dropped, nobody told):

- ``cut(host)``: the host's port on the bridge goes down: it reaches nobody;
- ``partition(hosts)``: their ports move to a second bridge: they reach only each other;
- ``separate(a, b)``: the bridge's "isolated" flag on both ports: a and b cannot reach each
  other, both reach everyone else (one pair at a time: isolated ports never talk);
- ``heal()``: every port up, on ``br0``, not isolated.

Needs root and iproute2 (``ip``, ``bridge``); ``unavailable()`` says why not, for a skip.
Not thread-safe: one owner changes the network.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass

from dfs import errors

NAME_PREFIX = "dfsnet"
SUBNET_BASE = "10.213"
"""Hosts get 10.213.X.2, .3, ... with X random per run (a private range few networks use)."""
FIRST_HOST = 2
MAX_HOSTS = 200
BRIDGE, ISLAND = "br0", "br1"
IP_DEADLINE = 15.0
"""Seconds one ``ip`` command may take before the harness gives up on it."""
_STALE = re.compile(rf"^{NAME_PREFIX}-(\d+)-[0-9a-f]+-")


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str
    port_name: str  # its veth end on the bridge


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=IP_DEADLINE,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise errors.Unavailable(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done


def unavailable() -> str:
    """Why this machine cannot build such a network ("" when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root)"
    missing = [tool for tool in ("ip", "bridge") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found: install iproute2"
    probe = f"{NAME_PREFIX}-{os.getpid()}-probe"
    try:
        done = _run("ip", "netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` failed: {exc}"
    if done.returncode != 0:
        return f"`ip netns add` refused: {done.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return ""


def namespaces() -> list[str]:
    done = _run("ip", "netns", "list", check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep_stale() -> list[str]:
    """Remove the namespaces of earlier runs whose process is gone. -> their names."""
    removed = []
    for name in namespaces():
        found = _STALE.match(name)
        if found and _pid_gone(int(found.group(1))):
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


class Network:
    def __init__(self, subnet: int | None = None) -> None:
        self.prefix = f"{NAME_PREFIX}-{os.getpid()}-{random.getrandbits(24):06x}"
        self.subnet = random.randrange(256) if subnet is None else subnet
        self.hub = f"{self.prefix}-net"
        self.hosts: dict[str, Host] = {}
        self.created: list[str] = []  # namespaces, in creation order

    def _netns(self, name: str) -> str:
        _run("ip", "netns", "add", name)
        self.created.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def create(self) -> Network:
        sweep_stale()
        try:
            self._netns(self.hub)
            for bridge in (BRIDGE, ISLAND):
                _run("ip", "-n", self.hub, "link", "add", bridge, "type", "bridge")
                _run("ip", "-n", self.hub, "link", "set", bridge, "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def address(self, index: int) -> str:
        return f"{SUBNET_BASE}.{self.subnet}.{FIRST_HOST + index}"

    def add_host(self, name: str) -> Host:
        """A new host: its namespace, a veth pair to the bridge, an address."""
        if name in self.hosts or not re.fullmatch(r"[a-z0-9]{1,12}", name):
            raise errors.InvalidArgument(f"bad or duplicate host name {name!r}")
        if len(self.hosts) >= MAX_HOSTS:
            raise errors.InvalidArgument("too many hosts")
        host = Host(name, f"{self.prefix}-{name}", self.address(len(self.hosts)), "v" + name)
        self._netns(host.namespace)
        _run("ip", "link", "add", "eth0", "netns", host.namespace, "type", "veth",
             "peer", "name", host.port_name, "netns", self.hub)
        _run("ip", "-n", self.hub, "link", "set", host.port_name, "master", BRIDGE)
        _run("ip", "-n", self.hub, "link", "set", host.port_name, "up")
        _run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run("ip", "-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def exec_prefix(self, name: str) -> list[str]:
        """What to put before a command to run it on host ``name``."""
        return ["ip", "netns", "exec", self.hosts[name].namespace]

    # --- breaking links -------------------------------------------------------------------

    def _port(self, name: str, *settings: str) -> None:
        _run("ip", "-n", self.hub, "link", "set", self.hosts[name].port_name, *settings)

    def cut(self, name: str) -> None:
        """Pull ``name``'s cable: its port on the bridge goes down."""
        self._port(name, "down")

    def partition(self, names: list[str]) -> None:
        """``names`` reach only each other (their ports move to the second bridge)."""
        for name in names:
            self._port(name, "master", ISLAND)

    def separate(self, a: str, b: str) -> None:
        """``a`` and ``b`` cannot reach each other; both still reach everyone else."""
        for name in (a, b):
            _run("bridge", "-n", self.hub, "link", "set", "dev", self.hosts[name].port_name,
                 "isolated", "on")

    def heal(self) -> None:
        """Every link as it was built: up, on the main bridge, not isolated."""
        for name, host in self.hosts.items():
            self._port(name, "master", BRIDGE)
            _run("bridge", "-n", self.hub, "link", "set", "dev", host.port_name,
                 "isolated", "off")
            self._port(name, "up")

    # --- cleaning up ----------------------------------------------------------------------

    def pids(self, name: str) -> list[int]:
        """Processes running in ``name``'s namespace."""
        done = _run("ip", "netns", "pids", self.hosts[name].namespace, check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    def destroy(self) -> None:
        """Kill what still runs in our namespaces (it was started there by us), then remove
        them; the veth pairs go with them. Safe to call twice."""
        for namespace in reversed(self.created):
            done = _run("ip", "netns", "pids", namespace, check=False)
            for pid in (int(p) for p in done.stdout.split() if p.isdigit()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _run("ip", "netns", "del", namespace, check=False)
        self.created = []
        self.hosts = {}

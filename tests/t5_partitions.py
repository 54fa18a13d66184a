"""Partitions on a cluster of hosts (dfs/local/hosts.py): master, shadow, 4 workers and two
client hosts, each a network namespace with its own address; real processes, TLS on, real
links cut (a port down, a port moved to another bridge, two ports isolated from each other).

Each scenario runs clients that write and read registers the whole time, records every
operation, heals the network, reads every key once more, and checks the history
(dfs/local/history.py): no acknowledged write lost, no read of a value never written, no
two leaders acknowledging in one epoch, no old leader serving after a new one. It prints
the longest pause (no successful operation) and the acknowledged writes lost (always 0).

Skipped, with the reason, where this machine refuses network namespaces (not root, no
iproute2). One cluster serves the module; each test starts from a healthy cluster and
heals the network at its end, whatever happened.
"""

import json
import os
import time

import pytest
from conftest import cluster_config

from dfs.local import history, netns
from dfs.local.hosts import HostsCluster
from dfs.local.processes import wait_for

pytestmark = pytest.mark.log_allows(
    # what partitions make the nodes say, on purpose
    r"steps down to standby", r"lost its majority of voters",
    r"standby unreachable .*: marking it stale", r"standby is behind",
    r"silent for [\d.]+s: dead", r"chunk \d+ to worker \S+ failed")

CHUNK = 256 * 1024
FILE_SIZE = 300_000  # two chunks
CLIENT, ISLAND = "client", "island"
DATA = dict(kind="data", threads=2, keys=3, size=FILE_SIZE, failover=30.0)
META = dict(kind="meta", threads=1, keys=3, size=0, failover=10.0)
"""The client host writes files (chunks on workers); the island host writes symlinks
(metadata only), so it keeps talking to a leader cut off from every worker."""
DEAD_AFTER = float(os.environ.get("DFS_T5_DEAD_AFTER", 10.0))
"""The default, not conftest's 3 s: a leader holds its metadata lock for seconds while it
fails to reach an unreachable standby (Replicator.replicate under the lock), heartbeats
wait behind it, and live workers are then declared dead (reads fail: "no live replica").
Reported with issue 13; DFS_T5_DEAD_AFTER=3 shows it in the leader-cut scenario about
every other run."""
PROGRESS = 20  # successful operations to wait for between steps
DEADLINE = 60.0


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"no cluster of hosts on this machine: {reason}")
    config = cluster_config(tmp_path_factory.mktemp("hosts"), chunk_size=CHUNK,
                            dead_after=DEAD_AFTER)
    with HostsCluster(config, clients=(CLIENT, ISLAND)) as cluster:
        yield cluster


@pytest.fixture
def healthy(hosts):
    hosts.wait_healthy()
    yield hosts
    hosts.net.heal()
    for client in hosts.clients.values():
        client.call("reset")


class Scenario:
    """Workloads on client hosts, their histories, the final reads and the check."""

    def __init__(self, hosts, name, **kinds):
        self.hosts, self.name, self.kinds = hosts, name, kinds
        self.ops = []
        self.stopped = set()
        for host, kind in kinds.items():
            client = hosts.clients[host]
            client.call("start", name=self.workload(host), auth=client.auth_file,
                        directory=f"{client.home}/{name}", **kind)

    def workload(self, host):
        return f"{self.name}-{host}"

    def ok_count(self, host):
        return self.hosts.clients[host].call("progress", name=self.workload(host))["ok"]

    def progress(self, host, count=PROGRESS, deadline=DEADLINE):
        """Wait for ``count`` more successful operations on ``host``."""
        target = self.ok_count(host) + count
        wait_for(lambda: self.ok_count(host) >= target, deadline,
                 f"{count} more successful operations on {host}", interval=0.2)

    def stop(self):
        for host in self.kinds:
            if host not in self.stopped:
                self.ops += self.hosts.clients[host].call("stop", name=self.workload(host))
                self.stopped.add(host)

    def keys(self, host):
        return sorted({op["key"] for op in self.ops
                       if op["op"] == "write" and op["client"].startswith(self.workload(host))})

    def read(self, host, paths):
        """Read ``paths`` once from ``host``; the reads join the history. -> them."""
        client = self.hosts.clients[host]
        reads = client.call("read", auth=client.auth_file, kind=self.kinds[host]["kind"],
                            paths=paths)
        self.ops += reads
        return reads

    def finish(self, window):
        """Stop the workloads, read every key from its own host, check it all."""
        self.stop()
        for host in self.kinds:
            finals = self.read(host, self.keys(host))
            assert all(op["status"] == "ok" for op in finals), finals
        with open(os.path.join(self.hosts.log_dir, f"history-{self.name}.json"), "w") as f:
            json.dump(self.ops, f, indent=0)  # for a post-mortem
        report = history.check(self.ops, window)
        print(f"\n{self.name}: {report.summary()}")
        failed = [op for op in self.ops if op["status"] != "ok" and op["client"].startswith(
            self.workload(CLIENT))]
        assert not failed, f"the client host met errors: {failed[:5]}"  # it rides through
        assert report.ok, "\n".join(report.problems[:20])
        assert report.lost_writes == 0
        return report


def _other(name):
    return "shadow" if name == "master" else "master"


def _worker_host(hosts, worker_id):
    st = hosts.status(hosts.leader())
    return next(hosts.name_of(w["host"]) for w in st["workers"] if w["worker_id"] == worker_id)


def _busiest_worker(hosts):
    """(host name, worker id) of the worker holding the most chunks."""
    st = hosts.status(hosts.leader())
    busiest = max(st["workers"], key=lambda w: w["chunks"])
    assert busiest["chunks"] > 0, st["workers"]
    return hosts.name_of(busiest["host"]), busiest["worker_id"]


def test_the_leader_cut_off_loses_its_lease_before_the_shadow_takes_over(healthy):
    hosts = healthy
    old = hosts.leader()
    new = _other(old)
    run = Scenario(hosts, "leader", **{CLIENT: DATA, ISLAND: META})
    run.progress(CLIENT)
    run.progress(ISLAND)
    cut = time.time()
    hosts.net.partition([old, ISLAND])  # the island host still reaches the old leader only
    wait_for(lambda: hosts.role(new) == "leader", DEADLINE, f"{new} to lead")
    took_over = time.time() - cut
    # the old leader, alone with the island, finds it has no majority and stops
    wait_for(lambda: hosts.role(old, via=hosts.clients[ISLAND]) == "standby", DEADLINE,
             f"{old} to step down on its own")
    stepped_down = time.time() - cut
    run.progress(CLIENT)  # the majority side goes on with the new leader
    healed = time.time()
    hosts.net.heal()
    run.progress(ISLAND)  # and the island, healed, with it
    st = hosts.wait_healthy()
    assert hosts.leader() == new and st["standby"] == "in sync"
    report = run.finish((cut, healed))
    acks = [op for op in run.ops if op["status"] == "ok" and op["epoch"] is not None]
    by_old = [op for op in acks if op["server"] == hosts.server(old) and op["end"] < healed]
    by_new = [op for op in acks if op["server"] == hosts.server(new) and op["start"] > cut]
    assert by_old and by_new, "no acknowledgement from both leaders: nothing was tested"
    assert max(op["epoch"] for op in by_old) < min(op["epoch"] for op in by_new)
    margin = min(op["start"] for op in by_new) - max(op["end"] for op in by_old)
    print(f"leader cut off: {new} led {took_over:.1f}s after the cut, {old} stepped down after "
          f"{stepped_down:.1f}s; the old leader's last answer came {margin:.1f}s before the "
          f"new one's first; pause {report.pause:.1f}s; {report.acked_writes} acknowledged "
          f"writes, {report.lost_writes} lost")


def test_a_standby_cut_off_is_marked_stale_and_catches_up(healthy):
    hosts = healthy
    leader = hosts.leader()
    standby = _other(leader)
    run = Scenario(hosts, "standby", **{CLIENT: DATA})
    run.progress(CLIENT)
    cut = time.time()
    hosts.net.cut(standby)
    wait_for(lambda: hosts.status(leader)["standby"].startswith("stale from entry"), DEADLINE,
             f"{leader} to mark {standby} stale")
    run.progress(CLIENT)  # the leader goes on alone
    assert hosts.leader() == leader
    healed = time.time()
    hosts.net.heal()
    hosts.wait_healthy()  # in sync again
    run.progress(CLIENT)
    run.stop()
    # caught up, the standby may be elected again: cut the leader, and the standby, now
    # leading, must hold every write acknowledged while it was away
    hosts.net.cut(leader)
    wait_for(lambda: hosts.role(standby) == "leader", DEADLINE, f"{standby} to lead")
    report = run.finish((cut, healed))
    hosts.net.heal()
    print(f"standby cut off: pause {report.pause:.1f}s; {report.acked_writes} acknowledged "
          f"writes, {report.lost_writes} lost; all of them read from it after it took over")


def _disk_copies(hosts, chunk_ids):
    """{chunk id: number of chunk files for it on every worker's disk}."""
    found = dict.fromkeys(chunk_ids, 0)
    for name in hosts.worker_names:
        for kind in ("chunks", "backups"):
            folder = os.path.join(hosts.directory(name), kind)
            for entry in os.listdir(folder) if os.path.isdir(folder) else ():
                if entry.isdigit() and int(entry) in found:
                    found[int(entry)] += 1
    return found


def test_a_worker_cut_off_is_replaced_and_its_extra_copies_dropped_on_return(healthy):
    hosts = healthy
    run = Scenario(hosts, "worker", **{CLIENT: DATA})
    run.progress(CLIENT, 40)
    victim, victim_id = _busiest_worker(hosts)
    leader = hosts.leader()
    cut = time.time()
    hosts.net.cut(victim)

    def replaced():
        st = hosts.status(leader)
        gone = any(w["worker_id"] == victim_id and not w["alive"] for w in st["workers"])
        return gone and st["under_replicated"] == 0
    wait_for(replaced, DEADLINE, f"{victim}'s chunks copied elsewhere")
    run.progress(CLIENT)
    healed = time.time()
    hosts.net.heal()
    hosts.wait_healthy()
    run.stop()
    paths = run.keys(CLIENT)
    client = hosts.clients[CLIENT]
    layouts = client.call("layout", auth=client.auth_file, paths=paths)
    chunk_ids = [chunk_id for chunks in layouts.values() for chunk_id, _where in chunks]

    def trimmed():
        copies = _disk_copies(hosts, chunk_ids)
        return all(n == 2 for n in copies.values()) and copies
    wait_for(trimmed, DEADLINE, "two copies of every chunk on disk again")
    report = run.finish((cut, healed))
    print(f"worker cut off: pause {report.pause:.1f}s; {report.acked_writes} acknowledged "
          f"writes, {report.lost_writes} lost")


def test_a_client_cut_off_from_one_worker_reads_the_other_copy(healthy):
    hosts = healthy
    client = hosts.clients[CLIENT]
    run = Scenario(hosts, "reader", **{CLIENT: DATA})
    run.progress(CLIENT, 40)
    run.stop()
    layouts = client.call("layout", auth=client.auth_file, paths=run.keys(CLIENT))
    holders = [worker_id for chunks in layouts.values() for _id, where in chunks
               for worker_id in where]
    victim_id = max(set(holders), key=holders.count)
    victim = _worker_host(hosts, victim_id)
    on_victim = [path for path, chunks in layouts.items()
                 if any(victim_id in where for _id, where in chunks)]
    cut = time.time()
    hosts.net.separate(CLIENT, victim)
    reads = run.read(CLIENT, on_victim)  # every one of them from its other copy
    assert all(op["status"] == "ok" and op["value"] for op in reads), reads
    # and writes go on: a copy meant for that worker is placed on another one
    writes = Scenario(hosts, "separated", **{CLIENT: DATA})
    writes.progress(CLIENT)
    healed = time.time()
    hosts.net.heal()
    report = run.finish((cut, healed))
    print(f"client cut off from {victim}: {len(on_victim)} files read from their other copy; "
          f"pause {report.pause:.1f}s")
    report = writes.finish((cut, healed))
    print(f"client cut off from {victim}, writing: pause {report.pause:.1f}s; "
          f"{report.acked_writes} acknowledged writes, {report.lost_writes} lost")

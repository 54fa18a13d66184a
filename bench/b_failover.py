"""Failover: the pause a client sees when the leader dies, and what the standby costs.

- Pause: a client puts small files in a loop; the leader is killed with SIGKILL
  (``KILLS`` times, then restarted and re-synced each time, so the roles alternate).
  The pause is the longest gap between two acknowledged puts around the kill. Also
  counted: acknowledged files that are not intact afterwards (must be 0).
- Synchronous replication: ``OPS`` mkdir per second with master + shadow (every entry
  fsynced on both before the answer) and with a lone master (``--no-shadow``).
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from typing import TYPE_CHECKING

from bench import common
from bench.common import Row, Table
from dfs.local.cluster import wait_for

if TYPE_CHECKING:
    from dfs.client import DfsClient
    from dfs.local.cluster import LocalCluster
    from dfs.wire import ClusterStatus

KILLS = 10
OPS = 500
PAYLOAD = b"x" * 4096


class Stream:
    """Puts files in a loop; records when each acknowledged put returned."""

    def __init__(self, client: DfsClient) -> None:
        self.client = client
        self.acked: list[tuple[float, str]] = []  # (monotonic time, path)
        self.failures: list[Exception] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            path = f"/home/{self.client.user}/f{i}"  # the root is the admin's
            try:
                self.client.put_bytes(path, PAYLOAD + str(i).encode())
                self.acked.append((time.monotonic(), path))
            except Exception as exc:  # counted, reported in the table
                self.failures.append(exc)
            i += 1

    def gap_around(self, moment: float) -> float:
        """Longest gap between two acknowledgements from the kill to 10 s after it."""
        times = [t for t, _path in self.acked]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)
                if b >= moment and a <= moment + 10]
        return max(gaps or [float("nan")])


def _status(cluster: LocalCluster) -> ClusterStatus:
    with cluster.admin_client(failover_deadline=30) as admin:
        return admin.status()


def pauses(workdir: str) -> Table:
    with common.cluster(workdir, client_options={"failover_deadline": 60}) as (cluster, client):
        stream = Stream(client)
        stream.thread.start()
        measured: list[float] = []
        try:
            wait_for(lambda: len(stream.acked) > 20, 30, "puts to start")
            for _ in range(KILLS):
                leader = wait_for(cluster.leader, 30, "a leader")
                moment = time.monotonic()
                leader.stop(signal.SIGKILL)

                def resumed(wanted: int = len(stream.acked) + 5) -> bool:
                    return len(stream.acked) > wanted
                wait_for(resumed, 60, "puts after the kill")
                measured.append(stream.gap_around(moment))
                leader.start(cluster.env, False)
                leader.wait_ready()
                wait_for(lambda: _status(cluster).standby == "in sync", 60, "re-sync")
        finally:
            stream.stop.set()
            stream.thread.join()
        lost = sum(1 for _t, path in stream.acked
                   if not client.read_bytes(path).startswith(PAYLOAD))
        rows: list[Row] = [
            ("pause seen by a client, median", round(statistics.median(measured), 2), "s"),
            ("pause seen by a client, max", round(max(measured), 2), "s"),
            ("acknowledged puts", len(stream.acked), "files"),
            ("acknowledged puts lost or damaged", lost, "files"),
            ("puts that failed with an error", len(stream.failures), "files")]
        return ("Failover: %d x kill -9 of the leader under a put load (target: pause < 5 s, "
                "nothing lost)" % KILLS, ("measure", "value", "unit"), rows)


def replication_cost(workdir: str) -> Table:
    rates: dict[str, float] = {}
    for label, shadow in (("master + shadow", True), ("master alone", False)):
        sub = f"{workdir}/{'ha' if shadow else 'solo'}"
        with common.cluster(sub, shadow=shadow) as (_cluster, client):
            client.mkdir(f"/home/{client.user}/d")
            with common.Timer() as timer:
                for i in range(OPS):
                    client.mkdir(f"/home/{client.user}/d/{i}")
            rates[label] = OPS / timer.seconds
    ratio = rates["master + shadow"] / rates["master alone"]
    rows: list[Row] = [(label, round(rate, 1), "mkdir/s") for label, rate in rates.items()]
    rows.append(("cost of the synchronous standby", f"x{ratio:.2f}", "of the lone rate"))
    return ("Synchronous replication: %d mkdir, one client" % OPS, ("setup", "rate", "unit"), rows)


def run(workdir: str) -> list[Table]:
    return [pauses(f"{workdir}/pauses"), replication_cost(f"{workdir}/cost")]

"""The data path with TLS on vs off (issue 9, point 6; dfs/tls.py).

Two fresh LocalClusters one after the other (master + 4 workers, replication 2, defaults),
one with TLS forced on (``ClusterConfig(tls=True)``: every port and connection encrypted,
as on a cluster that listens beyond loopback), one off (the loopback default). Each: put
of a 256 MiB random file (``DfsClient.put``), then get of it with the client's chunk cache
off, so every byte crosses a worker's connection. Best of ``ROUNDS``.
"""

from __future__ import annotations

import os

from bench import common
from bench.common import MIB, Row, Table, compare

SIZE = 256 * MIB
ROUNDS = 2
HEADER = ("operation", "TLS on", "TLS off", "unit", "on/off", "")


def _measure(workdir: str, src: str, tls: bool) -> tuple[float, float]:
    """-> (best put seconds, best get seconds) on a cluster with TLS ``tls``."""
    here = os.path.join(workdir, "on" if tls else "off")
    got = os.path.join(workdir, "got.bin")
    put_best = get_best = float("inf")
    with common.cluster(here, client_options={"cache_dir": ""}, tls=tls) as (_cluster, dfs):
        for _ in range(ROUNDS):
            seconds, _ = common.timed(dfs.put, src, "/tls.bin")
            put_best = min(put_best, seconds)
            seconds, _ = common.timed(dfs.get, "/tls.bin", got)
            get_best = min(get_best, seconds)
            os.unlink(got)
    return put_best, get_best


def run(workdir: str) -> list[Table]:
    src = common.random_file(os.path.join(workdir, "source.bin"), SIZE)
    on = _measure(workdir, src, True)
    off = _measure(workdir, src, False)
    os.unlink(src)
    rows: list[Row] = [
        compare("put 256 MiB (2 copies)", common.mb_per_s(SIZE, on[0]),
                common.mb_per_s(SIZE, off[0]), "MB/s"),
        compare("get 256 MiB (client cache off)", common.mb_per_s(SIZE, on[1]),
                common.mb_per_s(SIZE, off[1]), "MB/s"),
    ]
    return [(f"TLS on vs off (best of {ROUNDS}; on: every connection encrypted, the "
             "server checked against the cluster CA)", HEADER, rows)]

"""Benchmarks (not tests): `make bench`, or `python -m bench [MODULE ...]`.

Each workload is a module ``bench/b_NAME.py``; ``python -m bench`` runs them all in sorted
order, ``python -m bench b_data`` (or ``data``) only the ones named; ``--keep`` keeps the
temp work dir (cluster logs) for a post-mortem. Conventions for a
module, so a new one (e.g. ``b_mount.py``) needs no change anywhere else:

- It exposes ``run(workdir) -> list of tables``. ``workdir`` is an empty directory of its
  own under one temp dir in /tmp; the harness removes that temp dir at the end, whatever
  happens, so a module only has to stop what it started (clusters, mounts).
- A table is ``(title, header_tuple, rows)``; each row is a tuple of the same length as
  the header. Cells may be str, int or float; the harness aligns and prints them (numbers
  to the right). Put measurement caveats in the title or in a last row, not on stderr.
- Comparisons against the local disk use ``common.compare(label, dfs, local, unit,
  higher_is_better)`` under ``common.COMPARE_HEADER``: the local figure is measured in the
  same run, on the same disk, with the same durability where possible (fsync when the DFS
  fsyncs), and the ratio is always DFS/local (``x0.50`` throughput = half as fast).
- ``common.cluster(workdir)`` is a context manager giving ``(cluster, client)`` on a fresh
  LocalCluster (master + 4 workers, free ports, default 4 MiB chunks) and stopping both;
  ``common.start_cluster`` is the same without the ``with`` (call ``common.stop`` after).
- Cold reads: ``common.drop_caches()`` (root only; returns False otherwise, and a table
  should then say the figures are warm). Use it before both the DFS and the local read.
- Data: ``common.random_file(path, size)`` / ``common.random_bytes(size)`` (os.urandom in
  64 MiB pieces; numpy is not a dependency). Timing: ``with common.Timer() as t: ...``
  then ``t.seconds``. Keep the whole run under about five minutes on two cores.
- A module that cannot run here (e.g. no FUSE) returns one table saying why, or raises
  ``common.Skip("reason")``; any other exception is printed and makes the exit code 1,
  and the other modules still run.
"""

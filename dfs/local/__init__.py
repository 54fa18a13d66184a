"""A local cluster: master + shadow + N workers as subprocesses under one data directory
(LocalCluster in cluster; the node processes in processes; cluster.json in detached)."""

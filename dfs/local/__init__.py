"""A local cluster: master + shadow + N workers as subprocesses under one data directory."""

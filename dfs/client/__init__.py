"""DfsClient: the one API used by the CLI, the mount, the backup watcher and the tests."""

from dfs.client.client import DfsClient, register

__all__ = ["DfsClient", "register"]

"""Where DFS keeps things on this machine by default (platformdirs: right on every OS)."""

from __future__ import annotations

import os

import platformdirs

APP = "dfs"
HOMES = "/home"  # in the cluster: every user's home folder is HOMES/NAME (0700, theirs)


def home_of(user: str) -> str:
    """A user's home folder in the cluster, where relative CLI paths resolve."""
    return f"{HOMES}/{user}"


def default_auth_file() -> str:
    """$DFS_AUTH, else auth.txt in the user's config dir."""
    return os.environ.get("DFS_AUTH") or os.path.join(platformdirs.user_config_dir(APP), "auth.txt")


def default_data_dir() -> str:
    """Where `dfs up` keeps the local cluster: $DFS_DATA, else the user's data dir."""
    return os.environ.get("DFS_DATA") or platformdirs.user_data_dir(APP)


def default_cache_dir(user: str) -> str:
    return os.path.join(platformdirs.user_cache_dir(APP), "chunks-" + user)


def default_mount_dir() -> str:
    return os.environ.get("DFS_MOUNT") or os.path.join(os.path.expanduser("~"), "dfs")

"""t3: `dfs up` points the default auth file (~/.config/dfs/auth.txt; here the XDG dirs are
under the test's temp dir) at the cluster it just started, whatever its data dir, so a
plain `dfs ls` talks to it; a second `dfs up` of the same data dir changes nothing; an auth
file that `dfs up` did not write (a remote cluster's) is kept as a backup, and `dfs up`
says so. Everything through the real `dfs` command."""

import os

import pytest
from helpers import run_dfs

from dfs import auth


@pytest.fixture
def env(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("DFS_AUTH", None)
    env.pop("DFS_DATA", None)
    return env


@pytest.fixture
def clusters(tmp_path, env):
    """Data dirs of small local clusters, each stopped with `dfs down` at the end."""
    started = []

    def up(name):
        data = str(tmp_path / name)
        if data not in started:
            started.append(data)
        return run_dfs("up", "--data", data, "--base-port", "0", "--workers", "2",
                       "--no-shadow", "--no-mount", env=env).stdout
    yield up
    for data in started:
        run_dfs("down", "--data", data, env=env, check=False)


def ls(env):
    """The root's names, but the folder of homes every cluster has."""
    return [n for n in run_dfs("ls", "/", env=env).stdout.split() if n != "home/"]


def test_dfs_up_points_the_default_auth_at_the_cluster_it_started(tmp_path, env, clusters):
    default = tmp_path / "config" / "dfs" / "auth.txt"
    out = clusters("one")
    assert f"{default} now points at this cluster" in out, out
    run_dfs("put", __file__, "/in-one", env=env)
    assert ls(env) == ["in-one"]

    out = clusters("two")  # another data dir: `dfs ls` must follow, not fail on old keys
    assert f"it pointed at the local cluster in {tmp_path / 'one'}" in out, out
    assert ls(env) == []
    run_dfs("put", __file__, "/in-two", env=env)

    out = clusters("two")  # the same data dir again (running): nothing changes
    assert "already running" in out and f"dfs commands use them ({default})" in out, out
    assert ls(env) == ["in-two"]

    out = clusters("one")
    assert f"it pointed at the local cluster in {tmp_path / 'two'}" in out, out
    assert ls(env) == ["in-one"]


def test_a_remote_clusters_auth_file_is_kept_and_said_so(tmp_path, env, clusters):
    default = tmp_path / "config" / "dfs" / "auth.txt"
    auth.write_auth_file(str(default), [("dfs.example.org", 18861)], "bob", "k" * 43)
    remote = default.read_bytes()
    out = clusters("one")
    backup = f"{default}.bak"
    assert f"kept as {backup}" in out, out
    with open(backup, "rb") as f:
        assert f.read() == remote  # byte for byte: `dfs --auth` it, or copy it back
    assert oct(os.stat(backup).st_mode & 0o777) == "0o600"
    assert ls(env) == []  # the new cluster answers
    clusters("one")  # again: no second backup of the same credentials
    assert sorted(p.name for p in default.parent.iterdir()) == ["auth.txt", "auth.txt.bak"]


def test_with_dfs_auth_set_the_users_file_is_left_alone(tmp_path, env, clusters):
    chosen = tmp_path / "mine.txt"
    auth.write_auth_file(str(chosen), [("dfs.example.org", 18861)], "bob", "k" * 43)
    before = chosen.read_bytes()
    env["DFS_AUTH"] = str(chosen)
    out = clusters("one")
    assert f"pass --auth {tmp_path / 'one' / 'auth.txt'}" in out, out
    assert chosen.read_bytes() == before

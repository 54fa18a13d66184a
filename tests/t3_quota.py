"""Per-user quotas on a real cluster (issue 9, point 10): an admin sets them with
`dfs users quota`, `dfs users list` and `dfs status` show them, a write past them is
refused with one clear line (EDQUOT) and changes nothing, uploads in flight count, and a
user cannot lift their own."""

import itertools
import os

import pytest
from conftest import TEST_CHUNK, random_bytes
from helpers import cluster_tree, run_dfs

from dfs import errors, rpc

USER_NUMBERS = itertools.count(1)


@pytest.fixture
def admin_env(shared_cluster):
    return dict(os.environ, DFS_AUTH=shared_cluster.admin_auth_file)


@pytest.fixture
def quota_user(shared_cluster, tmp_path):
    """A fresh user (a new name per test) and the environment their `dfs` runs with."""
    name = f"quota{next(USER_NUMBERS)}"
    path = shared_cluster.register(name)  # where shared_cluster.client(name) finds it
    return name, dict(os.environ, DFS_AUTH=path, XDG_CACHE_HOME=str(tmp_path / "cache"))


def test_a_put_past_the_byte_quota_is_refused_and_changes_nothing(shared_cluster, admin_env,
                                                                  quota_user, tmp_path):
    name, env = quota_user
    run_dfs("users", "quota", name, "--bytes", "3M", "--inodes", "none", env=admin_env)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(random_bytes(TEST_CHUNK + 5, seed=1))
    big.write_bytes(random_bytes(2 * TEST_CHUNK, seed=2))
    run_dfs("put", small, f"/{name}-small", env=env)
    with shared_cluster.admin_client() as admin:
        before = cluster_tree(admin)
    refused = run_dfs("put", big, f"/{name}-big", env=env, check=False)
    assert refused.returncode == 1
    assert "quota of 3145728 bytes" in refused.stderr and "Traceback" not in refused.stderr
    with shared_cluster.admin_client() as admin:
        assert cluster_tree(admin) == before
        mine = next(u for u in admin.users_list() if u.name == name)
    # what the refused upload reserved was given back: only the small file is held
    assert (mine.bytes, mine.inodes, mine.pending_bytes) == (TEST_CHUNK + 5, 2, 0)  # + home
    listing = run_dfs("users", "list", env=admin_env).stdout
    assert any(line.split()[0] == name and "(3.0M)" in line for line in listing.splitlines())
    assert "(quota)" in run_dfs("status", env=env).stdout


def test_the_inode_quota_and_its_errno(shared_cluster, admin_env, quota_user):
    name, env = quota_user
    run_dfs("users", "quota", name, "--inodes", "3", env=admin_env)  # their home is one
    run_dfs("mkdir", f"/{name}-d", env=env)
    run_dfs("mkdir", f"/{name}-d/e", env=env)
    refused = run_dfs("mkdir", f"/{name}-d/f", env=env, check=False)
    assert refused.returncode == 1 and "quota of 3 files" in refused.stderr
    with shared_cluster.client(name) as client:
        with pytest.raises(errors.QuotaExceeded) as info:
            client.mkdir(f"/{name}-d/g")
        assert info.value.errno == errors.QuotaExceeded.errno  # EDQUOT in the mount
        client.rmdir(f"/{name}-d/e")
        client.mkdir(f"/{name}-d/g")
    run_dfs("users", "quota", name, "--inodes", "none", env=admin_env)
    run_dfs("mkdir", f"/{name}-d/h", env=env)


def test_allocations_in_flight_count_until_abandoned(shared_cluster, admin_env, quota_user):
    name, _env = quota_user
    run_dfs("users", "quota", name, "--bytes", str(2 * TEST_CHUNK), env=admin_env)
    with shared_cluster.client(name) as client:
        client.put_bytes(f"/{name}-f", b"")
        first = client._call("allocate", f"/{name}-f", 2)  # raw: reserve and never upload
        with pytest.raises(errors.QuotaExceeded, match="in flight"):
            client._call("allocate", f"/{name}-f", 1)
        assert client.usage().pending_bytes == 2 * TEST_CHUNK
        client._call("abandon", tuple(target[0] for target in first))
        assert client.usage().pending_bytes == 0
        client.put_bytes(f"/{name}-f", b"x" * 10)


def test_users_cannot_set_quotas_and_bad_limits_are_refused(shared_cluster, admin_env,
                                                             quota_user):
    name, env = quota_user
    with shared_cluster.client(name) as client:
        with pytest.raises(errors.NotPermitted):
            client.users_quota(name, None, None)
        with pytest.raises(errors.NotPermitted):
            client.users_list()
    for bad in (("--bytes", "lots"), ("--inodes", "-3"), ("--bytes", "1e30")):
        result = run_dfs("users", "quota", name, *bad, env=admin_env, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    with shared_cluster.admin_client() as admin:
        mine = next(u for u in admin.users_list() if u.name == name)
        assert (mine.quota_bytes, mine.quota_inodes) == (None, None)
        conn = rpc.connect("127.0.0.1", shared_cluster.leader().port)
        try:
            rpc.login(conn, "login", *_admin_credentials(shared_cluster))
            for args in ((name, True, None), (name, 1.5, None), (name, None, "7"),
                         ("nobody-here", 1, 1), (name, -1, None)):
                with pytest.raises((errors.InvalidArgument, errors.FileNotFound)):
                    rpc.call(conn, "users_quota", *args)
        finally:
            conn.close()


def _admin_credentials(cluster):
    from dfs import auth
    _masters, user, key = auth.read_auth_file(cluster.admin_auth_file)
    return user, key

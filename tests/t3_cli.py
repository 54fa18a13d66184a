"""The `dfs` command as a user types it: real processes, one-line errors, exit codes."""

import os
import subprocess

import pytest
from conftest import random_bytes
from helpers import run_dfs


def run(args, env, stdin=subprocess.DEVNULL, check=True):
    return run_dfs(*args, env=env, stdin=stdin, check=check, timeout=120)


@pytest.fixture
def env(shared_cluster, tmp_path):
    """A user 'cli' registered through `dfs register`, as a new user would."""
    environment = dict(os.environ, DFS_AUTH=str(tmp_path / "auth.txt"),
                       XDG_CACHE_HOME=str(tmp_path / "cache"))
    master = "127.0.0.1:%d" % shared_cluster.master.port
    if not os.path.exists(shared_cluster.data_dir + "/cli-registered"):
        run(["register", "cli", "--master", master], environment)
        os.rename(tmp_path / "auth.txt", shared_cluster.data_dir + "/cli-registered")
    environment["DFS_AUTH"] = shared_cluster.data_dir + "/cli-registered"
    return environment


def test_register_writes_a_private_auth_file(shared_cluster, tmp_path):
    environment = dict(os.environ, DFS_AUTH=str(tmp_path / "a.txt"))
    master = "127.0.0.1:%d" % shared_cluster.master.port
    result = run(["register", "newcomer", "--master", master], environment)
    assert "registered newcomer" in result.stdout
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o600
    again = run(["register", "newcomer", "--master", master], environment, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_put_ls_get_cat_mv_stat_rm(env, tmp_path):
    data = random_bytes(3 * 1024 * 1024 + 17, seed=1)
    (tmp_path / "photo.jpg").write_bytes(data)
    run(["mkdir", "-p", "/cli/pics"], env)
    run(["put", str(tmp_path / "photo.jpg"), "/cli/pics/"], env)
    listing = run(["ls", "-l", "/cli/pics"], env).stdout
    assert "photo.jpg" in listing and str(len(data)) in listing and "cli" in listing
    run(["get", "/cli/pics/photo.jpg", str(tmp_path / "copy.jpg")], env)
    assert (tmp_path / "copy.jpg").read_bytes() == data
    run(["mv", "/cli/pics/photo.jpg", "/cli/moved.jpg"], env)
    cat = run_dfs("cat", "/cli/moved.jpg", env=env, text=False, timeout=60)
    assert cat.stdout == data
    assert "regular file" in run(["stat", "/cli/moved.jpg"], env).stdout
    refused = run(["rm", "/cli"], env, check=False)
    assert refused.returncode == 1 and "use rm -r" in refused.stderr
    run(["rm", "-r", "/cli"], env)
    assert "cli" not in run(["ls", "/"], env).stdout.split()


def test_get_asks_before_overwriting(env, tmp_path):
    (tmp_path / "src").write_bytes(b"new content")
    run(["put", str(tmp_path / "src"), "/ow"], env)
    target = tmp_path / "existing"
    target.write_bytes(b"precious")
    refused = run(["get", "/ow", str(target)], env, check=False)  # no terminal, no -f
    assert refused.returncode == 1 and "-f" in refused.stderr
    assert target.read_bytes() == b"precious"
    run(["get", "-f", "/ow", str(target)], env)
    assert target.read_bytes() == b"new content"


@pytest.mark.parametrize("args, message", [
    (["get", "/does-not-exist", "/tmp/x"], "no such file"),
    (["put", "/no/such/local/file", "/x"], "no such local file"),
    (["ls", "/a/../b"], "not allowed"),
    (["mkdir", "/" + "n" * 300], "longer than 255"),
    (["users", "list"], "admin"),
])
def test_user_errors_are_one_line_without_traceback(env, args, message):
    result = run(args, env, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_auth_file_says_what_to_do(tmp_path):
    environment = dict(os.environ, DFS_AUTH=str(tmp_path / "none.txt"))
    result = run(["ls"], environment, check=False)
    assert result.returncode == 1 and "dfs register" in result.stderr


@pytest.mark.log_allows(r"failed login for 'dora'")  # her revoked key, tried on purpose
def test_status_and_users_for_the_admin(shared_cluster):
    environment = dict(os.environ, DFS_AUTH=shared_cluster.admin_auth_file)
    status = run(["status"], environment).stdout
    assert status.count("alive") == 4 and "under-replicated chunks: 0" in status
    run(["users", "add", "dora", "--out", shared_cluster.data_dir + "/dora.txt"], environment)
    assert "dora" in run(["users", "list"], environment).stdout
    run(["users", "revoke", "dora"], environment)
    dora = dict(os.environ, DFS_AUTH=shared_cluster.data_dir + "/dora.txt")
    result = run(["ls"], dora, check=False)
    assert result.returncode == 1 and "wrong key" in result.stderr


@pytest.mark.log_allows(r"is now the leader")  # the cluster it starts elects its master
def test_up_then_put_ls_get_then_down(tmp_path):
    """What the README promises a new user: `dfs up`, then plain commands just work."""
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
                       XDG_CACHE_HOME=str(tmp_path / "cache"),
                       DFS_MOUNT=str(tmp_path / "mnt"))
    environment.pop("DFS_AUTH", None)
    data = str(tmp_path / "cluster")
    up = run(["up", "--data", data, "--base-port", "0"], environment)
    try:
        assert "DFS is up" in up.stdout
        (tmp_path / "hello.txt").write_text("hello, cluster\n")
        run(["put", str(tmp_path / "hello.txt"), "/hello.txt"], environment)
        assert "hello.txt" in run(["ls", "-l"], environment).stdout
        run(["get", "/hello.txt", str(tmp_path / "back.txt")], environment)
        assert (tmp_path / "back.txt").read_text() == "hello, cluster\n"
        again = run(["up", "--data", data, "--base-port", "0"], environment)
        assert "already running" in again.stdout
    finally:
        down = run(["down", "--data", data], environment)
    assert "stopped" in down.stdout
    from dfs.local.cluster import running_pids
    assert running_pids(data) == {}


def test_auth_host_authorizes_a_known_key_or_registers(shared_cluster):
    """The original design's Auth_Host(): one entry point for both."""
    from dfs import auth, rpc
    leader = shared_cluster.leader()
    conn = rpc.connect("127.0.0.1", leader.port)
    try:
        kind, key = rpc.call(conn, "Auth_Host", "hosty")
        assert kind == "registered" and len(key) == 64
        nonce = rpc.call(conn, "hello")[0]
        client_nonce = auth.new_nonce()
        proof = auth.make_proof(key, "hosty", nonce, client_nonce)
        assert rpc.call(conn, "Auth_Host", "hosty", client_nonce, proof) == ("authorized", False)
    finally:
        conn.close()

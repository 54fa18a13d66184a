"""Hostile users on real clusters (issue 9, points 7 and 9): a revoked name cannot be
registered again and its sessions stay dead; a brute force of logins is cut off and barely
logged; the join token need not be on the command line.

Each attack ends with the cluster as it was: every file's bytes and owner, the users, every
node alive."""

import os
import re

import pytest
from conftest import cluster_config, random_bytes, sha256
from helpers import cluster_tree, run_dfs

from dfs import auth, errors, rpc, wire
from dfs.client import register
from dfs.local.cluster import LocalCluster, wait_for

LOGIN_FAILURES = 5
LOGIN_WINDOW = 10.0  # long enough for 50 attempts on a busy machine, short enough to wait out


class ClosedCluster(LocalCluster):
    """A local cluster as a server on a network runs: registration needs the join token,
    and failed logins are limited over a short window."""

    def _master_options(self):
        options = [o for o in super()._master_options() if o != "--open-registration"]
        return [*options, "--login-failures", str(LOGIN_FAILURES),
                "--login-window", str(LOGIN_WINDOW)]


@pytest.fixture(scope="module")
def closed_cluster(tmp_path_factory):
    config = cluster_config(tmp_path_factory.mktemp("closed"), workers=2, shadow=False)
    with ClosedCluster(config) as running:
        yield running


def _state(cluster):
    """What an attack must not change: the tree (stats and sha256), the users, and which
    nodes run."""
    with cluster.admin_client() as admin:
        files = cluster_tree(admin)
        users = admin.users_list()
    alive = [node.alive() for node in [*cluster.metadata_nodes, *cluster.workers]]
    return files, users, alive


def _raw_login(cluster, name, key):
    conn = rpc.connect("127.0.0.1", cluster.leader().port)
    rpc.login(conn, "login", name, key)
    return conn


@pytest.mark.log_allows(r"failed login for 'alice' from 127\.0\.0\.1")  # her revoked key
def test_a_revoked_name_stays_reserved_and_its_sessions_stay_dead(cluster, tmp_path):
    data = random_bytes(300_000, seed=7)
    with cluster.client("alice") as alice:
        alice.put_bytes("/alice-diary", data)
    key = auth.read_auth_file(os.path.join(cluster.data_dir, "auth-alice.txt"))[2]
    session = _raw_login(cluster, "alice", key)  # logged in before the revoke
    try:
        assert wire.stat_from_wire(rpc.call(session, "stat", "/alice-diary")).owner == "alice"
        with cluster.admin_client() as admin:
            admin.users_revoke("alice")
        before = _state(cluster)
        # open registration on loopback, the join token, an admin: none revives the name
        with pytest.raises(errors.NotPermitted, match="alice was revoked"):
            register(cluster.masters, "alice")
        with open(cluster.token_file) as f:
            token = f.read().strip()
        with pytest.raises(errors.NotPermitted, match="alice was revoked"):
            register(cluster.masters, "alice", token)
        with cluster.admin_client() as admin, pytest.raises(errors.NotPermitted):
            admin.users_add("alice", admin=True)
        master = "127.0.0.1:%d" % cluster.master.port
        cli = run_dfs("register", "alice", "--master", master, "--auth", tmp_path / "a.txt",
                      check=False)
        assert cli.returncode == 1 and "alice was revoked" in cli.stderr
        assert not (tmp_path / "a.txt").exists()
        cluster.register("bob")  # someone else joins: the old session still gets nothing
        for method, args in (("stat", ("/alice-diary",)), ("listdir", ("/",)),
                             ("unlink", ("/alice-diary",))):
            with pytest.raises(errors.AuthenticationFailed, match="alice was revoked"):
                rpc.call(session, method, *args)
        with pytest.raises(errors.AuthenticationFailed, match="wrong key"):
            _raw_login(cluster, "alice", key).close()
        files, users, alive = _state(cluster)
        assert (files, alive) == before[0::2] and all(alive)
        _ino, kind, mode, owner, _size, _mtime, _nlink, digest = files["/alice-diary"]
        # her file is still hers: its uid, shown as a number now no user has it (as ls)
        assert (kind, mode, digest) == ("f", 0o600, sha256(data)) and owner.isdigit()
        names = [(u.name, u.admin) for u in users]
        assert names == sorted([*((u.name, u.admin) for u in before[1]), ("bob", False)])
        assert "alice" not in dict(names)
    finally:
        session.close()


def test_the_join_token_comes_from_a_file_or_the_environment(closed_cluster, tmp_path):
    master = "127.0.0.1:%d" % closed_cluster.master.port
    env = dict(os.environ)
    env.pop("DFS_JOIN_TOKEN", None)

    def reg(name, *options, environment=env):
        return run_dfs("register", name, "--master", master, "--auth", tmp_path / f"{name}.txt",
                       *options, env=environment, check=False)

    refused = reg("eve")
    assert refused.returncode == 1 and "join token" in refused.stderr
    missing = reg("eve", "--token-file", tmp_path / "nope")
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    (tmp_path / "empty").write_text("\n")
    empty = reg("eve", "--token-file", tmp_path / "empty")
    assert empty.returncode == 1 and "empty" in empty.stderr
    assert reg("carol", "--token-file", closed_cluster.token_file).returncode == 0
    with open(closed_cluster.token_file) as f:
        token = f.read().strip()
    assert reg("dave", environment=dict(env, DFS_JOIN_TOKEN=token)).returncode == 0
    assert reg("fred", "--token", token).returncode == 0  # still accepted
    both = reg("gina", "--token", token, "--token-file", closed_cluster.token_file)
    assert both.returncode == 2 and "not allowed with" in both.stderr
    for name in ("carol", "dave", "fred"):
        with closed_cluster.admin_client() as admin:
            assert (name, False) in [(u.name, u.admin) for u in admin.users_list()]
        assert run_dfs("ls", "/", env=dict(env, DFS_AUTH=str(tmp_path / f"{name}.txt")),
                       check=False).returncode == 0
    helptext = run_dfs("register", "--help").stdout
    assert helptext.index("--token-file") < helptext.index("--token TOKEN")
    assert "DFS_JOIN_TOKEN" in helptext and "ps" in helptext


@pytest.mark.log_allows(
    r"failed login for 'victim' from 127\.0\.0\.1 \(more from there are counted, not logged\)",
    rf"{LOGIN_FAILURES} failed logins in {LOGIN_WINDOW:g} s \(last: 'victim' from 127\.0\.0\.1\):"
    r" refusing logins from 127\.0\.0\.1 and logins as 'victim' until the window ends")
def test_a_brute_force_of_logins_is_cut_off_and_barely_logged(closed_cluster, tmp_path):
    with open(closed_cluster.token_file) as f:
        token = f.read().strip()
    key = register(closed_cluster.masters, "victim", token)
    with closed_cluster.admin_client() as admin:
        admin.put_bytes("/admin-notes", b"kept")
    before = _state(closed_cluster)
    log_path = closed_cluster.master.log_path
    log_start = os.path.getsize(log_path)
    conn = rpc.connect("127.0.0.1", closed_cluster.master.port)
    answers = []
    try:
        for _ in range(50):
            try:
                rpc.login(conn, "login", "victim", auth.new_key())
            except errors.AuthenticationFailed as refused:
                answers.append(str(refused).splitlines()[0])  # rpyc adds a traceback line
        locked_out = re.compile(r"too many failed logins; try again in \d+ s")
        assert answers[:LOGIN_FAILURES] == ["unknown user or wrong key"] * LOGIN_FAILURES
        assert len(answers) == 50 and all(locked_out.fullmatch(a) for a in answers[5:])
        with pytest.raises(errors.AuthenticationFailed, match="too many"):
            rpc.login(conn, "login", "victim", key)  # the right key is not even looked at
    finally:
        conn.close()
    with open(log_path, errors="replace") as f:
        f.seek(log_start)
        lines = [line for line in f if "login" in line]
    assert len(lines) == 2, lines

    def logged_in():
        try:
            _raw_login(closed_cluster, "victim", key).close()
            return True
        except errors.AuthenticationFailed:
            return None
    wait_for(logged_in, LOGIN_WINDOW + 20, "the window to end")
    assert _state(closed_cluster) == before


@pytest.mark.log_allows(
    r"failed login for '\(join token from 127\.0\.0\.1\)' from 127\.0\.0\.1",
    r"refusing logins from 127\.0\.0\.1 and logins as '\(join token from 127\.0\.0\.1\)'")
def test_guesses_at_the_join_token_are_cut_off_and_barely_logged(closed_cluster):
    """As a worker logging in, and as a newcomer registering: each wrong token counts as a
    failed login of this host; the real workers, logged in already, are not disturbed."""
    with open(closed_cluster.token_file) as f:
        token = f.read().strip()
    before = _state(closed_cluster)
    log_path = closed_cluster.master.log_path
    log_start = os.path.getsize(log_path)
    answers = []
    conn = rpc.connect("127.0.0.1", closed_cluster.master.port)
    try:
        for attempt in range(20):
            try:
                if attempt % 2:
                    rpc.login(conn, "worker_login", "w-intruder", auth.new_key())
                else:
                    rpc.call(conn, "register", f"mallory{attempt}", auth.new_key())
            except errors.AuthenticationFailed as refused:
                answers.append(str(refused).splitlines()[0])
        assert answers[:LOGIN_FAILURES] == ["wrong join token"] * LOGIN_FAILURES
        assert len(answers) == 20
        assert all(a.startswith("too many failed logins") for a in answers[LOGIN_FAILURES:])
        with pytest.raises(errors.AuthenticationFailed, match="too many"):
            rpc.call(conn, "register", "honest", token)  # locked: not even looked at
    finally:
        conn.close()
    with open(log_path, errors="replace") as f:
        f.seek(log_start)
        lines = [line for line in f if "login" in line or "token" in line]
    assert len(lines) == 2, lines

    def registered():
        try:
            return register(closed_cluster.masters, "honest", token)
        except errors.AuthenticationFailed:
            return None
    wait_for(registered, LOGIN_WINDOW + 20, "the window to end")
    files, users, alive = _state(closed_cluster)
    assert (files, alive) == (before[0], before[2]) and all(alive)
    assert [u.name for u in users] == sorted([*(u.name for u in before[1]), "honest"])

"""Running nodes as an operator does, through the `dfs` command: a second `dfs up` starts
only the nodes that stopped, and a port that is taken is one line naming it."""

import json
import os
import re
import signal
import socket

import pytest
from helpers import run_dfs

from dfs.local.cluster import pid_alive, running_pids, wait_for

# the clusters here elect their master; the killed worker is declared dead
pytestmark = pytest.mark.log_allows(r"is now the leader", r"silent for [\d.]+s: dead",
                                    r"steps down to standby", r"lost its majority of voters",
                                    r"standby unreachable .*: marking it stale")


def user_env(tmp_path):
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
                       XDG_CACHE_HOME=str(tmp_path / "cache"))
    environment.pop("DFS_AUTH", None)
    return environment


def pids(data):
    with open(os.path.join(data, "cluster.json")) as f:
        return json.load(f)["pids"]


def test_up_again_starts_only_the_missing_worker(tmp_path):
    environment = user_env(tmp_path)
    data = str(tmp_path / "cluster")
    run_dfs("up", "--data", data, "--base-port", "0", "--no-mount", env=environment)
    try:
        before = pids(data)
        assert set(before) == {"master", "shadow", "worker-1", "worker-2", "worker-3",
                               "worker-4"}
        os.kill(before["worker-2"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(before["worker-2"]), 10, "worker-2 to die")
        again = run_dfs("up", "--data", data, "--base-port", "0", "--no-mount",
                        env=environment)
        assert "worker-2 stopped: starting it again; the other nodes keep running" \
            in again.stdout
        assert "DFS is up" in again.stdout
        after = pids(data)
        assert {n: p for n, p in after.items() if n != "worker-2"} == \
            {n: p for n, p in before.items() if n != "worker-2"}
        assert after["worker-2"] != before["worker-2"] and pid_alive(after["worker-2"])
        assert set(running_pids(data)) == set(before)
        (tmp_path / "f").write_bytes(b"after the restart")
        run_dfs("put", tmp_path / "f", "/f", env=environment)
        assert run_dfs("cat", "/f", env=environment).stdout == "after the restart"

        os.kill(after["master"], signal.SIGKILL)  # the master too: the shadow leads meanwhile
        wait_for(lambda: not pid_alive(after["master"]), 10, "the master to die")
        again = run_dfs("up", "--data", data, "--base-port", "0", "--no-mount",
                        env=environment)
        assert "master stopped: starting it again" in again.stdout
        last = pids(data)
        assert {n: p for n, p in last.items() if n != "master"} == \
            {n: p for n, p in after.items() if n != "master"}
        assert last["master"] != after["master"] and pid_alive(last["master"])
        assert run_dfs("cat", "/f", env=environment).stdout == "after the restart"
    finally:
        run_dfs("down", "--data", data, env=environment)
    assert running_pids(data) == {}


@pytest.fixture
def taken_port():
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO) ")


def one_line(done):
    """The one line a failed command printed (a node's own INFO log lines aside)."""
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("dfs: "), done.stderr
    return lines[0]


def test_a_taken_port_is_one_line_for_master_worker_and_up(tmp_path, taken_port):
    token = tmp_path / "token"
    token.write_text("ab" * 32 + "\n")
    master = run_dfs("master", "--data", tmp_path / "m", "--port", taken_port, check=False)
    line = one_line(master)
    assert f"port {taken_port} on 127.0.0.1 is already in use" in line and "--port" in line
    worker = run_dfs("worker", "--data", tmp_path / "w", "--port", taken_port, "--master",
                     "127.0.0.1:1", "--token-file", token, check=False)
    line = one_line(worker)
    assert f"port {taken_port} on 127.0.0.1 is already in use" in line

    environment = user_env(tmp_path)
    data = str(tmp_path / "cluster")
    up = run_dfs("up", "--data", data, "--base-port", taken_port, "--no-mount",
                 env=environment, check=False)
    line = one_line(up)
    assert line.startswith("dfs: master: ") and f"port {taken_port}" in line
    assert "--base-port N" in line
    assert running_pids(data) == {}  # nothing left running

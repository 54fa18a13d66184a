"""Real processes: a local cluster with TLS forced on (issue 9, point 6; dfs/tls.py).

Honest use works as without TLS; a peer that does not speak TLS gets nothing from any port;
a client pinning another CA is refused with a clear error; chunk bytes between a client and
a worker are not readable on the wire (a relay in between records them).
"""

import os
import socket
import threading

import pytest
from conftest import cluster_config
from helpers import run_dfs, sha256

from dfs import auth, errors, rpc, tls
from dfs.config import MIB
from dfs.local.cluster import LocalCluster


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    config = cluster_config(tmp_path_factory.mktemp("tls"), workers=3, tls=True)
    with LocalCluster(config) as running:
        yield running


def _ports(cluster):
    return [node.port for node in (*cluster.metadata_nodes, *cluster.workers)]


def _alive(cluster):
    return all(node.alive() for node in (*cluster.metadata_nodes, *cluster.workers))


class Relay:
    """A TCP relay to ``port`` that keeps every byte it passes, both ways."""

    def __init__(self, port):
        self.target = port
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(1 << 16):
                with self.lock:
                    self.seen += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def test_put_get_ls_work_over_tls(tls_cluster):
    assert tls_cluster.tls_pin.startswith("sha256:")
    path = tls_cluster.register("alice")
    assert auth.read_auth_pin(path) == tls_cluster.tls_pin
    data = os.urandom(3 * MIB + 17)
    with tls_cluster.client("alice") as client:
        client.put_bytes("/big", data)
        assert sha256(client.read_bytes("/big")) == sha256(data)
        assert "big" in [entry.name for entry in client.listdir("/")]
    for directory in (tls_cluster.master_dir, tls_cluster.worker_dir(0)):
        for name in (tls.NODE_KEY, tls.NODE_CERT):
            assert os.stat(os.path.join(directory, name)).st_mode & 0o077 == 0
    assert not os.path.exists(os.path.join(tls_cluster.worker_dir(0), tls.CA_KEY))


def test_status_says_tls_is_on(tls_cluster):
    env = dict(os.environ, DFS_AUTH=tls_cluster.admin_auth_file)
    assert auth.read_auth_pin(tls_cluster.admin_auth_file) == tls_cluster.tls_pin
    status = run_dfs("status", env=env).stdout
    assert f"TLS: on, cluster CA {tls_cluster.tls_pin}" in status.splitlines()
    assert status.count("alive") == 3


def test_plain_rpyc_is_refused_on_every_port(tls_cluster):
    for port in _ports(tls_cluster):
        with pytest.raises((EOFError, ConnectionError, errors.Unavailable)):
            conn = rpc.connect("127.0.0.1", port, timeout=5, trust=None)
            try:
                rpc.call(conn, "hello")
            finally:
                rpc.hard_close(conn)
    assert _alive(tls_cluster)
    with tls_cluster.client("alice") as client:
        assert client.listdir("/") is not None


def test_a_client_pinning_another_ca_is_refused(tls_cluster):
    wrong = tls.Trust(pin="sha256:" + "0" * 64)
    for port in _ports(tls_cluster):
        with pytest.raises(errors.AuthenticationFailed, match="not the cluster CA pinned"):
            rpc.connect("127.0.0.1", port, trust=wrong)
    # an auth file with the wrong pin: the client says why, it does not hang or fall back
    masters, name, key = auth.read_auth_file(tls_cluster.register("bob"))
    path = os.path.join(tls_cluster.data_dir, "auth-bob-wrong.txt")
    auth.write_auth_file(path, masters, name, key, ca=wrong.pin)
    from dfs.client import DfsClient
    with pytest.raises(errors.AuthenticationFailed, match="pinned in auth.txt"):
        with DfsClient.from_auth_file(path, cache_dir="", failover_deadline=3.0) as client:
            client.listdir("/")
    tls_cluster.trust_cluster()
    assert _alive(tls_cluster)


def _wire(cluster, monkeypatch, data):
    """Put and get ``data`` with every client-worker connection through a Relay: -> what
    the relays saw."""
    relays = {node.port: Relay(node.port) for node in cluster.workers}
    real_connect = rpc.connect

    def through_relay(host, port, *args, **kwargs):
        relay = relays.get(port)
        return real_connect(host, relay.port if relay else port, *args, **kwargs)

    monkeypatch.setattr(rpc, "connect", through_relay)
    try:
        with cluster.client("alice", cache_dir="") as client:
            client.put_bytes("/marked", data)
            assert client.read_bytes("/marked") == data
    finally:
        monkeypatch.undo()
        for relay in relays.values():
            relay.close()
    seen = b"".join(bytes(relay.seen) for relay in relays.values())
    assert len(seen) > 2 * len(data)  # the upload and the download both went through
    return seen


def _marked():
    marker = os.urandom(32).hex().encode()
    return marker, marker * (MIB // len(marker)) + os.urandom(1000)


def test_chunk_bytes_are_not_clear_text_on_the_wire(tls_cluster, monkeypatch):
    marker, data = _marked()
    seen = _wire(tls_cluster, monkeypatch, data)
    assert marker not in seen
    assert marker[:16] not in seen


def test_the_relay_sees_clear_text_without_tls(cluster, monkeypatch):
    """The control: the same capture on a loopback cluster (TLS off) finds the marker."""
    assert cluster.tls_pin == ""
    env = dict(os.environ, DFS_AUTH=cluster.admin_auth_file)
    assert "TLS: off" in run_dfs("status", env=env).stdout.splitlines()
    marker, data = _marked()
    assert marker in _wire(cluster, monkeypatch, data)


def test_restarted_nodes_keep_their_certificates(tls_cluster):
    """A restart reuses the CA and the kept cluster certificate: same pin, data readable."""
    pin = tls_cluster.tls_pin
    with tls_cluster.client("alice") as client:
        client.put_bytes("/kept", b"still here" * 1000)
    tls_cluster.restart(tls_cluster.workers[0])
    tls_cluster.restart_master()
    tls_cluster.wait_workers(len(tls_cluster.workers))
    assert tls_cluster.tls_pin == pin
    with tls_cluster.client("alice") as client:
        assert client.read_bytes("/kept") == b"still here" * 1000
    assert _alive(tls_cluster)


def test_a_new_user_registers_with_the_pinned_ca_and_uses_the_cluster(tls_cluster, tmp_path):
    """`dfs register --ca`, as the README tells a new user of a TLS cluster; without the pin
    the registration cannot talk to a TLS master at all."""
    master = f"127.0.0.1:{tls_cluster.master.port}"
    env = dict(tls_cluster.env, DFS_TLS="")
    new_auth = tmp_path / "newcomer.txt"
    refused = run_dfs("register", "newcomer", "--master", master, "--auth", new_auth,
                      env=env, check=False, timeout=120)
    assert refused.returncode != 0 and not new_auth.exists()
    run_dfs("register", "newcomer", "--master", master, "--auth", new_auth,
            "--ca", tls_cluster.tls_pin, env=env, timeout=120)
    assert auth.read_auth_pin(str(new_auth)) == tls_cluster.tls_pin
    (tmp_path / "hello.txt").write_bytes(b"hello over TLS")
    run_dfs("put", tmp_path / "hello.txt", "/newcomer-hello", "--auth", new_auth, env=env)
    back = run_dfs("cat", "/newcomer-hello", "--auth", new_auth, env=env, text=False)
    assert back.stdout == b"hello over TLS"

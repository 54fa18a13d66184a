"""Real processes: someone who captured a signed call between the nodes plays it again
(issue 9, point 9). Each call here is signed the way a metadata server signs it, with the
cluster's voter secret derived from the join token, and sent twice over raw rpyc: the first
is served, the copy is refused with AuthenticationFailed("replayed call"). Afterwards the
namespace, every file's sha256 and every node's liveness are unchanged, the same leader
leads in the same epoch, and the cluster still reads, writes and checks."""

import pytest
from conftest import TEST_CHUNK, random_bytes, sha256

from dfs import auth, errors, rpc

FILES = {"/replay/big": 2 * TEST_CHUNK + 17, "/replay/small": 999}


def _secret(cluster):
    with open(cluster.token_file, encoding="ascii") as f:  # as nodes/worker/node.py derives it
        return auth.voter_secret(f.read().strip())


def _state(cluster):
    """The tree with every file's sha256, the leader and its epoch, and each node's liveness."""
    with cluster.admin_client() as admin:
        tree = {}
        for path in ("/replay", *FILES):
            st = admin.stat(path)
            digest = sha256(admin.read_bytes(path)) if st.kind == "f" else None
            tree[path] = (st.ino, st.kind, st.mode, st.size, st.mtime_ns, digest)
        names = tuple(sorted(e.name for e in admin.listdir("/replay")))
        status = admin.status()
        workers = tuple((w.worker_id, w.alive) for w in status.workers)
    nodes = tuple(node.process.poll() for node in (*cluster.metadata_nodes, *cluster.workers))
    return tree, names, (status.leader, status.epoch), workers, nodes


@pytest.fixture(scope="module")
def replay_cluster(shared_cluster):
    with shared_cluster.client("alice") as alice:
        alice.mkdir("/replay", 0o755)
        for path, size in FILES.items():
            alice.put_bytes(path, random_bytes(size, seed=size))
    return shared_cluster, _secret(shared_cluster)


def _leader_and_standby(cluster):
    leader = cluster.leader()
    assert leader is not None
    standby = next(n for n in cluster.metadata_nodes if n is not leader)
    return leader, standby


def _twice(conn, remote, *args):
    """Send the very same call twice: -> the first answer; asserts the copy is refused."""
    first = rpc.call(conn, remote, *args)
    with pytest.raises(errors.AuthenticationFailed, match="replayed call"):
        rpc.call(conn, remote, *args)
    return first


def _still_working(cluster, before, probe):
    assert _state(cluster) == before
    with cluster.client("alice") as alice:  # reads, writes and deletes still work
        alice.put_bytes(probe, b"still here")
        assert alice.read_bytes(probe) == b"still here"
        alice.rm(probe)
    with cluster.admin_client() as admin:
        report = admin.fsck()  # signed fsck_scan calls to every worker: all still accepted
    assert report.clean and report.workers == len(cluster.workers)
    assert _state(cluster) == before


def _node_ids(cluster):
    """{port: the id a signed call to that node is made out to}: workers by id, the
    metadata servers by role."""
    with cluster.admin_client() as admin:
        ids = {w.port: w.worker_id for w in admin.status().workers}
    leader, standby = _leader_and_standby(cluster)
    leader_role = _state(cluster)[2][0]  # "master" or "shadow"
    ids[leader.port] = leader_role
    ids[standby.port] = "shadow" if leader_role == "master" else "master"
    return ids


def test_a_replayed_lease_is_refused_by_a_worker_and_by_the_standby(replay_cluster):
    cluster, secret = replay_cluster
    before = _state(cluster)
    leader_id, epoch = before[2]
    _, standby = _leader_and_standby(cluster)
    ids = _node_ids(cluster)
    for port in (cluster.workers[0].port, standby.port):
        args = (epoch, leader_id)  # what the leader sends every renewal
        stamp, mac = auth.sign_voter_call(secret, "lease", args, ids[port])
        conn = rpc.connect("127.0.0.1", port, timeout=10)
        try:
            assert _twice(conn, "voter", "lease", args, stamp, mac) == (True, epoch)
            stamp, mac = auth.sign_voter_call(secret, "lease", args, ids[port])  # anew: served
            assert rpc.call(conn, "voter", "lease", args, stamp, mac) == (True, epoch)
        finally:
            conn.close()
    _still_working(cluster, before, "/after-lease")


def test_a_call_made_out_to_one_node_is_refused_by_every_other(replay_cluster):
    """Captured on its way to one voter, played to another within the window."""
    cluster, secret = replay_cluster
    before = _state(cluster)
    leader_id, epoch = before[2]
    _, standby = _leader_and_standby(cluster)
    ids = _node_ids(cluster)
    first, second = cluster.workers[0].port, cluster.workers[1].port
    for signed_for, sent_to in ((first, second), (standby.port, first), (first, standby.port)):
        args = (epoch, leader_id)
        stamp, mac = auth.sign_voter_call(secret, "lease", args, ids[signed_for])
        conn = rpc.connect("127.0.0.1", sent_to, timeout=10)
        try:
            with pytest.raises(errors.AuthenticationFailed, match="not signed"):
                rpc.call(conn, "voter", "lease", args, stamp, mac)
        finally:
            conn.close()
    stamp, mac = auth.sign_voter_call(secret, "fsck_scan", (), ids[first])
    conn = rpc.connect("127.0.0.1", second, timeout=30)
    try:
        with pytest.raises(errors.AuthenticationFailed, match="not signed"):
            rpc.call(conn, "fsck_scan", stamp, mac)
    finally:
        conn.close()
    _still_working(cluster, before, "/after-crossed")


def test_a_replayed_fsck_scan_is_refused_by_the_worker(replay_cluster):
    cluster, secret = replay_cluster
    before = _state(cluster)
    ids = _node_ids(cluster)
    stamp, mac = auth.sign_voter_call(secret, "fsck_scan", (), ids[cluster.workers[1].port])
    conn = rpc.connect("127.0.0.1", cluster.workers[1].port, timeout=30)
    try:
        scanned = _twice(conn, "fsck_scan", stamp, mac)
    finally:
        conn.close()
    assert scanned and all(ok for _, _, ok in scanned)
    _still_working(cluster, before, "/after-fsck")


def test_replayed_peer_calls_are_refused_by_the_standby(replay_cluster):
    cluster, secret = replay_cluster
    before = _state(cluster)
    epoch = before[2][1]
    _, standby = _leader_and_standby(cluster)
    to = _node_ids(cluster)[standby.port]
    conn = rpc.connect("127.0.0.1", standby.port, timeout=10)
    try:
        stamp, mac = auth.sign_voter_call(secret, "peer_ping", (), to)
        answer, seq = _twice(conn, "peer_ping", stamp, mac)
        assert answer == "ok" and seq > 0
        args = (epoch, ())  # a replication call of the leader's epoch
        stamp, mac = auth.sign_voter_call(secret, "peer_replicate", args, to)
        assert _twice(conn, "peer_replicate", *args, stamp, mac) == ("ok", seq)
    finally:
        conn.close()
    _still_working(cluster, before, "/after-peer")

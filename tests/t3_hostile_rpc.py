"""Real processes: a hostile client with a normal user's key on a raw rpyc connection
(issue 9, points 1, 2, 3 and 5). After each attack the namespace, every file's sha256 and
every node's liveness are unchanged, and the attacker got a clear DfsError."""

import inspect
import os

import pytest
from conftest import TEST_CHUNK, chunk_files, cluster_config, random_bytes
from helpers import cluster_tree
from rpyc.core import consts

from dfs import auth, errors, rpc
from dfs.config import BLOCK_SIZE
from dfs.local.cluster import LocalCluster, wait_for
from nodes.master.placement import VERIFIES_PER_WORKER
from nodes.master.service import MasterService
from nodes.worker.service import WorkerService

C = TEST_CHUNK
PLAIN_ONLY = "plain data"


class Hostile:
    """What an attacker passes by reference: it claims to be a str (so isinstance() says
    yes), answers differently each time, and records every call the server makes on it."""

    def __init__(self):
        self.calls = []

    def _called(self, name, answer):
        self.calls.append(name)
        return answer

    @property
    def __class__(self):
        return str

    def __eq__(self, other):
        return self._called("__eq__", True)

    def __hash__(self):
        return self._called("__hash__", len(self.calls))

    def __str__(self):
        return self._called("__str__", "/")

    def __repr__(self):
        return self._called("__repr__", "'/'")

    def __len__(self):
        return self._called("__len__", 1)

    def __iter__(self):
        return self._called("__iter__", iter(("/",)))

    def __index__(self):
        return self._called("__index__", 1)

    def __bool__(self):
        return self._called("__bool__", True)

    def split(self, *args):
        return self._called("split", ["", f"x{len(self.calls)}"])

    def startswith(self, *args):
        return self._called("startswith", True)

    def encode(self, *args):
        return self._called("encode", b"/")


def _attacker(port, user=None, key=None):
    """A raw connection that lets the server call back into our objects (so a vulnerable
    server would), logged in as ``user`` if given."""
    conn = rpc.connect("127.0.0.1", port, timeout=20)
    conn._config.update(allow_all_attrs=True, allow_public_attrs=True)
    if user is not None:
        rpc.login(conn, "login", user, key)
    return conn


def _key(cluster, user):
    cluster.client(user).close()  # registers it on first use
    return auth.read_auth_file(os.path.join(cluster.data_dir, f"auth-{user}.txt"))[2]


def _positions(service_class):
    """(method, parameter name, position) of every parameter of every exposed method."""
    found = []
    for attr in sorted(dir(service_class)):
        if attr.startswith("exposed_"):
            params = list(inspect.signature(getattr(service_class, attr)).parameters)[1:]
            found.extend((attr.removeprefix("exposed_"), p, i) for i, p in enumerate(params))
    return found


def _snapshot(cluster):
    """{path: (stat without atime, sha256)} of the whole tree, and each node's liveness."""
    with cluster.admin_client() as admin:
        tree = cluster_tree(admin)
        workers = tuple((w.worker_id, w.alive) for w in admin.status().workers)
    return tree, workers, tuple(node.process.poll() for node in _nodes(cluster))


def _nodes(cluster):
    return [*cluster.metadata_nodes, *cluster.workers]


def _files(dfs):
    made = {}
    dfs.mkdir("/alice-vault", 0o700)
    for path, size, mode in (("/alice-vault/open-to-all", 2 * C + 5, 0o666),
                             ("/alice-public", C + 70_000, 0o644),
                             ("/alice-small", 1000, 0o600)):
        data = random_bytes(size, seed=size)
        dfs.put_bytes(path, data, mode=mode)
        made[path] = data
    return made


@pytest.fixture(scope="module")
def hostile_cluster(shared_cluster):
    with shared_cluster.client("alice") as alice:
        files = _files(alice)
    return shared_cluster, files


# --- point 3: client objects never run inside a server -------------------------------------

def _every_position_refused(conn, service_class):
    for method, param, position in _positions(service_class):
        for how in ("positional", "keyword"):
            bait = Hostile()
            args = [None] * position + [bait]
            with pytest.raises(errors.InvalidArgument, match=PLAIN_ONLY):
                kwargs = () if how == "positional" else ((param, bait),)
                conn.sync_request(consts.HANDLE_CALLATTR, conn.root, method,
                                  tuple(args) if how == "positional" else (), kwargs)
            assert bait.calls == [], (method, param, how)
        # the whole argument tuple, or the keyword table, as one client object
        for shape in ("arguments", "keywords"):
            bait = Hostile()
            args, kwargs = (bait, ()) if shape == "arguments" else ((), bait)
            with pytest.raises(errors.InvalidArgument, match=PLAIN_ONLY):
                conn.sync_request(consts.HANDLE_CALLATTR, conn.root, method, args, kwargs)
            assert bait.calls == [], (method, shape)
    assert rpc.call(conn, "get_service_name")  # still answering on the same connection


def test_no_exposed_method_of_a_metadata_server_runs_a_client_object(hostile_cluster):
    cluster, _files = hostile_cluster
    before = _snapshot(cluster)
    key = _key(cluster, "mallory")
    for node in cluster.metadata_nodes:  # the leader (logged in) and the standby
        conn = _attacker(node.port, "mallory" if node is cluster.leader() else None, key)
        try:
            _every_position_refused(conn, MasterService)
            with pytest.raises(errors.InvalidArgument, match=PLAIN_ONLY):
                rpc.call(conn, "stat", conn.root)  # the server's own object, sent back
        finally:
            conn.close()
    assert _snapshot(cluster) == before


def test_no_exposed_method_of_a_worker_runs_a_client_object(hostile_cluster):
    cluster, _files = hostile_cluster
    before = _snapshot(cluster)
    for node in cluster.workers[:2]:
        conn = _attacker(node.port)
        try:
            _every_position_refused(conn, WorkerService)
        finally:
            conn.close()
    assert _snapshot(cluster) == before


# --- point 5: commit by inode number --------------------------------------------------------

def test_commit_by_inode_number_finds_nothing_it_could_not_open(hostile_cluster):
    cluster, files = hostile_cluster
    conn = _attacker(cluster.leader().port, "mallory", _key(cluster, "mallory"))
    before = _snapshot(cluster)
    tree = before[0]
    unreachable = {tree["/alice-vault/open-to-all"][0]}  # writable by all, in a private dir
    with cluster.admin_client() as admin:  # the homes (not in the tree) have numbers too
        homes = [e.stat.ino for e in admin.listdir("/home")]
    highest = max([entry[0] for entry in tree.values()] + homes)
    missing = set(range(highest + 1, highest + 30))
    answers = {}
    try:
        for ino in sorted(unreachable | missing):
            with pytest.raises(errors.DfsError) as caught:
                rpc.call(conn, "commit", ino, (), 0)
            answers[ino] = (type(caught.value).__name__, str(caught.value).split("\n")[0])
        with pytest.raises(errors.PermissionDenied):  # reachable, so no secret: not writable
            rpc.call(conn, "commit", tree["/alice-public"][0], (), 0)
    finally:
        conn.close()
    assert len(set(answers.values())) == 1, answers  # a file that exists looks like none
    assert next(iter(answers.values()))[0] == "FileNotFound"
    assert _snapshot(cluster) == before
    with cluster.client("alice", cache_dir="") as alice:
        assert alice.read_bytes("/alice-vault/open-to-all") == files["/alice-vault/open-to-all"]


def test_a_file_renamed_while_open_is_still_committed_and_others_may_write_what_is_shared(
        hostile_cluster):
    cluster, _files = hostile_cluster
    with cluster.client("alice") as alice, cluster.client("bob") as bob:
        f = alice.open("/alice-moving", "wb")
        f.write(b"first part, ")
        alice.rename("/alice-moving", "/alice-moved")
        f.write(b"written after the rename")
        f.close()
        assert alice.read_bytes("/alice-moved") == b"first part, written after the rename"
        alice.chmod("/alice-moved", 0o666)
        with bob.open("/alice-moved", "r+b") as g:
            g.write(b"FIRST")
        assert alice.read_bytes("/alice-moved") == b"FIRST part, written after the rename"
        alice.rm("/alice-moved")


# --- point 2: reads ending inside a block -------------------------------------------------

def test_raw_reads_ending_inside_a_block_or_the_last_block_verify(hostile_cluster):
    cluster, files = hostile_cluster
    data = files["/alice-public"]
    with cluster.client("alice") as alice:
        layout = alice.layout("/alice-public")
    last = layout.chunks[-1]
    tail = data[C:]  # the last chunk: one full block and a partial one
    assert len(tail) % BLOCK_SIZE
    for replica in last.replicas:
        conn = rpc.connect(replica.host, replica.port)
        try:
            for offset, length in ((0, 1), (100, BLOCK_SIZE), (BLOCK_SIZE - 10, 20),
                                   (len(tail) - 700, 300), (len(tail) - 5, 100),
                                   (BLOCK_SIZE + 3, 7), (0, len(tail))):
                got, size = rpc.call(conn, "read", last.token, last.ref.chunk_id, offset, length)
                assert (got, size) == (tail[offset:offset + length], len(tail)), (offset, length)
        finally:
            conn.close()


# --- point 1: reports of bad copies ---------------------------------------------------------

def _replicas_on_disk(cluster):
    return {(cid, index, kind) for kind in ("chunks", "backups")
            for cid, holders in chunk_files(cluster, kind).items() for index in holders}


def _quarantined(cluster):
    found = []
    for index in range(len(cluster.workers)):
        folder = os.path.join(cluster.worker_dir(index), "quarantine")
        if os.path.isdir(folder):
            found += [(index, name) for name in os.listdir(folder) if not name.endswith(".crc")]
    return found


def _log(node):
    with open(node.log_path, errors="replace") as f:
        return f.read()


def _report_everything(cluster, key, chunk_ids):
    conn = _attacker(cluster.leader().port, "mallory", key)
    try:
        with cluster.admin_client() as admin:
            workers = [w.worker_id for w in admin.status().workers]
        for cid in chunk_ids:
            for wid in workers:
                assert rpc.call(conn, "report_bad", cid, wid) is None
    finally:
        conn.close()


def test_reports_from_a_user_drop_no_copy(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c")) as cluster:
        with cluster.client("alice") as alice:
            files = _files(alice)
        on_disk = _replicas_on_disk(cluster)
        before = _snapshot(cluster)
        checks = [_log(node).count("checked after a client's report") for node in cluster.workers]
        _report_everything(cluster, _key(cluster, "mallory"), range(1, 400))
        per_worker = [min(VERIFIES_PER_WORKER, sum(1 for _c, i, _k in on_disk if i == index))
                      for index in range(len(cluster.workers))]

        def all_checked():
            return [_log(node).count("checked after a client's report") - done
                    for node, done in zip(cluster.workers, checks, strict=True)] == per_worker
        wait_for(all_checked, 30, "each worker to check the copies it was asked about")
        assert _replicas_on_disk(cluster) == on_disk and _quarantined(cluster) == []
        assert _snapshot(cluster) == before
        with cluster.client("alice", cache_dir="") as alice:
            for path, data in files.items():
                layout = alice.layout(path)
                assert all(len(c.replicas) == 2 for c in layout.chunks), path
                assert alice.read_bytes(path) == data


def _flip(cluster, index, kind, cid, at=1234):
    with open(os.path.join(cluster.worker_dir(index), kind, str(cid)), "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.log_allows(r"fails its checksum", r"is corrupt: dropping that replica")
def test_a_corrupt_copy_a_user_reports_is_checked_quarantined_and_replaced(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c")) as cluster:
        with cluster.client("alice") as alice:
            data = random_bytes(C + 10, seed=3)
            alice.put_bytes("/victim", data)
            cid = alice.layout("/victim").chunks[0].ref.chunk_id
        [index] = chunk_files(cluster, "chunks")[cid]
        _flip(cluster, index, "chunks", cid)
        _report_everything(cluster, _key(cluster, "mallory"), [cid])

        def replaced():  # (the new copy may land on the worker that had the bad one)
            copies = []
            for c, i, kind in _replicas_on_disk(cluster):
                if c == cid:
                    try:
                        with open(os.path.join(cluster.worker_dir(i), kind, str(cid)),
                                  "rb") as f:
                            copies.append(f.read())
                    except FileNotFoundError:  # quarantined between the listing and now
                        return False
            return copies == [data[:C]] * 2 and _quarantined(cluster)
        wait_for(replaced, 30, "the corrupt copy to be quarantined and a good one made")
        assert _quarantined(cluster) == [(index, f"{cid}.chunks")]  # kept, not deleted
        with cluster.client("alice", cache_dir="") as alice:
            assert alice.read_bytes("/victim") == data


@pytest.mark.log_allows(r"fails its checksum", r"is corrupt: dropping that replica",
                        r"the only copy .* is corrupt; keeping it", r"command replicate .* failed")
def test_the_last_copy_is_never_dropped_even_when_every_copy_is_corrupt(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c")) as cluster:
        with cluster.client("alice") as alice:
            alice.put_bytes("/doomed", random_bytes(5000, seed=4))
            cid = alice.layout("/doomed").chunks[0].ref.chunk_id
        holders = [(i, k) for c, i, k in _replicas_on_disk(cluster) if c == cid]
        for index, kind in holders:
            _flip(cluster, index, kind, cid, at=100)
        _report_everything(cluster, _key(cluster, "mallory"), [cid])
        master = cluster.leader()
        wait_for(lambda: "is corrupt; keeping it" in _log(master) and
                 len(_quarantined(cluster)) == 1, 30, "one copy quarantined, the last one kept")
        left = [(i, k) for c, i, k in _replicas_on_disk(cluster) if c == cid]
        assert len(left) == 1 and len(_quarantined(cluster)) == 1  # every byte still on disk
        with cluster.client("alice", cache_dir="") as alice:
            assert len(alice.layout("/doomed").chunks[0].replicas) == 1

"""Real processes: a peer that never logs in cannot make a node hold memory, threads or
descriptors, nor end it (issue 9, point 4; nodes/server_limits.py).

Attacks as the issue tells them: a raw TCP socket sending a 4 GiB frame length (then data)
to the master and to a worker; hundreds of idle sockets from one address; a trickle of a
frame; a worker pushed into EMFILE. After each: the node is alive, its memory small, the
files' bytes and the namespace unchanged, and an honest client works.
"""

import os
import resource
import selectors
import socket
import struct
import time

import pytest
from helpers import sha256

from dfs import errors, rpc
from dfs.config import MIB, MasterConfig, default
from dfs.local.cluster import pid_alive, wait_for
from nodes.server_limits import FRAME_BEFORE_LOGIN, USER_FRAME

HEADER = struct.Struct("!LB")  # rpyc's frame header: length, compressed flag
LOGIN_TIMEOUT = default(MasterConfig, "login_timeout")
PER_PEER = default(MasterConfig, "max_connections_per_peer")


def _status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _threads(pid):
    return _status_kib(pid, "Threads")


def _connect_from(source, port):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5.0)
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_by_peer(sock, deadline=5.0):
    """True once the other end closed ``sock`` (EOF or reset) within ``deadline``."""
    sock.settimeout(deadline)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _count_closed(socks, deadline):
    """How many of ``socks`` the other end closes within ``deadline`` seconds, in all."""
    end = time.monotonic() + deadline
    closed = 0
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map() and (left := end - time.monotonic()) > 0:
            for key, _events in selector.select(left):
                try:
                    if key.fileobj.recv(65536):
                        continue
                except (ConnectionResetError, BlockingIOError):
                    pass
                selector.unregister(key.fileobj)
                closed += 1
    return closed


def _flood(sock, length, send_bytes):
    """Announce a frame of ``length`` bytes, then send up to ``send_bytes`` of it.
    -> bytes the node took before closing on us."""
    sock.sendall(HEADER.pack(length, 0))
    sent, block = 0, b"\0" * MIB
    try:
        while sent < send_bytes:
            sent += sock.send(block)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


def _snapshot(dfs, paths):
    return {"listing": sorted(e.name for e in dfs.listdir("/")),
            "bytes": {p: sha256(dfs.read_bytes(p)) for p in paths}}


@pytest.fixture
def stored(cluster, dfs):
    data = {"/a.bin": b"A" * (3 * MIB + 5), "/b.bin": b"b" * 777}
    for path, content in data.items():
        dfs.put_bytes(path, content)
    return list(data)


@pytest.mark.log_allows(r"nodes\.server_limits: closing a connection from 127\.0\.0\.1: a frame "
                        r"of \d+ bytes \(limit \d+( before login)?\)")
def test_a_4_gib_frame_is_refused_before_it_is_buffered(cluster, dfs, stored):
    before = _snapshot(dfs, stored)
    for node in (cluster.master, cluster.workers[0]):
        rss = _status_kib(node.pid, "VmRSS")
        with _connect_from("127.0.0.1", node.port) as sock:
            sent = _flood(sock, 0xFFFFFFFF, 256 * MIB)
            assert _closed_by_peer(sock), f"{node.name} kept the connection"
        # unfixed, the node buffers all it is sent (256 MiB here): now the kernel's
        # socket buffers take the little it accepts before the close
        assert sent < 64 * MIB, f"{node.name} read {sent} bytes of a 4 GiB frame"
        grown = _status_kib(node.pid, "VmRSS") - rss
        assert grown < 32 * 1024, f"{node.name} grew by {grown} KiB"
        assert pid_alive(node.pid)
    # a logged-in user is bounded too, and its own connection is the only one closed
    conn = rpc.connect(*cluster.master_address)
    rpc.login(conn, "login", "alice", dfs.config.key)
    conn._channel.stream.sock.sendall(HEADER.pack(USER_FRAME + 1, 0))
    assert _closed_by_peer(conn._channel.stream.sock)
    rpc.hard_close(conn)
    assert _snapshot(dfs, stored) == before


@pytest.mark.log_allows(r"nodes\.server_limits: refusing a connection from 127\.0\.0\.2: ")
def test_idle_sockets_are_capped_then_closed_and_honest_clients_go_on(cluster, dfs, stored):
    before = _snapshot(dfs, stored)
    master, worker = cluster.master, cluster.workers[1]
    threads = {node.name: _threads(node.pid) for node in (master, worker)}
    # a logged-in connection that must outlive the unauthenticated ones
    honest = rpc.connect(*cluster.master_address)
    rpc.login(honest, "login", "alice", dfs.config.key)
    opened = time.monotonic()
    # a frame under the pre-login limit, sent a byte at a time: a trickle counts as idle
    trickle = _connect_from("127.0.0.4", master.port)
    trickle.sendall(HEADER.pack(FRAME_BEFORE_LOGIN // 2, 0))
    idle = {node.name: [_connect_from("127.0.0.2", node.port) for _ in range(PER_PEER + 250)]
            for node in (master, worker)}
    try:
        for node in (master, worker):
            refused = _count_closed(idle[node.name][PER_PEER:], 5.0)
            assert refused == 250, f"{node.name} took more than {PER_PEER} from one peer"
            # a thread per connection held, and a few a node starts when first needed
            # (the audit log's writer, commit and HTTP threads): never one per refused one
            assert _threads(node.pid) <= threads[node.name] + PER_PEER + 16
        # the honest client meanwhile: logs in, writes, reads (fresh connections)
        with cluster.client("alice") as fresh:
            fresh.put_bytes("/during.bin", b"d" * (MIB + 1))
            assert fresh.read_bytes("/during.bin") == b"d" * (MIB + 1)
            fresh.rm("/during.bin")
        # the unauthenticated ones are closed after the login timeout, the trickle too
        while time.monotonic() - opened < LOGIN_TIMEOUT - 1:
            trickle.send(b"\0")
            time.sleep(0.5)
        for node in (master, worker):
            kept = PER_PEER - _count_closed(idle[node.name][:PER_PEER], LOGIN_TIMEOUT)
            assert kept == 0, f"{node.name} kept {kept} idle sockets past the login timeout"
            # (a few threads more than before: the honest connections, the master's pools)
            wait_for(lambda n=node: _threads(n.pid) <= threads[n.name] + 10, 10.0,
                     f"{node.name}'s threads to go")
        assert _closed_by_peer(trickle, 5.0)
        # the logged-in connection is still served
        assert rpc.call(honest, "hello")[1] == "leader"
    finally:
        rpc.hard_close(honest)
        trickle.close()
        for socks in idle.values():
            for sock in socks:
                sock.close()
    assert _snapshot(dfs, stored) == before
    assert all(pid_alive(n.pid) for n in (cluster.master, *cluster.workers))


@pytest.mark.log_allows(r"nodes\.server_limits: cannot accept connections: \[Errno 24\] ")
def test_a_worker_out_of_descriptors_keeps_serving(cluster, dfs, stored):
    before = _snapshot(dfs, stored)
    worker = cluster.workers[2]
    limits = resource.prlimit(worker.pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir(f"/proc/{worker.pid}/fd"))
    resource.prlimit(worker.pid, resource.RLIMIT_NOFILE, (in_use + 20, limits[1]))
    socks = []
    try:
        socks = [_connect_from("127.0.0.3", worker.port) for _ in range(60)]
        # unfixed, rpyc's accept loop ends on EMFILE and the worker exits
        wait_for(lambda: "cannot accept connections" in open(worker.log_path).read()
                 or not pid_alive(worker.pid), 10.0, "the worker to run out of descriptors")
        assert pid_alive(worker.pid), "the worker died of EMFILE"
    finally:
        for sock in socks:
            sock.close()
        resource.prlimit(worker.pid, resource.RLIMIT_NOFILE, limits)
    # still serving: a call without a valid token gets its clear refusal, not a dead port
    def refusal():
        try:
            conn = rpc.connect("127.0.0.1", worker.port)
        except errors.Unavailable:
            return None
        try:
            rpc.call(conn, "read", "not-a-token", 1, 0, 10)
        except errors.DfsError as exc:
            return exc
        finally:
            rpc.hard_close(conn)
        raise AssertionError("a read without a token was served")
    assert isinstance(wait_for(refusal, 10.0, "the worker to answer again"), errors.DfsError)
    assert pid_alive(worker.pid)
    assert _snapshot(dfs, stored) == before

"""Issue 13's observability on real processes: every node's /metrics after real operations,
the audit log (`dfs events`: mutations and logins, filters, admin only, --follow), `dfs
status --watch` with and without a terminal, and the leader's status page in a real
headless browser (Chromium), with a worker whose id is HTML."""

import html
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

import pytest
from conftest import random_bytes
from helpers import DFS, run_dfs, scrape
from helpers import metric as value

from dfs import errors
from dfs.client import DfsClient
from dfs.fsutil import private_dir, write_atomic
from dfs.retry import poll
from nodes.web import ADDRESS_FILE

DEADLINE = 30.0


def web_address(data_dir):
    with open(os.path.join(data_dir, ADDRESS_FILE)) as f:
        return f"http://{f.read().strip()}/"


def eventually(check, what):
    """Poll ``check()`` (an assertion-free predicate) with a deadline."""
    assert poll(check, DEADLINE, 0.2), f"timed out waiting for {what}"


@pytest.fixture(scope="module")
def admin_env(shared_cluster):
    return dict(os.environ, DFS_AUTH=shared_cluster.admin_auth_file)


def test_every_node_serves_metrics_after_real_operations(shared_cluster, shared_dfs):
    data = random_bytes(3 * 1024 * 1024 + 5, seed=13)
    shared_dfs.mkdir("/metrics-test")
    shared_dfs.put_bytes("/metrics-test/f", data)
    assert shared_dfs.read_bytes("/metrics-test/f") == data
    shared_dfs.rename("/metrics-test/f", "/metrics-test/g")
    with shared_cluster.admin_client() as admin:
        url = admin.status().web
    assert url == web_address(shared_cluster.master_dir)

    def master_counted():
        s = scrape(url)
        return all((value(s, "dfs_request_seconds_count", op=op) or 0) >= 1
                   for op in ("mkdir", "allocate", "put", "rename", "layout")) and s
    master = poll(master_counted, DEADLINE, 0.2)
    assert master, "the master's request counts"
    assert value(master, "dfs_journal_fsync_seconds_count") >= 4
    assert value(master, "dfs_master_leader", server="master") == 1
    assert value(master, "dfs_workers", state="alive") == 4
    assert value(master, "dfs_master_voters") == 5  # four workers and the shadow
    assert value(master, "dfs_chunks") >= 4 and value(master, "dfs_chunks_under_replicated") == 0
    assert value(master, "dfs_standby_in_sync") == 1
    assert value(master, "dfs_standby_lag_entries") == 0
    assert value(master, "dfs_lease_remaining_seconds", role="leader") > 0
    assert value(master, "dfs_capacity_bytes") >= value(master, "dfs_free_bytes") > 0
    assert value(master, "process_resident_memory_bytes") > 0

    shadow_url = web_address(shared_cluster.shadow_dir)

    def shadow_caught_up():
        s = scrape(shadow_url)
        return value(s, "dfs_journal_seq") == value(scrape(url), "dfs_journal_seq") and s
    shadow = poll(shadow_caught_up, DEADLINE, 0.2)
    assert shadow, "the shadow's journal to reach the master's"
    assert value(shadow, "dfs_master_leader", server="shadow") == 0
    assert value(shadow, "dfs_lease_remaining_seconds", role="standby") > 0

    def workers_counted():
        scraped = [scrape(web_address(shared_cluster.worker_dir(i))) for i in range(4)]
        stored = sum(value(s, "dfs_worker_store_chunks", kind=k) or 0
                     for s in scraped for k in ("chunks", "backups"))
        return stored >= 8 and scraped  # four chunks, two copies each
    workers = poll(workers_counted, DEADLINE, 0.5)
    assert workers, "the workers' chunk counts"
    received = sum(value(s, "dfs_worker_bytes_received_total", via="client") or 0
                   for s in workers)
    sent = sum(value(s, "dfs_worker_bytes_sent_total") or 0 for s in workers)
    assert received >= 2 * len(data) and sent >= len(data)
    assert all(value(s, "dfs_lease_remaining_seconds", role="voter", holder="master") > 0
               for s in workers)
    assert all((value(s, "dfs_request_seconds_count", op="write") or 0) > 0 for s in workers
               if (value(s, "dfs_worker_bytes_received_total", via="client") or 0) > 0)


def test_the_http_port_is_read_only(shared_cluster):
    url = web_address(shared_cluster.master_dir)
    for method in ("POST", "PUT", "DELETE"):
        request = urllib.request.Request(url + "metrics", data=b"x", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 501
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "../cache-metadata/journal.jsonl", timeout=10)
    assert missing.value.code == 404
    with urllib.request.urlopen(url + "metrics?name[]=x", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(url, timeout=10) as page:
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert "<script" not in page.read().decode()


@pytest.mark.log_allows(r"failed login for 'bob' from 127\.0\.0\.1")
def test_events_record_mutations_and_logins_for_the_admin(shared_cluster, admin_env, tmp_path):
    with shared_cluster.client("bob") as bob:
        bob.mkdir("/bob-events")
        bob.put_bytes("/bob-events/note", b"hello")
        bob.rename("/bob-events/note", "/bob-events/renamed")
        bob.rm("/bob-events/renamed")
    wrong = DfsClient.connect(shared_cluster.masters, "bob", "00" * 32, cache_dir="",
                              failover_deadline=5.0)
    with pytest.raises(errors.AuthenticationFailed):
        wrong.listdir("/")
    wrong.close()

    lines = run_dfs("events", env=admin_env).stdout.splitlines()
    bobs = [line for line in lines if "  bob  127.0.0.1  " in line]
    text = "\n".join(bobs)
    for expected in ("login name='bob'", "mkdir path='/bob-events'",
                     "put path='/bob-events/note' size=5", "rename src='/bob-events/note' "
                     "dst='/bob-events/renamed'", "path='/bob-events/renamed'  [unlink #"):
        assert expected in text, expected
    assert any("login name='bob'" in line and line.endswith("REFUSED") for line in bobs)
    assert any("register name='bob'" in line for line in lines)  # before bob logged in
    only_bob = run_dfs("events", "--user", "bob", env=admin_env).stdout.splitlines()
    assert only_bob and all("  bob  " in line for line in only_bob)
    assert len(only_bob) == len(bobs)
    assert run_dfs("events", "--user", "bob", "--since", "1h", env=admin_env).stdout \
        .splitlines() == only_bob
    later = str(time.time() + 3600)
    assert run_dfs("events", "--since", later, env=admin_env).stdout == ""
    assert run_dfs("events", "--user", "bob", "-n", "2", env=admin_env).stdout \
        .splitlines() == only_bob[-2:]

    bob_env = dict(os.environ, DFS_AUTH=os.path.join(shared_cluster.data_dir, "auth-bob.txt"))
    refused = run_dfs("events", env=bob_env, check=False)
    assert refused.returncode == 1 and "only an admin" in refused.stderr
    log_file = os.path.join(shared_cluster.master_dir, "cache-metadata", "events.jsonl")
    assert os.stat(log_file).st_mode & 0o777 == 0o600
    with open(log_file) as f:
        kept = f.read()
    with open(shared_cluster.token_file) as f:
        assert f.read().strip() not in kept
    with open(bob_env["DFS_AUTH"]) as f:
        key = [line.split("=", 1)[1].strip() for line in f if line.startswith("key")][0]
    assert key not in kept


def test_events_follow_prints_new_ones_until_ctrl_c(shared_cluster, admin_env):
    follower = subprocess.Popen([*DFS, "events", "--follow", "--user", "carol"],
                                env=admin_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        with shared_cluster.client("carol") as carol:
            carol.mkdir("/carol-was-here")
        eventually(lambda: any("/carol-was-here" in line for line in seen),
                   "dfs events --follow to print carol's mkdir")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0, follower.stderr.read()
    assert all("  carol  " in line for line in seen)


def test_status_watch_refreshes_until_ctrl_c(admin_env):
    watcher = subprocess.Popen([*DFS, "status", "--watch", "0.2"], env=admin_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(watcher.stdout), daemon=True)
    reader.start()
    try:
        eventually(lambda: sum(line.startswith("dfs status at") for line in seen) >= 3,
                   "three refreshes")
    finally:
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0, watcher.stderr.read()
    reader.join(10)
    output = "".join(seen)
    assert "\x1b[" not in output  # no terminal: plain refreshes, one after the other
    assert output.count("last seen") >= 3 and "status page: http://127.0.0.1:" in output


def test_status_watch_clears_a_terminal(admin_env):
    controller, terminal = pty.openpty()
    watcher = subprocess.Popen([*DFS, "status", "--watch", "0.2"], env=admin_env,
                               stdin=subprocess.DEVNULL, stdout=terminal,
                               stderr=subprocess.PIPE)
    os.close(terminal)
    screen = b""
    try:
        end = time.monotonic() + DEADLINE
        while screen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < end:
            if select.select([controller], [], [], 0.5)[0]:
                screen += os.read(controller, 65536)
        assert screen.count(b"\x1b[H\x1b[2J") >= 2, screen[-2000:]
    finally:
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0, watcher.stderr.read()
        os.close(controller)


def test_a_metrics_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_dfs("master", "--data", tmp_path / "m", "--port", "0", "--metrics-port",
                       port, check=False, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dfs: metrics port {port} on 127.0.0.1 is already in use")
    assert "Traceback" not in done.stderr


# --- the status page in a real browser ---------------------------------------------------

HOSTILE_ID = "<img src=x onerror=alert(1)>\"&'"
WINDOW = (1200, 800)
HEADER_BLUE = (0x1F, 0x4E, 0x79)  # the page's header (nodes/master/status_page.py STYLE)


def chromium(*args):
    """Run headless Chromium (as root it needs --no-sandbox) with a throw-away profile kept
    out of pytest's temp dir (its files must not look like node logs). -> stdout."""
    profile = tempfile.mkdtemp(prefix="dfs-chromium-")
    try:
        done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                               "--no-first-run", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_rows(path, rows):
    """(width, height, the first ``rows`` rows as lists of RGB tuples) of an 8-bit RGB(A)
    PNG (what Chromium writes), decoded here: no imaging library needed."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and color in (2, 6) and interlace == 0
    size = 3 if color == 2 else 4
    raw, stride = zlib.decompressobj().decompress(idat, rows * (width * size + 1)), width * size
    previous, decoded = bytearray(stride), []
    for y in range(min(rows, height)):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up, corner = previous[i], previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 0xFF
        decoded.append([tuple(line[x:x + 3]) for x in range(0, stride, size)])
        previous = line
    return width, height, decoded


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (make system-deps installs it)")
def test_status_page_in_headless_chromium(cluster, tmp_path):
    hostile = cluster._worker_node(len(cluster.workers))
    private_dir(hostile.data_dir)
    write_atomic(os.path.join(hostile.data_dir, "worker-id"), HOSTILE_ID.encode() + b"\n")
    cluster.workers.append(hostile)  # stopped with the others
    hostile.start(cluster.env, detach=False)
    hostile.wait_ready()
    cluster.wait_workers(5)
    with cluster.admin_client() as admin:
        status = admin.status()
    assert HOSTILE_ID in [w.worker_id for w in status.workers]

    dom = chromium("--dump-dom", status.web)
    assert "<title>DFS status</title>" in dom
    for worker in status.workers:
        assert html.escape(worker.worker_id, quote=False) in dom
    assert "<img" not in dom and "onerror=alert" in dom  # shown as text, never made an element
    assert "5 alive of 5" in dom

    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", status.web)
    width, height, top = png_rows(shot, 120)
    assert (width, height) == WINDOW
    assert sum(pixel == HEADER_BLUE for pixel in top[10]) > width // 2  # the header band
    colours = {pixel for row in top for pixel in row}
    assert len(colours) > 20  # text drawn over it, not a blank image

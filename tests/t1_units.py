"""Pure units: keys and tokens, checksums, layering, the chunk cache. (Paths, the namespace
and its journal: tests/t1_namespace.py.)"""

import os
import re
import subprocess
import sys

import pytest

from dfs import auth, chunks, errors

# --- keys and tokens -----------------------------------------------------------------------

def test_challenge_response_accepts_the_key_and_nothing_else():
    key = auth.new_key()
    stored = auth.stored_form(key)
    server_nonce, client_nonce = auth.new_nonce(), auth.new_nonce()
    proof = auth.make_proof(key, "alice", server_nonce, client_nonce)
    assert key not in proof.hex()  # the key itself never crosses the wire
    assert auth.check_proof(stored, "alice", server_nonce, client_nonce, proof)
    assert not auth.check_proof(stored, "bob", server_nonce, client_nonce, proof)
    assert not auth.check_proof(stored, "alice", auth.new_nonce(), client_nonce, proof)
    other = auth.make_proof(auth.new_key(), "alice", server_nonce, client_nonce)
    assert not auth.check_proof(stored, "alice", server_nonce, client_nonce, other)
    # the stored form alone is not enough to log in
    forged = auth.make_proof(stored, "alice", server_nonce, client_nonce)
    assert not auth.check_proof(stored, "alice", server_nonce, client_nonce, forged)


def test_chunk_tokens_are_bound_to_chunk_op_epoch_and_time():
    secret = auth.chunk_secret("ab" * 32)
    token = auth.sign_chunk_token(secret, "r", 7, epoch=3, ttl=60, now=1000)
    assert auth.verify_chunk_token(secret, token, "r", 7, min_epoch=3, now=1000) == 3
    for op, chunk, min_epoch, now in (("w", 7, 3, 1000), ("r", 8, 3, 1000),
                                      ("r", 7, 4, 1000), ("r", 7, 3, 2000)):
        with pytest.raises(errors.StaleToken):
            auth.verify_chunk_token(secret, token, op, chunk, min_epoch, now)
    with pytest.raises(errors.StaleToken):
        auth.verify_chunk_token(auth.chunk_secret("cd" * 32), token, "r", 7, 3, now=1000)
    with pytest.raises(errors.StaleToken):
        auth.verify_chunk_token(secret, token.replace("r:7", "r:9"), "r", 9, 3, now=1000)


def test_auth_file_is_private_and_round_trips(tmp_path):
    path = tmp_path / "auth.txt"
    auth.write_auth_file(str(path), [("127.0.0.1", 18861), ("h2", 18862)], "alice", "k" * 64)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert auth.read_auth_file(str(path)) == ((("127.0.0.1", 18861), ("h2", 18862)),
                                              "alice", "k" * 64)
    with pytest.raises(errors.AuthenticationFailed, match="dfs register"):
        auth.read_auth_file(str(tmp_path / "missing.txt"))


# --- checksums and chunk arithmetic ---------------------------------------------------------

def test_block_checksums_find_the_flipped_block():
    data = bytearray(os.urandom(5 * 65536 + 100))
    crcs = chunks.block_crcs(bytes(data))
    assert len(crcs) == 6
    assert chunks.first_bad_block(bytes(data), crcs) is None
    data[3 * 65536 + 5] ^= 1
    assert chunks.first_bad_block(bytes(data), crcs) == 3
    assert chunks.crc_update(b"world", chunks.crc(b"hello ")) == chunks.crc(b"hello world")


def test_chunk_spans_cover_the_range_exactly():
    spans = list(chunks.chunk_spans(90, 250, 100))
    assert spans == [(0, 90, 10), (1, 0, 100), (2, 0, 100), (3, 0, 40)]
    assert chunks.chunk_count(0, 100) == 0 and chunks.chunk_count(101, 100) == 2


# --- layering ---------------------------------------------------------------------------------

def test_importing_the_client_loads_no_server_or_fuse_code():
    # (rpyc's own package __init__ imports rpyc.utils.server; we can only vouch for ours)
    code = ("import sys, dfs.client, dfs.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('nodes', 'mount', 'mfusepy')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chunk_cache_under_concurrent_fill_stays_bounded_and_never_raises(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from dfs.client.cache import ChunkCache
    from dfs.wire import ChunkRef

    cache = ChunkCache(str(tmp_path / "cache"), max_bytes=4 * 65536)
    blobs = {i: os.urandom(65536) for i in range(40)}
    refs = {i: ChunkRef(i, 1, 65536, chunks.crc(blobs[i]), 0) for i in blobs}

    def work(i):
        cache.put(refs[i], blobs[i])
        got = cache.get(refs[i])
        assert got is None or got == blobs[i]
        cache.put(refs[(i + 1) % 40], blobs[(i + 1) % 40])  # the same chunk twice

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(40)))
    on_disk = sum(f.stat().st_size for f in (tmp_path / "cache").iterdir())
    assert on_disk == cache.size
    assert on_disk <= 4 * 65536 + 8 * 65536  # bounded (in-flight puts may overshoot briefly)


@pytest.mark.log_allows(r"nodes\.[xyz]: ")  # this test's own made-up log lines
def test_the_node_log_check_reports_new_warnings_and_honours_allowances(tmp_path):
    from conftest import _log_sizes, _new_problems
    log = tmp_path / "logs" / "master.log"
    log.parent.mkdir()
    log.write_text("t INFO nodes.x: fine\nt WARNING nodes.x: old news\n")
    before = _log_sizes(tmp_path)
    assert _new_problems(tmp_path, before, []) == []  # nothing new since
    with open(log, "a") as f:
        f.write("t INFO nodes.x: still fine\nt ERROR nodes.y: disk on fire\n"
                "t WARNING nodes.z: expected here\n")
    found = _new_problems(tmp_path, before, [re.compile("expected here")])
    assert found == ["logs/master.log: t ERROR nodes.y: disk on fire"]

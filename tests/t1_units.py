"""Pure units: paths, keys and tokens, checksums, the namespace and its journal."""

import json
import os
import subprocess
import sys

import pytest

from dfs import auth, chunks, errors
from dfs.journal import Journal
from dfs.namespace.model import Namespace, split_path

# --- paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("path, error", [
    ("/a/../b", errors.InvalidPath),
    ("/a/./b", errors.InvalidPath),
    ("/a\0b", errors.InvalidPath),
    ("relative/path", errors.InvalidPath),
    ("/" + "x" * 300, errors.NameTooLong),
    ("/" + "/".join(["abcd"] * 1000), errors.NameTooLong),
    (b"/bytes", errors.InvalidPath),
])
def test_bad_paths_are_refused_with_a_clear_error(path, error):
    with pytest.raises(error) as info:
        split_path(path)
    assert str(info.value)  # a message a user can read


def test_good_paths_split_into_components():
    assert split_path("/") == []
    assert split_path("/a//b/") == ["a", "b"]
    assert split_path("/" + "é" * 127) == ["é" * 127]  # 254 bytes: allowed


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


# --- namespace and journal ----------------------------------------------------------------

def _entries():
    t = 1_000
    return [
        {"op": "init", "chunk_size": 1024, "time_ns": t},
        {"op": "adduser", "name": "alice", "admin": False, "stored_key": "00"},
        {"op": "mkdir", "parent": 1, "name": "d", "ino": 2, "owner": "alice", "mode": 0o755,
         "time_ns": t},
        {"op": "alloc", "owner": "alice", "first": 1, "count": 2, "expires": 9e12},
        {"op": "put", "create": True, "parent": 2, "name": "f", "ino": 3, "owner": "alice",
         "mode": 0o600, "size": 1500, "time_ns": t,
         "chunks": [[1, 1, 1024, 11], [2, 1, 476, 22]]},
        {"op": "rename", "src_parent": 2, "src_name": "f", "dst_parent": 1, "dst_name": "g",
         "time_ns": t},
    ]


def _state(ns):
    return json.dumps(ns.to_json(), sort_keys=True)


def _record(journal, ns, entries, first_seq=1):
    """Journal then apply each entry, as the master does."""
    for seq, entry in enumerate(entries, first_seq):
        entry["seq"] = seq
        journal.append([entry])
        ns.apply(entry)


def test_replay_rebuilds_the_same_namespace_and_keeps_invariants(tmp_path):
    journal = Journal(str(tmp_path))
    ns = journal.load()
    _record(journal, ns, _entries())
    journal.close()
    again = Journal(str(tmp_path)).load()
    assert _state(again) == _state(ns)
    g = again.resolve("/g")
    assert g.size == sum(c.length for c in g.chunks) == 1500
    assert again.pending == {}  # committed chunks are no longer pending
    assert again.next_chunk_id == 3  # ids are never handed out twice


def test_snapshot_then_journal_and_a_torn_tail(tmp_path):
    journal = Journal(str(tmp_path))
    ns = journal.load()
    entries = _entries()
    _record(journal, ns, entries[:4])
    journal.snapshot(ns)
    _record(journal, ns, entries[4:], first_seq=5)
    journal.close()
    with open(tmp_path / "journal.jsonl", "ab") as f:
        f.write(b'{"op": "mkdir", "parent": 1, "na')  # kill -9 in the middle of a write
    again = Journal(str(tmp_path)).load()
    assert _state(again) == _state(ns)
    assert (tmp_path / "journal.jsonl").read_bytes().endswith(b"}\n")  # torn tail cut off


def test_a_crash_between_snapshot_and_rotation_replays_nothing_twice(tmp_path):
    journal = Journal(str(tmp_path))
    ns = journal.load()
    _record(journal, ns, _entries())
    # snapshot written, journal not yet rotated: every entry is in both
    from dfs.fsutil import write_atomic
    write_atomic(journal.snapshot_path, json.dumps(ns.to_json()).encode())
    journal.close()
    assert _state(Journal(str(tmp_path)).load()) == _state(ns)


def test_unlink_frees_the_chunks_and_hard_links_keep_them():
    ns = Namespace()
    for seq, entry in enumerate(_entries(), 1):
        entry["seq"] = seq
        ns.apply(entry)
    ns.apply({"op": "link", "parent": 2, "name": "h", "ino": 3, "time_ns": 5, "seq": 7})
    assert ns.apply({"op": "unlink", "parent": 1, "name": "g", "time_ns": 6, "seq": 8}) == []
    assert ns.resolve("/d/h").nlink == 1
    assert sorted(ns.apply({"op": "unlink", "parent": 2, "name": "h", "time_ns": 7,
                            "seq": 9})) == [1, 2]


def test_trashed_files_keep_their_chunks_until_purged_and_survive_a_snapshot():
    ns = Namespace()
    for seq, entry in enumerate(_entries(), 1):
        entry["seq"] = seq
        ns.apply(entry)
    trash = {"path": "/g", "deleted_at": 100.0, "expires": 200.0}
    assert ns.apply({"op": "unlink", "parent": 1, "name": "g", "time_ns": 6, "seq": 7,
                     "trash": trash}) == []
    assert {1, 2} <= ns.live_chunk_ids()
    again = Namespace.from_json(json.loads(json.dumps(ns.to_json())))
    assert [(tid, item.path) for tid, item in again.trash_of(again.trash["3"].owner)] \
        == [("3", "/g")]
    ns.apply({"op": "restore", "trash_id": "3", "parent": 2, "name": "back", "time_ns": 8,
              "seq": 8})
    assert ns.resolve("/d/back").nlink == 1 and not ns.trash
    ns.apply({"op": "unlink", "parent": 2, "name": "back", "time_ns": 9, "seq": 9,
              "trash": trash})
    assert sorted(ns.apply({"op": "purge", "trash_ids": ["3"], "seq": 10})) == [1, 2]
    assert not {1, 2} & ns.live_chunk_ids()


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
    refs = {i: ChunkRef(i, 1, 65536, chunks.crc(blobs[i])) for i in blobs}

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


def test_chunk_store_verify_finds_a_flipped_byte_and_reports_it_once(tmp_path):
    from nodes.worker.service import ChunkStore
    store = ChunkStore(str(tmp_path))
    store.chunk_size = 1 << 20
    data = os.urandom(300_000)
    store.write(7, "chunks", 0, data, len(data), chunks.crc(data))
    store.take_changes("m")
    read = []
    assert store.verify(7, "chunks", read.append) is True and sum(read) == len(data)
    with open(store.path(7, "chunks"), "r+b") as f:
        f.seek(200_000)
        f.write(b"\0" if data[200_000] else b"\1")
    assert store.verify(7, "chunks") is False
    store.report_bad(7, "chunks")
    store.report_bad(7, "chunks")
    assert store.take_changes("m") == ((), (), ((7, "chunks"),))
    store.delete(7, "chunks")
    assert store.verify(7, "chunks") is None

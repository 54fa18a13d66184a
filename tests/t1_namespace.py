"""Pure units: paths, the typed journal entries and their JSON, the namespace's apply, and
the journal (snapshot + replay, torn tails, old-format lines)."""

import json

import pytest

from dfs import errors
from dfs.journal import Journal
from dfs.namespace import entries as e
from dfs.namespace.access import Cred
from dfs.namespace.entries import Record, entry_from_json
from dfs.namespace.inode import MAX_PATH_BYTES
from dfs.namespace.model import Namespace, split_path
from dfs.wire import ChunkRef

# --- paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("path, error", [
    ("/a/../b", errors.InvalidPath),
    ("/a/./b", errors.InvalidPath),
    ("/a\0b", errors.InvalidPath),
    ("relative/path", errors.InvalidPath),
    ("/" + "x" * 300, errors.NameTooLong),
    ("/" + "/".join(["abcd"] * (MAX_PATH_BYTES // 5 + 1)), errors.NameTooLong),
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


# --- entries and their JSON -------------------------------------------------------------------

T = 1_000
A = 10001  # alice's uid and gid
CHUNKS = (ChunkRef(1, 1, 1024, 11, 0), ChunkRef(2, 1, 476, 22, 1))


def _entries():
    return [
        e.Init(1024, T),
        e.AddUser("alice", False, "00", 1, A, A),
        e.Mkdir(1, "d", 2, A, A, 0o755, T),
        e.Alloc("alice", 1, 2, 9e12),
        e.Put(True, 2, "f", 3, A, A, 0o600, 1500, T, CHUNKS),
        e.Rename(2, "f", 1, "g", T),
    ]


# One of each type, with every optional field set somewhere.
EXAMPLES = [
    e.Init(1024, T),
    e.AddUser("bob", True, "ab", 2, 0, 0),
    e.AddUser("carol", False, "ab", 3, 10003, 10003, (50,)),
    e.SetQuota("bob", 1 << 30, None, rid="r0"),
    e.SetQuota("bob", None, 10),
    e.Revoke("bob"),
    e.Voter("w1", "127.0.0.1", 18870),
    e.Member("w1", "draining"),
    e.Mkdir(1, "d", 2, A, A, 0o700, T, rid="r1"),
    e.Create(2, "f", 3, A, A, 0o600, T, rid="r2"),
    e.Symlink(2, "l", 4, A, A, 0o777, T, "f"),
    e.Mknod(2, "p", 5, A, A, 0o644, T, "p", rid="r5"),
    e.Mknod(2, "c", 6, A, A, 0o600, T, "c", 259),
    e.Link(2, "h", 3, T),
    e.Unlink(2, "h", T),
    e.Unlink(2, "f", T, e.TrashInfo("/d/f", 100.5, 200.5), rid="r3"),
    e.Restore("3", 2, "f", T),
    e.Purge(("3", "7")),
    e.Rename(2, "f", 1, "g", T, rid="r4"),
    e.Exchange(2, "f", 1, "g", T, rid="r6"),
    e.SetAttr(3, T, mode=0o644),
    e.SetAttr(3, T, 0o600, 10002, 10002, 5, 6),
    e.SetAttr(3, T, gid=77),
    e.SetXattr(3, "user.mime", b"\x00text/plain\xff", T, rid="r5"),
    e.SetXattr(3, "user.mime", None, T),
    e.SetChunks(3, 1500, CHUNKS, T, 0o755),
    e.Member("w1", "draining"),
    e.Group("staff", 50),
    e.Group("staff", None),
    e.SetGroups("alice", (50, 60)),
    e.Alloc("alice", 1, 2, 9e12),
    e.Renew("alice", (1, 2), 9.5e12),
    e.SetChunks(3, 1500, CHUNKS, T),
    e.Put(False, 1, "g", 3, A, A, 0o600, 1500, T, CHUNKS),
    e.Unpend((1, 2)),
]


def test_every_entry_type_has_an_example():
    assert {type(x) for x in EXAMPLES} == set(e.ENTRY_TYPES)
    assert len(e.BY_OP) == len(e.ENTRY_TYPES)  # one op name per class


@pytest.mark.parametrize("entry", EXAMPLES, ids=lambda x: x.op)
def test_entries_round_trip_through_their_json(entry):
    data = json.loads(json.dumps(entry.to_json()))
    assert data["op"] == entry.op
    assert entry_from_json(data) == entry
    record = Record(9, 2, entry)
    assert Record.from_line(record.to_line()) == record
    assert json.loads(record.to_line())["seq"] == 9 and json.loads(record.to_line())["ep"] == 2


def test_unset_optional_fields_stay_out_of_the_json():
    assert e.SetAttr(3, T, mode=0o644).to_json() == {"op": "setattr", "ino": 3, "time_ns": T,
                                                     "mode": 0o644}
    assert e.Unlink(2, "h", T).to_json() == {"op": "unlink", "parent": 2, "name": "h",
                                             "time_ns": T}


# Lines exactly as the master wrote them before entries were typed (dicts built by hand).
OLD_LINES = [
    '{"op":"init","chunk_size":1048576,"time_ns":1700000000000000000,"seq":1,"ep":1}',
    '{"op":"adduser","name":"admin","admin":true,"stored_key":"9f86","seq":2,"ep":1}',
    '{"op":"voter","worker_id":"w-1","host":"127.0.0.1","port":40001,"seq":3,"ep":1}',
    '{"op":"mkdir","parent":1,"name":"home","ino":2,"owner":"admin","mode":448,'
    '"time_ns":1700000000000000001,"rid":"ab12","seq":4,"ep":1}',
    '{"op":"alloc","owner":"admin","first":1,"count":1,"expires":1700000600.25,"seq":5,"ep":1}',
    '{"op":"put","create":true,"parent":2,"name":"f","ino":3,"owner":"admin","mode":384,'
    '"size":5,"time_ns":1700000000000000002,"chunks":[[1,1,5,99]],"seq":6,"ep":1}',
    '{"op":"setattr","ino":3,"time_ns":1700000000000000003,"mode":420,"seq":7,"ep":2}',
    '{"op":"link","parent":2,"name":"g","ino":3,"time_ns":1700000000000000004,"seq":8,"ep":2}',
    '{"op":"unlink","parent":2,"name":"g","time_ns":1700000000000000005,"rid":"cd34",'
    '"seq":9,"ep":2}',
    '{"op":"unlink","parent":2,"name":"f","time_ns":1700000000000000006,"trash":{"path":'
    '"/home/f","deleted_at":1700000000.5,"expires":1700086400.5},"seq":10,"ep":2}',
    '{"op":"purge","trash_ids":["3"],"seq":11,"ep":2}',
    '{"op":"unpend","chunk_ids":[7,8],"seq":12,"ep":2}',
]


def test_old_format_journal_lines_parse_and_write_back_the_same_keys_and_values():
    """Every old line replays. Those from before POSIX ids name owners by user name: they
    keep the name (``legacy_owner``) and the users get ids as dfs/namespace/users.py says;
    every other line writes back exactly what it was."""
    ns = Namespace()
    for line in OLD_LINES:
        record = Record.from_line(line)
        old = json.loads(line)
        if "chunks" in old:  # a dense list of old: each chunk now names its index too
            old["chunks"] = [[*c, i] for i, c in enumerate(old["chunks"])]
        if "owner" in old and old["op"] != "alloc":
            old["legacy_owner"] = old.pop("owner")
            old["uid"] = old["gid"] = e.LEGACY_ID
        written = record.to_json()
        if old["op"] == "adduser":
            assert (written["name"], written["admin"], written.get("gid")) == ("admin", True,
                                                                               None)
        else:
            assert written == old
        ns.apply(record)
    assert ns.seq == 12 and ns.voters == {"w-1": ["127.0.0.1", 40001]}
    admin = ns.users["admin"]
    assert (admin.serial, admin.uid, admin.gid) == (1, 0, 0)  # admins are the superuser
    home = ns.resolve("/home")
    assert (home.uid, home.gid, home.mode) == (0, 0, 0o700)
    assert ns.recent == {"ab12": 2, "cd34": 0}
    assert ns.resolve("/home").children == {} and not ns.trash  # trashed, then purged
    assert isinstance(Record.from_line(OLD_LINES[5]).entry.chunks[0], ChunkRef)


# --- apply -----------------------------------------------------------------------------

def _applied(entries, first_seq=1):
    ns = Namespace()
    for seq, entry in enumerate(entries, first_seq):
        ns.apply(Record(seq, 1, entry))
    return ns


def test_apply_of_each_tree_and_user_entry():
    ns = _applied(_entries())
    ns.apply(Record(7, 1, e.Create(2, "c", 4, A, A, 0o640, 5)))
    ns.apply(Record(8, 1, e.Symlink(2, "s", 5, A, A, 0o777, 6, "../g")))
    ns.apply(Record(9, 1, e.SetAttr(4, 7, mode=0o600, atime_ns=1, mtime_ns=2)))
    ns.apply(Record(10, 1, e.Voter("w1", "h", 1)))
    ns.apply(Record(11, 1, e.Revoke("alice")))
    c, s = ns.resolve("/d/c"), ns.resolve("/d/s")
    assert (c.kind, c.mode, c.atime_ns, c.mtime_ns, c.ctime_ns) == ("f", 0o600, 1, 2, 7)
    assert (s.kind, s.target, s.size) == ("l", "../g", 4)
    assert ns.next_ino == 6 and ns.seq == 11
    assert ns.voters == {"w1": ["h", 1]} and "alice" not in ns.users


def test_commit_replaces_the_chunks_and_unpend_drops_allocations():
    ns = _applied(_entries())
    ns.apply(Record(7, 1, e.Alloc("alice", 3, 2, 9e12)))
    freed = ns.apply(Record(8, 1, e.SetChunks(3, 1024, (ChunkRef(3, 1, 1024, 33, 0),), 9)))
    assert sorted(freed) == [1, 2] and ns.resolve("/g").size == 1024
    assert ns.pending == {4: ("alice", 9e12)}
    ns.apply(Record(9, 1, e.Unpend((4,))))
    assert ns.pending == {} and ns.next_chunk_id == 5  # ids are never handed out twice


def test_request_ids_remember_the_inode_they_made():
    ns = _applied(_entries())
    ns.apply(Record(7, 1, e.Mkdir(1, "x", 4, A, A, 0o700, T, rid="r1")))
    ns.apply(Record(8, 1, e.Rename(1, "x", 1, "y", T, rid="r2")))
    assert ns.recent == {"r1": 4, "r2": 0}


def test_unlink_frees_the_chunks_and_hard_links_keep_them():
    ns = _applied(_entries())
    ns.apply(Record(7, 1, e.Link(2, "h", 3, 5)))
    assert ns.resolve("/g").nlink == 2
    assert ns.apply(Record(8, 1, e.Unlink(1, "g", 6))) == []
    assert ns.resolve("/d/h").nlink == 1
    assert sorted(ns.apply(Record(9, 1, e.Unlink(2, "h", 7)))) == [1, 2]


def test_trashed_files_keep_their_chunks_until_purged_and_survive_a_snapshot():
    ns = _applied(_entries())
    trash = e.TrashInfo("/g", 100.0, 200.0)
    assert ns.apply(Record(7, 1, e.Unlink(1, "g", 6, trash))) == []
    assert {1, 2} <= ns.live_chunk_ids()
    again = Namespace.from_json(json.loads(json.dumps(ns.to_json())))
    assert [(tid, item.path) for tid, item in again.trash_of(Cred(again.trash["3"].uid, 0))] \
        == [("3", "/g")]
    ns.apply(Record(8, 1, e.Restore("3", 2, "back", 8)))
    assert ns.resolve("/d/back").nlink == 1 and not ns.trash
    ns.apply(Record(9, 1, e.Unlink(2, "back", 9, trash)))
    assert sorted(ns.apply(Record(10, 1, e.Purge(("3",))))) == [1, 2]
    assert not {1, 2} & ns.live_chunk_ids()


# --- the journal --------------------------------------------------------------------------

def _state(ns):
    return json.dumps(ns.to_json(), sort_keys=True)


def _record(journal, ns, entries, first_seq=1):
    """Journal then apply each entry, as the master does."""
    for seq, entry in enumerate(entries, first_seq):
        record = Record(seq, 1, entry)
        journal.append([record])
        ns.apply(record)


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
    assert [r.seq for r in journal.read_tail(4)] == [5, 6]
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


def test_an_old_data_directory_replays(tmp_path):
    (tmp_path / "journal.jsonl").write_text("".join(line + "\n" for line in OLD_LINES))
    journal = Journal(str(tmp_path))
    ns = journal.load()
    assert ns.seq == 12 and ns.users["admin"].admin
    assert (tmp_path / "journal.jsonl").read_text().splitlines() == OLD_LINES  # untouched

"""Services in-process: a real MasterService over a real MasterState (journal in a tmp
dir), driven through its exposed methods, no processes, no sockets. The electorate is three
in-process nodes.master.voter.Voter objects, so the master serves on real leases; the
clocks are stepped by hand (tests/master_harness.py)."""

import json
import os

import pytest
from master_harness import in_process_master
from master_harness import login as _login
from master_harness import user as _user

from dfs import auth, errors, wire
from dfs.namespace.inode import ROOT_INO
from dfs.wire import ChunkRef, WrittenChunk
from nodes.master.service import MasterService
from nodes.master.state import MasterState

CHUNK = 65536


@pytest.fixture
def master(tmp_path):
    with in_process_master(tmp_path, chunk_size=CHUNK, trash_seconds=60.0) as running:
        yield running


def test_login_needs_the_key_and_registration_the_token(master):
    state, _clock, _wall = master
    service = MasterService(state)
    with pytest.raises(errors.AuthenticationFailed):
        service.exposed_stat("/")  # not logged in
    with pytest.raises(errors.AuthenticationFailed):
        service.exposed_register("eve", "wrong")
    key = service.exposed_register("alice", state.join_token)
    nonce, _role, _epoch = service.exposed_hello()
    with pytest.raises(errors.AuthenticationFailed):
        service.exposed_login("alice", b"n", auth.make_proof(auth.new_key(), "alice", nonce, b"n"))
    with pytest.raises(errors.AuthenticationFailed):
        service.exposed_login("alice", b"n", b"x")  # a nonce serves one attempt only
    alice = _login(state, "alice", key)
    assert wire.stat_from_wire(alice.exposed_stat("/")).ino == 1
    with pytest.raises(errors.FileExists):
        MasterService(state).exposed_register("alice", state.join_token)


def test_namespace_ops_end_to_end(master):
    state, _clock, _wall = master
    alice, bob = _user(state, "alice"), _user(state, "bob")
    made = wire.stat_from_wire(alice.exposed_mkdir("/a", 0o755))
    assert (made.kind, made.mode, made.owner) == ("d", 0o755, "alice")
    alice.exposed_create("/a/f", 0o600)
    alice.exposed_symlink("/a/l", "f")
    assert alice.exposed_readlink("/a/l") == "f"
    alice.exposed_link("/a/f", "/a/h")
    assert wire.stat_from_wire(alice.exposed_stat("/a/h")).nlink == 2
    alice.exposed_rename("/a/h", "/a/g")
    names = [d.name for d in wire.entries_from_wire(alice.exposed_listdir("/a"))]
    assert names == ["f", "g", "l"]
    # POSIX: /a is 0755, so bob sees every name in it, and reads none of her 0600 files
    assert [d.name for d in wire.entries_from_wire(bob.exposed_listdir("/a"))] == names
    with pytest.raises(errors.PermissionDenied):
        bob.exposed_layout("/a/f")  # alice's private file
    alice.exposed_setattr("/a", mode=0o700)
    with pytest.raises(errors.PermissionDenied):
        bob.exposed_stat("/a/f")  # a private folder: nothing in it is seen
    alice.exposed_setattr("/a", mode=0o755)
    with pytest.raises(errors.NotPermitted):
        bob.exposed_setattr("/a", mode=0o777)
    stat = wire.stat_from_wire(alice.exposed_setattr("/a/f", mode=0o644, mtime_ns=5))
    assert (stat.mode, stat.mtime_ns) == (0o644, 5)
    alice.exposed_unlink("/a/g")
    alice.exposed_unlink("/a/f")  # the last link: to the trash
    with pytest.raises(errors.DirectoryNotEmpty):
        alice.exposed_rmdir("/a")
    with pytest.raises(errors.InvalidArgument):
        alice.exposed_mkdir("/x", "0755")  # wrong type: refused, nothing changes
    with pytest.raises(errors.InvalidPath):
        alice.exposed_stat(b"/a")


def test_a_retried_request_is_answered_and_not_done_twice(master):
    state, _clock, _wall = master
    alice = _user(state, "alice")
    first = alice.exposed_mkdir("/d", 0o700, "rid-1")
    seq = state.ns.seq
    assert alice.exposed_mkdir("/d", 0o700, "rid-1") == first  # no FileExists: the answer
    alice.exposed_rename("/d", "/e", "rid-2")
    alice.exposed_rename("/d", "/e", "rid-2")  # the source is gone: still just answered
    assert state.ns.seq == seq + 1
    with pytest.raises(errors.InvalidArgument):
        alice.exposed_unlink("/e", 7)  # a request id is a string


def test_trash_list_restore_and_empty(master):
    state, _clock, wall = master
    alice = _user(state, "alice")
    alice.exposed_mkdir("/d", 0o755)
    alice.exposed_create("/d/f", 0o600)
    alice.exposed_unlink("/d/f")
    alice.exposed_rmdir("/d")
    ((tid, path, size, deleted_at, expires),) = alice.exposed_trash_page()[0]
    assert (path, size, deleted_at, expires) == ("/d/f", 0, wall.now, wall.now + 60)
    stat = wire.stat_from_wire(alice.exposed_trash_restore("/d/f"))
    assert stat.ino == int(tid) and alice.exposed_trash_page()[0] == ()
    assert wire.stat_from_wire(alice.exposed_stat("/d")).mode == 0o700  # made again
    alice.exposed_unlink("/d/f")
    assert alice.exposed_trash_empty() == 1 and alice.exposed_trash_empty() == 0


def test_write_through_allocate_put_commit_and_read_the_layout(master):
    state, _clock, _wall = master
    alice, bob = _user(state, "alice"), _user(state, "bob")
    targets = wire.targets_from_wire(alice.exposed_allocate("/f", 2))
    assert [t.chunk_id for t in targets] == [1, 2] and targets[0].replicas[0].worker_id == "w1"
    written = [WrittenChunk(ChunkRef(1, 1, CHUNK, 7, 0), (("w1", "chunks"),)),
               WrittenChunk(ChunkRef(2, 1, 10, 8, 1), (("w1", "chunks"),))]
    with pytest.raises(errors.InvalidArgument):
        bob.exposed_put("/g", 0o600, wire.written_to_wire(written), CHUNK + 10)  # not bob's
    stat, under = alice.exposed_put("/f", 0o600, wire.written_to_wire(written), CHUNK + 10)
    assert wire.stat_from_wire(stat).size == CHUNK + 10 and under == 0
    layout = wire.layout_from_wire(alice.exposed_layout("/f"))
    assert [c.ref.chunk_id for c in layout.chunks] == [1, 2]
    assert layout.chunks[0].replicas[0].worker_id == "w1" and layout.chunk_size == CHUNK
    with pytest.raises(errors.PermissionDenied):
        bob.exposed_layout("/f")
    ino = wire.stat_from_wire(stat).ino
    stat, _under = alice.exposed_commit(ino, wire.written_to_wire(written[:1]), CHUNK, 42)
    assert (wire.stat_from_wire(stat).size, wire.stat_from_wire(stat).mtime_ns) == (CHUNK, 42)
    (t3,) = wire.targets_from_wire(alice.exposed_allocate("/f", 1))
    alice.exposed_abandon((t3.chunk_id,))
    assert t3.chunk_id not in state.ns.pending
    with pytest.raises(errors.InvalidArgument):
        alice.exposed_allocate("/f", 0)


def test_admin_manages_users(master):
    state, _clock, _wall = master
    admin_key = auth.read_auth_file(os.path.join(state.config.data_dir, "admin-auth.txt"))[2]
    admin = _login(state, "admin", admin_key, admin=True)
    alice = _user(state, "alice")
    with pytest.raises(errors.NotPermitted):
        alice.exposed_users_list()
    key = admin.exposed_users_add("carol", True)
    assert [u[:2] for u in admin.exposed_users_list()] == [("admin", True), ("alice", False),
                                                           ("carol", True)]
    with pytest.raises(errors.InvalidArgument):
        admin.exposed_users_revoke("admin")
    admin.exposed_users_revoke("alice")
    with pytest.raises(errors.AuthenticationFailed):
        alice.exposed_stat("/")  # a revoked key's sessions are dead too
    assert _login(state, "carol", key, admin=True).exposed_users_list()[0][:2] == ("admin", True)
    assert admin.exposed_Auth_Host("dave", token=state.join_token)[0] == "registered"


def test_the_journal_replays_to_the_served_state(master, tmp_path):
    state, _clock, _wall = master
    alice = _user(state, "alice")
    alice.exposed_mkdir("/d", 0o755, "r")
    alice.exposed_create("/d/f", 0o644)
    alice.exposed_rename("/d/f", "/d/g")
    alice.exposed_unlink("/d/g")
    served = json.dumps(state.ns.to_json(), sort_keys=True)
    state.journal.close()
    again = MasterState(state.config)
    assert json.dumps(again.ns.to_json(), sort_keys=True) == served
    again.snapshot_and_close()


def test_a_new_cluster_is_the_admins_with_a_home_per_user(master):
    """(The fixture made the root 1777 afterwards; here a fresh namespace's.)"""
    state, _clock, _wall = master
    from dfs.namespace.model import Namespace
    fresh = Namespace()
    fresh.initialise(CHUNK, 1)
    assert (fresh.inodes[ROOT_INO].uid, fresh.inodes[ROOT_INO].mode) == (0, 0o755)
    alice, bob = _user(state, "alice"), _user(state, "bob")
    homes = wire.stat_from_wire(alice.exposed_stat("/home"))
    assert (homes.uid, homes.mode) == (0, 0o755)
    mine = wire.stat_from_wire(alice.exposed_stat("/home/alice"))
    users = {"alice": wire.usage_from_wire(alice.exposed_usage())}
    assert (mine.uid, mine.gid, mine.mode, mine.owner) == (users["alice"].uid,
                                                           users["alice"].gid, 0o700, "alice")
    assert users["alice"].uid >= 10000  # chosen by the master: not a local account's
    with pytest.raises(errors.PermissionDenied):
        bob.exposed_listdir("/home/alice")
    with pytest.raises(errors.PermissionDenied):
        bob.exposed_create("/home/alice/planted", 0o644)
    wire.stat_from_wire(alice.exposed_create("/home/alice/notes", 0o644))

"""Extended attributes at the master's boundary, in-process (tests/t2_master.py's real
MasterService on a real MasterState): the four endpoints end to end, a retried setxattr
answered instead of done twice, hostile types and sizes refused with a clear error before
the lock and changing nothing, and the attributes kept by a restart from the snapshot."""

import json
import os

import pytest
from t2_master import _user, master  # noqa: F401 (master is a fixture)

from dfs import errors, wire
from dfs.namespace.model import Namespace
from nodes.master.state import MasterState


def test_get_list_set_remove_end_to_end(master):  # noqa: F811
    state, _clock, _wall = master
    alice, bob = _user(state, "alice"), _user(state, "bob")
    before = wire.stat_from_wire(alice.exposed_create("/f", 0o644))
    st = wire.stat_from_wire(alice.exposed_setxattr("/f", "user.tag", b"\x00\xffblue"))
    assert st.ino == before.ino and st.xattrs == wire.XATTR_USER
    assert st.ctime_ns >= before.ctime_ns
    assert bob.exposed_getxattr("/f", "user.tag") == b"\x00\xffblue"  # 0644: bob reads
    assert bob.exposed_listxattr("/f") == ("user.tag",)
    with pytest.raises(errors.PermissionDenied):
        bob.exposed_setxattr("/f", "user.tag", b"red")
    with pytest.raises(errors.NotPermitted):
        alice.exposed_setxattr("/f", "trusted.x", b"1")
    with pytest.raises(errors.FileExists):
        alice.exposed_setxattr("/f", "user.tag", b"x", os.XATTR_CREATE)
    with pytest.raises(errors.NoAttribute):
        alice.exposed_setxattr("/f", "user.other", b"x", os.XATTR_REPLACE)
    st = wire.stat_from_wire(alice.exposed_removexattr("/f", "user.tag"))
    assert st.xattrs == 0 and alice.exposed_listxattr("/f") == ()
    with pytest.raises(errors.NoAttribute):
        alice.exposed_getxattr("/f", "user.tag")


def test_a_retried_request_is_answered_not_done_twice(master):  # noqa: F811
    state, _clock, _wall = master
    alice = _user(state, "alice")
    alice.exposed_create("/f", 0o644)
    first = alice.exposed_setxattr("/f", "user.once", b"1", os.XATTR_CREATE, "rid-1")
    seq = state.ns.seq
    again = alice.exposed_setxattr("/f", "user.once", b"1", os.XATTR_CREATE, "rid-1")
    assert again == first and state.ns.seq == seq  # no EEXIST: the first try's answer
    alice.exposed_removexattr("/f", "user.once", "rid-2")
    alice.exposed_removexattr("/f", "user.once", "rid-2")  # no ENODATA
    with pytest.raises(errors.NoAttribute):
        alice.exposed_removexattr("/f", "user.once", "rid-3")


@pytest.mark.parametrize("args, error", [
    (("/f", b"user.a", b"v"), errors.InvalidArgument),  # a name must be a str
    (("/f", "user.a", "v"), errors.InvalidArgument),  # a value must be bytes
    (("/f", "user.a", bytearray(b"v")), errors.InvalidArgument),
    (("/f", "user.a", b"v", True), errors.InvalidArgument),  # flags: an int, known bits
    (("/f", "user.a", b"v", 8), errors.InvalidArgument),
    (("/f", "user.a", b"v", 0, 7), errors.InvalidArgument),  # a request id: str or None
    (("/f", "user." + "n" * 251, b"v"), errors.OutOfRange),
    (("/f", "", b"v"), errors.OutOfRange),
    (("/f", "user.a", b"v" * 65537), errors.TooBig),
    (("/f", "system.posix_acl_access", b"\x02\x00\x00\x00"), errors.NotSupported),
    ((b"/f", "user.a", b"v"), errors.InvalidPath),
    (("/missing", "user.a", b"v"), errors.FileNotFound),
])
def test_hostile_arguments_are_refused_and_change_nothing(master, args, error):  # noqa: F811
    state, _clock, _wall = master
    alice = _user(state, "alice")
    alice.exposed_create("/f", 0o644)
    seq = state.ns.seq
    with pytest.raises(error):
        alice.exposed_setxattr(*args)
    assert state.ns.seq == seq and state.ns.resolve("/f").xattrs == {}


@pytest.mark.parametrize("call, args, error", [
    ("getxattr", ("/f", 5), errors.InvalidArgument),
    ("getxattr", ("/f", "x" * 300), errors.OutOfRange),
    ("getxattr", ("/f", "foo.bar"), errors.NotSupported),
    ("getxattr", (None, "user.a"), errors.InvalidPath),
    ("listxattr", (["/f"],), errors.InvalidArgument),  # not plain data: the boundary
    ("removexattr", ("/f", "user.a", 3), errors.InvalidArgument),
    ("removexattr", ("/f", "user."), errors.InvalidArgument),
    ("removexattr", ("/f", "user.a"), errors.NoAttribute),
])
def test_hostile_reads_and_removals_get_one_clear_error(master, call, args, error):  # noqa: F811
    state, _clock, _wall = master
    alice = _user(state, "alice")
    alice.exposed_create("/f", 0o644)
    seq = state.ns.seq
    with pytest.raises(error):
        getattr(alice, f"exposed_{call}")(*args)
    assert state.ns.seq == seq


def test_an_inode_full_of_attributes_is_enospc_and_they_survive_replay_and_snapshot(master):  # noqa: F811
    state, _clock, _wall = master
    alice = _user(state, "alice")
    alice.exposed_mkdir("/d", 0o755)
    alice.exposed_create("/d/f", 0o644)
    alice.exposed_link("/d/f", "/d/g")
    for i in range(3):
        alice.exposed_setxattr("/d/f", f"user.{i}", bytes([i]) * 20000)
    with pytest.raises(errors.NoSpace):
        alice.exposed_setxattr("/d/g", "user.3", b"x" * 6000)  # the same inode: full
    alice.exposed_setxattr("/d", "user.dir", b"yes")
    alice.exposed_removexattr("/d/g", "user.1")
    served = json.dumps(state.ns.to_json(), sort_keys=True)
    state.journal.close()
    replayed = MasterState(state.config)  # the journal alone
    assert json.dumps(replayed.ns.to_json(), sort_keys=True) == served
    replayed.snapshot_and_close()
    loaded = MasterState(state.config)  # the snapshot
    try:
        ns: Namespace = loaded.ns
        assert ns.resolve("/d/g").xattrs == {"user.0": bytes(20000), "user.2": b"\x02" * 20000}
        assert ns.resolve("/d").xattrs == {"user.dir": b"yes"}
        assert json.dumps(ns.to_json(), sort_keys=True) == served
    finally:
        loaded.snapshot_and_close()

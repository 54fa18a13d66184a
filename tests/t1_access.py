"""Pure units: the POSIX access decisions (dfs/namespace/access.py), as tables of cases:
caller, owner, group, mode, what is wanted, expected answer (each as ext4 answers it)."""

import pytest

from dfs.namespace.access import (
    Cred,
    Owned,
    R,
    W,
    X,
    chmod_mode,
    chown_allowed,
    may_drop_set_id,
    may_unlink_in_sticky,
    mode_after_chown,
    mode_after_write,
    new_inode_group,
    new_inode_mode,
    permitted,
    times_allowed,
)

ROOT = Cred(0, 0)
ALICE = Cred(1000, 1000, frozenset({50}))  # in group 50 ("staff") too
BOB = Cred(1001, 1001)
CAROL = Cred(1002, 50)  # staff is her primary group


def file(uid=1000, gid=1000, mode=0o640):
    return Owned(uid, gid, mode, is_dir=False)


def folder(uid=1000, gid=1000, mode=0o755):
    return Owned(uid, gid, mode, is_dir=True)


@pytest.mark.parametrize("cred, node, want, allowed", [
    (ALICE, file(mode=0o600), R | W, True),  # owner bits
    (ALICE, file(mode=0o077), R, False),  # the owner class decides, even if others may
    (BOB, file(mode=0o604), R, True),  # other bits
    (BOB, file(mode=0o640), R, False),
    (CAROL, file(gid=50, mode=0o640), R, True),  # primary group
    (CAROL, file(gid=50, mode=0o604), R, False),  # the group class decides, not other
    (ALICE, file(uid=1001, gid=50, mode=0o060), R | W, True),  # supplementary group
    (ALICE, file(uid=1001, gid=50, mode=0o040), W, False),
    (BOB, file(mode=0o777), R | W | X, True),
    (ROOT, file(mode=0o000), R | W, True),  # the superuser reads and writes anything
    (ROOT, file(mode=0o000), X, False),  # but executes only what has some x bit
    (ROOT, file(mode=0o001), X, True),
    (ROOT, folder(mode=0o000), X, True),  # and searches every directory
    (BOB, folder(mode=0o751), X, True),
    (BOB, folder(mode=0o750), X, False),
    (BOB, folder(mode=0o753), W | X, True),
])
def test_permission_classes(cred, node, want, allowed):
    assert permitted(cred, node, want) is allowed


@pytest.mark.parametrize("cred, directory, entry, allowed", [
    (BOB, folder(uid=0, mode=0o1777), file(uid=1000), False),  # someone else's, sticky
    (ALICE, folder(uid=0, mode=0o1777), file(uid=1000), True),  # her own entry
    (BOB, folder(uid=1001, mode=0o1777), file(uid=1000), True),  # his directory
    (ROOT, folder(uid=1001, mode=0o1777), file(uid=1000), True),
    (BOB, folder(uid=0, mode=0o0777), file(uid=1000), True),  # not sticky
])
def test_sticky_directories(cred, directory, entry, allowed):
    assert may_unlink_in_sticky(cred, directory, entry) is allowed


@pytest.mark.parametrize("cred, node, uid, gid, allowed", [
    (ROOT, file(), 1001, 1001, True),
    (ALICE, file(), 1001, None, False),  # giving a file away: superuser only
    (ALICE, file(), 1000, None, True),  # "changing" to the same owner
    (ALICE, file(), None, 50, True),  # to a group she is in
    (ALICE, file(), None, 1001, False),  # to a group she is not in
    (BOB, file(), None, 1001, False),  # not the owner: no group change either
    (BOB, file(), None, None, True),  # chown(-1, -1) is allowed to anyone
])
def test_chown_rules(cred, node, uid, gid, allowed):
    assert chown_allowed(cred, node, uid, gid) is allowed


@pytest.mark.parametrize("cred, node, after", [
    (BOB, file(mode=0o6755), 0o0755),  # set-uid and (group-executable) set-gid cleared
    (ALICE, file(mode=0o6745), 0o2745),  # set-gid without group x kept for a member
    (BOB, file(mode=0o6745), 0o0745),  # but not for one outside the group (Linux 6)
    (ROOT, file(mode=0o6745), 0o2745),
    (BOB, folder(mode=0o2755), 0o2755),  # directories keep theirs
])
def test_chown_and_write_clear_set_id_bits(cred, node, after):
    assert mode_after_chown(cred, node) == after
    if cred != ROOT:
        assert mode_after_write(cred, node) == after
    assert mode_after_write(ROOT, node) == node.mode  # the superuser's write keeps them
    assert mode_after_chown(ROOT, file(mode=0o6755)) == 0o755  # a chown by root clears too


def test_chmod_of_set_gid_outside_the_group_is_dropped():
    assert chmod_mode(ALICE, file(gid=1001), 0o2755) == 0o0755
    assert chmod_mode(ALICE, file(gid=50), 0o2755) == 0o2755
    assert chmod_mode(ALICE, folder(gid=1001), 0o2755) == 0o0755  # a directory's too
    assert chmod_mode(ROOT, file(gid=1001), 0o102755) == 0o2755  # type bits never stored


@pytest.mark.parametrize("cred, node, mode, allowed", [
    (BOB, file(mode=0o6777), 0o0777, True),  # FUSE's "kill privileges" before BOB's write
    (BOB, file(mode=0o6767), 0o2767, True),  # the kernel's own older rule: set-uid only
    (BOB, file(mode=0o6767), 0o0767, True),  # BOB is not in the group: set-gid goes too
    (CAROL, file(gid=50, mode=0o6767), 0o0767, False),  # a member's write keeps set-gid
    (BOB, file(mode=0o6777), 0o0775, False),  # any other change: only the owner
    (BOB, file(mode=0o4777), 0o6777, False),  # adding a bit: only the owner
    (BOB, file(mode=0o6755), 0o0755, False),  # BOB may not write it
    (BOB, file(mode=0o0777), 0o0777, False),  # nothing to clear: an ordinary chmod
    (ROOT, file(mode=0o6777), 0o0777, False),  # the superuser's write keeps them
])
def test_a_writer_may_only_drop_what_a_write_drops(cred, node, mode, allowed):
    assert may_drop_set_id(cred, node, mode) is allowed


@pytest.mark.parametrize("cred, node, to_now, allowed", [
    (ALICE, file(mode=0o400), False, True),  # the owner sets any time
    (BOB, file(mode=0o666), True, True),  # "touch": write permission is enough for now
    (BOB, file(mode=0o666), False, False),  # but not for an explicit time
    (BOB, file(mode=0o644), True, False),
    (ROOT, file(mode=0o000), False, True),
])
def test_utimens_rules(cred, node, to_now, allowed):
    assert times_allowed(cred, node, to_now) is allowed


def test_new_inodes_in_set_gid_directories_take_the_group_and_pass_it_on():
    shared = folder(uid=0, gid=50, mode=0o2775)
    assert new_inode_group(BOB, shared) == 50
    assert new_inode_group(BOB, folder()) == 1001
    assert new_inode_mode(BOB, shared, 0o755, is_dir=True, gid=50) == 0o2755
    assert new_inode_mode(BOB, folder(), 0o755, is_dir=True, gid=1001) == 0o755
    assert new_inode_mode(BOB, shared, 0o2755, is_dir=False, gid=50) == 0o0755  # not in 50
    assert new_inode_mode(CAROL, shared, 0o2755, is_dir=False, gid=50) == 0o2755
    assert new_inode_mode(BOB, shared, 0o2745, is_dir=False, gid=50) == 0o2745  # no group x
    assert new_inode_mode(BOB, folder(), 0o7755, is_dir=True, gid=1001) == 0o1755  # mkdir(2)
    assert new_inode_mode(BOB, shared, 0o5755, is_dir=True, gid=50) == 0o3755

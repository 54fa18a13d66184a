"""Pure units: the file-system rules of the tree, the trash and request ids
(dfs/namespace/rules.py, rules_trash.py) on a namespace in memory. Data and users:
tests/t1_rules_data.py.

Each rule returns the entry the master would commit, or raises; ``Fs.do`` applies an
entry as the master does (with the next sequence number), so a test can go on from it."""

import pytest

from dfs import errors
from dfs.namespace import rules, rules_data, rules_trash
from dfs.namespace.access import Cred
from dfs.namespace.entries import (
    AddUser,
    Init,
    Mkdir,
    Record,
    Restore,
    SetAttr,
    TrashInfo,
    Unlink,
)
from dfs.namespace.inode import ROOT_INO
from dfs.namespace.model import Namespace
from dfs.wire import ChunkRef

T = 1_000
CHUNK = 1024
WALL = 1_700_000_000.0
# who acts: the admin's key is the superuser; alice and bob are users with their own groups
ADMIN = Cred(0, 0, name="admin")
ALICE = Cred(10001, 10001, name="alice")
BOB = Cred(10002, 10002, name="bob")


class Fs:
    """A namespace with an admin, alice and bob, changed only through rules + apply. Its
    root is made 1777 (a shared sticky folder, as /tmp) so tests may create in it; a real
    cluster's root is the admin's, 0755 (tested apart)."""

    def __init__(self):
        self.ns = Namespace()
        self.seq = 0
        self.do(Init(CHUNK, T))
        for serial, who in enumerate((ADMIN, ALICE, BOB), 1):
            self.do(AddUser(who.name, who is ADMIN, "00", serial, who.uid, who.gid))
        self.do(SetAttr(ROOT_INO, T, mode=0o1777))

    def do(self, entry):
        self.seq += 1
        return self.ns.apply(Record(self.seq, 1, entry))

    def mkdir(self, user, path, mode=0o755):
        self.do(rules.mkdir(self.ns, user, path, mode, T))
        return self.ns.resolve(path)

    def create(self, user, path, mode=0o644):
        self.do(rules.create(self.ns, user, path, mode, T))
        return self.ns.resolve(path)

    def rename(self, user, src, dst):
        return self.do(rules.rename(self.ns, user, src, dst, T))

    def remove(self, user, path, want_dir=False, trash_seconds=0.0):
        return self.do(rules.remove(self.ns, user, path, want_dir, T, WALL, trash_seconds))


@pytest.fixture
def fs():
    return Fs()


# --- making names -----------------------------------------------------------------------------

def test_new_entries_get_the_next_inode_and_a_taken_name_is_refused(fs):
    entry = rules.mkdir(fs.ns, ALICE, "/d", 0o40755, T)
    assert entry == Mkdir(1, "d", fs.ns.next_ino, ALICE.uid, ALICE.gid, 0o755, T)  # no type
    fs.do(entry)
    with pytest.raises(errors.FileExists):
        rules.create(fs.ns, BOB, "/d", 0o644, T)
    with pytest.raises(errors.FileNotFound):
        rules.create(fs.ns, ALICE, "/missing/f", 0o644, T)
    with pytest.raises(errors.InvalidPath):
        rules.mkdir(fs.ns, ALICE, "/", 0o755, T)


@pytest.mark.parametrize("target", ["", "a\0b", "x" * 4097])
def test_bad_symlink_targets_are_refused(target):
    with pytest.raises(errors.InvalidArgument):
        rules.check_symlink_target(target)


def test_symlinks_and_readlink(fs):
    fs.do(rules.symlink(fs.ns, ALICE, "/l", "some/where", T))
    assert rules.readlink(fs.ns, BOB, "/l") == "some/where"
    fs.create(ALICE, "/f")
    with pytest.raises(errors.InvalidArgument):
        rules.readlink(fs.ns, ALICE, "/f")


# --- permissions and visibility ----------------------------------------------------------------

def test_every_directory_on_the_path_must_be_searchable(fs):
    fs.mkdir(ALICE, "/home", 0o700)
    fs.create(ALICE, "/home/x", 0o644)
    assert rules.stat_target(fs.ns, ALICE, "/home/x").kind == "f"
    assert rules.stat_target(fs.ns, ADMIN, "/home/x").kind == "f"  # admins pass everywhere
    for rule in (lambda: rules.stat_target(fs.ns, BOB, "/home/x"),
                 lambda: rules.create(fs.ns, BOB, "/home/y", 0o644, T),
                 lambda: rules.remove(fs.ns, BOB, "/home/x", False, T, WALL, 0)):
        with pytest.raises(errors.PermissionDenied):
            rule()


def test_creating_needs_write_on_the_parent_and_listing_needs_read(fs):
    fs.mkdir(ALICE, "/pub", 0o755)
    with pytest.raises(errors.PermissionDenied):
        rules.mkdir(fs.ns, BOB, "/pub/mine", 0o755, T)
    assert rules.listable(fs.ns, BOB, "/pub").ino == fs.ns.resolve("/pub").ino
    fs.mkdir(ALICE, "/box", 0o711)  # searchable, not readable
    with pytest.raises(errors.PermissionDenied):
        rules.listable(fs.ns, BOB, "/box")
    fs.create(ALICE, "/pub/f")
    with pytest.raises(errors.NotADirectory):
        rules.listable(fs.ns, ALICE, "/pub/f")


def test_privacy_is_the_mode_of_the_folder_as_in_posix(fs):
    fs.mkdir(ALICE, "/home", 0o700)
    fs.create(ALICE, "/home/secret", 0o644)
    fs.create(ALICE, "/open", 0o600)
    with pytest.raises(errors.PermissionDenied):  # a private folder: nothing in it is seen
        rules.stat_target(fs.ns, BOB, "/home/secret")
    with pytest.raises(errors.PermissionDenied):
        rules.listable(fs.ns, BOB, "/home")
    with pytest.raises(errors.NotPermitted):  # the root is sticky: not his to remove
        rules.remove(fs.ns, BOB, "/open", False, T, WALL, 0)
    assert rules.stat_target(fs.ns, BOB, "/open").mode == 0o600  # a name is seen, not read
    with pytest.raises(errors.PermissionDenied):
        rules_data.readable(fs.ns, BOB, "/open")
    root = rules.listable(fs.ns, BOB, "/")
    assert [d.name for d in fs.ns.listdir(root)] == ["home", "open"]
    assert rules.stat_target(fs.ns, ADMIN, "/home/secret")  # the superuser sees everything


def test_chmod_is_for_the_owner_and_chown_for_the_superuser(fs):
    fs.create(ALICE, "/f", 0o666)
    with pytest.raises(errors.NotPermitted):
        rules.set_attributes(fs.ns, BOB, "/f", T, mode=0o777)
    fs.do(rules.set_attributes(fs.ns, ALICE, "/f", T + 1, mode=0o100640))
    inode = fs.ns.resolve("/f")
    assert (inode.mode, inode.ctime_ns) == (0o640, T + 1)
    with pytest.raises(errors.NotPermitted):
        rules.set_attributes(fs.ns, ALICE, "/f", T, uid=BOB.uid)
    rules.set_attributes(fs.ns, ALICE, "/f", T, uid=ALICE.uid)  # to oneself: allowed
    with pytest.raises(errors.NotPermitted):  # not one of her groups
        rules.set_attributes(fs.ns, ALICE, "/f", T, gid=BOB.gid)
    with pytest.raises(errors.InvalidArgument):
        rules.set_attributes(fs.ns, ADMIN, "/f", T, uid=1 << 32)
    fs.do(rules.set_attributes(fs.ns, ADMIN, "/f", T, uid=BOB.uid, gid=4242))
    assert (fs.ns.resolve("/f").uid, fs.ns.resolve("/f").gid) == (BOB.uid, 4242)


def test_chown_clears_set_id_bits_and_chmod_outside_the_group_drops_set_gid(fs):
    fs.create(ALICE, "/tool", 0o755)
    fs.do(rules.set_attributes(fs.ns, ALICE, "/tool", T, mode=0o6755))
    assert fs.ns.resolve("/tool").mode == 0o6755  # her file, her group
    fs.do(rules.set_attributes(fs.ns, ADMIN, "/tool", T, uid=BOB.uid))
    assert fs.ns.resolve("/tool").mode == 0o755
    fs.do(rules.set_attributes(fs.ns, ADMIN, "/tool", T, gid=ALICE.gid))
    fs.do(rules.set_attributes(fs.ns, BOB, "/tool", T, mode=0o2755))  # bob is not in it
    assert fs.ns.resolve("/tool").mode == 0o755


def test_a_writer_may_drop_the_set_id_bits_a_write_drops_and_nothing_else(fs):
    # FUSE sends a chmod as the writer before a non-owner's write or truncate of a
    # set-id file (the kernel's "kill privileges"): allowed, as that write clears them
    fs.create(ALICE, "/tool", 0o777)
    fs.do(rules.set_attributes(fs.ns, ALICE, "/tool", T, mode=0o6777))
    for mode in (0o6775, 0o755, 0o6777, 0o7777):
        with pytest.raises(errors.NotPermitted):
            rules.set_attributes(fs.ns, BOB, "/tool", T, mode=mode)
    fs.do(rules.set_attributes(fs.ns, BOB, "/tool", T + 3, mode=0o777))
    tool = fs.ns.resolve("/tool")
    assert (tool.mode, tool.uid, tool.ctime_ns) == (0o777, ALICE.uid, T + 3)
    fs.create(ALICE, "/private", 0o755)
    fs.do(rules.set_attributes(fs.ns, ALICE, "/private", T, mode=0o6755))
    with pytest.raises(errors.NotPermitted):  # bob may not write it
        rules.set_attributes(fs.ns, BOB, "/private", T, mode=0o755)


def test_setting_times_to_now_needs_write_permission_and_explicit_times_ownership(fs):
    fs.create(ALICE, "/f", 0o644)
    with pytest.raises(errors.PermissionDenied):
        rules.set_attributes(fs.ns, BOB, "/f", T, to_now=True)
    fs.create(ALICE, "/g", 0o646)
    with pytest.raises(errors.NotPermitted):
        rules.set_attributes(fs.ns, BOB, "/g", T, atime_ns=4, mtime_ns=5)
    fs.do(rules.set_attributes(fs.ns, BOB, "/g", T + 7, to_now=True))
    fs.do(rules.set_attributes(fs.ns, ALICE, "/f", T, atime_ns=4, mtime_ns=5))
    f, g = fs.ns.resolve("/f"), fs.ns.resolve("/g")
    assert (f.atime_ns, f.mtime_ns, f.uid) == (4, 5, ALICE.uid)
    assert (g.atime_ns, g.mtime_ns, g.ctime_ns) == (T + 7, T + 7, T + 7)


# --- removing, the sticky rule ------------------------------------------------------------------

def test_remove_checks_the_kind_and_emptiness(fs):
    fs.mkdir(ALICE, "/d")
    fs.create(ALICE, "/d/f")
    with pytest.raises(errors.IsADirectory):
        fs.remove(ALICE, "/d")
    with pytest.raises(errors.NotADirectory):
        fs.remove(ALICE, "/d/f", want_dir=True)
    with pytest.raises(errors.DirectoryNotEmpty):
        fs.remove(ALICE, "/d", want_dir=True)
    with pytest.raises(errors.FileNotFound):
        fs.remove(ALICE, "/d/nothing")
    fs.remove(ALICE, "/d/f")
    fs.remove(ALICE, "/d", want_dir=True)
    assert "d" not in fs.ns.resolve("/").children


def test_in_a_sticky_directory_only_owners_remove_or_replace(fs):
    fs.create(ALICE, "/a", 0o666)  # the root is 1777
    fs.create(BOB, "/b", 0o666)
    for rule in (lambda: rules.remove(fs.ns, BOB, "/a", False, T, WALL, 0),
                 lambda: rules.rename(fs.ns, BOB, "/a", "/c", T),
                 lambda: rules.rename(fs.ns, BOB, "/b", "/a", T)):
        with pytest.raises(errors.NotPermitted):  # EPERM, as Linux answers
            rule()
    fs.mkdir(ALICE, "/open", 0o777)  # not sticky: anyone with w+x removes
    fs.create(ALICE, "/open/f", 0o644)
    fs.remove(BOB, "/open/f")
    fs.remove(ADMIN, "/a")
    fs.remove(BOB, "/b")
    assert set(fs.ns.resolve("/").children) == {"open"}


# --- rename ---------------------------------------------------------------------------------

def test_a_directory_cannot_move_inside_itself(fs):
    fs.mkdir(ALICE, "/a")
    fs.mkdir(ALICE, "/a/b")
    for dst in ("/a/b/c", "/a/c"):
        with pytest.raises(errors.InvalidArgument, match="inside itself"):
            rules.rename(fs.ns, ALICE, "/a", dst, T)
    fs.rename(ALICE, "/a", "/ab")  # a name that only starts the same is fine
    assert fs.ns.resolve("/ab/b").kind == "d"


def test_rename_replaces_a_file_by_a_file_and_frees_its_chunks(fs):
    fs.do(rules_data.alloc(fs.ns, ALICE, 1, WALL, 60))
    fs.do(rules_data.put(fs.ns, ALICE, "/old", 0o644, [ChunkRef(1, 1, 10, 0, 0)], 10, True, T))
    fs.create(ALICE, "/new")
    assert fs.rename(ALICE, "/new", "/old") == [1]
    assert set(fs.ns.resolve("/").children) == {"old"} and fs.ns.resolve("/old").size == 0


def test_rename_replaces_an_empty_directory_by_a_directory_only(fs):
    for path in ("/d", "/empty", "/full", "/full/x"):
        fs.mkdir(ALICE, path)
    fs.create(ALICE, "/f")
    with pytest.raises(errors.DirectoryNotEmpty):
        rules.rename(fs.ns, ALICE, "/d", "/full", T)
    with pytest.raises(errors.IsADirectory):
        rules.rename(fs.ns, ALICE, "/f", "/empty", T)
    with pytest.raises(errors.NotADirectory):
        rules.rename(fs.ns, ALICE, "/d", "/f", T)
    root_links = fs.ns.resolve("/").nlink
    fs.rename(ALICE, "/d", "/empty")
    assert set(fs.ns.resolve("/").children) == {"empty", "full", "f"}
    assert fs.ns.resolve("/").nlink == root_links - 1  # one subdirectory fewer


def test_renaming_onto_itself_or_a_missing_source(fs):
    fs.create(ALICE, "/f")
    assert rules.rename(fs.ns, ALICE, "/f", "/f", T) is None  # nothing to change
    fs.do(rules.link(fs.ns, ALICE, "/f", "/g", T))
    assert rules.rename(fs.ns, ALICE, "/f", "/g", T) is None  # two names of one inode: both stay
    assert fs.ns.resolve("/f").nlink == 2 and fs.ns.resolve("/g").ino == fs.ns.resolve("/f").ino
    with pytest.raises(errors.FileNotFound):
        rules.rename(fs.ns, ALICE, "/nothing", "/g", T)


# --- hard links ------------------------------------------------------------------------------

def test_link_counts_through_both_names(fs):
    f = fs.create(ALICE, "/f")
    fs.mkdir(ALICE, "/d")
    fs.do(rules.link(fs.ns, ALICE, "/f", "/d/h", T))
    assert fs.ns.resolve("/d/h") is f and f.nlink == 2
    fs.remove(ALICE, "/f", trash_seconds=60)  # not the last link: no trash
    assert rules.stat_target(fs.ns, ALICE, "/d/h").nlink == 1 and not fs.ns.trash


def test_hard_links_follow_protected_hardlinks(fs):
    fs.mkdir(ALICE, "/d")
    fs.create(BOB, "/bobs", 0o644)
    fs.create(BOB, "/shared", 0o666)
    with pytest.raises(errors.NotPermitted):
        rules.link(fs.ns, ALICE, "/d", "/d2", T)  # never a directory
    with pytest.raises(errors.NotPermitted):  # she may not write it: no pinning his file
        rules.link(fs.ns, ALICE, "/bobs", "/mine", T)
    fs.do(rules.link(fs.ns, ALICE, "/shared", "/mine", T))  # read+write: allowed
    fs.do(rules.set_attributes(fs.ns, BOB, "/shared", T, mode=0o4666))
    with pytest.raises(errors.NotPermitted):  # set-uid: only the owner links it
        rules.link(fs.ns, ALICE, "/shared", "/mine2", T)
    with pytest.raises(errors.FileExists):
        rules.link(fs.ns, BOB, "/bobs", "/d", T)


# --- trash ------------------------------------------------------------------------------

def test_the_last_unlink_of_a_file_goes_to_the_trash(fs):
    fs.mkdir(ALICE, "/d")
    fs.create(ALICE, "/d/f")
    fs.do(rules.symlink(fs.ns, ALICE, "/l", "x", T))
    entry = rules.remove(fs.ns, ALICE, "/d//f", False, T, WALL, 60)
    assert entry.trash == TrashInfo("/d/f", WALL, WALL + 60)
    assert rules.remove(fs.ns, ALICE, "/d/f", False, T, WALL, 0).trash is None  # trash off
    assert rules.remove(fs.ns, ALICE, "/l", False, T, WALL, 60).trash is None  # files only
    fs.do(entry)
    assert [item.path for _tid, item in fs.ns.trash_of(ALICE)] == ["/d/f"]
    assert fs.ns.trash_of(BOB) == []
    assert rules.remove(fs.ns, ALICE, "/d", True, T, WALL, 60).trash is None


def test_restore_makes_the_missing_parents_again(fs):
    fs.mkdir(ALICE, "/a", 0o755)
    fs.mkdir(ALICE, "/a/b", 0o755)
    f = fs.create(ALICE, "/a/b/f")
    fs.remove(ALICE, "/a/b/f", trash_seconds=60)
    fs.remove(ALICE, "/a/b", want_dir=True)
    fs.remove(ALICE, "/a", want_dir=True)
    made, restore = rules_trash.restore(fs.ns, ALICE, "/a/b/f", T)
    first = fs.ns.next_ino
    ids = (ALICE.uid, ALICE.gid)
    assert made == [Mkdir(1, "a", first, *ids, 0o700, T), Mkdir(first, "b", first + 1, *ids,
                                                                 0o700, T)]
    assert restore == Restore(str(f.ino), first + 1, "f", T)
    for entry in [*made, restore]:
        fs.do(entry)
    assert fs.ns.resolve("/a/b/f") is f and f.nlink == 1 and not fs.ns.trash


def test_restore_refuses_a_taken_name_and_what_is_not_in_your_trash(fs):
    fs.create(ALICE, "/g")
    fs.remove(ALICE, "/g", trash_seconds=60)
    fs.create(ALICE, "/g")
    with pytest.raises(errors.FileExists):
        rules_trash.restore(fs.ns, ALICE, "/g", T)
    with pytest.raises(errors.FileNotFound):
        rules_trash.restore(fs.ns, BOB, "/g", T)  # alice's trash is alice's
    with pytest.raises(errors.FileNotFound):
        rules_trash.restore(fs.ns, ALICE, "/other", T)
    with pytest.raises(errors.InvalidPath):
        rules_trash.restore(fs.ns, ALICE, "/", T)
    fs.remove(ALICE, "/g")  # the new one, freed (trash off)
    made, restore = rules_trash.restore(fs.ns, ALICE, "/g", T)
    assert made == [] and restore.parent == 1


def test_restore_into_a_directory_one_may_not_write_is_refused(fs):
    fs.mkdir(ALICE, "/d", 0o777)
    fs.create(BOB, "/d/f")
    fs.remove(BOB, "/d/f", trash_seconds=60)
    fs.do(rules.set_attributes(fs.ns, ALICE, "/d", T, mode=0o755))
    with pytest.raises(errors.PermissionDenied):
        rules_trash.restore(fs.ns, BOB, "/d/f", T)


def test_emptying_and_expiry_of_the_trash(fs):
    for name in ("a", "b"):
        fs.create(ALICE, f"/{name}")
        fs.do(rules.remove(fs.ns, ALICE, f"/{name}", False, T, WALL if name == "a" else WALL + 50,
                           60))
    assert rules_trash.empty(fs.ns, BOB) is None
    assert rules_trash.expired(fs.ns, WALL + 59) is None
    assert len(rules_trash.expired(fs.ns, WALL + 61).trash_ids) == 1
    purge = rules_trash.empty(fs.ns, ALICE)
    fs.do(purge)
    assert len(purge.trash_ids) == 2 and not fs.ns.trash


# --- request ids -------------------------------------------------------------------------------

def test_a_retried_request_is_answered_without_a_second_entry(fs):
    assert rules.replayed(fs.ns, None, made=True) is None
    assert rules.replayed(fs.ns, "r1", made=True) is None  # not seen yet: decide it
    entry = rules.with_request(rules.mkdir(fs.ns, ALICE, "/d", 0o755, T), "r1")
    assert entry.rid == "r1" and rules.with_request(entry, None) is entry
    fs.do(entry)
    assert rules.replayed(fs.ns, "r1", made=True) == rules.Replayed(entry.ino)
    fs.do(rules.with_request(rules.remove(fs.ns, ALICE, "/d", True, T, WALL, 0), "r2"))
    assert rules.replayed(fs.ns, "r2", made=False) == rules.Replayed(0)
    # what "r1" made is gone: a request that makes an inode counts as done only while it is
    assert rules.replayed(fs.ns, "r1", made=True) is None


def test_a_rule_never_changes_the_namespace(fs):
    fs.create(ALICE, "/f")
    before = fs.ns.to_json()
    rules.remove(fs.ns, ALICE, "/f", False, T, WALL, 60)
    rules.rename(fs.ns, ALICE, "/f", "/g", T)
    rules_data.alloc(fs.ns, ALICE, 2, WALL, 600)
    assert fs.ns.to_json() == before
    assert isinstance(rules.remove(fs.ns, ALICE, "/f", False, T, WALL, 60), Unlink)


def test_the_parent_index_follows_every_change_and_equals_a_rebuild(fs):
    """Namespace.parents (which directories name an inode) is derived state: after any
    sequence of changes it must equal the index rebuilt from the saved namespace."""
    fs.mkdir(ALICE, "/a")
    fs.mkdir(ALICE, "/a/b")
    f = fs.create(ALICE, "/a/b/f")
    fs.do(rules.link(fs.ns, ALICE, "/a/b/f", "/a/f-link", T))
    fs.do(rules.link(fs.ns, ALICE, "/a/b/f", "/a/b/f2", T))
    fs.rename(ALICE, "/a/b", "/b")  # a directory moves with its files
    assert rules.rename(fs.ns, ALICE, "/b/f2", "/b/f", T) is None  # same inode: POSIX no-op
    g = fs.create(ALICE, "/g")
    fs.rename(ALICE, "/g", "/a/f-link")  # replaces one name of f
    fs.remove(ALICE, "/b/f2")
    fs.remove(ALICE, "/b/f", trash_seconds=60.0)  # f's last name: to the trash
    fs.do(rules_trash.restore(fs.ns, ALICE, "/b/f", T)[1])
    rebuilt = Namespace.from_json(fs.ns.to_json())
    assert fs.ns.parents == rebuilt.parents
    assert fs.ns.parents[f.ino] == {fs.ns.resolve("/b").ino: 1}
    assert fs.ns.parents[g.ino] == {fs.ns.resolve("/a").ino: 1}
    assert fs.ns.reachable(BOB, g.ino)  # /a is 0755
    fs.do(rules.set_attributes(fs.ns, ALICE, "/a", T, 0o700, None, None, None))
    assert not fs.ns.reachable(BOB, g.ino) and fs.ns.reachable(ALICE, g.ino)

"""Pure units: special files (rules.mknod), renameat2's flags (rules.rename with
RENAME_NOREPLACE, RENAME_EXCHANGE), the mount's attribute cache across hard links
(mount.attrcache) and long paths, each as tables of cases with the errno ext4 answers.

``Fs`` (tests/t1_rules.py) is a namespace with an admin (the superuser), alice and bob,
changed only through rules + apply, whose root is 1777."""

import errno
import os

import pytest
from t1_rules import ADMIN, ALICE, BOB, Fs, T

from dfs import errors
from dfs.cli import output
from dfs.client.connections import check_utf8
from dfs.namespace import rules
from dfs.namespace.entries import Create, Exchange, Mknod, Record, Rename, SetAttr, SetQuota
from dfs.namespace.inode import MAX_PATH_BYTES, split_path
from dfs.namespace.model import Namespace
from dfs.wire import Stat
from mount import symfollow

NOREPLACE, EXCHANGE = rules.RENAME_NOREPLACE, rules.RENAME_EXCHANGE
DEV = (8 << 8) | 1  # /dev/sda1's number


@pytest.fixture
def fs():
    return Fs()


def errno_of(call):
    """None if ``call()`` passes, else the errno of the DfsError it raised."""
    try:
        call()
    except errors.DfsError as exc:
        return exc.errno
    return None


# --- mknod ------------------------------------------------------------------------------------

MKNOD_CASES = [
    # caller, kind, folder's mode (alice's folder), rdev, expected errno
    (ALICE, "p", 0o755, 0, None),  # a fifo: anyone with w+x on the folder
    (ALICE, "s", 0o755, 0, None),  # a socket
    (BOB, "p", 0o755, 0, errno.EACCES),  # no w on alice's folder
    (BOB, "p", 0o777, 0, None),
    (BOB, "s", 0o773, 0, None),  # w+x is enough, r is not needed
    (BOB, "s", 0o776, 0, errno.EACCES),  # no x
    (ALICE, "c", 0o755, DEV, errno.EPERM),  # devices: the superuser only
    (ALICE, "b", 0o755, DEV, errno.EPERM),
    (BOB, "c", 0o755, DEV, errno.EACCES),  # EACCES comes before EPERM, as Linux
    (ADMIN, "c", 0o755, DEV, None),
    (ADMIN, "b", 0o700, DEV, None),
    (ADMIN, "c", 0o755, -1, errno.EINVAL),
    (ADMIN, "c", 0o755, 1 << 32, errno.EINVAL),  # more than FUSE's 32 bits
    (ALICE, "d", 0o755, 0, errno.EINVAL),  # mkdir is not mknod
    (ALICE, "l", 0o755, 0, errno.EINVAL),
    (ALICE, "x", 0o755, 0, errno.EINVAL),
    (ALICE, "f", 0o755, 0, None),  # mknod(S_IFREG): an empty file
]


@pytest.mark.parametrize("user, kind, folder_mode, rdev, expected", MKNOD_CASES)
def test_mknod_rules(fs, user, kind, folder_mode, rdev, expected):
    fs.mkdir(ALICE, "/d", folder_mode)
    before = fs.ns.to_json()
    made = errno_of(lambda: fs.do(rules.mknod(fs.ns, user, "/d/n", kind, 0o640, rdev, T)))
    assert made == expected
    if expected is not None:
        assert fs.ns.to_json() == before  # a refused mknod changes nothing
        return
    inode = fs.ns.resolve("/d/n")
    assert (inode.kind, inode.mode, inode.uid, inode.nlink) == (kind, 0o640, user.uid, 1)
    assert inode.rdev == (rdev if kind in "cb" else 0)
    assert fs.ns.stat(inode).kind == kind and fs.ns.stat(inode).rdev == inode.rdev


def test_mknod_entries_and_what_they_leave(fs):
    assert isinstance(rules.mknod(fs.ns, ALICE, "/f", "f", 0o600, 0, T), Create)
    entry = rules.mknod(fs.ns, ALICE, "/p", "p", 0o644, DEV, T)
    assert entry == Mknod(1, "p", fs.ns.next_ino, ALICE.uid, ALICE.gid, 0o644, T, "p", 0)
    fs.do(entry)
    fs.do(rules.mknod(fs.ns, ADMIN, "/sda1", "b", 0o660, DEV, T))
    with pytest.raises(errors.FileExists):  # the name is taken, whatever the kind
        rules.mknod(fs.ns, ALICE, "/p", "s", 0o644, 0, T)
    # a snapshot keeps kind and device number
    again = Namespace.from_json(fs.ns.to_json())
    assert (again.resolve("/sda1").kind, again.resolve("/sda1").rdev) == ("b", DEV)
    assert again.resolve("/p").kind == "p"
    # special files hold no chunks; unlink removes them like files (no trash: not regular)
    assert rules.remove(fs.ns, ALICE, "/p", False, T, 0.0, 3600.0).trash is None
    fs.remove(ALICE, "/p")
    with pytest.raises(errors.FileNotFound):
        fs.ns.resolve("/p")


def test_mknod_in_a_set_gid_folder_and_under_an_inode_quota(fs):
    fs.mkdir(ALICE, "/team", 0o777)
    fs.do(SetAttr(fs.ns.resolve("/team").ino, T, mode=0o2777, gid=500))
    fs.do(rules.mknod(fs.ns, BOB, "/team/fifo", "p", 0o2755, 0, T))
    fifo = fs.ns.resolve("/team/fifo")
    assert fifo.gid == 500 and fifo.mode == 0o755  # bob is not in 500: set-gid dropped
    held = fs.ns.usage.held(BOB.uid).inodes
    fs.do(SetQuota("bob", None, held))
    with pytest.raises(errors.QuotaExceeded):  # a special file is an inode like any other
        rules.mknod(fs.ns, BOB, "/sock", "s", 0o755, 0, T)


# --- rename flags -------------------------------------------------------------------------------

def tree(fs):
    """/a (alice, 0777) holding file f, folder sub/ with g, /b (bob, 0755) holding file h."""
    fs.mkdir(ALICE, "/a", 0o777)
    fs.create(ALICE, "/a/f")
    fs.mkdir(ALICE, "/a/sub", 0o755)
    fs.create(ALICE, "/a/sub/g")
    fs.mkdir(BOB, "/b", 0o755)
    fs.create(BOB, "/b/h")


RENAME_CASES = [
    # caller, src, dst, flags, expected errno
    (ALICE, "/a/f", "/a/new", NOREPLACE, None),
    (ALICE, "/a/f", "/a/sub/g", NOREPLACE, errno.EEXIST),
    (ALICE, "/a/f", "/a/f", NOREPLACE, errno.EEXIST),  # even itself, as Linux
    (BOB, "/a/f", "/a/sub/g", NOREPLACE, errno.EEXIST),  # EEXIST before permissions
    (ALICE, "/a/f", "/a/new", NOREPLACE | EXCHANGE, errno.EINVAL),
    (ALICE, "/a/f", "/a/new", 4, errno.EINVAL),  # RENAME_WHITEOUT: not for users
    (ALICE, "/a/f", "/a/new", EXCHANGE, errno.ENOENT),  # both must exist
    (ALICE, "/a/missing", "/a/f", EXCHANGE, errno.ENOENT),
    (ALICE, "/a/f", "/a/sub", EXCHANGE, None),  # a file and a folder swap
    (ALICE, "/a/sub", "/a/sub/g", EXCHANGE, errno.EINVAL),  # never into its own subtree
    (ALICE, "/a/sub/g", "/a/sub", EXCHANGE, errno.EINVAL),
    (ALICE, "/a/f", "/b/h", EXCHANGE, errno.EACCES),  # no w on bob's /b
    (BOB, "/b/h", "/a/f", EXCHANGE, None),  # w on both folders: enough without sticky
    (BOB, "/b/h", "/a/sub", EXCHANGE, errno.EACCES),  # sub changes parent: w on it too
    (ALICE, "/a/sub/g", "/a/sub/g", EXCHANGE, None),  # itself: nothing to do
    (ALICE, "/a/sub/g", "/a", 0, errno.ENOTEMPTY),  # onto its own ancestor
    (ALICE, "/a/sub", "/a/sub/x", 0, errno.EINVAL),
]


@pytest.mark.parametrize("user, src, dst, flags, expected", RENAME_CASES)
def test_rename_flag_rules(fs, user, src, dst, flags, expected):
    tree(fs)
    before = fs.ns.to_json()
    assert errno_of(lambda: rules.rename(fs.ns, user, src, dst, T, flags)) == expected
    assert fs.ns.to_json() == before  # deciding changes nothing


def test_exchange_swaps_a_file_and_a_folder_across_folders(fs):
    tree(fs)
    f, sub = fs.ns.resolve("/a/f"), fs.ns.resolve("/a/sub")
    b = fs.ns.resolve("/b")
    fs.do(SetAttr(b.ino, T, mode=0o777))
    a_links, b_links = fs.ns.resolve("/a").nlink, b.nlink
    entry = rules.rename(fs.ns, ALICE, "/a/sub", "/b/h", T + 5, EXCHANGE)
    assert isinstance(entry, Exchange)
    h = fs.ns.resolve("/b/h")
    fs.do(entry)
    assert fs.ns.resolve("/b/h") is sub and fs.ns.resolve("/a/sub") is h
    assert fs.ns.resolve("/b/h/g").kind == "f"  # the folder took its content along
    assert (fs.ns.resolve("/a").nlink, b.nlink) == (a_links - 1, b_links + 1)  # its ".."
    assert sub.ctime_ns == h.ctime_ns == b.mtime_ns == T + 5
    assert fs.ns.resolve("/a/f") is f
    assert fs.ns.reachable(ALICE, sub.ino) and fs.ns.parents[sub.ino] == {b.ino: 1}
    assert fs.ns.parents[h.ino] == {fs.ns.resolve("/a").ino: 1}
    # the journal line replays to the same tree
    again = Namespace.from_json(fs.ns.to_json())
    assert again.resolve("/b/h/g").ino == fs.ns.resolve("/b/h/g").ino
    line = Record(99, 1, entry).to_line()
    assert Record.from_line(line).entry == entry


def test_exchange_in_a_sticky_folder_needs_both_entries_owned(fs):
    fs.mkdir(ADMIN, "/tmp", 0o1777)
    fs.create(ALICE, "/tmp/mine")
    fs.create(BOB, "/tmp/his")
    with pytest.raises(errors.NotPermitted):
        rules.rename(fs.ns, ALICE, "/tmp/mine", "/tmp/his", T, EXCHANGE)
    with pytest.raises(errors.NotPermitted):
        rules.rename(fs.ns, BOB, "/tmp/mine", "/tmp/his", T, EXCHANGE)
    fs.do(rules.rename(fs.ns, ADMIN, "/tmp/mine", "/tmp/his", T, EXCHANGE))
    assert fs.ns.resolve("/tmp/mine").uid == BOB.uid


def test_exchange_of_two_names_of_one_inode_changes_nothing(fs):
    fs.create(ALICE, "/x")
    fs.do(rules.link(fs.ns, ALICE, "/x", "/y", T))
    assert rules.rename(fs.ns, ALICE, "/x", "/y", T, EXCHANGE) is None
    assert rules.rename(fs.ns, BOB, "/x", "/y", T) is None  # plain rename: none either


def test_noreplace_is_decided_with_the_rename(fs):
    fs.create(ALICE, "/x")
    assert isinstance(rules.rename(fs.ns, ALICE, "/x", "/y", T, NOREPLACE), Rename)


# --- long paths -----------------------------------------------------------------------------

def test_paths_longer_than_path_max_resolve_up_to_the_limit(fs):
    """The kernel bounds a path a program passes (PATH_MAX, relative to its working folder),
    not the depth of a tree: the master takes paths far longer than 4096 bytes."""
    name = "n" * 255
    path = ""
    while len(path) + 256 < 3 * 4096:
        path += "/" + name
        fs.mkdir(ALICE, path)
    fs.create(ALICE, path + "/f")
    assert fs.ns.resolve(path + "/f").kind == "f"
    assert len(split_path("/" + "/".join(["d"] * (MAX_PATH_BYTES // 2 - 1)))) > 0
    with pytest.raises(errors.NameTooLong):
        split_path("/" + "d" * MAX_PATH_BYTES)


# --- how the command line shows them; who may ask for nosymfollow --------------------------

@pytest.mark.parametrize("kind, mode, shown", [
    ("p", 0o644, "prw-r--r--"), ("s", 0o755, "srwxr-xr-x"), ("c", 0o660, "crw-rw----"),
    ("b", 0o600, "brw-------"), ("d", 0o1777, "drwxrwxrwt"), ("d", 0o1770, "drwxrwx--T"),
    ("f", 0o4755, "-rwsr-xr-x"), ("f", 0o2644, "-rw-r-Sr--"), ("l", 0o777, "lrwxrwxrwx"),
])
def test_ls_l_mode_strings(kind, mode, shown):
    assert output.mode_string(Stat(1, kind, mode, "x", 0, 0, 0, 0, 1)) == shown


def test_a_device_shows_its_numbers_instead_of_a_size():
    for major, minor in ((1, 3), (8, 17), (300, 70000), (5000, 3)):
        rdev = os.makedev(major, minor)
        assert output.device_numbers(rdev) == (major, minor)
        assert output.size_or_device(Stat(1, "c", 0o600, "x", 0, 0, 0, 0, 1, rdev=rdev)) == \
            f"{major}, {minor}"
    assert output.size_or_device(Stat(1, "f", 0o600, "x", 1234, 0, 0, 0, 1)) == "1234"


def test_nosymfollow_is_refused_to_a_user_who_cannot_remount(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(errors.NotPermitted, match="needs root"):
        symfollow.check_possible()


def test_names_that_are_not_utf8_are_refused_before_they_are_sent():
    check_utf8("caf\u00e9")
    with pytest.raises(errors.InvalidPath, match="UTF-8"):
        check_utf8(b"caf\xe9".decode("utf-8", "surrogateescape"))  # as the mount passes it

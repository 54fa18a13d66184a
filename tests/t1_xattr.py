"""Pure units: the rules of extended attributes (dfs/namespace/rules_xattr.py) on a namespace
in memory: who may get, set, list and remove which namespace (a table), the limits and
flags as ext4 answers them, and that the attributes live on the inode (hard links, rename,
the trash, snapshots, the journal)."""

import errno
import json

import pytest
from t1_rules import ADMIN, ALICE, BOB, Fs, T

from dfs import errors
from dfs.namespace import rules, rules_trash, rules_xattr
from dfs.namespace.entries import Record, SetXattr
from dfs.namespace.model import Namespace
from dfs.namespace.rules_xattr import XATTR_CREATE, XATTR_REPLACE

CAROL = type(ALICE)(10003, 10003, frozenset({10001}), "carol")  # in alice's group


@pytest.fixture
def fs():
    """alice's /f 0644, /priv 0600, /shared 0666, /grp 0640, /d 0755, /sticky 1777, /l (a
    symlink); each regular file and directory has user.a, trusted.t and security.s set by
    the superuser."""
    fs = Fs()
    for path, mode in (("/f", 0o644), ("/priv", 0o600), ("/shared", 0o666), ("/grp", 0o640)):
        fs.create(ALICE, path, mode)
    fs.mkdir(ALICE, "/d", 0o755)
    fs.mkdir(ALICE, "/sticky", 0o1777)
    fs.do(rules.symlink(fs.ns, ALICE, "/l", "f", T))
    for path in ("/f", "/priv", "/shared", "/grp", "/d", "/sticky"):
        for name in ("user.a", "trusted.t", "security.s"):
            fs.do(rules_xattr.set_value(fs.ns, ADMIN, path, name, b"v", 0, T))
    return fs


OK = None
# (who, path, name, errno of a set, errno of a get, errno of a remove); None: allowed
TABLE = [
    # user.*: write permission to set, read permission to get
    (ALICE, "/f", "user.a", OK, OK, OK),
    (BOB, "/f", "user.a", errno.EACCES, OK, errno.EACCES),
    (ADMIN, "/priv", "user.a", OK, OK, OK),
    (BOB, "/priv", "user.a", errno.EACCES, errno.EACCES, errno.EACCES),
    (BOB, "/shared", "user.a", OK, OK, OK),
    (CAROL, "/grp", "user.a", errno.EACCES, OK, errno.EACCES),  # the group's bits decide
    (BOB, "/grp", "user.a", errno.EACCES, errno.EACCES, errno.EACCES),
    (BOB, "/d", "user.a", errno.EACCES, OK, errno.EACCES),
    # a sticky directory: only its owner (or the superuser) sets, though anyone may write
    (BOB, "/sticky", "user.a", errno.EPERM, OK, errno.EPERM),
    (ALICE, "/sticky", "user.a", OK, OK, OK),
    (ADMIN, "/sticky", "user.a", OK, OK, OK),
    # only regular files and directories have user.*: for everyone, the owner and root too
    (ALICE, "/l", "user.a", errno.EPERM, errno.ENODATA, errno.EPERM),
    (ADMIN, "/l", "user.a", errno.EPERM, errno.ENODATA, errno.EPERM),
    # trusted.*: the superuser's; to anyone else they do not exist
    (ADMIN, "/priv", "trusted.t", OK, OK, OK),
    (ALICE, "/f", "trusted.t", errno.EPERM, errno.ENODATA, errno.EPERM),
    (BOB, "/f", "trusted.t", errno.EPERM, errno.ENODATA, errno.EPERM),
    (ADMIN, "/l", "trusted.t", OK, errno.ENODATA, errno.ENODATA),  # none set on /l yet
    # security.*: anyone who reaches the inode reads them; only the superuser sets them
    (BOB, "/priv", "security.s", errno.EPERM, OK, errno.EPERM),
    (ALICE, "/priv", "security.s", errno.EPERM, OK, errno.EPERM),
    (ADMIN, "/priv", "security.s", OK, OK, OK),
]


def _errno_of(call):
    try:
        call()
    except errors.DfsError as exc:
        return exc.errno
    return None


@pytest.mark.parametrize("who, path, name, set_errno, get_errno, remove_errno", TABLE,
                         ids=lambda x: getattr(x, "name", None) or str(x))
def test_who_may_set_get_and_remove_which_namespace(fs, who, path, name, set_errno,
                                                    get_errno, remove_errno):
    before = fs.ns.resolve(path).xattrs.copy()
    assert _errno_of(lambda: rules_xattr.get(fs.ns, who, path, name)) == get_errno
    assert _errno_of(lambda: rules_xattr.set_value(fs.ns, who, path, name, b"new", 0,
                                                   T)) == set_errno
    assert _errno_of(lambda: rules_xattr.remove(fs.ns, who, path, name, T)) == remove_errno
    assert fs.ns.resolve(path).xattrs == before  # rules decide, they change nothing
    if get_errno is None:
        assert rules_xattr.get(fs.ns, who, path, name) == b"v"
    if set_errno is None:
        fs.do(rules_xattr.set_value(fs.ns, who, path, name, b"new", 0, T + 5))
        assert fs.ns.resolve(path).xattrs[name] == b"new"
        assert fs.ns.resolve(path).ctime_ns == T + 5


def test_file_capabilities_go_with_a_write_by_anyone_who_may_write(fs):
    for path in ("/shared", "/f"):
        fs.do(rules_xattr.set_value(fs.ns, ADMIN, path, "security.capability", b"caps", 0, T))
    with pytest.raises(errors.NotPermitted):  # set: the superuser's, as any security.*
        rules_xattr.set_value(fs.ns, BOB, "/shared", "security.capability", b"x", 0, T)
    with pytest.raises(errors.NotPermitted):  # bob may not write /f
        rules_xattr.remove(fs.ns, BOB, "/f", "security.capability", T)
    fs.do(rules_xattr.remove(fs.ns, BOB, "/shared", "security.capability", T))
    fs.do(rules_xattr.remove(fs.ns, ALICE, "/f", "security.capability", T))  # the owner
    with pytest.raises(errors.NotPermitted):  # other security.* stay the superuser's
        rules_xattr.remove(fs.ns, BOB, "/shared", "security.s", T)


def test_a_listing_shows_trusted_names_only_to_the_superuser(fs):
    for who in (ALICE, BOB, CAROL):  # no permission on the file is needed (as Linux)
        assert rules_xattr.names(fs.ns, who, "/priv") == ["user.a", "security.s"]
    assert rules_xattr.names(fs.ns, ADMIN, "/priv") == ["user.a", "trusted.t", "security.s"]
    assert rules_xattr.names(fs.ns, ALICE, "/l") == []
    fs.mkdir(ALICE, "/closed", 0o700)
    fs.create(ALICE, "/closed/x")
    with pytest.raises(errors.PermissionDenied):  # the path must be searchable
        rules_xattr.names(fs.ns, BOB, "/closed/x")


@pytest.mark.parametrize("name, error", [
    ("", errors.OutOfRange),
    ("user." + "x" * 251, errors.OutOfRange),  # 256 bytes
    ("user." + "é" * 126, errors.OutOfRange),  # 257 bytes in UTF-8
    ("user.", errors.InvalidArgument),
    ("user.a\0b", errors.InvalidArgument),
    ("system.posix_acl_access", errors.NotSupported),  # ext4 mounted without ACLs
    ("system.posix_acl_default", errors.NotSupported),
    ("os2.name", errors.NotSupported),
    ("USER.a", errors.NotSupported),
    (b"user.a", errors.InvalidArgument),
    (None, errors.InvalidArgument),
])
def test_bad_names_are_refused_before_anything_is_looked_up(name, error):
    with pytest.raises(error):
        rules_xattr.check_name(name)


def test_names_up_to_255_bytes_are_kept():
    assert rules_xattr.check_name("user." + "x" * 250) == "user." + "x" * 250
    assert errors.OutOfRange().errno == errno.ERANGE and errors.TooBig().errno == errno.E2BIG
    assert errors.NoAttribute().errno == errno.ENODATA


def test_values_up_to_64_kib_and_flags():
    assert rules_xattr.check_value(b"") == b""
    assert len(rules_xattr.check_value(b"x" * 65536)) == 65536
    with pytest.raises(errors.TooBig):
        rules_xattr.check_value(b"x" * 65537)
    for bad in ("text", bytearray(b"x"), None):
        with pytest.raises(errors.InvalidArgument):
            rules_xattr.check_value(bad)
    for flags in (0, XATTR_CREATE, XATTR_REPLACE, XATTR_CREATE | XATTR_REPLACE):
        assert rules_xattr.check_flags(flags) == flags
    for bad in (4, -1, True, "1"):
        with pytest.raises(errors.InvalidArgument):
            rules_xattr.check_flags(bad)


def test_create_and_replace_flags(fs):
    with pytest.raises(errors.FileExists):
        rules_xattr.set_value(fs.ns, ALICE, "/f", "user.a", b"x", XATTR_CREATE, T)
    with pytest.raises(errors.NoAttribute):
        rules_xattr.set_value(fs.ns, ALICE, "/f", "user.new", b"x", XATTR_REPLACE, T)
    fs.do(rules_xattr.set_value(fs.ns, ALICE, "/f", "user.a", b"r", XATTR_REPLACE, T))
    fs.do(rules_xattr.set_value(fs.ns, ALICE, "/f", "user.new", b"", XATTR_CREATE, T))
    assert rules_xattr.get(fs.ns, ALICE, "/f", "user.new") == b""  # empty values are values
    assert rules_xattr.get(fs.ns, ALICE, "/f", "user.a") == b"r"
    fs.do(rules_xattr.remove(fs.ns, ALICE, "/f", "user.new", T))
    with pytest.raises(errors.NoAttribute):
        rules_xattr.remove(fs.ns, ALICE, "/f", "user.new", T)
    with pytest.raises(errors.NoAttribute):
        rules_xattr.get(fs.ns, ALICE, "/f", "user.new")


def test_an_inodes_attributes_share_64_kib(fs):
    fs.create(ALICE, "/full")
    big = b"x" * 16000
    for i in range(4):  # 4 * (7 + 1 + 16000) bytes
        fs.do(rules_xattr.set_value(fs.ns, ALICE, "/full", f"user.{i}", big, 0, T))
    left = rules_xattr.XATTR_SPACE - rules_xattr.space(fs.ns.resolve("/full").xattrs)
    with pytest.raises(errors.NoSpace):
        rules_xattr.set_value(fs.ns, ALICE, "/full", "user.4", b"x" * (left - 6), 0, T)
    fs.do(rules_xattr.set_value(fs.ns, ALICE, "/full", "user.4", b"x" * (left - 7), 0, T))
    assert rules_xattr.space(fs.ns.resolve("/full").xattrs) == rules_xattr.XATTR_SPACE
    with pytest.raises(errors.NoSpace):  # one byte more in a value already there
        rules_xattr.set_value(fs.ns, ALICE, "/full", "user.0", big + b"y", 0, T)
    fs.do(rules_xattr.set_value(fs.ns, ALICE, "/full", "user.0", b"", 0, T))  # replacing frees
    with pytest.raises(errors.NoSpace):  # a single value of 64 KiB never fits (as ext4's block)
        rules_xattr.set_value(fs.ns, ALICE, "/f", "user.big", b"x" * 65536, 0, T)


def test_attributes_live_on_the_inode_through_links_rename_and_the_trash(fs):
    fs.do(rules.link(fs.ns, ALICE, "/f", "/d/h", T))
    fs.do(rules_xattr.set_value(fs.ns, ALICE, "/d/h", "user.via", b"link", 0, T))
    assert rules_xattr.get(fs.ns, BOB, "/f", "user.via") == b"link"  # the other name sees it
    fs.rename(ALICE, "/f", "/moved")
    fs.remove(ALICE, "/d/h")
    assert rules_xattr.names(fs.ns, ALICE, "/moved") == ["user.a", "security.s", "user.via"]
    fs.remove(ALICE, "/moved", trash_seconds=60)
    [(tid, item)] = [(t, i) for t, i in fs.ns.trash_of(ALICE) if i.path == "/moved"]
    assert item.inode.xattrs["user.via"] == b"link"
    again = Namespace.from_json(json.loads(json.dumps(fs.ns.to_json())))  # a snapshot
    assert again.trash[tid].inode.xattrs == item.inode.xattrs
    made, restore = rules_trash.restore(fs.ns, ALICE, "/moved", T)
    for entry in [*made, restore]:
        fs.do(entry)
    assert rules_xattr.get(fs.ns, ALICE, "/moved", "user.via") == b"link"
    assert fs.ns.resolve("/moved").stat().xattrs == 3  # user. and security. (not trusted.)


def test_snapshots_and_the_journal_keep_any_bytes(fs):
    value = bytes(range(256)) * 4
    fs.do(rules_xattr.set_value(fs.ns, ALICE, "/f", "user.bin", value, 0, T))
    again = Namespace.from_json(json.loads(json.dumps(fs.ns.to_json())))
    assert again.resolve("/f").xattrs == fs.ns.resolve("/f").xattrs
    assert again.resolve("/d").xattrs["trusted.t"] == b"v"
    line = Record(7, 1, SetXattr(5, "user.bin", value, T)).to_line()
    assert Record.from_line(line).entry.value == value
    assert "value" not in json.loads(Record(8, 1, SetXattr(5, "user.bin", None, T)).to_line())


def test_a_snapshot_from_before_xattrs_loads(fs):
    data = json.loads(json.dumps(fs.ns.to_json()))
    for inode in data["inodes"]:
        inode.pop("xattrs", None)
    old = Namespace.from_json(data)
    assert old.resolve("/f").xattrs == {} and old.resolve("/f").stat().xattrs == 0
    assert "xattrs" not in old.resolve("/f").to_json()  # none: nothing written either


def test_removing_the_last_name_frees_them_and_a_new_file_starts_without(fs):
    fs.remove(ALICE, "/f")
    fs.create(ALICE, "/f")
    assert rules_xattr.names(fs.ns, ADMIN, "/f") == []
    assert _errno_of(lambda: rules_xattr.get(fs.ns, ALICE, "/f", "user.a")) == errno.ENODATA


def test_removal_changes_ctime(fs):
    fs.do(rules_xattr.remove(fs.ns, ALICE, "/f", "user.a", T + 9))
    assert fs.ns.resolve("/f").ctime_ns == T + 9

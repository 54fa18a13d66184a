"""t4: POSIX owners, groups and modes through a real mount, checked by processes of other
uids (DESIGN.md sections 6 and 7; issue 11).

An admin key's mount (``LocalCluster.admin_auth_file``) is a trusted host's: allow_other,
default_permissions, and every request acts as the process that made it. Each check runs
a child Python (``subprocess.run(user=, group=, extra_groups=, umask=)``: setresgid,
setgroups and setresuid before exec) as a uid that has no passwd entry (2001, 2002, ...)
and reports ``ok`` or the errno name of each operation; the kernel (default_permissions)
and the master must both agree with what ext4 answers. A normal user's mount is checked
too: other local uids cannot enter it, and its files show the DFS user's ids.
The same cases asked of the master directly: t4_posix_master.py; scenario by scenario
against the local disk: t4_posix_ext4.py.
"""

import os
import stat
import subprocess

import mount_users
import pytest
from mount_users import CHILD_PYTHON, PRELUDE, as_user, attempt
from t4_mount import Mounted, dfs_ids, pytestmark  # noqa: F401 (skip without FUSE)

OWNER, OTHER, THIRD = 2001, 2002, 2003  # uids without passwd entries
TEAM, STRANGERS = 3000, 4000  # group ids
open_dir, admin_mount = mount_users.open_dir, mount_users.admin_mount  # the fixtures
AdminMount = mount_users.AdminMount  # t4_programs, t4_special, t4_posix_master take it from here


@pytest.fixture
def here(admin_mount, request):
    """A fresh folder of root's, 0755, for one test."""
    path = admin_mount.join(request.node.name)
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)
    return path


def make(path, mode, uid=0, gid=0, data=b"data"):
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- owner, group, other ----------------------------------------------------------------------

def test_owner_group_and_other_classes(here):
    f = make(os.path.join(here, "f"), 0o640, OWNER, TEAM)
    assert attempt(OWNER, "read(args[0])", f) == "ok"
    assert attempt(OWNER, "write(args[0])", f) == "ok"
    # a supplementary group gives the group's bits; the primary group too
    assert attempt(OTHER, "read(args[0])", f, groups=[TEAM]) == "ok"
    assert attempt(OTHER, "write(args[0])", f, groups=[TEAM]) == "EACCES"
    assert attempt(OTHER, "read(args[0])", f, gid=TEAM) == "ok"
    assert attempt(OTHER, "read(args[0])", f, groups=[STRANGERS]) == "EACCES"
    assert attempt(THIRD, "read(args[0])", f) == "EACCES"
    # the first class that matches decides: an owner denied by the owner bits is denied
    # though "other" allows, and so is a group member
    g = make(os.path.join(here, "g"), 0o077, OWNER, TEAM)
    assert attempt(OWNER, "read(args[0])", g) == "EACCES"
    assert attempt(OTHER, "read(args[0])", g, groups=[TEAM]) == "ok"
    h = make(os.path.join(here, "h"), 0o607, OWNER, TEAM)
    assert attempt(OTHER, "read(args[0])", h, groups=[TEAM]) == "EACCES"
    assert attempt(THIRD, "read(args[0])", h) == "ok"


def test_a_process_that_drops_privileges_acts_with_its_new_groups(here):
    """su, sudo and daemons: one process first acts as root, then calls setgroups,
    setresgid and setresuid and acts again; the master must see the new groups at once."""
    f = make(os.path.join(here, "f"), 0o660, OWNER, TEAM)
    words = as_user(0, f"""
say(attempt(read, args[0]))
os.setgroups([{TEAM}])
os.setresgid({OTHER}, {OTHER}, {OTHER})
os.setresuid({OTHER}, {OTHER}, {OTHER})
say(attempt(read, args[0]), attempt(write, args[0], b"DATA"))
""", f)
    assert words == ["ok", "ok", "ok"]
    assert open(f, "rb").read() == b"DATA"


def test_directory_search_read_and_write_bits(here):
    d = os.path.join(here, "d")
    os.mkdir(d)
    make(os.path.join(d, "inside"), 0o644, OWNER, OWNER)
    os.chown(d, OWNER, TEAM)
    os.chmod(d, 0o750)
    inside = os.path.join(d, "inside")
    assert attempt(OTHER, "os.stat(args[0])", inside, groups=[TEAM]) == "ok"
    assert attempt(OTHER, "os.listdir(args[0])", d, groups=[TEAM]) == "ok"
    assert attempt(OTHER, "write(args[0] + '/new', flags=os.O_CREAT | os.O_WRONLY)", d,
                   groups=[TEAM]) == "EACCES"
    assert attempt(THIRD, "os.stat(args[0])", inside) == "EACCES"
    assert attempt(THIRD, "os.listdir(args[0])", d) == "EACCES"
    os.chmod(d, 0o711)  # search without read: known names only
    assert attempt(THIRD, "os.stat(args[0])", inside) == "ok"
    assert attempt(THIRD, "os.listdir(args[0])", d) == "EACCES"
    os.chmod(d, 0o744)  # read without search: names, but no entry is reached
    assert attempt(THIRD, "os.stat(args[0])", inside) == "EACCES"
    assert attempt(OWNER, "write(args[0] + '/mine', flags=os.O_CREAT | os.O_WRONLY)",
                   d) == "ok"
    assert os.stat(os.path.join(d, "mine")).st_uid == OWNER


def test_new_files_belong_to_the_caller(here):
    os.chmod(here, 0o777)
    words = as_user(OWNER, """
write(args[0], flags=os.O_CREAT | os.O_WRONLY)
os.mkdir(args[1])
os.symlink("f", args[2])
for p in args:
    st = os.lstat(p)
    say(st.st_uid, st.st_gid)
""", *(os.path.join(here, n) for n in ("f", "d", "l")), gid=TEAM, groups=[STRANGERS])
    assert words == [str(OWNER), str(TEAM)] * 3
    for name in ("f", "d", "l"):  # and the master agrees (not just the kernel's cache)
        st = os.lstat(os.path.join(here, name))
        assert (st.st_uid, st.st_gid) == (OWNER, TEAM)


def test_access_is_checked_at_open_for_what_the_open_asks(here):
    os.chmod(here, 0o777)
    f = make(os.path.join(here, "f"), 0o622, OWNER, OWNER)
    # write-only: another uid may write what it may not read
    assert attempt(OTHER, "write(args[0], b'X')", f) == "ok"
    assert attempt(OTHER, "read(args[0])", f) == "EACCES"
    assert attempt(OTHER, "os.open(args[0], os.O_RDWR)", f) == "EACCES"
    assert open(f, "rb").read() == b"Xata"
    # a file made read-only by its create is written through that descriptor, as POSIX
    # says (git writes its objects so); opening it again for writing is refused
    words = as_user(OWNER, """
fd = os.open(args[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444)
os.write(fd, b"object")
os.fsync(fd)
os.close(fd)
say(oct(os.stat(args[0]).st_mode & 0o777), read(args[0]).decode())
say(attempt(write, args[0]), attempt(os.truncate, args[0], 0))
""", os.path.join(here, "ro"))
    assert words == ["0o444", "object", "EACCES", "EACCES"]


def test_a_writer_commits_as_itself_while_a_reader_holds_the_file(here):
    """Every handle of an inode shares one open file in the mount: the one who writes must
    be the one the master sees committing, not whoever opened it first."""
    f = make(os.path.join(here, "f"), 0o664, OWNER, TEAM)
    reader = subprocess.Popen(
        [CHILD_PYTHON, "-c", PRELUDE + """
f = open(args[0], "rb")
say(f.read().decode()); sys.stdout.flush()
sys.stdin.readline()
f.seek(0)
say(f.read().decode())
""", f], user=THIRD, group=THIRD, extra_groups=[], cwd="/", stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().split() == ["data"]
        assert attempt(OTHER, "write(args[0], b'DATA')", f, groups=[TEAM]) == "ok"
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["DATA"]
    finally:
        reader.stdin.close()
        reader.wait(60)
    assert open(f, "rb").read() == b"DATA"


# --- sticky directories ----------------------------------------------------------------------

def test_sticky_directory_keeps_others_from_removing_or_renaming(here):
    shared = os.path.join(here, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    mine = os.path.join(shared, "mine")
    as_user(OWNER, "write(args[0], flags=os.O_CREAT | os.O_WRONLY)", mine)
    os.chmod(mine, 0o666)
    assert attempt(OTHER, "os.unlink(args[0])", mine) == "EPERM"
    assert attempt(OTHER, "os.rename(args[0], args[0] + '2')", mine) == "EPERM"
    theirs = os.path.join(shared, "theirs")
    as_user(OTHER, "write(args[0], flags=os.O_CREAT | os.O_WRONLY)", theirs)
    assert attempt(OTHER, "os.rename(args[0], args[1])", theirs, mine) == "EPERM"  # replace
    assert attempt(OTHER, "write(args[0])", mine) == "ok"  # writing is the mode's business
    assert attempt(OWNER, "os.rename(args[0], args[0] + '2')", mine) == "ok"
    assert attempt(OWNER, "os.unlink(args[0] + '2')", mine) == "ok"
    # the directory's owner may remove anything in it
    os.chown(shared, THIRD, THIRD)
    assert attempt(THIRD, "os.unlink(args[0])", theirs) == "ok"
    assert os.listdir(shared) == []


def test_without_sticky_anyone_with_write_removes(here):
    d = os.path.join(here, "open")
    os.mkdir(d)
    os.chmod(d, 0o777)
    f = make(os.path.join(d, "f"), 0o600, OWNER, OWNER)
    assert attempt(OTHER, "os.unlink(args[0])", f) == "ok"


# --- chown and chgrp ----------------------------------------------------------------------

def test_chown_by_non_root_refused_and_chgrp_to_own_group_allowed(here):
    f = make(os.path.join(here, "f"), 0o644, OWNER, OWNER)
    assert attempt(OWNER, "os.chown(args[0], int(args[1]), -1)", f, OTHER,
                   groups=[TEAM]) in ("EPERM",)
    assert attempt(OWNER, "os.chown(args[0], -1, int(args[1]))", f, STRANGERS,
                   groups=[TEAM]) == "EPERM"
    assert attempt(OTHER, "os.chown(args[0], -1, int(args[1]))", f, TEAM,
                   groups=[TEAM]) == "EPERM"  # not the owner
    assert attempt(OWNER, "os.chown(args[0], -1, int(args[1]))", f, TEAM,
                   groups=[TEAM]) == "ok"
    assert os.stat(f).st_gid == TEAM
    # chown to oneself (no change) is allowed, as it is on ext4
    assert attempt(OWNER, "os.chown(args[0], int(args[1]), -1)", f, OWNER) == "ok"
    os.chown(f, OTHER, STRANGERS)  # root gives it away
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (OTHER, STRANGERS)


def test_chmod_only_by_the_owner(here):
    f = make(os.path.join(here, "f"), 0o666, OWNER, TEAM)
    assert attempt(OTHER, "os.chmod(args[0], 0o777)", f, groups=[TEAM]) == "EPERM"
    assert attempt(OWNER, "os.chmod(args[0], 0o600)", f) == "ok"
    assert mode_of(f) == 0o600
    # the owner outside the file's group cannot set its set-gid bit: it is dropped
    assert attempt(OWNER, "os.chmod(args[0], 0o2755)", f) == "ok"
    assert mode_of(f) == 0o755
    assert attempt(OWNER, "os.chmod(args[0], 0o2755)", f, groups=[TEAM]) == "ok"
    assert mode_of(f) == 0o2755


# --- set-gid directories, umask ----------------------------------------------------------------

def test_set_gid_directory_passes_its_group_and_bit(here):
    team = os.path.join(here, "team")
    os.mkdir(team)
    os.chown(team, 0, TEAM)
    os.chmod(team, 0o2777)
    words = as_user(OWNER, """
os.mkdir(args[0] + "/sub", 0o755)
write(args[0] + "/f", flags=os.O_CREAT | os.O_WRONLY)
os.mkdir(args[0] + "/sub/deeper")
for p in ("/sub", "/f", "/sub/deeper"):
    st = os.stat(args[0] + p)
    say(st.st_gid, oct(st.st_mode & 0o7777))
""", team)  # OWNER is not in TEAM: the set-gid directory's group is given all the same
    assert words == [str(TEAM), "0o2755", str(TEAM), "0o644", str(TEAM), "0o2755"]


def test_umask_is_honoured(here):
    os.chmod(here, 0o777)
    words = as_user(OWNER, """
write(args[0] + "/f", flags=os.O_CREAT | os.O_WRONLY)
os.mkdir(args[0] + "/d")
os.mkdir(args[0] + "/d700", 0o700)
fd = os.open(args[0] + "/x", os.O_CREAT | os.O_WRONLY, 0o755); os.close(fd)
for n in ("f", "d", "d700", "x"):
    say(oct(os.stat(args[0] + "/" + n).st_mode & 0o7777))
""", here, umask=0o027)
    assert words == ["0o640", "0o750", "0o700", "0o750"]
    words = as_user(OWNER, "os.mkdir(args[0]); say(oct(os.stat(args[0]).st_mode & 0o7777))",
                    os.path.join(here, "open"), umask=0)
    assert words == ["0o777"]


# --- times ---------------------------------------------------------------------------------

def test_utimensat_rules(here):
    f = make(os.path.join(here, "f"), 0o666, OWNER, OWNER)
    assert attempt(OTHER, "os.utime(args[0])", f) == "ok"  # touch: write permission
    assert attempt(OTHER, "os.utime(args[0], (1, 2))", f) == "EPERM"
    assert attempt(OTHER, "os.utime(args[0], ns=(1, 2))", f) == "EPERM"
    assert attempt(OWNER, "os.utime(args[0], (1000, 2000))", f) == "ok"
    st = os.stat(f)
    assert (st.st_atime, st.st_mtime) == (1000, 2000)
    g = make(os.path.join(here, "g"), 0o644, OWNER, OWNER)
    assert attempt(OTHER, "os.utime(args[0])", g) == "EACCES"
    assert attempt(OTHER, "os.utime(args[0], (1, 2))", g) == "EPERM"
    os.utime(g, (5, 6))  # root may
    assert os.stat(g).st_mtime == 6


def test_ctime_changes_with_every_change(here):
    f = make(os.path.join(here, "f"), 0o666, OWNER, OWNER)

    def changed(action, name=f):
        before = os.stat(f).st_ctime_ns
        action()
        return os.stat(name).st_ctime_ns > before

    assert changed(lambda: os.chmod(f, 0o664))
    assert changed(lambda: os.chown(f, OTHER, -1))
    assert changed(lambda: os.utime(f, (1, 2)))
    assert changed(lambda: as_user(OTHER, "write(args[0], b'more')", f))
    assert changed(lambda: os.truncate(f, 1))
    moved = f + ".moved"
    assert changed(lambda: os.rename(f, moved), moved)
    os.rename(moved, f)
    before = os.stat(f).st_ctime_ns  # a new link: seen through both names at once
    os.link(f, f + ".link")
    assert os.stat(f + ".link").st_ctime_ns > before
    assert os.stat(f).st_ctime_ns > before and os.stat(f).st_nlink == 2
    before = os.stat(f).st_ctime_ns
    data = open(f, "rb").read()
    assert data and os.stat(f).st_ctime_ns == before  # reading changes nothing


# --- set-id bits cleared -------------------------------------------------------------------

def test_set_id_bits_cleared_on_write_by_non_owner(here):
    f = make(os.path.join(here, "f"), 0o6777, OWNER, TEAM)
    assert attempt(OTHER, "write(args[0], b'changed')", f) == "ok"
    assert mode_of(f) == 0o777
    # set-gid without group x (the mandatory-locking mark) stays for a writer in the
    # group, set-uid goes; a writer outside the group clears both (as Linux 6)
    g = make(os.path.join(here, "g"), 0o6766, OWNER, TEAM)
    assert attempt(OTHER, "write(args[0], b'changed')", g, groups=[TEAM]) == "ok"
    assert mode_of(g) == 0o2766
    g = make(os.path.join(here, "g2"), 0o6766, OWNER, TEAM)
    assert attempt(OTHER, "write(args[0], b'changed')", g) == "ok"
    assert mode_of(g) == 0o766
    # truncation by a writer clears them too
    h = make(os.path.join(here, "h"), 0o4777, OWNER, TEAM)
    assert attempt(OTHER, "os.truncate(args[0], 0)", h) == "ok"
    assert mode_of(h) == 0o777


def test_set_id_bits_cleared_on_chown(here):
    f = make(os.path.join(here, "f"), 0o6755, OWNER, TEAM)
    os.chown(f, OTHER, -1)
    assert mode_of(f) == 0o755
    g = make(os.path.join(here, "g"), 0o6755, OWNER, OWNER)
    assert attempt(OWNER, "os.chown(args[0], -1, int(args[1]))", g, TEAM,
                   groups=[TEAM]) == "ok"
    assert mode_of(g) == 0o755
    d = os.path.join(here, "d")  # a directory keeps them
    os.mkdir(d)
    os.chmod(d, 0o3775)
    os.chown(d, OWNER, TEAM)
    assert mode_of(d) == 0o3775


# --- a normal user's mount ---------------------------------------------------------------------

def test_a_users_mount_is_its_own(shared_cluster, open_dir):
    with Mounted(shared_cluster, os.path.join(open_dir, "carol"), user="carol") as m:
        uid, gid = dfs_ids(m)
        home = m.join("home", "carol")
        f = os.path.join(home, "f")
        with open(f, "w") as out:
            out.write("hi")
        st = os.stat(f)
        assert (st.st_uid, st.st_gid) == (uid, gid)
        # the master alone decides there (no default_permissions): open rights as on ext4
        ro = os.path.join(home, "ro")
        fd = os.open(ro, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444)
        os.write(fd, b"mine")
        os.close(fd)
        assert open(ro, "rb").read() == b"mine"
        with pytest.raises(PermissionError):
            os.open(ro, os.O_WRONLY)
        os.chmod(ro, 0o200)
        with pytest.raises(PermissionError):
            open(ro, "rb")
        fd = os.open(ro, os.O_WRONLY)
        os.write(fd, b"M")
        os.close(fd)
        os.chmod(ro, 0o600)
        assert open(ro, "rb").read() == b"Mine"
        # no allow_other: another local uid cannot even look at the folder
        for local in (OWNER, THIRD):
            assert attempt(local, "os.stat(args[0])", m.path) == "EACCES"
            assert attempt(local, "os.listdir(args[0])", m.path) == "EACCES"

"""t4: the mount against the local file system (ext4 here), scenario by scenario.

Each scenario is a set-up made by root and actions made by another uid; it runs in a
folder of the local disk and in a folder of the mount, and both must give the same
answers (``ok`` or an errno name per action) and leave the same modes, owners, groups,
link counts and sizes. Nothing here says what POSIX answers: the local kernel does, so a
case that differs is a bug of DFS (or one of the differences the report lists).

Two mounts are checked: an admin key's (allow_other and default_permissions: the kernel
checks, then the master; the actions run as uid 2001) and a normal user's (no
default_permissions: the master alone decides; the actions run as the mounting local
user, which the key maps to its DFS user, against a local process of that DFS user's uid,
gid and groups).
"""

import os
import subprocess

import mount_users
import pytest
from mount_users import CHILD_PYTHON, PRELUDE
from t4_mount import Mounted, dfs_ids, pytestmark  # noqa: F401 (skip without FUSE)
from t4_posix import OTHER, OWNER, TEAM

open_dir, admin_mount = mount_users.open_dir, mount_users.admin_mount  # the fixtures

SCENARIO_PRELUDE = PRELUDE + """
import subprocess
B = args[0]
ME, MYGID, OTHER_UID, TEAM = (int(a) for a in args[1:5])
def p(*names):
    return os.path.join(B, *names)
def make(path, mode, uid=0, gid=0, data=b"data"):
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
def folder(path, mode, uid=0, gid=0):
    os.mkdir(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
def sh(*command):
    done = subprocess.run(command, capture_output=True, text=True)
    return "ok" if done.returncode == 0 else done.stderr.strip().rsplit(": ", 1)[-1]
def check(label, f, *a):
    say(label, attempt(f, *a))
def changes(label, action, *paths):
    # which of mtime (m) and ctime (c) of each path the action changes: the coarse clock
    # ext4 stamps with is first let tick, so that a change always shows
    tick = time.clock_gettime_ns(COARSE)
    while time.clock_gettime_ns(COARSE) == tick:
        pass
    pairs = [x if isinstance(x, tuple) else (x, x) for x in paths]  # (before, after)
    before = [os.lstat(x) for x, _ in pairs]
    result = attempt(action)
    after = [os.lstat(y) for _, y in pairs]
    say(label, result, *(("m" if a.st_mtime_ns != b.st_mtime_ns else "-")
                         + ("c" if a.st_ctime_ns != b.st_ctime_ns else "-")
                         for a, b in zip(after, before)))
import time
COARSE = getattr(time, "CLOCK_REALTIME_COARSE", 5)  # Linux's number where Python has none
"""

DUMP = """
for top, dirs, files in sorted(os.walk(B)):
    for name in sorted(dirs + files):
        path = os.path.join(top, name)
        st = os.lstat(path)
        kind = {0o040000: "d", 0o100000: "f", 0o120000: "l"}.get(st.st_mode & 0o170000, "?")
        size = st.st_size if kind in "fl" else "-"
        nlink = st.st_nlink
        say(os.path.relpath(path, B), kind, oct(st.st_mode & 0o7777), st.st_uid, st.st_gid,
            nlink, size)
"""

# (name, set-up as root, actions as the other uid, its supplementary groups, its umask)
SCENARIOS = [
    ("mkdir_modes", "folder(B + '/d', 0o777)", """
check("d1", os.mkdir, p("d", "d1"), 0o7777)
check("d2", os.mkdir, p("d", "d2"), 0o2755)
check("d3", os.mkdir, p("d", "d3"), 0o1700)
""", (), 0o022),
    ("create_modes", """
folder(p("d"), 0o777)
folder(p("team"), 0o2777, 0, TEAM)
""", """
for where in ("d", "team"):
    fd = os.open(p(where, "f"), os.O_CREAT | os.O_WRONLY, 0o6777); os.close(fd)
    fd = os.open(p(where, "g"), os.O_CREAT | os.O_WRONLY, 0o2745); os.close(fd)
    os.mkdir(p(where, "sub"), 0o755)
""", (), 0o022),
    ("umask", "folder(p('d'), 0o777)", """
fd = os.open(p("d", "f"), os.O_CREAT | os.O_WRONLY, 0o666); os.close(fd)
os.mkdir(p("d", "s"))
os.symlink("f", p("d", "l"))
""", (), 0o027),
    ("chmod_set_gid_outside_group", """
make(p("f"), 0o755, ME, 4000)
folder(p("d"), 0o755, ME, 4000)
make(p("mine"), 0o755, ME, MYGID)
""", """
check("f", os.chmod, p("f"), 0o2755)
check("d", os.chmod, p("d"), 0o2755)
check("mine", os.chmod, p("mine"), 0o6755)
check("sticky", os.chmod, p("mine"), 0o1755)
""", (), 0o022),
    ("chown_clears_set_id", """
for n in ("a", "b", "c", "e"):
    make(p(n), 0o6755, ME, MYGID)
make(p("k"), 0o6745, ME, MYGID)
folder(p("d"), 0o3775, ME, MYGID)
""", """
check("a", os.chown, p("a"), -1, TEAM)
check("b", os.chown, p("b"), ME, -1)
check("c", os.chown, p("c"), -1, -1)
check("e", os.chown, p("e"), ME, MYGID)
check("k", os.chown, p("k"), -1, TEAM)
check("d", os.chown, p("d"), -1, TEAM)
check("give", os.chown, p("a"), OTHER_UID, -1)
""", (TEAM,), 0o022),
    ("write_clears_set_id", """
make(p("a"), 0o6777, OTHER_UID, TEAM)
make(p("b"), 0o6767, OTHER_UID, TEAM)
make(p("c"), 0o4777, OTHER_UID, TEAM)
make(p("own"), 0o6777, ME, TEAM)
""", """
check("a", write, p("a"), b"more")
check("b", write, p("b"), b"more")
check("c", os.truncate, p("c"), 1)
check("own", write, p("own"), b"more")
""", (), 0o022),
    ("times", """
make(p("w"), 0o666, OTHER_UID, OTHER_UID)
make(p("r"), 0o644, OTHER_UID, OTHER_UID)
make(p("mine"), 0o444, ME, MYGID)
""", """
for n in ("w", "r", "mine"):
    say(n, sh("touch", p(n)), sh("touch", "-a", p(n)), sh("touch", "-m", p(n)),
        sh("touch", "-d", "2001-01-01", p(n)), attempt(os.utime, p(n), (5, 6)))
""", (), 0o022),
    ("sticky", """
folder(p("t"), 0o1777)
make(p("t", "theirs"), 0o666, OTHER_UID, OTHER_UID)
folder(p("t", "theirdir"), 0o777, OTHER_UID, OTHER_UID)
make(p("t", "mine"), 0o644, ME, MYGID)
folder(p("mysticky"), 0o1777, ME, MYGID)
make(p("mysticky", "theirs"), 0o644, OTHER_UID, OTHER_UID)
""", """
check("unlink", os.unlink, p("t", "theirs"))
check("rmdir", os.rmdir, p("t", "theirdir"))
check("rename", os.rename, p("t", "theirs"), p("t", "x"))
check("replace", os.rename, p("t", "mine"), p("t", "theirs"))
check("into", os.rename, p("t", "theirdir"), p("t", "mine2"))
check("dirowner", os.unlink, p("mysticky", "theirs"))
check("own", os.rename, p("t", "mine"), p("t", "mine3"))
""", (), 0o022),
    ("directories", """
folder(p("ro"), 0o555)
make(p("ro", "f"), 0o666, ME, MYGID)
folder(p("xonly"), 0o711)
make(p("xonly", "f"), 0o644)
folder(p("ronly"), 0o744)
make(p("ronly", "f"), 0o644)
folder(p("moving"), 0o755)
folder(p("moving", "sub"), 0o755, 0, 0)
folder(p("open"), 0o777)
folder(p("open", "notmine"), 0o755)
folder(p("full"), 0o777)
make(p("full", "x"), 0o644, ME, MYGID)
""", """
check("create-ro", write, p("ro", "new"), b"x", os.O_CREAT | os.O_WRONLY)
check("unlink-ro", os.unlink, p("ro", "f"))
check("write-ro", write, p("ro", "f"))
check("stat-x", os.stat, p("xonly", "f"))
check("list-x", os.listdir, p("xonly"))
check("stat-r", os.stat, p("ronly", "f"))
check("list-r", os.listdir, p("ronly"))
check("mv-dir", os.rename, p("open", "notmine"), p("full", "moved"))
check("rmdir-full", os.rmdir, p("full"))
check("mkdir-exists", os.mkdir, p("ro", "f"))
check("rmdir-file", os.rmdir, p("ro", "f"))
check("unlink-dir", os.unlink, p("open", "notmine"))
""", (), 0o022),
    ("access", """
make(p("r"), 0o640, OTHER_UID, TEAM)
make(p("x"), 0o750, OTHER_UID, TEAM)
make(p("none"), 0o600, OTHER_UID, TEAM)
make(p("mine"), 0o066, ME, TEAM)
""", """
for n in ("r", "x", "none", "mine"):
    say(n, *(int(os.access(p(n), m)) for m in (os.R_OK, os.W_OK, os.X_OK, os.F_OK)))
""", (TEAM,), 0o022),
    ("links", """
folder(p("d"), 0o777)
make(p("d", "theirs"), 0o644, OTHER_UID, OTHER_UID)
make(p("d", "shared"), 0o666, OTHER_UID, OTHER_UID)
make(p("d", "suid"), 0o4777, OTHER_UID, OTHER_UID)
make(p("d", "mine"), 0o400, ME, MYGID)
""", """
check("theirs", os.link, p("d", "theirs"), p("d", "l1"))
check("shared", os.link, p("d", "shared"), p("d", "l2"))
check("suid", os.link, p("d", "suid"), p("d", "l3"))
check("mine", os.link, p("d", "mine"), p("d", "l4"))
check("dir", os.link, p("d"), p("d", "l5"))
check("symlink", os.symlink, "/etc/passwd", p("d", "abs"))
check("lchown", os.lchown, p("d", "abs"), -1, TEAM)
""", (TEAM,), 0o022),
    ("times_change", """
folder(p("d"), 0o777)
make(p("d", "f"), 0o666, ME, MYGID)
make(p("d", "empty"), 0o666, ME, MYGID, b"")
make(p("d", "theirs"), 0o666, OTHER_UID, OTHER_UID)
""", """
d, f = p("d"), p("d", "f")
changes("create", lambda: os.close(os.open(p("d", "new"), os.O_CREAT | os.O_WRONLY)), d)
changes("write", lambda: write(f, b"more"), f, d)
changes("chmod", lambda: os.chmod(f, 0o664), f, d)
changes("chgrp", lambda: os.chown(f, -1, MYGID), f)
changes("rename", lambda: os.rename(f, p("d", "g")), (f, p("d", "g")), d)
changes("link", lambda: os.link(p("d", "g"), p("d", "l")), p("d", "g"), d)
changes("unlink", lambda: os.unlink(p("d", "l")), p("d", "g"), d)
changes("utime", lambda: os.utime(p("d", "g"), (5, 6)), p("d", "g"))
changes("touch", lambda: os.utime(p("d", "g")), p("d", "g"))
changes("truncate-same", lambda: os.truncate(p("d", "g"), 4), p("d", "g"))
changes("truncate", lambda: os.truncate(p("d", "g"), 2), p("d", "g"))
changes("otrunc-empty", lambda: os.close(os.open(p("d", "empty"), os.O_WRONLY | os.O_TRUNC)),
        p("d", "empty"))
changes("otrunc", lambda: os.close(os.open(p("d", "g"), os.O_WRONLY | os.O_TRUNC)),
        p("d", "g"))
changes("write-nothing", lambda: write(p("d", "g"), b""), p("d", "g"))
changes("touch-theirs", lambda: os.utime(p("d", "theirs")), p("d", "theirs"))
changes("mkdir", lambda: os.mkdir(p("d", "sub")), d)
changes("rename-dir", lambda: os.rename(p("d", "sub"), p("d", "sub2")),
        (p("d", "sub"), p("d", "sub2")), d)
changes("rmdir", lambda: os.rmdir(p("d", "sub2")), d)
changes("symlink", lambda: os.symlink("g", p("d", "s")), d)
changes("failed", lambda: os.mkdir(p("d", "g")), d, p("d", "g"))
""", (), 0o022),
    ("names", """
folder(p("d"), 0o777)
""", """
d = p("d")
os.mkdir(p("d", "a")); os.mkdir(p("d", "a", "inner")); os.mkdir(p("d", "empty"))
write(p("d", "f"), b"f", os.O_CREAT | os.O_WRONLY); os.link(p("d", "f"), p("d", "f2"))
os.symlink("f", p("d", "s")); os.symlink("nothing", p("d", "dangling"))
check("file-over-dir", os.rename, p("d", "f"), p("d", "empty"))
check("dir-over-file", os.rename, p("d", "empty"), p("d", "f"))
check("dir-over-full", os.rename, p("d", "empty"), p("d", "a"))
check("dir-into-itself", os.rename, p("d", "a"), p("d", "a", "inner", "x"))
check("to-itself", os.rename, p("d", "f"), p("d", "f"))
check("to-its-link", os.rename, p("d", "f"), p("d", "f2"))
check("dir-over-empty", os.rename, p("d", "a"), p("d", "empty"))
check("excl-symlink", os.open, p("d", "s"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
check("nofollow", os.open, p("d", "s"), os.O_RDONLY | os.O_NOFOLLOW)
check("creat-dangling", write, p("d", "dangling"), b"x", os.O_CREAT | os.O_WRONLY)
check("link-symlink", lambda: os.link(p("d", "s"), p("d", "s2"), follow_symlinks=False))
check("mkdir-over-symlink", os.mkdir, p("d", "s"))
check("rmdir-symlink", os.rmdir, p("d", "s"))
check("unlink-missing", os.unlink, p("d", "missing"))
check("through-file", os.stat, p("d", "f", "x"))
check("long-name", os.mkdir, p("d", "n" * 256))
check("name-255", os.mkdir, p("d", "n" * 255))
say(sorted(os.listdir(d)))
""", (), 0o022),
    ("open_rights", """
folder(p("d"), 0o777)
make(p("d", "wo"), 0o622, OTHER_UID, OTHER_UID)
make(p("d", "ro"), 0o644, OTHER_UID, OTHER_UID)
""", """
check("wo-write", write, p("d", "wo"), b"W")
check("wo-read", read, p("d", "wo"))
check("wo-rdwr", os.open, p("d", "wo"), os.O_RDWR)
check("ro-trunc", os.open, p("d", "ro"), os.O_RDONLY | os.O_TRUNC)
check("ro-creat", os.open, p("d", "ro"), os.O_CREAT | os.O_WRONLY)
check("ro-truncate", os.truncate, p("d", "ro"), 0)
fd = os.open(p("d", "new"), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o444)
say("new-write", os.write(fd, b"abc")); os.close(fd)
check("new-again", os.open, p("d", "new"), os.O_WRONLY)
check("excl", os.open, p("d", "new"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
""", (), 0o022),
]


# What a user's mount answers otherwise, and why (asserted, so a change is seen): without
# default_permissions the kernel answers some calls itself before the mount is asked.
USER_MOUNT_KNOWN = {
    # rmdir of a file in a folder one may not write: the kernel's may_delete says ENOTDIR
    # before the file system can say EACCES (the master, asked directly, says EACCES)
    "rmdir-file EACCES": "rmdir-file ENOTDIR",
}


def scenario(name):
    return next(s for s in SCENARIOS if s[0] == name)


def run_child(code, base, ids, uid, gid, groups=(), umask=0o022):
    done = subprocess.run([CHILD_PYTHON, "-c", SCENARIO_PRELUDE + code, base, *map(str, ids)],
                          user=uid, group=gid, extra_groups=list(groups), umask=umask,
                          cwd="/", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"as {uid}: {done.stdout}{done.stderr}"
    return done.stdout.splitlines()


def play(name, setup_base, act_base, ids, actor):
    """Set up as root in ``setup_base``, act as ``actor`` (uid, gid, groups) in
    ``act_base`` (the same folder, maybe seen through another mount). -> the action's
    lines and the tree's stat lines."""
    _name, setup, actions, _groups, umask = scenario(name)
    os.mkdir(setup_base)
    os.chmod(setup_base, 0o755)
    run_child(setup, setup_base, ids, 0, 0)
    uid, gid, groups = actor
    said = run_child(actions, act_base, ids, uid, gid, groups, umask)
    return said, run_child(DUMP, setup_base, ids, 0, 0)


@pytest.fixture(scope="module")
def user_mount(shared_cluster, admin_mount, open_dir):
    """dave's mount, dave in the team group; his actions are made by root (the local user
    who mounts it), which his key turns into dave."""
    with shared_cluster.admin_client() as admin:
        admin.groups_add("team", TEAM)
    m = Mounted(shared_cluster, os.path.join(open_dir, "dave"), user="dave")
    with shared_cluster.admin_client() as admin:
        admin.users_groups("dave", ("team",))
    with m:
        yield m


def local_and_mounted(name, local_root, setup_root, act_root, ids, local_actor, actor):
    local = play(name, os.path.join(local_root, name), os.path.join(local_root, name), ids,
                 local_actor)
    mounted = play(name, os.path.join(setup_root, name), os.path.join(act_root, name), ids,
                   actor)
    return local, mounted


def same(local, mounted, known=None):
    (said_l, tree_l), (said_m, tree_m) = local, mounted
    said_l = [(known or {}).get(line, line) for line in said_l]
    lines = [f"{'' if a == b else '!!'} ext4: {a!r:45} dfs: {b!r}"
             for a, b in zip(said_l + tree_l, said_m + tree_m, strict=False)]
    return said_l == said_m and tree_l == tree_m, "\n".join(lines)


@pytest.mark.parametrize("name", [s[0] for s in SCENARIOS])
def test_admin_mount_answers_as_the_local_disk(name, admin_mount, open_dir):
    groups = scenario(name)[3]
    ids = (OWNER, OWNER, OTHER, TEAM)
    local_root = os.path.join(open_dir, "local-admin")
    os.makedirs(local_root, mode=0o755, exist_ok=True)
    root = admin_mount.join("admin-case")
    os.makedirs(root, mode=0o755, exist_ok=True)
    ok, table = same(*local_and_mounted(name, local_root, root, root, ids,
                                        (OWNER, OWNER, groups), (OWNER, OWNER, groups)))
    assert ok, "\n" + table


@pytest.mark.parametrize("name", [s[0] for s in SCENARIOS])
def test_user_mount_answers_as_the_local_disk(name, user_mount, admin_mount, open_dir):
    uid, gid = dfs_ids(user_mount)
    ids = (uid, gid, OTHER, TEAM)
    local_root = os.path.join(open_dir, "local-user")
    os.makedirs(local_root, mode=0o755, exist_ok=True)
    os.makedirs(admin_mount.join("user-case"), mode=0o755, exist_ok=True)
    ok, table = same(*local_and_mounted(
        name, local_root, admin_mount.join("user-case"), user_mount.join("user-case"), ids,
        (uid, gid, (TEAM,)), (0, 0, ())), USER_MOUNT_KNOWN)  # root's process acts as dave
    assert ok, "\n" + table

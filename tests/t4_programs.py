"""t4: everyday programs in a real mount (issue 11): git, tar, rsync, cp -a, SQLite.

One cluster and one admin mount for the module (an admin key's mount acts as each calling
process, so root's programs act as root and a child of another uid as that uid). Trees
are small (a few hundred files) with owners, groups and modes of several kinds; what a
program copies in is compared, path by path, with ``stat`` of the original: mode, owner,
group, size (files and symlinks), mtime, type, and which paths share an inode.
"""

import os
import random
import shutil
import sqlite3
import stat
import subprocess

import mount_users
import pytest
from t4_mount import pytestmark  # noqa: F401 (skip without FUSE)
from t4_posix import CHILD_PYTHON, OWNER, TEAM

OTHER_OWNER = 2002
STAT_FORMAT = "%n|%F|%a|%u|%g|%s|%Y"


open_dir, admin_mount = mount_users.open_dir, mount_users.admin_mount  # the fixtures


@pytest.fixture(scope="module")
def mnt(admin_mount):
    return admin_mount


@pytest.fixture(scope="module")
def source(open_dir):
    """A local tree: 12 folders, 200 files of several owners, groups and modes, a
    set-gid folder, symlinks, hard links, an empty folder and an empty file."""
    root = os.path.join(open_dir, "source")
    rng = random.Random(11)
    os.mkdir(root)
    owners = [(0, 0), (OWNER, OWNER), (OWNER, TEAM), (OTHER_OWNER, TEAM)]
    file_modes = [0o644, 0o600, 0o640, 0o755, 0o444, 0o750, 0o4755, 0o2755]
    dir_modes = [0o755, 0o750, 0o700, 0o2775, 0o1777, 0o775]
    dirs = [root]
    for d in range(12):
        parent = rng.choice(dirs)
        path = os.path.join(parent, f"dir{d}")
        os.mkdir(path)
        dirs.append(path)
    for n in range(200):
        path = os.path.join(rng.choice(dirs), f"file{n}.dat")
        with open(path, "wb") as f:
            f.write(rng.randbytes(rng.choice([0, 1, 100, 4096, 70_000])))
    os.symlink("file0.dat", os.path.join(root, "relative-link"))
    os.symlink("/nowhere/at/all", os.path.join(root, "dangling-link"))
    os.link(os.path.join(root, "relative-link"), os.path.join(root, "hard"), follow_symlinks=True)
    os.mkdir(os.path.join(root, "empty"))
    open(os.path.join(root, "empty-file"), "wb").close()
    with open(os.path.join(root, "file0.dat"), "ab") as f:
        f.write(b"x")
    walked = sorted(walk(root), key=len, reverse=True)  # deepest first: chmod after chown
    for path in walked:
        uid, gid = rng.choice(owners)
        os.lchown(path, uid, gid)
        if os.path.islink(path):
            continue
        if os.path.isdir(path):
            os.chmod(path, rng.choice(dir_modes))
        else:
            os.chmod(path, rng.choice(file_modes))
        os.utime(path, ns=(rng.randrange(1 << 40) * 1000, rng.randrange(1 << 40) * 1000))
    os.chmod(root, 0o755)
    os.utime(root, (1_600_000_000, 1_600_000_000))
    return root


def walk(root):
    """Every path under ``root`` (not root itself)."""
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            yield os.path.join(top, name)


def run(command, cwd=None, user=None, env=None, timeout=300):
    done = subprocess.run(command, shell=isinstance(command, str), cwd=cwd, user=user,
                          group=user, extra_groups=[] if user is not None else None,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"{command} failed ({done.returncode}):\n"
                                  f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def stat_lines(root):
    """``stat`` of every path under ``root``, relative, sorted: type, mode, owner, group,
    size (of files and symlinks: a folder's size is the file system's own), mtime."""
    out = run(["stat", "-c", STAT_FORMAT, *sorted(walk(root))], timeout=120)
    lines = []
    for line in out.splitlines():
        name, kind, mode, uid, gid, size, mtime = line.split("|")
        if kind == "directory":
            size = "-"
        lines.append("|".join((os.path.relpath(name, root), kind, mode, uid, gid, size, mtime)))
    return lines


def same_inode_groups(root):
    """The sets of relative paths naming one inode (hard links), for files with nlink > 1
    in the tree."""
    by_ino = {}
    for path in walk(root):
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            by_ino.setdefault(st.st_ino, []).append(os.path.relpath(path, root))
    return sorted(sorted(names) for names in by_ino.values() if len(names) > 1)


def assert_same_tree(original, copy, links=True):
    run(["diff", "-r", "--no-dereference", original, copy])
    expected, got = stat_lines(original), stat_lines(copy)
    differing = [(a, b) for a, b in zip(expected, got, strict=False) if a != b]
    assert len(expected) == len(got) and not differing, "\n".join(
        f"source {a}\ncopy   {b}" for a, b in differing[:20])
    if links:
        assert same_inode_groups(copy) == same_inode_groups(original)


@pytest.fixture
def place(mnt, request):
    """A folder of root's in the mount for one test, removed afterwards."""
    path = mnt.join(request.node.name)
    os.mkdir(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- copying trees ---------------------------------------------------------------------------

def test_cp_a_keeps_contents_owners_modes_times_and_links(source, place):
    copy = os.path.join(place, "copy")
    run(["cp", "-a", source, copy])
    assert_same_tree(source, copy)


def test_tar_extract_as_root_then_tar_back_out(source, place, open_dir):
    archive = os.path.join(open_dir, "tree.tar")
    run(["tar", "-C", source, "-cpf", archive, "."])
    inside = os.path.join(place, "tree")
    os.mkdir(inside)
    run(["tar", "--same-owner", "-xpf", archive, "-C", inside])
    assert_same_tree(source, inside)
    # and out again: what tar reads from the mount makes the same tree elsewhere
    back_archive = os.path.join(open_dir, "back.tar")
    run(["tar", "-C", inside, "-cpf", back_archive, "."])
    back = os.path.join(open_dir, "back")
    os.mkdir(back)
    try:
        run(["tar", "--same-owner", "-xpf", back_archive, "-C", back])
        assert_same_tree(source, back)
    finally:
        shutil.rmtree(back)
        os.unlink(archive)
        os.unlink(back_archive)


def test_rsync_a_copies_and_a_second_run_finds_nothing_to_do(source, place):
    copy = os.path.join(place, "copy")
    run(["rsync", "-a", source + "/", copy + "/"])
    assert_same_tree(source, copy, links=False)  # -a does not keep hard links (-H does)
    again = run(["rsync", "-a", "--itemize-changes", source + "/", copy + "/"])
    assert again.strip() == "", f"rsync found differences the second time:\n{again}"
    run(["rsync", "-aH", "--delete", source + "/", copy + "/"])
    assert_same_tree(source, copy)


def without_acl(line, source):
    """What a stat line of cp -a's copy by uid 2001 is on a file system without POSIX
    ACLs (ext4 mounted noacl, and DFS): cp sets the mode of a folder whose owner it could
    not keep with a system.posix_acl_access xattr where it can (the folder keeps the
    sticky bit mkdir gave it), else with chmod, dropping the sticky bit itself."""
    name, kind, mode, *rest = line.split("|")
    original = os.path.join(source, os.path.relpath(name, "t"))
    if (kind == "directory" and int(mode, 8) & 0o1000
            and os.lstat(original).st_uid != OWNER):
        mode = oct(int(mode, 8) & ~0o1000)[2:]
    return "|".join((name, kind, mode, *rest))


@pytest.mark.parametrize("program", ["tar", "cp", "rsync"])
def test_another_uid_copies_as_on_the_local_disk(program, source, place, open_dir):
    """What uid 2001 makes of the tree with tar x (no --same-owner: a user's extraction,
    the umask applied), cp -a and rsync -a (ownership not kept, unreadable files refused)
    in a folder of its own: the same on the local disk and in the mount, errors too."""
    archive = os.path.join(open_dir, f"{program}.tar")
    run(["tar", "-C", source, "-cf", archive, "."])
    results = []
    for top in (os.path.join(open_dir, f"local-{program}"), os.path.join(place, program)):
        os.mkdir(top)
        os.chown(top, OWNER, OWNER)
        target = os.path.join(top, "t")
        command = {"tar": ["tar", "-xf", archive, "-C", top],
                   "cp": ["cp", "-a", source, target],
                   "rsync": ["rsync", "-a", source + "/", target + "/"]}[program]
        done = subprocess.run(command, user=OWNER, group=OWNER, extra_groups=[TEAM],
                              umask=0o027, cwd="/", capture_output=True, text=True,
                              timeout=300)
        errors = sorted(line.replace(top, "TOP") for line in done.stderr.splitlines()
                        if "rsync error" not in line)
        results.append((done.returncode, errors, stat_lines(top)))
    try:
        (code_l, errors_l, tree_l), (code_m, errors_m, tree_m) = results
        assert (code_l, errors_l) == (code_m, errors_m)
        if program == "cp":
            tree_l = [without_acl(line, source) for line in tree_l]
        differing = [f"local {a}\nmount {b}" for a, b in zip(tree_l, tree_m, strict=False)
                     if a != b]
        assert len(tree_l) == len(tree_m) and not differing, "\n".join(differing[:20])
    finally:
        shutil.rmtree(os.path.join(open_dir, f"local-{program}"))
        os.unlink(archive)


# --- git ----------------------------------------------------------------------------------

def git_env(home):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
            "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
            "GIT_CONFIG_NOSYSTEM": "1"}


def git_session(repo, env, user=None):
    """init, add a small tree, commit, change, commit, status, log, fsck, a branch."""
    def git(*args):
        return run(["git", *args], cwd=repo, user=user, env=env)
    git("init", "-q", "-b", "main")
    for d in range(5):
        os.makedirs(os.path.join(repo, f"src{d}"), exist_ok=True)
    for n in range(60):
        with open(os.path.join(repo, f"src{n % 5}", f"m{n}.py"), "w") as f:
            f.write(f"print({n})\n" * (n + 1))
    if user is not None:
        run(["chown", "-R", f"{user}:{user}", repo])
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    with open(os.path.join(repo, "src0", "m0.py"), "a") as f:
        f.write("print('changed')\n")
    os.unlink(os.path.join(repo, "src1", "m1.py"))
    status = git("status", "--porcelain")
    assert sorted(status.splitlines()) == [" D src1/m1.py", " M src0/m0.py"]
    git("commit", "-q", "-am", "second")
    assert git("status", "--porcelain") == ""
    assert git("log", "--format=%s").split() == ["second", "first"]
    git("checkout", "-q", "-b", "side", "HEAD~1")
    assert os.path.exists(os.path.join(repo, "src1", "m1.py"))
    git("checkout", "-q", "main")
    git("gc", "-q")
    git("fsck", "--strict", "--no-progress")
    assert git("status", "--porcelain") == ""


def test_git_as_root(place, open_dir):
    repo = os.path.join(place, "repo")
    os.mkdir(repo)
    git_session(repo, git_env(open_dir))


def test_git_as_another_uid(place, open_dir):
    home = os.path.join(open_dir, f"home{OWNER}")
    os.makedirs(home, exist_ok=True)
    os.chown(home, OWNER, OWNER)
    repo = os.path.join(place, "repo")
    os.mkdir(repo)
    os.chown(repo, OWNER, OWNER)
    git_session(repo, git_env(home), user=OWNER)
    st = os.stat(os.path.join(repo, ".git", "HEAD"))
    assert (st.st_uid, st.st_gid) == (OWNER, OWNER)


# --- SQLite -------------------------------------------------------------------------------

SQLITE_SESSION = """
import sqlite3, sys
path, journal = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, isolation_level=None)
assert db.execute("PRAGMA journal_mode=" + journal).fetchone()[0].lower() == journal.lower()
db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
db.execute("BEGIN")
db.executemany("INSERT INTO t (v) VALUES (?)", [(str(i) * 50,) for i in range(2000)])
db.execute("COMMIT")
db.execute("BEGIN")
db.execute("DELETE FROM t WHERE id % 2 = 0")
db.execute("ROLLBACK")
assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
for i in range(50):  # many small transactions: the journal made and dropped each time
    db.execute("BEGIN")
    db.execute("UPDATE t SET v = ? WHERE id = ?", ("x" * i, i + 1))
    db.execute("COMMIT")
db.execute("CREATE INDEX IF NOT EXISTS tv ON t (v)")
db.execute("VACUUM")
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
db.close()
db = sqlite3.connect(path)
assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
assert db.execute("SELECT v FROM t WHERE id = 50").fetchone()[0] == "x" * 49
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
db.close()
print("ok")
"""


@pytest.mark.parametrize("journal", ["delete", "truncate", "wal"])
def test_sqlite_transactions_and_integrity(place, journal):
    path = os.path.join(place, f"{journal}.db")
    out = run([CHILD_PYTHON, "-c", SQLITE_SESSION, path, journal])
    assert out.split() == ["ok"]
    db = sqlite3.connect(path)  # and another connection, in this process, agrees
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
    finally:
        db.close()


def test_sqlite_as_another_uid(place):
    os.chown(place, OWNER, OWNER)
    path = os.path.join(place, "mine.db")
    out = run([CHILD_PYTHON, "-c", SQLITE_SESSION, path, "delete"], user=OWNER)
    assert out.split() == ["ok"]
    st = os.stat(path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (OWNER, 0o644)

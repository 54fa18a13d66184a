"""t4: the same permission cases through an admin mount (the kernel's default_permissions,
then the master) and asked of the master directly (an admin key's act_as, no kernel in
between), on two copies of one tree: both must answer as ext4 does. The master is the only
check for other clients (the CLI, the Python API, a user's mount), so it must not lean on
the kernel's.
"""

import errno
import os
import shutil
import tempfile

import pytest
from t4_mount import pytestmark  # noqa: F401 (skip without FUSE)
from t4_posix import OTHER, OWNER, STRANGERS, TEAM, THIRD, AdminMount, attempt, make

from dfs import errors


@pytest.fixture(scope="module")
def admin_mount(shared_cluster):
    base = tempfile.mkdtemp(prefix="dfs-master-")  # every uid may pass through it
    os.chmod(base, 0o755)
    try:
        with AdminMount(shared_cluster, os.path.join(base, "admin")) as m:
            yield m
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def here(admin_mount, request):
    path = admin_mount.join(request.node.name)
    os.mkdir(path, 0o755)
    return path


def build(root):
    """The same small tree under ``root`` (a path in the mount), made by root."""
    os.mkdir(root, 0o755)
    for name, mode, uid, gid in (("priv", 0o700, OWNER, OWNER), ("team", 0o770, OWNER, TEAM),
                                 ("sticky", 0o1777, 0, 0), ("ro", 0o555, 0, 0)):
        os.mkdir(os.path.join(root, name))
        os.chown(os.path.join(root, name), uid, gid)
        os.chmod(os.path.join(root, name), mode)
    make(os.path.join(root, "priv", "f"), 0o644, OWNER, OWNER)
    make(os.path.join(root, "team", "f"), 0o660, OWNER, TEAM)
    make(os.path.join(root, "sticky", "a"), 0o666, OWNER, OWNER)
    make(os.path.join(root, "sticky", "b"), 0o666, OTHER, OTHER)
    make(os.path.join(root, "f640"), 0o640, OWNER, TEAM)
    make(os.path.join(root, "f077"), 0o077, OWNER, TEAM)
    os.chmod(os.path.join(root, "ro"), 0o755)
    make(os.path.join(root, "ro", "f"), 0o666, OWNER, OWNER)
    os.chmod(os.path.join(root, "ro"), 0o555)


# (who, groups, operation, path(s), errno name as ext4 answers)
CASES = [
    (OWNER, (), "stat", "priv/f", "ok"),
    (OTHER, (), "stat", "priv/f", "EACCES"),
    (OTHER, (TEAM,), "listdir", "team", "ok"),
    (THIRD, (), "listdir", "team", "EACCES"),
    (OTHER, (TEAM,), "create", "team/new", "ok"),
    (THIRD, (), "create", "team/new", "EACCES"),
    (OWNER, (), "create", "ro/new", "EACCES"),
    (OWNER, (), "mkdir", "ro/d", "EACCES"),
    (OWNER, (), "unlink", "ro/f", "EACCES"),
    (OTHER, (), "unlink", "sticky/a", "EPERM"),
    (OTHER, (), "rename", "sticky/a sticky/c", "EPERM"),
    (OTHER, (), "rename", "sticky/b sticky/a", "EPERM"),
    (OTHER, (), "unlink", "sticky/b", "ok"),
    (OTHER, (TEAM,), "read", "f640", "ok"),
    (OTHER, (TEAM,), "write", "f640", "EACCES"),
    (THIRD, (), "read", "f640", "EACCES"),
    (OWNER, (), "read", "f077", "EACCES"),
    (OTHER, (TEAM,), "read", "f077", "ok"),
    (OTHER, (TEAM,), "chmod", "f640", "EPERM"),
    (OWNER, (TEAM,), "chown_user", "f640", "EPERM"),
    (OWNER, (), "chown_group", "f640", "EPERM"),
    (OTHER, (), "touch", "f640", "EACCES"),
    (OTHER, (TEAM,), "touch", "team/f", "ok"),
    (OTHER, (TEAM,), "set_times", "team/f", "EPERM"),
    (OWNER, (), "set_times", "f077", "ok"),
    (OWNER, (), "rmdir", "priv", "EACCES"),  # / is root's 0755
    (OWNER, (), "rmdir", "ro/f", "EACCES"),  # permission first, then ENOTDIR
]

KERNEL_CODE = {  # the operation as a local program makes it, through the mount
    "stat": "os.stat(args[0])", "listdir": "os.listdir(args[0])",
    "create": "write(args[0], flags=os.O_CREAT | os.O_EXCL | os.O_WRONLY)",
    "mkdir": "os.mkdir(args[0])", "unlink": "os.unlink(args[0])",
    "rmdir": "os.rmdir(args[0])", "rename": "os.rename(args[0], args[1])",
    "read": "read(args[0])", "write": "write(args[0])", "chmod": "os.chmod(args[0], 0o777)",
    "chown_user": f"os.chown(args[0], {OTHER}, -1)",
    "chown_group": f"os.chown(args[0], -1, {STRANGERS})",
    "touch": "os.utime(args[0])", "set_times": "os.utime(args[0], (1, 2))"}


def master_call(client, operation, paths):
    """The same operation asked of the master alone (no kernel in between)."""
    def write(path):
        with client.open(path, "r+b") as f:
            f.write(b"x")
    calls = {
        "stat": client.stat, "listdir": client.listdir,
        "create": lambda p: client.create(p, 0o644), "mkdir": lambda p: client.mkdir(p, 0o755),
        "unlink": client.rm, "rmdir": client.rmdir, "rename": client.rename,
        "read": client.read_bytes, "write": write,
        "chmod": lambda p: client.chmod(p, 0o777),
        "chown_user": lambda p: client.chown(p, OTHER, None),
        "chown_group": lambda p: client.chown(p, None, STRANGERS),
        "touch": lambda p: client.utimens(p, to_now=True),
        "set_times": lambda p: client.utimens(p, 1, 2)}
    try:
        calls[operation](*paths)
        return "ok"
    except errors.DfsError as exc:
        return errno.errorcode[exc.errno]


def test_the_kernel_and_the_master_answer_alike(admin_mount, here, shared_cluster):
    """Each case twice, on two copies of one tree: through the mount (the kernel's
    default_permissions, then the master) and asked of the master directly, acting as the
    same ids (an admin key's act_as): both must answer as ext4 does."""
    kernel_root, master_root = os.path.join(here, "k"), os.path.join(here, "m")
    build(kernel_root)
    build(master_root)
    inside = "/" + os.path.relpath(master_root, admin_mount.path)
    answers = []
    with shared_cluster.admin_client() as admin:
        for uid, groups, operation, names, expected in CASES:
            paths = names.split()
            through_mount = attempt(uid, KERNEL_CODE[operation],
                                    *(os.path.join(kernel_root, p) for p in paths),
                                    groups=groups)
            view = admin.acting_as(uid, uid, groups)
            try:
                direct = master_call(view, operation, [f"{inside}/{p}" for p in paths])
            finally:
                view.close()
            answers.append((uid, groups, operation, names, expected, through_mount, direct))
    wrong = [a for a in answers if not a[4] == a[5] == a[6]]
    assert not wrong, "\n".join(f"{a[:4]}: ext4 {a[4]}, mount {a[5]}, master {a[6]}"
                                 for a in wrong)

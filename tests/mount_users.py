"""Other local uids on a real mount, for the t4 tests: an admin key's mount (allow_other,
default_permissions, each caller acts as itself) in a folder every uid may pass through,
and child Pythons run as uids that have no passwd entry.

A test module takes the fixtures by importing them: ``from mount_users import admin_mount,
open_dir  # noqa: F401 (fixtures)``; each module gets its own (module scope)."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from t4_mount import Mounted

# the children's Python: any uid may run the system's (this one may live in root's home)
SYSTEM_PYTHON = "/usr/bin/python3"
CHILD_PYTHON = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable

PRELUDE = """
import errno, os, sys
args = sys.argv[1:]
def attempt(f, *a, **k):
    try:
        f(*a, **k)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def write(path, data=b"x", flags=os.O_WRONLY):
    fd = os.open(path, flags, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
def read(path):
    with open(path, "rb") as f:
        return f.read()
def say(*words):
    print(*words)
"""


def as_user(uid, code, *args, gid=None, groups=(), umask=0o022):
    """Run ``code`` (Python, after PRELUDE; ``args`` as ``args``) as ``uid``:``gid`` (gid
    defaults to uid) with exactly ``groups`` as supplementary groups. -> its printed words."""
    done = subprocess.run([CHILD_PYTHON, "-c", PRELUDE + code, *map(str, args)],
                          user=uid, group=uid if gid is None else gid,
                          extra_groups=list(groups), umask=umask, cwd="/",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"child as {uid} failed:\n{done.stdout}{done.stderr}"
    return done.stdout.split()


def attempt(uid, expression, *args, **ids):
    """'ok' or the errno name of one expression evaluated as ``uid``."""
    words = as_user(uid, f"say(attempt(lambda: {expression}))", *args, **ids)
    return words[0]


class AdminMount(Mounted):
    """`dfs mount` with the cluster's admin key: allow_other, each caller as itself."""

    def __init__(self, cluster, path):
        self.cluster, self.path, self.auth = cluster, str(path), cluster.admin_auth_file
        self.timeout, self.cache_dir, self.pid = 20.0, "", None


@pytest.fixture(scope="module")
def open_dir(request):
    """A temp folder every uid may pass through (pytest's own are root's 0700)."""
    base = tempfile.mkdtemp(prefix=f"dfs-{request.module.__name__}-")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def admin_mount(shared_cluster, open_dir):
    with AdminMount(shared_cluster, os.path.join(open_dir, "admin")) as m:
        yield m

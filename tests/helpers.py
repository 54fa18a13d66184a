"""One helper each for what many tests do: run the `dfs` command, step a clock, hash bytes.

Imported by the test modules (``from helpers import ...``); pytest puts tests/ on sys.path.
"""

import contextlib
import errno
import hashlib
import os
import posixpath
import subprocess
import sys
import urllib.request

import pytest

from dfs import paths

DFS = [sys.executable, "-m", "dfs.cli"]


def run_dfs(*args, env=None, check=True, timeout=180, stdin=subprocess.DEVNULL, text=True):
    """``dfs ARGS...`` as a user types it, in a real process, with no terminal. With
    ``check`` a non-zero exit fails the test with everything the command printed;
    ``text=False`` keeps stdout as bytes (``dfs cat``)."""
    done = subprocess.run([*DFS, *map(str, args)], env=env, capture_output=True, text=text,
                          timeout=timeout, stdin=stdin)
    if check and done.returncode != 0:
        raise AssertionError(f"dfs {' '.join(map(str, args))} exited {done.returncode}:\n"
                             f"{done.stdout!s}{done.stderr!s}")
    return done


class SteppedClock:
    """A monotonic clock the test moves by hand: ``clock()`` reads it, ``clock.step(s)``
    advances it. Pass it wherever a component takes an injected ``clock``; pass
    ``clock.sleep`` as its ``sleep``: every sleep is recorded in ``sleeps`` and moves time."""

    def __init__(self, start=100.0):
        self.now = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def step(self, seconds):
        self.now += seconds
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.step(seconds)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, block=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(block):
            digest.update(piece)
    return digest.hexdigest()


def random_bytes(size, seed=0):
    """Incompressible test data, reproducible per seed."""
    import random
    return random.Random(seed).randbytes(size) if size else b""


def tree_digest(root):
    """{relative path: sha256 or 'dir'} of a local tree, to compare two copies."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = sha256_file(path)
    return found


def cluster_tree(client):
    """{path: (stat without atime and ctime, sha256 of a file's bytes or None)} of the whole
    tree as ``client`` sees it: what an attack on the cluster must leave unchanged. The
    folder of homes and the homes themselves are walked but not recorded: registering a
    user (as an attack test does) makes its home, and that is not the attack's doing."""
    tree = {}
    pending = ["/"]
    while pending:
        directory = pending.pop()
        for entry in client.listdir(directory):
            path = directory.rstrip("/") + "/" + entry.name
            st = entry.stat
            if st.kind == "d":
                pending.append(path)
            if path == paths.HOMES or posixpath.dirname(path) == paths.HOMES:
                continue
            digest = sha256(client.read_bytes(path)) if st.kind == "f" else None
            tree[path] = (st.ino, st.kind, st.mode, st.owner, st.size, st.mtime_ns, st.nlink,
                          digest)
    return tree


def scrape(url):
    """{(metric name, ((label, value), ...)): value} of a node's /metrics page (``url``:
    its status page, ending in /)."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url + "metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))



@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of ``size`` on ``path``, unmounted afterwards whatever happens."""
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path):
    """Write ``path`` until the file system has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for block in (1 << 20, 1 << 12):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

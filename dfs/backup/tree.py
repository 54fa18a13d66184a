"""The watched folder: how its files are named locally and in the cluster, and a walk of it."""

from __future__ import annotations

import logging
import os
import posixpath
import stat as stat_module
from collections.abc import Iterable

from dfs.backup.changes import Scan, Signature

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = (".dfs-partial",)  # `dfs get` writes these and renames them when done


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns)


class Tree:
    """The mapping between relative paths ('a/b.txt') and local and remote paths."""

    def __init__(self, local_root: str, remote_root: str, ignore: Iterable[str] = ()) -> None:
        self.local_root = os.path.abspath(local_root)
        self.remote_root = remote_root
        self.ignore = {os.path.abspath(p) for p in ignore}

    def local(self, rel: str) -> str:
        return os.path.join(self.local_root, *rel.split("/")) if rel else self.local_root

    def remote(self, rel: str) -> str:
        return posixpath.join(self.remote_root, rel) if rel else self.remote_root

    def relative(self, path: str | bytes) -> str | None:
        """A local path -> its relative path, or None if outside the tree or ignored."""
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.path.abspath(path)
        if path in self.ignore or path.endswith(IGNORED_SUFFIXES):
            return None
        rel = os.path.relpath(path, self.local_root)
        if rel == "." or rel == ".." or rel.startswith(".." + os.sep):
            return None
        return rel.replace(os.sep, "/")

    def stat(self, rel: str) -> Signature | None:
        """(size, mtime_ns) of a regular file; None if gone or not a regular file."""
        try:
            st = os.lstat(self.local(rel))
        except OSError:
            return None
        return signature(st) if stat_module.S_ISREG(st.st_mode) else None


class Scanner:
    """Walks the local folder. Symlinks and special files are skipped (not followed)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def scan(self, top: str = "") -> Scan:
        """-> the regular files under ``top`` with their signatures, and its directories."""
        files: dict[str, Signature] = {}
        dirs: list[str] = []

        def report(exc: OSError) -> None:
            log.warning("cannot read %s: %s", exc.filename, exc.strerror)
        for root, dirnames, filenames in os.walk(self.tree.local(top), onerror=report):
            for name in dirnames:
                rel = self.tree.relative(os.path.join(root, name))
                if rel is not None and not os.path.islink(os.path.join(root, name)):
                    dirs.append(rel)
            for name in filenames:
                rel = self.tree.relative(os.path.join(root, name))
                if rel is None:
                    continue
                found = self.tree.stat(rel)
                if found is not None:
                    files[rel] = found
        return Scan(files, dirs)

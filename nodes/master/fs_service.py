"""The master's namespace endpoints: look, make, link, remove, rename, set attributes, and
the trash. Each one authenticates, validates its arguments' types, takes the metadata
lock, asks a rule (dfs/namespace/rules.py, rules_trash.py) for the entry, commits it and
answers in wire form. Requests that carry a request id (``rid``) go through ``_once``."""

from __future__ import annotations

from collections.abc import Callable

from dfs import errors, wire
from dfs.namespace import rules, rules_trash, trash_index
from dfs.namespace.access import Cred
from dfs.namespace.entries import Entry, named_ino
from dfs.namespace.inode import as_path, check_name
from dfs.namespace.model import Namespace
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect

# (namespace, who acts, now in ns) -> the entry, or None when there is nothing to change
Decide = Callable[[Namespace, Cred, int], Entry | None]


class FsEndpoints(Session):
    def _once(self, rid: object, decide: Decide, made: bool = False) -> wire.Wire:
        """Decide and commit one change, at most once per request id: the retry of a request
        that took effect (the client lost the answer in a failover) is answered with what
        it did. -> the stat of the inode it made or linked if ``made``, else None."""
        request = expect(rid, (str, type(None)), "request id")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            done = rules.replayed(ns, request, made)
            if done is not None:
                ino = done.ino
            else:
                decided = decide(ns, user, self.state.wall_ns())
                if decided is None:
                    return None
                entry = rules.with_request(decided, request)
                self.state.commit(entry)
                ino = named_ino(entry)
            return wire.stat_to_wire(ns.stat(ns.inodes[ino])) if made else None

    # --- looking ----------------------------------------------------------------------

    @boundary
    def exposed_stat(self, path: object) -> wire.Wire:
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            return wire.stat_to_wire(ns.stat(rules.stat_target(ns, user, as_path(path))))

    @boundary
    def exposed_stat_many(self, folder: object, names: object) -> wire.Wire:
        """-> the stat of each name in ``folder`` (None where it is missing), in one call:
        the mount's look-ahead while a program stats a listed folder's files in turn. As
        many stats (the same rule, the same errors but ENOENT), at most MAX_STAT_MANY names."""
        folder = as_path(folder)
        names = expect(names, tuple, "names")
        if not 0 < len(names) <= rules.MAX_STAT_MANY:
            raise errors.InvalidArgument(f"from 1 to {rules.MAX_STAT_MANY} names")
        for name in names:
            check_name(name)
        base = folder.rstrip("/")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            found: list[wire.Stat | None] = []
            for name in names:
                try:
                    inode = rules.stat_target(ns, user, f"{base}/{name}")
                except errors.FileNotFound:
                    found.append(None)
                else:
                    found.append(ns.stat(inode))
            return wire.stats_to_wire(found)

    @boundary
    def exposed_listdir(self, path: object) -> wire.Wire:
        """-> ((name, stat), ...) of the entries this user may see, in one call."""
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            return wire.entries_to_wire(ns.listdir(rules.listable(ns, user, as_path(path))))

    @boundary
    def exposed_readlink(self, path: object) -> str:
        with self.state.lock:
            user = self._serving()
            return rules.readlink(self.state.ns, user, as_path(path))

    # --- making -----------------------------------------------------------------------

    @boundary
    def exposed_mkdir(self, path: object, mode: object = 0o700, rid: object = None) -> wire.Wire:
        path = as_path(path)
        mode = expect(mode, int, "mode")
        return self._once(rid, lambda ns, user, now: rules.mkdir(ns, user, path, mode, now),
                          made=True)

    @boundary
    def exposed_create(self, path: object, mode: object = 0o600, rid: object = None) -> wire.Wire:
        """Create an empty file; FileExists if the name is taken."""
        path = as_path(path)
        mode = expect(mode, int, "mode")
        return self._once(rid, lambda ns, user, now: rules.create(ns, user, path, mode, now),
                          made=True)

    @boundary
    def exposed_symlink(self, path: object, target: object, rid: object = None) -> wire.Wire:
        path = as_path(path)
        target = expect(target, str, "target")
        rules.check_symlink_target(target)
        return self._once(rid, lambda ns, user, now: rules.symlink(ns, user, path, target, now),
                          made=True)

    @boundary
    def exposed_mknod(self, path: object, kind: object, mode: object = 0o644, rdev: object = 0,
                      rid: object = None) -> wire.Wire:
        """A fifo ("p"), socket ("s") or device ("c", "b": the superuser only, numbered
        ``rdev``), metadata only; "f" makes an empty file (rules.mknod)."""
        path = as_path(path)
        kind = expect(kind, str, "kind")
        mode = expect(mode, int, "mode")
        rdev = expect(rdev, int, "rdev")
        return self._once(rid, lambda ns, user, now: rules.mknod(ns, user, path, kind, mode, rdev,
                                                                 now), made=True)

    @boundary
    def exposed_link(self, existing: object, path: object, rid: object = None) -> wire.Wire:
        existing, path = as_path(existing), as_path(path)
        return self._once(rid, lambda ns, user, now: rules.link(ns, user, existing, path, now),
                          made=True)

    # --- removing and moving ------------------------------------------------------------

    def _remove(self, path: object, want_dir: bool, rid: object) -> None:
        path = as_path(path)
        keep = self.state.config.trash_seconds
        self._once(rid, lambda ns, user, now: rules.remove(ns, user, path, want_dir, now,
                                                           self.state.wall(), keep))

    @boundary
    def exposed_unlink(self, path: object, rid: object = None) -> None:
        self._remove(path, want_dir=False, rid=rid)

    @boundary
    def exposed_rmdir(self, path: object, rid: object = None) -> None:
        self._remove(path, want_dir=True, rid=rid)

    @boundary
    def exposed_rename(self, src: object, dst: object, rid: object = None,
                       flags: object = 0) -> None:
        """Atomic; replaces ``dst`` as POSIX rename does (an empty directory by a directory).
        ``flags``: renameat2's RENAME_NOREPLACE (1) and RENAME_EXCHANGE (2)."""
        src, dst = as_path(src), as_path(dst)
        flags = expect(flags, int, "flags")
        self._once(rid, lambda ns, user, now: rules.rename(ns, user, src, dst, now, flags))

    @boundary
    def exposed_setattr(self, path: object, mode: object = None, uid: object = None,
                        gid: object = None, atime_ns: object = None, mtime_ns: object = None,
                        to_now: object = False) -> wire.Wire:
        """chmod, chown, utimens with the POSIX rules (rules.set_attributes). ``uid`` and
        ``gid``: numbers, or a user's / group's name; ``to_now``: both times to now."""
        path = as_path(path)
        maybe_int = (int, type(None))
        mode = expect(mode, maybe_int, "mode")
        atime_ns = expect(atime_ns, maybe_int, "atime_ns")
        mtime_ns = expect(mtime_ns, maybe_int, "mtime_ns")
        to_now = expect(to_now, bool, "to_now")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            now = self.state.wall_ns()
            entry = rules.set_attributes(ns, user, path, now, mode, owner_id(ns, uid, "user"),
                                         owner_id(ns, gid, "group"), atime_ns, mtime_ns,
                                         to_now)
            self.state.commit(entry)
            return wire.stat_to_wire(ns.stat(ns.inodes[entry.ino]))

    # --- trash ------------------------------------------------------------------------

    @boundary
    def exposed_trash_page(self, limit: object = trash_index.PAGE_MAX,
                           cursor: object = None) -> wire.Wire:
        """One page of the caller's trash, newest first: at most ``limit`` (1 to
        trash_index.PAGE_MAX) items after ``cursor`` (None: from the newest).
        -> (wire.TrashEntry records, the next page's cursor or None at the end, the
        trash's version). O(limit) under the lock, from the namespace's trash index."""
        limit = trash_index.check_limit(expect(limit, int, "limit"))
        cursor = expect(cursor, (str, type(None)), "cursor")
        with self.state.lock:
            user = self._serving()
            trash = self.state.ns.trash
            items, after = trash.page(user.uid, limit, cursor)
            return (wire.trash_to_wire([
                wire.TrashEntry(tid, item.path, item.inode.size, item.deleted_at, item.expires)
                for tid, item in items]), after, trash.version(user.uid))

    @boundary
    def exposed_trash_version(self) -> str:
        """-> the caller's trash's version: it changes whenever that trash does (compare
        for equality only), so a listing is only asked for again when it would differ."""
        with self.state.lock:
            user = self._serving()
            return self.state.ns.trash.version(user.uid)

    @boundary
    def exposed_trash_move(self, path: object, rid: object = None) -> None:
        """unlink ``path`` into the caller's trash, or change nothing and refuse (NotSupported)
        when the trash would not keep it: no trash, not a regular file, or it has other links."""
        path = as_path(path)
        keep = self.state.config.trash_seconds

        def decide(ns: Namespace, user: Cred, now: int) -> Entry:
            entry = rules.remove(ns, user, path, False, now, self.state.wall(), keep)
            if entry.trash is None:
                raise errors.NotSupported(f"{path}: the trash does not keep it (the trash is "
                                          "off, or it is not a file with one name)")
            return entry
        self._once(rid, decide)

    @boundary
    def exposed_trash_restore(self, path: object, trash_id: object = None) -> wire.Wire:
        """Put the newest trashed version of ``path`` back there (with ``trash_id``: that item,
        at ``path``; missing parent directories are made again). -> its stat. FileExists if
        the path is taken."""
        path = expect(path, str, "path")
        trash_id = expect(trash_id, (str, type(None)), "trash id")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            parents, restore = rules_trash.restore(ns, user, path, self.state.wall_ns(),
                                                   trash_id)
            inode = ns.trash[restore.trash_id].inode
            for mkdir in parents:
                self.state.commit(mkdir)
            self.state.commit(restore)
            return wire.stat_to_wire(ns.stat(inode))

    @boundary
    def exposed_trash_purge(self, trash_id: object) -> int:
        """Free one item of the caller's trash now. -> 1, or 0 if it is not (or no longer) there."""
        trash_id = expect(trash_id, str, "trash id")
        with self.state.lock:
            user = self._serving()
            purge = rules_trash.purge(self.state.ns, user, trash_id)
            if purge is None:
                return 0
            self.state.commit(purge)
            return 1

    @boundary
    def exposed_trash_empty(self) -> int:
        """Free the caller's trash now. -> how many files were in it."""
        with self.state.lock:
            user = self._serving()
            purge = rules_trash.empty(self.state.ns, user)
            if purge is None:
                return 0
            self.state.commit(purge)
            return len(purge.trash_ids)


def owner_id(ns: Namespace, value: object, kind: str) -> int | None:
    """A chown argument: None (unchanged), an id, or a name: a user's (their uid; as a
    group, their primary group) or a group's an admin named."""
    if value is None or type(value) is int:
        return value
    name = expect(value, str, kind)
    if kind == "group" and name in ns.groups:
        return ns.groups[name]
    user = ns.users.get(name)
    if user is None:
        raise errors.InvalidArgument(f"no {kind} {name}")
    return user.uid if kind == "user" else user.gid

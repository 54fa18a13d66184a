"""The master's rpyc service: one object per connection, who logged in on it, and the
exposed methods."""


import logging
import re
import secrets
import time

from dfs import auth, errors, wire
from dfs.namespace.model import ROOT_INO, R, W, X, split_path
from nodes.master.links import serve_voter_call
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect, is_loopback

log = logging.getLogger(__name__)

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_CHUNKS_PER_CALL = 4096


def now_ns():
    return time.time_ns()


def _is_below(parts, ancestor_parts):
    """Is the path ``parts`` strictly inside ``ancestor_parts``? Paths are resolved from the
    root without following symlinks and directories have one name, so prefixes decide."""
    return len(parts) > len(ancestor_parts) and parts[:len(ancestor_parts)] == ancestor_parts


class MasterService(Session):
    """The exposed methods (one service object per connection, see Session)."""

    @boundary
    def exposed_hello(self):
        """-> (server nonce, "leader" or "standby", epoch). Starts a login."""
        self.nonce = auth.new_nonce()
        return self.nonce, self.state.leadership.role, self.state.epoch

    @boundary
    def exposed_login(self, name, client_nonce, proof):
        expect(name, str, "user name")
        expect(client_nonce, bytes, "nonce")
        expect(proof, bytes, "proof")
        nonce, self.nonce = self.nonce, None
        if nonce is None:
            raise errors.AuthenticationFailed("call hello() before login()")
        with self.state.lock:
            self.state.require_serving()
            user = self.state.ns.users.get(name)
            if user is None or not auth.check_proof(user.stored_key, name, nonce,
                                                    client_nonce, proof):
                log.warning("failed login for %r from %s", name, self.peer)
                raise errors.AuthenticationFailed("unknown user or wrong key")
            self.user = name
            return name, user.admin

    @boundary
    def exposed_worker_login(self, worker_id, client_nonce, proof):
        expect(worker_id, str, "worker id")
        nonce, self.nonce = self.nonce, None
        if nonce is None or not auth.check_proof(auth.stored_form(self.state.join_token),
                                                 worker_id, nonce, client_nonce, proof):
            log.warning("worker %r from %s failed to log in", worker_id, self.peer)
            raise errors.AuthenticationFailed("wrong join token")
        self.worker_id = worker_id
        return self.state.config.heartbeat_interval, self.state.epoch

    @boundary
    def exposed_register(self, name, token):
        """Create user ``name`` and return its new key (shown once, stored hashed)."""
        expect(name, str, "user name")
        expect(token, (str, type(None)), "token")
        if not USER_NAME.match(name):
            raise errors.InvalidArgument(
                "user names are 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
        open_here = self.state.config.open_registration and is_loopback(self.peer)
        token_ok = token is not None and secrets.compare_digest(token, self.state.join_token)
        admin_caller = self.user is not None and self.state.ns.is_admin(self.user)
        if not (open_here or token_ok or admin_caller):
            raise errors.AuthenticationFailed("registration needs the cluster's join token")
        return self._add_user(name, admin=False)

    @boundary
    def exposed_Auth_Host(self, name, client_nonce=None, proof=None, token=None):
        """The original design's entry point, kept by name: with a proof (after hello())
        it authorizes a known key -> ("authorized", is_admin); without one it starts a
        registration -> ("registered", new key)."""
        if proof is not None:
            return "authorized", self.exposed_login(name, client_nonce, proof)[1]
        return "registered", self.exposed_register(name, token)

    def _add_user(self, name, admin):
        key = auth.new_key()
        with self.state.lock:
            self.state.require_serving()
            if name in self.state.ns.users:
                raise errors.FileExists(f"user {name} already exists")
            self.state.commit({"op": "adduser", "name": name, "admin": admin,
                               "stored_key": auth.stored_form(key)})
        log.info("registered user %s", name)
        return key

    # --- admin -----------------------------------------------------------------------

    @boundary
    def exposed_users_list(self):
        self._admin()
        with self.state.lock:
            return tuple((u.name, u.admin) for u in sorted(self.state.ns.users.values(),
                                                             key=lambda u: u.name))

    @boundary
    def exposed_users_add(self, name, admin=False):
        self._admin()
        expect(name, str, "user name")
        if not USER_NAME.match(name):
            raise errors.InvalidArgument("bad user name")
        return self._add_user(name, bool(admin))

    @boundary
    def exposed_users_revoke(self, name):
        me = self._admin()
        expect(name, str, "user name")
        if name == me:
            raise errors.InvalidArgument("you cannot revoke your own key")
        with self.state.lock:
            if name not in self.state.ns.users:
                raise errors.FileNotFound(f"no user {name}")
            self.state.commit({"op": "revoke", "name": name})

    # --- namespace -------------------------------------------------------------------

    @boundary
    def exposed_stat(self, path):
        with self.state.lock:
            user = self._serving()
            inode = self.state.ns.resolve(path, user)
            self._check_visible(user, inode, path)
            return wire.stat_to_wire(inode.stat())

    def _check_visible(self, user, inode, path):
        if not self.state.ns.visible(user, inode):
            raise errors.PermissionDenied(f"{path}: permission denied")

    @boundary
    def exposed_listdir(self, path):
        """-> ((name, stat), ...) of the entries this user may see, in one call."""
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            directory = ns.resolve(path, user)
            if directory.kind != "d":
                raise errors.NotADirectory(f"{path} is not a directory")
            ns.require(user, directory, R, path)
            return wire.entries_to_wire(ns.listdir(directory, user))

    def _already_done(self, rid):
        """A retry (after a failover) of a request that took effect: -> its inode, else None."""
        if rid is None:
            return None
        expect(rid, str, "request id")
        return self.state.ns.recent.get(rid)

    def _new_entry(self, op, path, mode, rid=None, **extra):
        expect(mode, int, "mode")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            done = self._already_done(rid)
            if done is not None and done in ns.inodes:
                return wire.stat_to_wire(ns.inodes[done].stat())
            parent, name = ns.resolve_parent(path, user)
            ns.require(user, parent, W | X, path)
            if name in parent.children:
                raise errors.FileExists(f"{path} already exists")
            entry = {"op": op, "parent": parent.ino, "name": name, "ino": ns.next_ino,
                     "owner": user, "mode": mode & 0o7777, "time_ns": now_ns(), **extra}
            if rid is not None:
                entry["rid"] = rid
            self.state.commit(entry)
            return wire.stat_to_wire(ns.inodes[entry["ino"]].stat())

    @boundary
    def exposed_mkdir(self, path, mode=0o700, rid=None):
        return self._new_entry("mkdir", path, mode, rid)

    @boundary
    def exposed_create(self, path, mode=0o600, rid=None):
        """Create an empty file; FileExists if the name is taken."""
        return self._new_entry("create", path, mode, rid)

    @boundary
    def exposed_symlink(self, path, target, rid=None):
        expect(target, str, "target")
        if not target or "\0" in target or len(target.encode()) > 4096:
            raise errors.InvalidArgument("bad symlink target")
        return self._new_entry("symlink", path, 0o777, rid, target=target)

    @boundary
    def exposed_readlink(self, path):
        with self.state.lock:
            user = self._serving()
            inode = self.state.ns.resolve(path, user)
            if inode.kind != "l":
                raise errors.InvalidArgument(f"{path} is not a symlink")
            return inode.target

    @boundary
    def exposed_link(self, existing, path, rid=None):
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            done = self._already_done(rid)
            if done is not None and done in ns.inodes:
                return wire.stat_to_wire(ns.inodes[done].stat())
            inode = ns.resolve(existing, user)
            if inode.kind == "d":
                raise errors.NotPermitted("hard links to directories are not allowed")
            ns.require_owner(user, inode, existing)
            parent, name = ns.resolve_parent(path, user)
            ns.require(user, parent, W | X, path)
            if name in parent.children:
                raise errors.FileExists(f"{path} already exists")
            self.state.commit({"op": "link", "parent": parent.ino, "name": name,
                               "ino": inode.ino, "time_ns": now_ns(),
                               **({"rid": rid} if rid else {})})
            return wire.stat_to_wire(inode.stat())

    def _remove(self, path, want_dir, rid=None):
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            if self._already_done(rid) is not None:
                return
            parent, name = ns.resolve_parent(path, user)
            child = ns.lookup(parent, name)
            if child is None:
                raise errors.FileNotFound(f"{path}: no such file or directory")
            self._check_visible(user, child, path)
            ns.check_removable(user, parent, child, path)
            if want_dir and child.kind != "d":
                raise errors.NotADirectory(f"{path} is not a directory")
            if not want_dir and child.kind == "d":
                raise errors.IsADirectory(f"{path} is a directory: use rmdir")
            if want_dir and child.children:
                raise errors.DirectoryNotEmpty(f"{path} is not empty")
            entry = {"op": "unlink", "parent": parent.ino, "name": name, "time_ns": now_ns(),
                     **({"rid": rid} if rid else {})}
            keep = self.state.config.trash_seconds
            if keep > 0 and child.kind == "f" and child.nlink == 1:
                deleted_at = time.time()
                entry["trash"] = {"path": "/" + "/".join(split_path(path)),
                                  "deleted_at": deleted_at, "expires": deleted_at + keep}
            self.state.commit(entry)

    @boundary
    def exposed_unlink(self, path, rid=None):
        self._remove(path, want_dir=False, rid=rid)

    @boundary
    def exposed_rmdir(self, path, rid=None):
        self._remove(path, want_dir=True, rid=rid)

    # --- trash ------------------------------------------------------------------------

    @boundary
    def exposed_trash_list(self):
        """-> ((trash id, path, size, deleted at, expires), ...) of the caller's trash,
        newest first (times are Unix seconds)."""
        with self.state.lock:
            user = self._serving()
            return tuple((tid, item.path, item.inode.size, float(item.deleted_at),
                          float(item.expires)) for tid, item in self.state.ns.trash_of(user))

    @boundary
    def exposed_trash_restore(self, path):
        """Put the newest trashed version of ``path`` back there (missing parent
        directories are made again). -> its stat. FileExists if the path is taken."""
        expect(path, str, "path")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            parts = split_path(path)
            if not parts:
                raise errors.InvalidPath("the root directory is never in the trash")
            where = "/" + "/".join(parts)
            found = [(tid, item) for tid, item in ns.trash_of(user) if item.path == where]
            if not found:
                raise errors.FileNotFound(f"{where}: not in your trash")
            tid, item = found[0]
            parent = self._make_parents(user, parts[:-1])
            if parts[-1] in parent.children:
                raise errors.FileExists(f"{where} exists now: move it away, then restore")
            ns.require(user, parent, W | X, where)
            self.state.commit({"op": "restore", "trash_id": tid, "parent": parent.ino,
                               "name": parts[-1], "time_ns": now_ns()})
            return wire.stat_to_wire(item.inode.stat())

    def _make_parents(self, user, parts):
        """The directory at ``parts``, made (journaled mkdirs) where missing. Lock held."""
        ns = self.state.ns
        directory = ns.inodes[ROOT_INO]
        walked = ""
        for part in parts:
            ns.require(user, directory, X, walked or "/")
            walked += "/" + part
            child = ns.lookup(directory, part)
            if child is None:
                ns.require(user, directory, W | X, walked)
                ino = ns.next_ino
                self.state.commit({"op": "mkdir", "parent": directory.ino, "name": part,
                                   "ino": ino, "owner": user, "mode": 0o700,
                                   "time_ns": now_ns()})
                child = ns.inodes[ino]
            elif child.kind != "d":
                raise errors.NotADirectory(f"{walked} is not a directory")
            directory = child
        return directory

    @boundary
    def exposed_trash_empty(self):
        """Free the caller's trash now. -> how many files were in it."""
        with self.state.lock:
            user = self._serving()
            mine = [tid for tid, _item in self.state.ns.trash_of(user)]
            if mine:
                self.state.commit({"op": "purge", "trash_ids": mine})
            return len(mine)

    @boundary
    def exposed_rename(self, src, dst, rid=None):
        """Atomic; replaces ``dst`` as POSIX rename does (an empty directory by a directory)."""
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            if self._already_done(rid) is not None:
                return
            src_parent, src_name = ns.resolve_parent(src, user)
            moved = ns.lookup(src_parent, src_name)
            if moved is None:
                raise errors.FileNotFound(f"{src}: no such file or directory")
            self._check_visible(user, moved, src)
            ns.check_removable(user, src_parent, moved, src)
            dst_parent, dst_name = ns.resolve_parent(dst, user)
            ns.require(user, dst_parent, W | X, dst)
            if moved.kind == "d" and _is_below(split_path(dst), split_path(src)):
                raise errors.InvalidArgument(f"cannot move {src} inside itself")
            target = ns.lookup(dst_parent, dst_name)
            if target is not None and target.ino != moved.ino:
                ns.check_removable(user, dst_parent, target, dst)
                if target.kind == "d" and moved.kind != "d":
                    raise errors.IsADirectory(f"{dst} is a directory")
                if target.kind != "d" and moved.kind == "d":
                    raise errors.NotADirectory(f"{dst} is not a directory")
                if target.kind == "d" and target.children:
                    raise errors.DirectoryNotEmpty(f"{dst} is not empty")
            self.state.commit({"op": "rename", "src_parent": src_parent.ino, "src_name": src_name,
                               "dst_parent": dst_parent.ino, "dst_name": dst_name,
                               "time_ns": now_ns(), **({"rid": rid} if rid else {})})

    @boundary
    def exposed_setattr(self, path, mode=None, owner=None, atime_ns=None, mtime_ns=None):
        """chmod (owner only), chown (admin only), utimens (owner, or writer for 'now')."""
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            inode = ns.resolve(path, user)
            self._check_visible(user, inode, path)
            entry = {"op": "setattr", "ino": inode.ino, "time_ns": now_ns()}
            if mode is not None:
                expect(mode, int, "mode")
                ns.require_owner(user, inode, path)
                entry["mode"] = mode & 0o7777
            if owner is not None:
                expect(owner, str, "owner")
                if owner != inode.owner:
                    if not ns.is_admin(user):
                        raise errors.NotPermitted(f"{path}: only an admin may change the owner")
                    if owner not in ns.users:
                        raise errors.InvalidArgument(f"no user {owner}")
                entry["owner"] = owner
            for name, value in (("atime_ns", atime_ns), ("mtime_ns", mtime_ns)):
                if value is not None:
                    expect(value, int, name)
                    ns.require(user, inode, W, path)
                    entry[name] = value
            self.state.commit(entry)
            return wire.stat_to_wire(inode.stat())

    # --- data: allocation, commit, layout ----------------------------------------------

    @boundary
    def exposed_allocate(self, path, count, exclude=()):
        """Reserve ``count`` new chunk ids for writing ``path`` and place their replicas."""
        expect(count, int, "count")
        expect(exclude, tuple, "exclude")
        if not 1 <= count <= MAX_CHUNKS_PER_CALL:
            raise errors.InvalidArgument(f"count must be 1..{MAX_CHUNKS_PER_CALL}")
        with self.state.lock:
            user = self._serving()
            self._check_writable(user, path)
            placements = [self.state.workers.place(exclude) for _ in range(count)]
            if not all(placements):
                for replicas in placements:
                    self.state.workers.unplace(replicas)
                raise errors.NoSpace(f"no room for {count} more chunk(s) on the live workers")
            ns = self.state.ns
            first = ns.next_chunk_id
            self.state.commit({"op": "alloc", "owner": user, "first": first, "count": count,
                               "expires": time.time() + self.state.config.gc_grace})
            return wire.targets_to_wire(
                wire.WriteTarget(first + i, 1, tuple(reps), self.state.sign("w", first + i),
                                 self.state.sign("r", first + i))
                for i, reps in enumerate(placements))

    @boundary
    def exposed_abandon(self, chunk_ids):
        """The client gave up on these allocated chunks: free them now, not after gc_grace."""
        expect(chunk_ids, tuple, "chunk ids")
        with self.state.lock:
            user = self._me()
            mine = [cid for cid in chunk_ids if type(cid) is int
                    and self.state.ns.pending.get(cid, (None,))[0] == user]
            if mine:
                self.state.commit({"op": "unpend", "chunk_ids": mine})

    def _check_writable(self, user, path):
        ns = self.state.ns
        parent, name = ns.resolve_parent(path, user)
        existing = ns.lookup(parent, name)
        if existing is None:
            ns.require(user, parent, W | X, path)
        else:
            if existing.kind == "d":
                raise errors.IsADirectory(f"{path} is a directory")
            if existing.kind != "f":
                raise errors.InvalidArgument(f"{path} is not a regular file")
            ns.require(user, existing, W, path)
        return parent, name, existing

    def _check_chunks(self, user, inode, written, size):
        """Every new chunk must be pending for this user; lengths must add up to size."""
        expect(size, int, "size")
        chunk_size = self.state.ns.chunk_size
        current = {c.chunk_id for c in inode.chunks} if inode is not None else set()
        total = 0
        for i, w in enumerate(written):
            ref = w.ref
            if ref.chunk_id not in current:
                owner = self.state.ns.pending.get(ref.chunk_id, (None,))[0]
                if owner != user:
                    raise errors.InvalidArgument(f"chunk {ref.chunk_id} was not allocated to you")
            last = i == len(written) - 1
            if not (0 < ref.length <= chunk_size) or (not last and ref.length != chunk_size):
                raise errors.InvalidArgument("chunk lengths do not form the file")
            total += ref.length
        if total != size:
            raise errors.InvalidArgument(f"chunk lengths add to {total}, not {size}")

    def _record_locations(self, written):
        under = 0
        for w in written:
            for wid, kind in w.stored_on:
                self.state.workers.add_location(w.ref.chunk_id, wid, kind)
            if len(self.state.workers.replicas(w.ref.chunk_id)) < self.state.config.replication:
                under += 1
        return under

    def _parse_written(self, written):
        expect(written, tuple, "chunks")
        try:
            return wire.written_from_wire(written)
        except (TypeError, ValueError):
            raise errors.InvalidArgument("malformed chunk list") from None

    @boundary
    def exposed_commit(self, ino, written, size, mtime_ns=None):
        """Make file ``ino``'s content exactly ``written`` (by inode: an open file may have
        been renamed meanwhile). -> (stat, under-replicated chunks)."""
        expect(ino, int, "inode")
        written = self._parse_written(written)
        with self.state.lock:
            user = self._serving()
            inode = self.state.ns.inodes.get(ino)
            if inode is None:
                raise errors.FileNotFound("the file was deleted while open")
            if inode.kind != "f":
                raise errors.InvalidArgument("not a regular file")
            self.state.ns.require(user, inode, W, "file")
            self._check_chunks(user, inode, written, size)
            self.state.commit({"op": "setchunks", "ino": inode.ino, "size": size,
                               "chunks": [list(w.ref) for w in written],
                               "time_ns": mtime_ns if type(mtime_ns) is int else now_ns()})
            under = self._record_locations(written)
            return wire.stat_to_wire(inode.stat()), under

    @boundary
    def exposed_put(self, path, mode, written, size, overwrite=True):
        """Create or replace a whole file in one journal entry. -> (stat, under-replicated)."""
        written = self._parse_written(written)
        expect(mode, int, "mode")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            parent, name, inode = self._check_writable(user, path)
            if inode is not None and not overwrite:
                raise errors.FileExists(f"{path} already exists")
            self._check_chunks(user, inode, written, size)
            entry = {"op": "put", "create": inode is None, "parent": parent.ino, "name": name,
                     "ino": inode.ino if inode else ns.next_ino, "owner": user,
                     "mode": mode & 0o7777, "size": size, "time_ns": now_ns(),
                     "chunks": [list(w.ref) for w in written]}
            self.state.commit(entry)
            under = self._record_locations(written)
            return wire.stat_to_wire(ns.inodes[entry["ino"]].stat()), under

    @boundary
    def exposed_layout(self, path):
        """Everything a reader needs in one call: attributes, chunks, replicas, tokens."""
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            inode = ns.resolve(path, user)
            if inode.kind == "d":
                raise errors.IsADirectory(f"{path} is a directory")
            ns.require(user, inode, R, path)
            chunks = tuple(
                wire.ReadChunk(ref, tuple(self.state.workers.replicas(ref.chunk_id)),
                               self.state.sign("r", ref.chunk_id))
                for ref in inode.chunks)
            if (any(not c.replicas for c in chunks)
                    and self.state.clock() - self.state.started < self.state.config.dead_after):
                # just restarted: the workers holding them have not all reported yet
                raise errors.Unavailable(f"{path}: waiting for workers to report their chunks")
            return wire.layout_to_wire(wire.FileLayout(inode.stat(), ns.chunk_size, chunks))

    @boundary
    def exposed_report_bad(self, chunk_id, worker_id):
        self._me()
        expect(chunk_id, int, "chunk id")
        expect(worker_id, str, "worker id")
        with self.state.lock:
            self.state.workers.report_bad(chunk_id, worker_id)

    @boundary
    def exposed_fsck_start(self, repair=False):
        """Admin: start checking the namespace against the workers' chunks (nodes/fsck.py).
        -> job id for fsck_result."""
        expect(repair, bool, "repair")
        self._admin()
        with self.state.lock:
            self.state.require_serving()
        return self.state.fsck.start(repair)

    @boundary
    def exposed_fsck_result(self, job):
        """-> ("running", None) | ("done", report) | ("failed", message)."""
        expect(job, int, "job")
        self._admin()
        return self.state.fsck.result(job)

    @boundary
    def exposed_statfs(self):
        """-> (total bytes, free bytes, chunk size, files) of the whole cluster."""
        with self.state.lock:
            self._serving()
            live = self.state.workers.live()
            free = sum(w.free for w in live) // self.state.config.replication
            used = sum(w.used for w in live) // self.state.config.replication
            return used + free, free, self.state.ns.chunk_size, len(self.state.ns.inodes)

    @boundary
    def exposed_status(self):
        """-> (server id, epoch, address, workers, under-replicated chunks, files,
        standby state, lease holders)."""
        self._me()
        with self.state.lock:
            state = self.state
            now = state.clock()
            referenced = state.ns.live_chunk_ids() - set(state.ns.pending)
            holders = tuple(sorted(vid for vid, until in state.leadership.grants.items()
                                   if until > now))
            return (state.me, state.epoch, "%s:%d" % state.address,
                    wire.workers_to_wire(state.workers.status(now)),
                    state.workers.under_replicated(referenced), len(state.ns.inodes),
                    state.replicator.describe(), holders)

    @boundary
    def exposed_voter(self, method, args, stamp, mac):
        """Leases, votes and stale marks for the other server; replication to us."""
        return serve_voter_call(self.state.voter_secret, self.state.voter, method, args, stamp,
                                mac, extra=self.state.peer_call)

    # --- workers ---------------------------------------------------------------------

    @boundary
    def exposed_worker_register(self, host, port, free, used, inventory):
        worker_id = self._worker()
        expect(inventory, tuple, "inventory")
        expect(host, str, "host")
        expect(port, int, "port")
        with self.state.lock:
            self.state.workers.register(worker_id, host, port, free, used, inventory,
                                        self.state.clock())
            if self.state.serving():
                self.state.admit_workers()
            return self.state.ns.chunk_size, self.state.epoch

    @boundary
    def exposed_worker_heartbeat(self, free, used, load, added, removed, bad=()):
        """``bad``: ((chunk id, kind), ...) the worker's scrubber found corrupt."""
        worker_id = self._worker()
        expect(bad, tuple, "bad chunks")
        with self.state.lock:
            if bad and self.state.serving():  # the leader acts; the worker reports again
                for chunk_id, _kind in bad:
                    self.state.workers.drop_corrupt(chunk_id, worker_id)
            commands = self.state.workers.heartbeat(worker_id, free, used, load, added, removed,
                                                    self.state.clock())
            if commands is None:
                return None  # unknown here: register again
            return tuple(commands) if self.state.serving() else ()

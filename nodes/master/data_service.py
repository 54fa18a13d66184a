"""The master's file-data endpoints: allocate chunk ids and place their replicas, commit or
put a file's chunk list, hand a reader the layout, and take reports of bad replicas. The
rules (who may write, which chunks a commit may name) are in dfs/namespace/rules_data.py;
placement and chunk locations are the master's own (nodes/master/placement.py).

``commit`` names its file by inode (an open file may have been renamed meanwhile), so it
first asks ``reachable``: an inode this user cannot reach through directories it may
search is answered exactly as one that does not exist (no probing of inode numbers, no
writing a file one could not open by its path)."""

from __future__ import annotations

from dfs import errors, wire
from dfs.namespace import rules_data
from dfs.namespace.inode import R, as_path
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect


def _parse_written(written: object) -> list[wire.WrittenChunk]:
    written = expect(written, tuple, "chunks")
    try:
        return wire.written_from_wire(written)
    except (TypeError, ValueError):
        raise errors.InvalidArgument("malformed chunk list") from None


class DataEndpoints(Session):
    @boundary
    def exposed_allocate(self, path: object, count: object, exclude: object = ()) -> wire.Wire:
        """Reserve ``count`` new chunk ids for writing ``path`` and place their replicas."""
        count = expect(count, int, "count")
        exclude = expect(exclude, tuple, "exclude")
        rules_data.check_count(count)
        with self.state.lock:
            user = self._serving()
            rules_data.writable(self.state.ns, user, as_path(path))
            workers = self.state.workers
            placements = [workers.place(exclude) for _ in range(count)]
            if not all(placements):
                for replicas in placements:
                    workers.unplace(replicas)
                raise errors.NoSpace(f"no room for {count} more chunk(s) on the live workers")
            entry = rules_data.alloc(self.state.ns, user, count, self.state.wall(),
                                     self.state.config.gc_grace)
            try:
                self.state.commit(entry)
            except errors.DfsError:  # not the leader, the metadata disk full: none handed out
                for replicas in placements:
                    workers.unplace(replicas)
                raise
            for i, replicas in enumerate(placements):
                workers.bind(entry.first + i, replicas)
            return wire.targets_to_wire([
                wire.WriteTarget(entry.first + i, 1, tuple(reps),
                                 self.state.sign("w", entry.first + i),
                                 self.state.sign("r", entry.first + i))
                for i, reps in enumerate(placements)])

    @boundary
    def exposed_renew(self, chunk_ids: object) -> int:
        """The client still holds these uploaded chunks in an open file: keep them pending
        another gc_grace seconds. -> how many were still pending for this user."""
        chunk_ids = expect(chunk_ids, tuple, "chunk ids")
        if len(chunk_ids) > rules_data.MAX_CHUNKS_PER_CALL:
            raise errors.InvalidArgument(
                f"at most {rules_data.MAX_CHUNKS_PER_CALL} chunk ids per call")
        with self.state.lock:
            user = self._me()
            self.state.require_serving()
            entry = rules_data.renew(self.state.ns, user, chunk_ids, self.state.wall(),
                                     self.state.config.gc_grace)
            if entry is None:
                return 0
            self.state.commit(entry)
            return len(entry.chunk_ids)

    @boundary
    def exposed_abandon(self, chunk_ids: object) -> None:
        """The client gave up on these allocated chunks: free them now, not after gc_grace."""
        chunk_ids = expect(chunk_ids, tuple, "chunk ids")
        with self.state.lock:
            user = self._me()
            entry = rules_data.abandon(self.state.ns, user, chunk_ids)
            if entry is not None:
                self.state.commit(entry)
                self.state.workers.unreserve(entry.chunk_ids)

    def _record_locations(self, written: list[wire.WrittenChunk]) -> int:
        """Remember where the new chunks are stored. -> how many are under-replicated."""
        under = 0
        for w in written:
            for wid, kind in w.stored_on:
                self.state.workers.add_location(w.ref.chunk_id, wid, kind, w.ref.length)
            if len(self.state.workers.replicas(w.ref.chunk_id)) < self.state.config.replication:
                under += 1
        return under

    @boundary
    def exposed_commit(self, ino: object, written: object, size: object,
                       mtime_ns: object = None) -> wire.Wire:
        """Make file ``ino``'s content exactly ``written`` (by inode: an open file may have
        been renamed meanwhile). -> (stat, under-replicated chunks)."""
        ino = expect(ino, int, "inode")
        chunks = _parse_written(written)
        size = expect(size, int, "size")
        mtime_ns = expect(mtime_ns, (int, type(None)), "mtime_ns")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            time_ns = self.state.wall_ns() if mtime_ns is None else mtime_ns
            entry = rules_data.commit(ns, user, ino, [w.ref for w in chunks], size, time_ns)
            self.state.commit(entry)
            under = self._record_locations(chunks)
            return wire.put_result_to_wire(wire.PutResult(ns.stat(ns.inodes[entry.ino]), under))

    @boundary
    def exposed_put(self, path: object, mode: object, written: object, size: object,
                    overwrite: object = True) -> wire.Wire:
        """Create or replace a whole file in one journal entry. -> (stat, under-replicated)."""
        chunks = _parse_written(written)
        mode = expect(mode, int, "mode")
        size = expect(size, int, "size")
        path = as_path(path)
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            entry = rules_data.put(ns, user, path, mode, [w.ref for w in chunks], size,
                                   bool(overwrite), self.state.wall_ns())
            self.state.commit(entry)
            under = self._record_locations(chunks)
            return wire.put_result_to_wire(wire.PutResult(ns.stat(ns.inodes[entry.ino]), under))

    @boundary
    def exposed_layout(self, path: object, want: object = R) -> wire.Wire:
        """Everything a reader needs in one call: attributes, chunks, replicas, tokens;
        ``want``: what the open is for (R, W or both: open(2)'s access mode)."""
        path = as_path(path)
        want = expect(want, int, "access")
        if want not in rules_data.OPEN_ACCESS:
            raise errors.InvalidArgument(f"bad access {want}")
        with self.state.lock:
            user = self._serving()
            ns = self.state.ns
            inode = rules_data.openable(ns, user, path, want)
            chunks = tuple(
                wire.ReadChunk(ref, tuple(self.state.workers.replicas(ref.chunk_id)),
                               self.state.sign("r", ref.chunk_id))
                for ref in inode.chunks)
            if (any(not c.replicas for c in chunks)
                    and self.state.clock() - self.state.started < self.state.config.dead_after):
                # just restarted: the workers holding them have not all reported yet
                raise errors.Unavailable(f"{path}: waiting for workers to report their chunks")
            return wire.layout_to_wire(wire.FileLayout(ns.stat(inode), ns.chunk_size, chunks))

    @boundary
    def exposed_report_bad(self, chunk_id: object, worker_id: object) -> None:
        """A client read a copy that failed its checksum: only a hint, the worker checks
        it again (WorkerTable.suspect); no copy is dropped on a client's word."""
        chunk_id = expect(chunk_id, int, "chunk id")
        worker_id = expect(worker_id, str, "worker id")
        self._me()
        with self.state.lock:
            self.state.workers.suspect(chunk_id, worker_id, self.state.clock())

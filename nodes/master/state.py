"""A metadata server: namespace, users, placement, the journal, and leadership.

The master and the shadow master are this same code in two roles (``config.role``); which
one leads is decided by leases and votes (nodes/master/election.py), never by the role name.
Only the serving leader answers clients and changes anything; the standby receives every
journal entry (nodes/master/replication.py) and answers clients NotLeader.

Threads: rpyc gives each connection its own thread and its own ``MasterService``; they all
share one ``MasterState`` whose ``lock`` (nodes/master/durability.py) guards the namespace,
the journal and the worker table; leaving it waits until what it guarded is durable. The
``master-elect`` task renews leases or runs elections, ``master-sync`` re-syncs the
standby, ``master-replicate`` streams entries to it, and the ``master-tick`` task, on the
leader only, finds dead workers, queues repairs and collects garbage (nodes/master/main.py).
Every mutation is validated, journaled and applied under the lock (``commit``), then
fsynced here and on the standby in parallel, shared with the mutations decided meanwhile
(group commit), and only then acknowledged.
Snapshots are written by a child process (nodes/master/snapshots.py).

Time comes from two injected clocks: ``clock`` (monotonic) for liveness and leases,
``wall`` (seconds since the epoch) for what entries record: pending-chunk and trash expiry.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from dfs import auth, errors, tls
from dfs.config import Address, MasterConfig
from dfs.fsutil import open_private, private_dir
from dfs.journal import Journal, encode
from dfs.namespace import entries, rules_data, rules_trash, rules_users
from dfs.namespace.entries import Entry, Record
from dfs.namespace.inode import ADMIN_NAME
from dfs.namespace.model import Namespace
from nodes.master.durability import MetadataLock
from nodes.master.election import LEADER, Electorate, Leadership
from nodes.master.events import EventLog
from nodes.master.fsck import Fsck
from nodes.master.links import Link, PeerLink
from nodes.master.locks import Locks
from nodes.master.login_limits import LoginLimits
from nodes.master.placement import WorkerTable
from nodes.master.replication import Replicator
from nodes.master.snapshots import Compactor
from nodes.master.standby import Standby
from nodes.master.voter import Voter

log = logging.getLogger(__name__)

JOIN_TOKEN_FILE = "join-token"
ADMIN_AUTH_FILE = "admin-auth.txt"
ROLES = ("master", "shadow")
SYNC_REPORT_EVERY = 10.0  # seconds between "standby not in sync yet" log lines
# Entries that free space or keep the cluster running: written into the journal's reserve
# when the metadata disk is full (dfs/journal.py), where every other change is refused.
ESSENTIAL = frozenset({"unlink", "purge", "unpend", "voter", "member"})


class MasterState:
    """Shared by all connections; public methods take ``lock`` themselves."""

    def __init__(self, config: MasterConfig, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.wall = wall
        # nanoseconds for the times inodes record; a stepped ``wall`` in tests steps them too
        self.wall_ns: Callable[[], int] = (
            time.time_ns if wall is time.time else lambda: int(wall() * 1_000_000_000))
        self.lock = MetadataLock()
        self.lock.barrier = self._barrier
        self.committed = threading.local()  # .term: the term this thread last committed in
        private_dir(config.data_dir)
        private_dir(config.metadata_dir)
        self.join_token = config.join_token or self._load_or_create_join_token()
        self.chunk_secret = auth.chunk_secret(self.join_token)
        self.voter_secret = auth.voter_secret(self.join_token)
        self.tls_pin = self._start_tls()
        self.journal = Journal(config.metadata_dir, config.journal_reserve)
        self.ns = self.journal.load()
        chunk_size = self.ns.chunk_size or config.chunk_size
        self.workers = WorkerTable(config.replication, config.dead_after, chunk_size)
        self.address: Address = (config.host, config.port)  # the real port once bound
        self.me = config.role
        self.peer_id = ROLES[1 - ROLES.index(self.me)] if config.peer else None
        peer = PeerLink(*config.peer, self.voter_secret, self.peer_id or "") \
            if config.peer else None
        self.voter = Voter(os.path.join(config.metadata_dir, "election.json"), clock,
                           config.lease)
        self.voters_lock = threading.Lock()
        self.voter_links: dict[str, Link] = {}  # voter id -> link: the workers, the other server
        self.locks = Locks(config.lock_lease, clock)  # file locks: leader's memory only
        self.leadership = Leadership(self.me, self.voter, self.links, config.lease,
                                     bootstrap=self.me == "master", peer_id=self.peer_id,
                                     executor=ThreadPoolExecutor(8, thread_name_prefix="vote"))
        self.leadership.on_change = self._role_changed
        self.peer = peer
        self.replicator = Replicator(peer, self.peer_id, self.leadership, self.lock.raw, clock,
                                     lambda: encode(self.ns.to_json()),
                                     lambda: self.journal.written_seq,
                                     lambda: self.peer_id in self.voter.stale)
        self.replicator.start()
        self.compactor = Compactor(self.journal, config.snapshot_every, clock)
        self.standby = Standby(self.voter, self.leadership, self)
        self.login_limits = LoginLimits.from_config(config, clock)
        self.fsck = Fsck(self.lock, self.require_serving, self.workers, lambda: self.ns,
                         self.voter_secret)
        self.started = clock()
        self.next_sync_report = 0.0
        self.events = EventLog(config.metadata_dir, config.events_bytes, wall)  # audit log
        self.web_url = ""  # our status page once it serves (nodes/web.py)
        self.after_load()

    def _load_or_create_join_token(self) -> str:
        path = os.path.join(self.config.data_dir, JOIN_TOKEN_FILE)
        try:
            with open(path, encoding="ascii") as f:
                return f.read().strip()
        except FileNotFoundError:
            token = secrets.token_hex(32)
            with open_private(path, "xb") as f:
                f.write(token.encode("ascii") + b"\n")
            return token

    def _start_tls(self) -> str:
        """TLS (dfs.tls): the master creates the cluster CA at its first start; the other
        metadata server takes the cluster certificate from it, as workers do (waiting for
        it at a first start). -> the CA's fingerprint, "" without TLS."""
        if not tls.enabled(self.config.tls, self.config.host):
            return ""
        data_dir, peer = self.config.data_dir, self.config.peer
        if self.config.role == ROLES[0] or peer is None or os.path.exists(
                os.path.join(data_dir, tls.CA_CERT)):
            identity = tls.master_identity(data_dir, self.join_token)
        else:
            log.info("TLS: fetching the cluster certificate from %s:%d", *peer)
            identity = tls.join_identity(data_dir, self.join_token, [peer])
        tls.activate(identity)
        log.info("TLS on, cluster CA %s", identity.pin)
        return identity.pin

    @property
    def epoch(self) -> int:
        return self.voter.epoch

    @property
    def seq(self) -> int:
        """The last journal entry applied here."""
        return self.ns.seq

    # --- voters --------------------------------------------------------------------------

    def links(self) -> Electorate:
        """The electorate of this server: every registered worker and the other server."""
        with self.voters_lock:
            return dict(self.voter_links)

    def after_load(self) -> None:
        """Rebuild what derives from the namespace (after start or a snapshot install)."""
        with self.voters_lock:
            links: dict[str, Link] = {}
            for wid, (host, port) in self.ns.voters.items():
                link = self.voter_links.get(wid)
                if link is None or link.address != (host, port):
                    link = Link(host, port, self.voter_secret, wid)
                links[wid] = link
            if self.peer is not None and self.peer_id is not None:
                links[self.peer_id] = self.peer
            self.voter_links = links
        self.workers.set_members(self.ns.members)  # who drains; removed ones forgotten
        if self.ns.chunk_size:
            self.workers.chunk_size = self.ns.chunk_size

    def _role_changed(self, role: str, epoch: int) -> None:
        self.replicator.reset(leading=role == LEADER, epoch=epoch)
        if role == LEADER:
            self.locks.begin(epoch, self.ns.initialised)
            log.info("%s leads epoch %d at entry %d", self.me, epoch, self.ns.seq)

    def serving(self) -> bool:
        return self.leadership.serving(self.clock())

    def leader_address(self) -> str:
        hint = self.leadership.leader_hint()
        if hint == self.me:
            return "%s:%d" % self.address
        if hint is not None and hint == self.peer_id and self.config.peer:
            return "%s:%d" % self.config.peer
        return ""

    # --- journaled mutations ----------------------------------------------------------

    def commit(self, entry: Entry) -> list[int]:
        """Journal ``entry`` (not yet fsynced), apply it and send it to the standby; return
        the chunk ids it freed. Lock held: leaving the lock waits until it is durable here
        and on the standby (_barrier). Raises, changing nothing, if we cannot prove we
        lead (NotLeader) or the metadata disk is full (NoSpace)."""
        if not self.serving():
            raise errors.NotLeader("not the leader any more", self.leader_address())
        record = Record(self.ns.seq + 1, self.epoch, entry)
        line = record.to_line()
        self.journal.write([line], record.seq, essential=entry.op in ESSENTIAL)
        freed = self._apply([record])
        self.replicator.submit(record.seq, line)
        self.committed.term = self.replicator.term
        self.events.mutation(record)
        return freed

    def append_and_apply(self, records: Sequence[Record], lines: Sequence[str]) -> None:
        """Standby, lock held: journal the leader's ``lines`` as they came and apply their
        ``records`` (fsynced when the lock is left, before the answer)."""
        self.journal.write(lines, records[-1].seq, essential=True)
        self._apply(records)

    def _barrier(self) -> Callable[[], None] | None:
        """The lock's outermost hold ends (lock held): what must be durable before the
        holder may answer. Everything written so far, since the holder may have seen it;
        with the standby too if we lead, or if this thread committed as leader."""
        seq = self.journal.written_seq
        term = getattr(self.committed, "term", None)
        self.committed.term = None
        if term is None and self.leadership.role == LEADER:
            term = self.replicator.term
        if self.journal.synced_seq >= seq and (term is None
                                               or self.replicator.covered(seq, term)):
            return None
        return lambda: self._wait_durable(seq, term)

    def _wait_durable(self, seq: int, term: int | None) -> None:
        """No lock held: send the standby what is queued (this thread: no handoff), fsync
        ours (shared) while the standby gets it, then wait for its answer."""
        flight = self.replicator.begin() if term is not None else None
        try:
            self.journal.sync_to(seq)
        except errors.Unavailable:
            self.leadership.step_down(self.epoch)  # the standby may lead: it has them
            raise
        finally:
            if flight is not None:
                self.replicator.finish(flight)
        if term is not None:
            self.replicator.wait(seq, term)

    def _apply(self, records: Sequence[Record]) -> list[int]:
        freed: list[int] = []
        for record in records:
            freed += self.ns.apply(record)
            if isinstance(record.entry, (entries.Voter, entries.Member)):
                self.after_load()
        self.compactor.maybe_start()
        return freed

    def replace_namespace(self, ns: Namespace, snapshot: bytes) -> None:
        """Standby, lock held: the leader's snapshot (``snapshot``, the JSON of ``ns``)
        becomes ours, on disk first."""
        self.journal.install(snapshot, ns.seq)
        self.ns = ns
        self.after_load()

    def ensure_initialised(self) -> None:
        """The first worker initialises the cluster: root directory and admin user."""
        if self.ns.initialised:
            return
        admin_key = auth.new_key()
        self.commit(entries.Init(chunk_size=self.config.chunk_size,
                                 time_ns=self.wall_ns()))
        self.commit(rules_users.add_user(self.ns, ADMIN_NAME, True,
                                         auth.stored_form(admin_key)))
        for mkdir in rules_users.home_folders(self.ns, ADMIN_NAME, self.wall_ns()):
            self.commit(mkdir)
        masters = [self.address] + ([self.config.peer] if self.config.peer else [])
        auth.write_auth_file(os.path.join(self.config.data_dir, ADMIN_AUTH_FILE), masters,
                             ADMIN_NAME, admin_key, ca=self.tls_pin)
        log.info("cluster initialised (chunk size %d); admin credentials in %s",
                 self.config.chunk_size, ADMIN_AUTH_FILE)

    def admit_workers(self) -> None:
        """Leader, lock held: the first worker initialises the cluster; every live worker
        becomes a voter (journaled, so both metadata servers agree on the electorate)."""
        live = self.workers.live()
        if not live:
            return
        self.ensure_initialised()
        for worker in live:
            if self.ns.voters.get(worker.worker_id) != [worker.host, worker.port]:
                link = Link(worker.host, worker.port, self.voter_secret, worker.worker_id)
                if not self.replicator.tell_new_voter(link):
                    continue  # it must carry our standby's stale mark before it may vote
                if self.leadership.welcome(worker.worker_id, link, self.clock()):
                    self.commit(entries.Voter(worker_id=worker.worker_id, host=worker.host,
                                              port=worker.port))

    def require_serving(self) -> None:
        """Client requests: the serving leader answers; without active workers the answer
        is a clear NoActiveWorkers. A server that cannot know yet says so (NotLeader or
        Unavailable), so clients try again instead of hearing a wrong "no workers"."""
        now = self.clock()
        workers_alive = self.workers.any_alive(now)
        settled = now - self.started >= self.config.dead_after  # had time to hear them
        if self.serving():
            if not self.ns.initialised:
                raise errors.NoActiveWorkers()  # the first worker initialises the cluster
            if not workers_alive:
                if not settled:
                    raise errors.Unavailable(f"{self.me} is starting: waiting for workers")
                raise errors.NoActiveWorkers()
            return
        if self.ns.initialised and settled and not workers_alive:
            raise errors.NoActiveWorkers()  # no leader because no workers: say that
        raise errors.NotLeader(f"{self.me} is not the leader", self.leader_address())

    def sign(self, op: str, chunk_id: int) -> str:
        return auth.sign_chunk_token(self.chunk_secret, op, chunk_id, self.epoch,
                                     self.config.token_ttl)

    # --- the background tasks (nodes/master/main.py) ------------------------------------

    def tick(self) -> None:
        """Placement work: only the serving leader decides anything."""
        with self.lock:
            self._heal_journal()
            self.compactor.maybe_start()  # a snapshot that failed is tried again
            if not self.serving():
                return
            self.admit_workers()
            if not self.ns.initialised:
                return
            now, wall = self.clock(), self.wall()
            unpend = rules_data.expired_allocations(self.ns, wall)
            if unpend is not None:
                self.commit(unpend)
            purge = rules_trash.expired(self.ns, wall)
            if purge is not None:
                log.info("trash: %d deleted file(s) expired, freeing their chunks",
                         len(purge.trash_ids))
                self.commit(purge)
            # live views kept as entries apply, not a walk of the namespace: the lock is
            # held throughout, so they do not change under the workers' table
            self.workers.tick(now, self.ns.referenced_chunk_ids(), self.ns.pending.keys(),
                              lambda cid: self.sign("r", cid))

    def elect(self) -> None:
        """Leases and elections. Nothing else runs on this thread: a lease renewal must
        never wait behind a slow call to a paused peer."""
        self.leadership.tick(self.clock())

    def sync_standby(self) -> None:
        """Leader: bring a lagging or restarted standby back in sync (own thread)."""
        if self.leadership.role != LEADER:
            return
        try:
            if self.replicator.in_sync:
                self.replicator.finish_clearing()
            else:
                self.replicator.sync()
        except errors.DfsError as exc:
            now = self.clock()
            if now >= self.next_sync_report:  # say it now and then, not every half second
                log.info("standby not in sync yet: %s", exc)
                self.next_sync_report = now + SYNC_REPORT_EVERY

    def _heal_journal(self) -> None:
        """Lock held: after a failed fsync nothing in the journal can be trusted; a
        snapshot of what we hold makes the disk agree with memory again."""
        if not self.journal.broken:
            return
        try:
            self.journal.snapshot(self.ns)
            log.warning("metadata journal healed by a snapshot at entry %d", self.ns.seq)
        except errors.DfsError as exc:
            log.info("metadata journal still broken: %s", exc)

    def snapshot_and_close(self) -> None:
        self.compactor.stop()
        self.replicator.stop()
        with self.lock.raw:
            if self.ns.initialised:
                try:
                    self.journal.snapshot(self.ns)
                except errors.DfsError as exc:  # the journal keeps everything
                    log.warning("no snapshot at shutdown: %s", exc)
            self.journal.close()
        self.events.close()

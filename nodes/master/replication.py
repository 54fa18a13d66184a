"""Replication from the leader to its standby (DESIGN section 5), as a stream.

Leader side, ``Replicator``:

- ``submit(seq, line)`` (metadata lock held, right after the entry was journaled and
  applied) queues the entry. The committing threads send the queue themselves, once the
  metadata lock is left, one call at a time and in order (``peer_replicate`` with every
  line queued: entries decided meanwhile share a call): ``begin()`` puts the call on its
  way and ``finish(flight)`` takes its answer, with our own journal's fsync in between, so
  the two fsyncs run in parallel. No thread handoff on this path (measured: a wake of a
  replication thread and back cost more CPU per entry than the call itself).
- ``wait(seq, term)`` (no lock) returns once ``seq`` is *covered*: fsynced by the standby
  (its answer), or the standby marked stale on a majority of its electorate
  (Leadership.mark_standby_stale), whatever comes first; meanwhile it sends what is
  queued whenever no call is out. An entry is acknowledged only then
  (nodes/master/durability.py). If neither is possible the leader steps down and the wait
  raises: the change is not acknowledged.
- A call that fails, times out or finds the standby behind ("gap") marks the standby stale
  from its first entry before anything after it is covered. A newer epoch ("old") makes
  the leader step down.
- A new term starts out of sync: the replication thread first sends a full snapshot under
  the metadata lock (``_install_locked``: nothing is written meanwhile, so the standby then
  holds every entry), or, if the standby cannot take it, marks it stale. ``sync()`` (the master-sync
  task) does the same for a standby marked stale once it answers again, and lifts the
  marks. A snapshot is simpler than a journal tail and always right, also for an old
  leader whose journal holds entries nobody acknowledged.

Everything a term does is tagged with ``term`` (bumped by ``reset``): an answer or a wait
from an earlier term never counts in a later one.

Standby side: ``Standby`` (nodes/master/standby.py).

Entries travel as journal lines (``Record.to_line`` / ``Record.from_line``), snapshots as
dfs.journal.encode'd JSON (written to disk by the standby as they came).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from dfs import errors
from nodes.master.election import VoterLink
from nodes.master.links import PeerAnswer

log = logging.getLogger(__name__)

BATCH_LINES = 2000  # entries in one replicate call, at most
BATCH_BYTES = 1 << 20  # and bytes of them (the peer link's frames stay small)
WAIT_LIMIT = 30.0  # seconds a commit waits for the standby before failing (never reached
# in practice: a silent standby is marked stale after one call's timeout)
RETRY = 0.2  # seconds before trying again to reach a standby that must be synced


class Peer(Protocol):
    """The standby as the leader reaches it (nodes.master.links.PeerLink). A peer may also
    offer ``replicate_async(epoch, entries)``: the call sent, -> what waits for its answer
    (PeerLink does); without it ``replicate`` runs whole in ``begin``."""

    def ping(self) -> PeerAnswer: ...
    def replicate(self, epoch: int, entries: tuple[str, ...]) -> PeerAnswer: ...
    def install(self, epoch: int, snapshot: bytes) -> PeerAnswer: ...


class Flight(NamedTuple):
    """A replicate call on its way (``Replicator.begin``): ``answer()`` waits for it."""

    term: int
    batch: list[tuple[int, str]]
    answer: Callable[[], PeerAnswer]


def _failed_call(exc: Exception) -> Callable[[], PeerAnswer]:
    def answer() -> PeerAnswer:
        raise exc
    return answer


class LeaderSide(Protocol):
    """What replication needs of the leader's election state (election.Leadership)."""

    @property
    def epoch(self) -> int: ...
    def serving(self, now: float) -> bool: ...
    def step_down(self, epoch: int) -> None: ...
    def mark_standby_stale(self, from_seq: int) -> bool: ...
    def clear_standby_stale(self, only: set[str] | None = None) -> set[str]: ...


class Replicator:
    def __init__(self, peer: Peer | None, peer_id: str | None, leadership: LeaderSide,
                 lock: threading.RLock, clock: Callable[[], float],
                 snapshot: Callable[[], bytes], written: Callable[[], int],
                 standby_marked: Callable[[], bool] = lambda: True) -> None:
        """``lock``: the metadata lock, raw (no durability wait); ``snapshot()``: the
        namespace as applied so far (lock held); ``written()``: the last entry journaled;
        ``standby_marked()``: whether our own voter holds a stale mark for the standby
        (then the other voters may too, from an earlier term)."""
        self.peer = peer  # None when there is no standby
        self.peer_id = peer_id
        self.leadership = leadership
        self.lock = lock
        self.clock = clock
        self.snapshot = snapshot
        self.written = written
        self.standby_marked = standby_marked
        guard = threading.RLock()
        self.cond = threading.Condition(guard)  # guards everything below; committers wait here
        self.work = threading.Condition(guard)  # the replication thread waits here (apart, so
        # that an answer wakes the committers, never the thread)
        self.term = 0
        self.epoch = 0
        self.leading = False
        self.in_sync = False
        self.marked_from: int | None = None  # the entry the standby is marked stale from
        self.uncleared: set[str] = set()  # voters that may still hold a stale mark we lifted
        # (kept across terms: finish_clearing tells them once the standby is in sync)
        self.acked = 0  # the last entry the standby fsynced in this term
        self.queue: list[tuple[int, str]] = []  # (seq, line) to send, in order
        self.sending = False  # a replicate call is out (its sender clears this)
        self.first: int | None = None  # the first entry written in this term
        self.wanted = False  # a new term or entries: the standby must be synced or marked
        self.waiting = 0
        self.failure: errors.DfsError | None = None
        self.stopped = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.peer is not None and self.thread is None:
            self.thread = threading.Thread(target=self._run, name="master-replicate",
                                           daemon=True)
            self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
            self.work.notify_all()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def describe(self) -> str:
        if self.peer is None:
            return "no standby"
        if self.in_sync:
            return "in sync"
        return f"stale from entry {self.marked_from}" if self.marked_from else "catching up"

    def reset(self, leading: bool = False, epoch: int = 0) -> None:
        """A new term: nothing is known about the standby yet; waits of the old one fail."""
        with self.cond:
            self.term += 1
            self.epoch = epoch
            self.leading = self.wanted = leading
            self.in_sync = False
            self.marked_from = None
            self.acked = 0
            self.queue = []
            self.first = None
            self.failure = None
            self.cond.notify_all()
            self.work.notify_all()

    # --- the committing threads ------------------------------------------------------------

    def submit(self, seq: int, line: str) -> None:
        """Metadata lock held: entry ``seq`` was journaled and applied; send it."""
        if self.peer is None:
            return
        with self.cond:
            if self.first is None:
                self.first = seq
            if self.in_sync:
                self.queue.append((seq, line))  # its committer sends it (begin, wait)
            elif self.marked_from is None:
                self.wanted = True  # the snapshot that syncs the standby will carry it
                self.work.notify_all()

    def covered(self, seq: int, term: int) -> bool:
        """Entry ``seq`` needs nothing more from the standby in ``term``."""
        return self.peer is None or (term == self.term and (
            self.marked_from is not None or seq <= self.acked))

    def wait(self, seq: int, term: int) -> None:
        """Return once entry ``seq`` of ``term`` is covered (no lock held), sending what is
        queued whenever no call is out. Raises NotLeader or Unavailable if it cannot be:
        the change must not be acknowledged."""
        if self.peer is None:
            return
        deadline = time.monotonic() + WAIT_LIMIT
        with self.cond:
            self.waiting += 1
            if not self.in_sync and self.marked_from is None:
                self.work.notify_all()  # the thread syncs or marks the standby for us
            try:
                while not self.covered(seq, term):
                    if term != self.term:
                        raise errors.NotLeader("leadership changed before the change was "
                                               "durable on both metadata servers: retry")
                    if self.failure is not None:
                        raise type(self.failure)(str(self.failure))
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise errors.Unavailable("the standby did not answer in time: retry")
                    flight = self._take()
                    if flight is None:
                        self.cond.wait(left)
                        continue
                    self.cond.release()
                    try:
                        self.finish(self._start(*flight))
                    finally:
                        self.cond.acquire()
            finally:
                self.waiting -= 1

    def begin(self) -> Flight | None:
        """No lock held: send what is queued unless a call is out already. -> the call on
        its way, for ``finish`` (always: the link is busy until then), or None."""
        if self.peer is None:
            return None
        with self.cond:
            taken = self._take()
        return None if taken is None else self._start(*taken)

    def _take(self) -> tuple[int, int, list[tuple[int, str]]] | None:
        """cond held: (term, epoch, the next batch) if it is to be sent now; the caller
        sends it (``sending`` is set)."""
        if (self.sending or not self.queue or not self.in_sync or not self.leading
                or self.failure is not None):
            return None
        size = count = 0
        for _seq, line in self.queue:
            if count and (count >= BATCH_LINES or size + len(line) > BATCH_BYTES):
                break
            count, size = count + 1, size + len(line)
        batch, self.queue = self.queue[:count], self.queue[count:]
        self.sending = True
        return self.term, self.epoch, batch

    def _start(self, term: int, epoch: int, batch: list[tuple[int, str]]) -> Flight:
        """No lock held, ``sending`` ours: put the call on its way."""
        assert self.peer is not None
        lines = tuple(line for _seq, line in batch)
        try:
            start = getattr(self.peer, "replicate_async", None)
            if start is not None:
                answer: Callable[[], PeerAnswer] = start(epoch, lines)
            else:
                whole = self.peer.replicate(epoch, lines)
                answer = lambda: whole  # noqa: E731
        except Exception as exc:  # unreachable, refused: the answer says so
            answer = _failed_call(exc)
        return Flight(term, batch, answer)

    # --- the replication thread ------------------------------------------------------------

    def _work(self) -> bool:
        """cond held: is there a standby to sync or mark? (In sync, committers send.)"""
        if not self.leading or self.failure is not None:
            return False  # a failed term does nothing more: the next one starts afresh
        return not self.in_sync and not self.sending and self.marked_from is None and (
            self.wanted or self.waiting > 0)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopped and not self._work():
                    self.work.wait()
                if self.stopped:
                    return
                term = self.term
            try:
                if not self._establish(term):
                    with self.cond:
                        self.work.wait(RETRY)
            except Exception:  # never let the stream die: every wait would hang
                log.exception("replication to the standby failed")
                with self.cond:
                    self.work.wait(RETRY)

    def finish(self, flight: Flight) -> None:
        """No lock held: take the answer of ``begin``'s call (waiting for it) and act on it;
        the next call may go out then (after a failure, once the standby is marked)."""
        why: object = None
        released = False
        try:
            try:
                answer, value = flight.answer()
            except Exception as exc:  # unreachable, refused, or anything else: not covered
                answer, value, why = "failed", 0, exc
            term, batch = flight.term, flight.batch
            first, last = batch[0][0], batch[-1][0]
            with self.cond:
                if term != self.term or answer == "ok":
                    if term == self.term:
                        self.acked = max(self.acked, last)
                    else:
                        self.work.notify_all()  # the new term's sync waited for this call
                    self.sending, released = False, True
                    self.cond.notify_all()  # covered, or the next call may go out
                    return
                if answer == "old":
                    self.failure = errors.NotLeader("a newer leader exists")
                else:
                    self.in_sync = False
                    self.queue = []
            if answer == "old":
                self.leadership.step_down(value)
            elif answer == "gap":
                log.warning("standby is behind (at entry %s): marking it stale", value)
                self._mark(term, first)
            else:
                log.warning("standby unreachable (%s): marking it stale from entry %d",
                            why, first)
                self._mark(term, first)
        finally:  # a failure: the thread may sync the standby once it is marked, not before
            if not released:
                with self.cond:
                    self.sending = False
                    self.cond.notify_all()
                    self.work.notify_all()

    def _mark(self, term: int, first: int) -> None:
        """Record "standby stale from ``first``" on a majority, or step down."""
        ok = self.leadership.mark_standby_stale(first)
        with self.cond:
            if term != self.term:
                return
            if ok:
                if self.marked_from is None:
                    self.marked_from = first
            else:
                self.failure = errors.Unavailable("lost contact with a majority of voters: retry")
            self.cond.notify_all()
        if not ok:
            self.leadership.step_down(self.epoch)

    def _establish(self, term: int) -> bool:
        """A term's start, or entries waiting while out of sync: bring the standby in
        sync with a snapshot, or mark it stale. -> False to try again a little later."""
        assert self.peer is not None
        try:
            self.peer.ping()  # outside the lock: a dead standby must not hold up clients
            with self.lock:
                with self.cond:
                    if term != self.term or self.in_sync:
                        return True
                if not self.leadership.serving(self.clock()):
                    return False
                self._install_locked(term)
            return True
        except errors.NotLeader:
            return True
        except errors.DfsError as exc:
            log.info("standby cannot be synced now (%s)", exc)
        except Exception:  # a bug must not leave the entries uncovered: mark it stale
            log.exception("standby cannot be synced")
        with self.cond:
            first = self.first if self.first is not None else self.written() + 1
        self._mark(term, first)
        return True

    def sync(self) -> None:
        """A standby marked stale (or not reached yet): once it answers, bring it back in
        sync with a snapshot and lift the marks. The master-sync task calls this."""
        if self.peer is None or self.in_sync:
            return
        self.peer.ping()  # raises Unavailable while it is away
        with self.lock:
            with self.cond:
                term = self.term
                if self.in_sync or not self.leading:
                    return
            if not self.leadership.serving(self.clock()):
                return
            self._install_locked(term)

    def _install_locked(self, term: int) -> None:
        """Metadata lock held: send the whole namespace as applied so far. Nothing is
        written meanwhile, so the standby then holds every entry; the voters hear so
        before we call it in sync."""
        assert self.peer is not None
        seq = self.written()
        answer, value = self.peer.install(self.epoch, self.snapshot())
        if answer == "old":
            self.leadership.step_down(value)
            raise errors.NotLeader("a newer leader exists")
        with self.cond:
            marked = self.marked_from is not None
        uncleared = self.uncleared
        if marked or self.standby_marked():  # maybe from an earlier term: lift them all
            uncleared = self.leadership.clear_standby_stale()
        with self.cond:
            if term != self.term:
                return
            self.uncleared = uncleared
            self.marked_from = None
            self.in_sync = True
            self.acked = max(self.acked, seq)
            self.queue = []
            self.wanted = False
            self.cond.notify_all()
        log.info("standby in sync at entry %s", value)

    def tell_new_voter(self, link: VoterLink) -> bool:
        """A worker about to become a voter must first hold the standby's stale mark, if
        there is one: else a stale standby could win with the newcomers' votes."""
        marked = self.marked_from
        if marked is None or self.peer_id is None:
            return True
        try:
            granted, _epoch = link.mark_stale(self.leadership.epoch, self.peer_id, marked)
            return granted
        except errors.DfsError:
            return False

    def finish_clearing(self) -> None:
        """Retry lifting the stale mark on voters that did not hear it the first time."""
        if self.uncleared:
            self.uncleared = self.leadership.clear_standby_stale(only=self.uncleared)

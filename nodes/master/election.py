"""Leadership: which metadata server may change anything (DESIGN section 5).

Pure logic: time comes in as ``now`` and voters are reached through ``links()``, a
callable returning ``{voter_id: link}`` where a link has ``lease``, ``vote``,
``mark_stale`` and ``clear_stale`` (the same signatures as nodes.master.voter.Voter, raising
dfs.errors.Unavailable when the voter cannot be reached). The master gives it rpyc links;
tests give it in-process voters and a clock they step by hand.

- A leader asks every voter for a lease at each ``tick``; a grant counts until
  ``asked_at + lease * SAFETY``, measured from *before* asking, so it always ends before
  the voter's own promise does. It serves only while grants from a majority are running.
- A standby whose own lease to the leader has run out asks for votes for epoch + 1, after
  spending its own vote on itself. A majority of the electorate makes it leader.
- Any answer showing a higher epoch makes a leader step down to standby, and so does its
  own voter having heard of one (the new leader asked it for a lease while we were paused):
  a leader acts in the epoch it won (``term``), never in a newer one its voter learnt.
- Before acknowledging entries its standby lacks, the leader records "standby stale from
  entry i" on a majority of the standby's electorate (its own voter counts: it is one).

Thread-safety: ``lock`` guards the role and the grants; network calls happen outside it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from dfs import errors
from nodes.master.voter import Answer, Voter

log = logging.getLogger(__name__)

LEADER, STANDBY = "leader", "standby"
# Not MasterConfig fields: fractions and deadlines of the protocol itself.
SAFETY = 0.8
ANSWER_DEADLINE = 1.5  # seconds to wait for voters' answers in one round
_DONE: concurrent.futures.Future[Answer] = concurrent.futures.Future()
_DONE.set_result((False, 0))


class VoterLink(Protocol):
    """A voter as a leader or candidate reaches it (nodes.master.links.Link over rpyc, an
    in-process Voter in tests): raises dfs.errors.Unavailable when it cannot be reached."""

    def lease(self, epoch: int, leader: str) -> Answer: ...
    def vote(self, epoch: int, candidate: str) -> Answer: ...
    def mark_stale(self, epoch: int, server: str, from_seq: int) -> Answer: ...
    def clear_stale(self, epoch: int, server: str) -> Answer: ...


Electorate = Mapping[str, VoterLink]  # voter id -> its link


def majority(count: int) -> int:
    return count // 2 + 1


class Leadership:
    def __init__(self, me: str, voter: Voter, links: Callable[[], Electorate], lease: float,
                 bootstrap: bool, peer_id: str | None = None, rng: random.Random | None = None,
                 executor: concurrent.futures.Executor | None = None) -> None:
        self.me = me
        self.voter = voter
        self.links = links
        self.lease = lease
        self.bootstrap = bootstrap  # may lead alone while there is no voter at all
        self.peer_id = peer_id  # the other metadata server, if any
        self.role = STANDBY
        self.term = 0  # the epoch we won, while we lead
        self.grants: dict[str, float] = {}  # voter id -> until when its lease counts
        self.last_serving = 0.0
        self._now_hint = voter.started
        self.lock = threading.RLock()
        self.rng = rng or random.Random()
        self.executor = executor  # to ask voters in parallel (real network); None: in turn
        self.inflight: dict[str, concurrent.futures.Future[Answer]] = {}  # last call to each
        self.next_election = voter.started + (0 if bootstrap else lease)
        self.on_change: Callable[[str, int], object] = lambda role, epoch: None

    @property
    def epoch(self) -> int:
        """As leader, the epoch we won; else the highest one our voter knows."""
        return self.term if self.role == LEADER else self.voter.epoch

    def _superseded(self) -> bool:
        """Our own voter knows a newer epoch than the one we lead in."""
        return self.voter.epoch > self.term

    def serving(self, now: float) -> bool:
        with self.lock:
            if self.role != LEADER or self._superseded():
                return False
            electorate = self.links()
            if not electorate:
                return True
            running = sum(1 for vid in electorate if self.grants.get(vid, 0) > now)
            return running >= majority(len(electorate))

    def leader_hint(self) -> str | None:
        """Id of the server we believe leads (for NotLeader answers)."""
        return self.me if self.role == LEADER else self.voter.holder

    def tick(self, now: float) -> None:
        self._now_hint = now
        if self.role == LEADER:
            self._renew(now)
        else:
            self._maybe_elect(now)

    def _ask(self, electorate: Electorate, method: str, *args: object) -> dict[str, Answer]:
        """Call ``method`` on every voter. -> {voter_id: (granted, epoch)} of those answering."""
        answers: dict[str, Answer] = {}
        calls: list[tuple[str, Callable[[], Answer]]]
        if self.executor is not None:
            futures: dict[str, concurrent.futures.Future[Answer]] = {}
            for vid, link in electorate.items():
                if method == "lease" and not self.inflight.get(vid, _DONE).done():
                    continue  # still waiting on a paused voter: do not pile renewals up
                futures[vid] = self.inflight[vid] = self.executor.submit(
                    getattr(link, method), *args)
            # a paused voter must not hold the others' answers back: wait one deadline
            concurrent.futures.wait(futures.values(), timeout=ANSWER_DEADLINE)
            calls = [(vid, future.result) for vid, future in futures.items() if future.done()]
        else:
            calls = [(vid, functools.partial(getattr(link, method), *args))
                     for vid, link in electorate.items()]
        for vid, call in calls:
            try:
                answers[vid] = call()
            except errors.DfsError as exc:
                log.debug("%s from %s: %s", method, vid, exc)
                continue  # unreachable, or refused to talk: no answer from this voter
        return answers

    def _renew(self, now: float) -> None:
        if self._superseded():
            self._step_down(self.voter.epoch)
            return
        electorate = self.links()
        answers = self._ask(electorate, "lease", self.epoch, self.me)
        with self.lock:
            for vid in [v for v in self.grants if v not in electorate]:
                del self.grants[vid]  # removed from the electorate: counts for nobody
            for vid, (granted, epoch) in answers.items():
                if granted:
                    self.grants[vid] = now + self.lease * SAFETY
                elif epoch > self.epoch:
                    self._step_down(epoch)
                    return
            if self.serving(now):
                self.last_serving = now
            elif now - self.last_serving > self.lease:
                # cut off from a majority: stop holding our standby's lease, so it can run
                log.warning("%s lost its majority of voters", self.me)
                self._step_down(self.epoch)

    def welcome(self, voter_id: str, link: VoterLink, now: float) -> bool:
        """Get a lease from a voter about to join the electorate, so that adding it never
        costs the leader its majority. -> True if granted."""
        try:
            granted, epoch = link.lease(self.epoch, self.me)
        except errors.DfsError:
            return False
        with self.lock:
            if granted:
                self.grants[voter_id] = now + self.lease * SAFETY
            elif epoch > self.epoch:
                self._step_down(epoch)
        return granted

    def _maybe_elect(self, now: float) -> None:
        if now < self.next_election or self.voter.lease_running(now, other_than=self.me):
            return
        electorate = self.links()
        epoch = max(self.voter.epoch, self.voter.voted_epoch) + 1
        if not electorate:
            if self.bootstrap:
                self.voter.vote_for_self(epoch)
                self._become_leader(epoch, now)
            return
        if not self.voter.vote_for_self(epoch):
            return
        log.info("%s: asking for votes for epoch %d (last lease to %s ended %.1fs ago)", self.me,
                 epoch, self.voter.holder, now - self.voter.expiry)
        answers = self._ask(electorate, "vote", epoch, self.me)
        granted = [vid for vid, (ok, _epoch) in answers.items() if ok]
        log.info("%s: epoch %d votes from %s; refused by %s; no answer from %s", self.me, epoch,
                 granted, [v for v, (ok, _e) in answers.items() if not ok],
                 [v for v in electorate if v not in answers])
        if len(granted) >= majority(len(electorate)):
            with self.lock:
                for vid in granted:
                    self.grants[vid] = now + self.lease * SAFETY
            self._become_leader(epoch, now)
        elif any(not ok for ok, _epoch in answers.values()):
            # refused or split: try again after a random pause, so two candidates drift apart
            self.next_election = now + self.lease * (0.3 + 0.7 * self.rng.random())
        else:
            # nobody refused, too few answered (voters still starting): ask again soon
            self.next_election = now + self.lease * (0.05 + 0.1 * self.rng.random())

    def _become_leader(self, epoch: int, now: float) -> None:
        with self.lock:
            self.voter.won(epoch)
            self.term = epoch
            self.role = LEADER
            self.last_serving = now
            self.voter.leading = True
        log.warning("%s is now the leader (epoch %d)", self.me, epoch)
        self.on_change(LEADER, epoch)

    def _step_down(self, epoch: int) -> None:
        with self.lock:
            if self.role != LEADER:
                return
            self.role = STANDBY
            self.voter.leading = False
            self.grants.clear()
            self.voter.epoch = max(self.voter.epoch, epoch)
            # give the other server room to win before we run again
            self.next_election = self._now_hint + 2 * self.lease
        log.warning("%s steps down to standby (epoch %d)", self.me, epoch)
        self.on_change(STANDBY, epoch)

    def step_down(self, epoch: int) -> None:
        self._step_down(epoch)

    # --- the standby's stale mark --------------------------------------------------------

    def _standby_electorate(self) -> dict[str, VoterLink]:
        """Who could elect our standby: every voter but the standby itself, and us."""
        return {vid: link for vid, link in self.links().items() if vid != self.peer_id}

    def _standby(self) -> str:
        if self.peer_id is None:
            raise errors.InvalidArgument("no standby: this server runs alone")
        return self.peer_id

    def mark_standby_stale(self, from_seq: int) -> bool:
        """Record the mark on a majority of the standby's electorate; False if we cannot."""
        others = self._standby_electorate()
        standby = self._standby()
        self.voter.mark_stale(self.epoch, standby, from_seq)  # we are one of them
        answers = self._ask(others, "mark_stale", self.epoch, standby, from_seq)
        acked = 1 + sum(1 for ok, _epoch in answers.values() if ok)
        for ok, epoch in answers.values():
            if not ok and epoch > self.epoch:
                self._step_down(epoch)
                return False
        return acked >= majority(len(others) + 1)

    def clear_standby_stale(self, only: set[str] | None = None) -> set[str]:
        """Tell the voters (all, or those in ``only``) that the standby has every entry.
        -> ids of voters that did not hear it: they keep the mark and must be told later
        (a voter keeping it only makes the standby less electable, never unsafe)."""
        electorate = self._standby_electorate()
        if only is not None:
            electorate = {vid: link for vid, link in electorate.items() if vid in only}
        standby = self._standby()
        answers = self._ask(electorate, "clear_stale", self.epoch, standby)
        self.voter.clear_stale(self.epoch, standby)
        return {vid for vid in electorate if not answers.get(vid, (False,))[0]}

"""A master in-process, for the t2 tests: a real MasterState (journal in a tmp dir) on real
leases from three in-process nodes.master.voter.Voter objects, clocks stepped by hand, one
worker registered, and its services driven through their exposed methods (no processes, no
sockets)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers import SteppedClock

from dfs import auth
from dfs.config import MasterConfig
from dfs.namespace.entries import SetAttr
from dfs.namespace.inode import ROOT_INO
from nodes.master.service import MasterService
from nodes.master.state import MasterState
from nodes.master.voter import Voter

TOKEN = "ab" * 32
LEASE = 3.0


def wall_ns(wall: Callable[[], float]) -> int:
    return int(wall() * 1e9)


def serving_master(folder: Path, clock: SteppedClock, wall: Callable[[], float] = time.time,
                   *, worker_bytes: int = 1 << 30, root_mode: int | None = None,
                   **config: Any) -> MasterState:
    """A MasterState in ``folder`` that has won its election and holds its leases, with
    worker w1 (``worker_bytes`` of space) and an initialised namespace; ``root_mode`` sets
    the root's mode afterwards. ``config``: more MasterConfig fields (with ``peer``, the
    link to the peer's voter is kept)."""
    state = MasterState(MasterConfig(data_dir=str(folder), replication=1, lease=LEASE,
                                     join_token=TOKEN, **config),
                        clock=clock, wall=wall)
    voters = {f"w{i}": Voter(str(folder / f"w{i}.json"), clock, LEASE) for i in (1, 2, 3)}
    with state.voters_lock:  # in-process links: same methods as the rpyc Link
        if state.peer_id is not None:  # the peer's voter: its own link, kept
            voters[state.peer_id] = state.voter_links[state.peer_id]
        state.voter_links = dict(voters)
    for _ in range(4):  # elect, then hold leases from the majority
        state.elect()
        clock.now += 0.25
    assert state.serving()
    with state.lock:
        state.workers.register("w1", "127.0.0.1", 1, worker_bytes, 0, (), clock())
        state.ensure_initialised()
        if root_mode is not None:
            state.commit(SetAttr(ROOT_INO, wall_ns(wall), mode=root_mode))
    return state


@contextmanager
def in_process_master(folder: Path, **options: Any) -> Iterator[
        tuple[MasterState, SteppedClock, SteppedClock]]:
    """-> (a serving_master with a shared sticky root, its clock, its wall clock); closed
    afterwards. The root is 1777 as tests/conftest.py's clusters have it (a cluster's own is
    the admin's, 0755: t2_master's test_a_new_cluster_is_the_admins_with_a_home_per_user)."""
    clock, wall = SteppedClock(100.0), SteppedClock(1_700_000_000.0)
    state = serving_master(folder, clock, wall, root_mode=0o1777, **options)
    yield state, clock, wall
    state.snapshot_and_close()


def login(state: MasterState, name: str, key: str, admin: bool = False) -> MasterService:
    """A service logged in as ``name`` with ``key``, through hello and login."""
    service = MasterService(state)
    nonce, role, _epoch = service.exposed_hello()
    assert role == "leader"
    mine = auth.new_nonce()
    assert service.exposed_login(name, mine, auth.make_proof(key, name, nonce, mine)) \
        == (name, admin)
    return service


def user(state: MasterState, name: str) -> MasterService:
    """A service logged in as ``name``, registered with the join token just now."""
    key = MasterService(state).exposed_register(name, state.join_token)
    return login(state, name, key)

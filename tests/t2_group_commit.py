"""Group commit in one process: a real MasterState and its services, with the leader's
journal fsync held back by a gate (``os.fdatasync`` wrapped: the real call runs once the
gate opens). While one commit waits for its fsync the metadata lock is free: others are
decided and journaled, a read waits instead of showing them early, and one fsync makes
them all durable. With a standby (another real MasterState reached in-process), it takes
an entry while the leader's own fsync is still held back: the two run in parallel."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import SteppedClock
from master_harness import TOKEN, serving_master
from master_harness import user as registered
from t2_replication import InProcessPeer

from dfs import auth, wire
from dfs import journal as journal_module
from dfs.config import MasterConfig
from dfs.local.cluster import wait_for
from nodes.master.cluster_service import ClusterEndpoints
from nodes.master.service import MasterService
from nodes.master.state import MasterState


class Gate:
    """Wraps os.fdatasync: calls on the journal file under ``folder`` wait until
    ``open()``; counts them."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.real: Callable[[int], None] = os.fdatasync

    def __call__(self, fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(self.folder):
            self.calls += 1
            self.entered.set()
            self.opened.wait(30)
        self.real(fd)


def serving_state(folder: Path, peer: tuple[str, int] | None = None) -> MasterState:
    return serving_master(folder, SteppedClock(100.0), peer=peer)


def user(state: MasterState, name: str) -> tuple[MasterService, str]:
    """-> (a logged-in service for a new user ``name``, a folder it may write in)."""
    service = registered(state, name)
    homes = state.ns.inodes[state.ns.inodes[1].children.get("home", 1)].children
    return service, f"/home/{name}" if name in homes else ""  # else the root is open


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate(tmp_path / "leader")
    monkeypatch.setattr(journal_module.os, "fdatasync", gate)
    yield gate
    gate.opened.set()


def test_commits_share_an_fsync_taken_outside_the_lock_and_reads_wait(
        tmp_path: Path, gate: Gate) -> None:
    gate.opened.set()  # setting up goes through
    state = serving_state(tmp_path / "leader")
    alice, home = user(state, "alice")
    others = [user(state, f"u{i}") for i in range(3)]
    gate.opened.clear()
    gate.entered.clear()
    calls = gate.calls
    first = threading.Thread(target=alice.exposed_mkdir, args=(f"{home}/first", 0o755))
    first.start()
    gate.entered.wait(10)  # its fsync is held back: the lock must be free
    before = state.journal.written_seq
    others = [threading.Thread(target=service.exposed_mkdir, args=(f"{theirs}/d{i}",))
              for i, (service, theirs) in enumerate(others)]
    for thread in others:
        thread.start()
    wait_for(lambda: state.journal.written_seq == before + 3, 10, "three more journaled")
    seen: list[list[str]] = []
    reader = threading.Thread(target=lambda: seen.append(
        [e.name for e in wire.entries_from_wire(alice.exposed_listdir(home or "/"))]))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive() and not seen  # it may not answer with what is not durable
    assert all(t.is_alive() for t in [first, *others])  # nothing acknowledged yet
    gate.opened.set()
    for thread in [first, *others, reader]:
        thread.join(10)
    assert "first" in seen[0]
    assert gate.calls - calls == 2  # the first's, then one for the three decided meanwhile
    state.snapshot_and_close()


def test_the_standby_takes_entries_while_the_leaders_fsync_runs(tmp_path: Path,
                                                                gate: Gate) -> None:
    gate.opened.set()
    standby = MasterState(MasterConfig(data_dir=str(tmp_path / "shadow"), role="shadow",
                                       peer=("127.0.0.1", 1), join_token=TOKEN),
                          clock=SteppedClock())
    state = serving_state(tmp_path / "leader", peer=("127.0.0.1", 2))
    state.replicator.peer = InProcessPeer(ClusterEndpoints(standby), auth.voter_secret(TOKEN))
    alice, home = user(state, "alice")
    state.sync_standby()  # as the master-sync task does: a snapshot, then in sync
    assert state.replicator.describe() == "in sync"
    gate.opened.clear()
    seq = state.journal.written_seq + 1
    done = threading.Thread(target=alice.exposed_mkdir, args=(f"{home}/both", 0o755))
    done.start()
    # the standby applies, then fsyncs as its lock is released: wait for the fsync
    wait_for(lambda: standby.journal.synced_seq == seq, 10, "the entry durable on the standby")
    assert standby.seq == seq and state.journal.synced_seq < seq  # ours held back
    assert done.is_alive()  # acknowledged only when durable on both
    gate.opened.set()
    done.join(10)
    assert not done.is_alive() and state.journal.synced_seq >= seq
    state.snapshot_and_close()
    standby.snapshot_and_close()
    assert os.path.exists(tmp_path / "shadow" / "cache-metadata" / "journal.jsonl")

"""Membership by hand: a draining worker's chunks move through the repair path, a removed
worker is forgotten, and which chunks would lose their last copy (nodes/master/placement.py,
the Member journal entry)."""

from __future__ import annotations

from dfs.namespace.entries import Member, Record, Voter, entry_from_json
from dfs.namespace.model import Namespace
from nodes.master.placement import BACKUP, PRIMARY, WorkerTable

CHUNK = 1 << 20
DISK = 1 << 40
IDS = ("w1", "w2", "w3", "w4")


def table(inventory: dict[str, list[tuple[int, str]]]) -> WorkerTable:
    workers = WorkerTable(2, dead_after=10.0, chunk_size=CHUNK)
    for i, wid in enumerate(IDS):
        workers.register(wid, "127.0.0.1", 9000 + i, DISK, 0, inventory.get(wid, []), 0.0)
    return workers


def commands(workers: WorkerTable, wid: str, added=(), removed=(), now: float = 1.0) -> list:
    return workers.heartbeat(wid, DISK, 0, 0, added, removed, now) or []


def test_a_draining_worker_gets_nothing_new_and_its_chunks_move_off() -> None:
    chunks = [1, 2, 3]
    workers = table({"w1": [(c, PRIMARY) for c in chunks], "w2": [(c, BACKUP) for c in chunks]})
    workers.set_members({"w1": "draining"})
    for _ in range(50):
        assert "w1" not in {r.worker_id for r in workers.place()}
    workers.tick(1.0, set(chunks), set(), lambda cid: "token")
    copies: dict[str, list[tuple[int, str]]] = {}
    for wid in IDS:
        for command in commands(workers, wid):
            assert command[0] == "replicate" and wid in ("w3", "w4")
            copies.setdefault(wid, []).append((int(command[1]), str(command[2])))
    assert sorted(c for made in copies.values() for c, _kind in made) == chunks
    for wid, made in copies.items():  # the copies arrive: now the draining ones are surplus
        commands(workers, wid, added=made)
    assert not workers.drained("w1")
    workers.tick(2.0, set(chunks), set(), lambda cid: "token")
    deletes = commands(workers, "w1", now=2.0)
    assert sorted(c[1] for c in deletes) == chunks and {c[0] for c in deletes} == {"delete"}
    assert commands(workers, "w2", now=2.0) == []  # the healthy copies are kept
    assert workers.drained("w1")
    for cid in chunks:
        holders = {r.worker_id for r in workers.replicas(cid)}
        assert len(holders) == 2 and "w1" not in holders
        assert any(r.kind == PRIMARY for r in workers.replicas(cid))


def test_only_copies_of_a_live_a_dead_and_an_unknown_worker() -> None:
    workers = table({"w1": [(1, PRIMARY), (2, PRIMARY)], "w2": [(1, BACKUP)],
                     "w3": [(3, PRIMARY)]})
    assert workers.only_copies("w1", {1, 2, 3}) == [2]
    assert workers.only_copies("w2", {1, 2, 3}) == []
    commands(workers, "w1", now=15.0)
    workers.tick(20.0, {1, 2, 3}, set(), lambda cid: "t")  # all but w1 silent: dead
    assert workers.only_copies("w3", {1, 2, 3}) == [3]  # it held 3, no live copy now
    assert workers.only_copies("w2", {1, 2, 3}) == []  # what it held (1) is on w1
    assert workers.only_copies("w1", {1, 2, 3}) == [1, 2]
    assert workers.only_copies("w9", {1, 2, 3}) == [3]  # never seen: it may hold any lost one


def test_a_removed_worker_is_forgotten_with_its_locations_and_repairs() -> None:
    workers = table({"w1": [(1, PRIMARY)], "w2": [(1, BACKUP)]})
    workers.set_members({"w2": "removed"})
    assert "w2" not in workers.workers
    assert {r.worker_id for r in workers.replicas(1)} == {"w1"}
    assert commands(workers, "w2") == []  # unknown: None, so it must register again
    assert workers.heartbeat("w2", DISK, 0, 0, (), (), 1.0) is None


def test_the_member_entry_leaves_the_electorate_and_survives_a_snapshot() -> None:
    ns = Namespace()
    ns.apply(Record(1, 1, Voter(worker_id="w1", host="h", port=1)))
    ns.apply(Record(2, 1, Voter(worker_id="w2", host="h", port=2)))
    ns.apply(Record(3, 1, Member(worker_id="w1", state="draining")))
    assert set(ns.voters) == {"w1", "w2"}
    line = Record(4, 1, Member(worker_id="w2", state="removed")).to_line()
    ns.apply(Record.from_line(line))
    assert set(ns.voters) == {"w1"}
    again = Namespace.from_json(ns.to_json())
    assert again.members == {"w1": "draining", "w2": "removed"} and set(again.voters) == {"w1"}
    assert entry_from_json({"op": "member", "worker_id": "w3", "state": "removed"}) == \
        Member(worker_id="w3", state="removed")

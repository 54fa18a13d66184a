"""The tick's incremental view of the chunks (nodes/master/chunk_scan.py), fed by hand.

A tick looks only at the chunks whose copies changed, the endangered ones repair takes up,
and a slice of a round-robin pass over all. These are the cases where what it keeps could
go stale: a copy lost then found again, a worker dying and coming back, a chunk deleted
while its repair is queued, a file deleted with no report to say so. The tables here have no
round-robin pass (but where a test says), so that it cannot make up for a change missed.
"""

from __future__ import annotations

from collections.abc import Iterable

from nodes.master.placement import (
    BACKUP,
    PRIMARY,
    REPAIR_DEADLINE,
    REPAIRS_PER_WORKER,
    WorkerTable,
)
from nodes.master.worker_view import Command

DISK = 1 << 40
CHUNK = 1 << 20


def cluster(held: dict[str, list[int]], workers: tuple[str, ...] = ("w1", "w2", "w3"),
            replication: int = 2, settle: bool = True) -> WorkerTable:
    """Workers holding chunks: ``held`` chunk ids per worker, the first holder's primary;
    ``settle``: one tick at 0 has looked at them all (their chunks are referenced)."""
    table = WorkerTable(replication, dead_after=10.0, chunk_size=CHUNK)
    first: dict[int, str] = {}
    for wid in workers:
        for chunk_id in held.get(wid, []):
            first.setdefault(chunk_id, wid)
    for i, wid in enumerate(workers):
        inventory = [(c, PRIMARY if first[c] == wid else BACKUP) for c in held.get(wid, [])]
        table.register(wid, "127.0.0.1", 9000 + i, DISK, 0, inventory, 0.0)
    table.scan.slice_size = 0  # no round-robin pass: it must not hide a change not noted
    if settle:
        table.tick(0.0, set(first), set(), str)
    return table


def beat(table: WorkerTable, wid: str, now: float, added: Iterable[int] = (),
         removed: Iterable[int] = ()) -> list[Command]:
    """One heartbeat of ``wid``: the chunks it reports stored and removed; its commands."""
    commands = table.heartbeat(wid, DISK, 0, 0, [(c, BACKUP) for c in added],
                               [(c, BACKUP) for c in removed], now)
    assert commands is not None
    return commands


def asked(commands: list[Command], verb: str) -> list[int]:
    return sorted(int(c[1]) for c in commands if c[0] == verb)


def everyone(table: WorkerTable, now: float) -> dict[str, list[Command]]:
    return {wid: beat(table, wid, now) for wid, w in table.workers.items() if w.alive}


def test_a_copy_reported_lost_then_found_again_is_not_repaired_twice_nor_left_short() -> None:
    table = cluster({"w1": [1, 2], "w2": [1, 2]})
    beat(table, "w2", 1.0, removed=[1, 2])
    beat(table, "w2", 1.0, added=[2])  # chunk 2 found again before any tick
    table.tick(1.0, {1, 2}, set(), str)
    commands = everyone(table, 1.5)
    assert asked(commands["w3"], "replicate") == [1]  # only the one still short
    assert table.scan.endangered == {}  # queued once, taken
    beat(table, "w2", 2.0, added=[1])  # found again while its repair is in flight
    beat(table, "w3", 2.0, added=[1])  # and the repair lands: three copies
    table.tick(2.0, {1, 2}, set(), str)
    commands = everyone(table, 2.5)
    deletes = [asked(cmds, "delete") for cmds in commands.values()]
    assert sorted(deletes) == [[], [], [1]]  # the surplus copy goes, two stay
    assert sorted(len(h) for h in table.locations.values()) == [2, 2]
    table.tick(3.0, {1, 2}, set(), str)
    assert not any(asked(c, "replicate") for c in everyone(table, 3.5).values())
    assert table.scan.endangered == {} and not table.repairs


def test_a_dead_worker_back_before_its_repairs_finish_leaves_nothing_queued() -> None:
    chunks = list(range(1, 21))
    table = cluster({"w1": chunks, "w2": chunks})
    for wid in ("w1", "w3"):
        beat(table, wid, 19.0)
    table.tick(20.0, set(chunks), set(), str)  # w2 silent 20 s: dead
    repairing = asked(everyone(table, 20.0)["w3"], "replicate")
    assert repairing == chunks[:REPAIRS_PER_WORKER]  # all as endangered: oldest first
    assert len(table.scan.endangered) == len(chunks) - REPAIRS_PER_WORKER  # still queued
    table.register("w2", "127.0.0.1", 9001, DISK, 0, [(c, BACKUP) for c in chunks], 20.5)
    beat(table, "w3", 21.0, added=repairing)  # the repairs asked land
    table.tick(21.0, set(chunks), set(), str)
    commands = everyone(table, 21.5)
    assert not any(asked(c, "replicate") for c in commands.values())  # none short now
    trimmed = sorted(c for cmds in commands.values() for c in asked(cmds, "delete"))
    assert trimmed == repairing  # each repaired chunk back to two copies
    assert sorted({len(h) for h in table.locations.values()}) == [2]
    assert table.scan.endangered == {} and not table.repairs


def test_a_chunk_deleted_while_its_repair_is_queued_is_collected_and_only_it() -> None:
    table = cluster({"w1": [1, 2], "w2": [1, 2]})
    table.scan.slice_size = 1  # only the pass can tell that a file went
    beat(table, "w2", 1.0, removed=[1, 2])
    table.tick(1.0, {1, 2}, set(), str)
    commands = everyone(table, 1.5)
    assert sorted(c for cmds in commands.values() for c in asked(cmds, "replicate")) == [1, 2]
    target = {chunk_id: wid for chunk_id, (wid, _deadline) in table.repairs.items()}
    deleted = []
    for tick in (2.0, 2.1):  # chunk 1's file deleted, no report says so: the pass finds it
        table.tick(tick, {2}, set(), str)
        deleted += asked(everyone(table, tick)["w1"], "delete")
    assert deleted == [1]
    for chunk_id in (1, 2):  # both repairs land, chunk 1's too late
        beat(table, target[chunk_id], 3.0, added=[chunk_id])
    table.tick(3.0, {2}, set(), str)
    commands = everyone(table, 3.5)
    assert asked(commands[target[1]], "delete") == [1]
    assert not any(2 in asked(cmds, "delete") for cmds in commands.values())  # referenced
    assert table.locations == {2: {"w1": PRIMARY, target[2]: BACKUP}}
    assert table.scan.endangered == {} and not table.repairs


def test_a_short_slice_collects_every_deleted_file_within_one_pass() -> None:
    chunks = list(range(1, 11))
    table = cluster({"w1": chunks, "w2": chunks})
    table.scan.slice_size = 3
    for tick in range(5):  # nothing changes: a pass, and more, of looking at all
        table.tick(float(tick), set(chunks), set(), str)
    assert not any(everyone(table, 5.0).values())
    kept = {2, 5, 9}
    gone = set(chunks) - kept
    for tick in range(5, 10):  # ceil(10 / 3) ticks finish the pass under way, and one more
        table.tick(float(tick), kept, set(), str)
        commands = everyone(table, float(tick))
        for cmds in commands.values():
            assert set(asked(cmds, "delete")) <= gone  # a referenced chunk is never deleted
    assert set(table.locations) == kept


def test_repair_takes_the_fewest_copies_first_across_the_whole_backlog() -> None:
    # replication 3: chunks 1-10 keep two copies, 11-20 one; w2 is full: w4 the only target
    table = cluster({"w1": list(range(1, 21)), "w2": list(range(1, 11))},
                    workers=("w1", "w2", "w4"), replication=3, settle=False)
    table.workers["w2"].free = 0
    table.tick(1.0, set(range(1, 21)), set(), str)
    assert asked(table.workers["w4"].commands, "replicate") == list(range(11, 19))
    assert sorted(table.scan.endangered) == [*range(1, 11), 19, 20]  # the rest wait
    beat(table, "w4", 2.0, added=list(range(11, 19)))
    table.tick(2.0, set(range(1, 21)), set(), str)
    assert asked(table.workers["w4"].commands, "replicate") == [*range(1, 7), 19, 20]


def test_a_repair_that_never_lands_is_asked_again_after_its_deadline() -> None:
    table = cluster({"w1": [1], "w2": [1]}, workers=("w1", "w2"))
    beat(table, "w2", 1.0, removed=[1])
    table.tick(1.0, {1}, set(), str)
    assert asked(everyone(table, 1.0)["w2"], "replicate") == [1]
    table.tick(2.0, {1}, set(), str)  # in flight: not asked twice
    assert not asked(everyone(table, 2.0)["w2"], "replicate")
    later = 2.0 + REPAIR_DEADLINE
    everyone(table, later)
    table.tick(later, {1}, set(), str)
    assert asked(everyone(table, later)["w2"], "replicate") == [1]


def test_a_queued_chunk_whose_file_goes_is_collected_not_repaired() -> None:
    table = cluster({"w1": [1, 2]}, workers=("w1", "w2"), settle=False)
    table.workers["w2"].free = 0  # no room: both chunks wait for a target
    table.tick(1.0, {1, 2}, set(), str)
    assert sorted(table.scan.endangered) == [1, 2]
    table.tick(2.0, {2}, set(), str)  # chunk 1's file deleted: no report says so
    assert asked(table.workers["w1"].commands, "delete") == [1]
    assert sorted(table.scan.endangered) == [2]
    everyone(table, 3.0)  # w2 reports room again
    table.tick(3.0, {2}, set(), str)
    assert asked(table.workers["w2"].commands, "replicate") == [2]

"""A Jepsen-style check of a recorded history of operations on registers.

Each key is a register that one client thread writes, in order (``seq`` grows with each
write it starts), so the writes of a key are totally ordered and a read's value names the
write it saw. An operation, as dfs.local.hosts_agent records it::

    {"client", "op": "write"|"read", "key", "value", "seq" (writes), "start", "end",
     "status": "ok"|"fail"|"unknown", "server", "epoch" (or None), "error"}

A write that did not come back ("unknown") may or may not have happened: reads may see it
or not. A failed read changed nothing and says nothing. The checks, each problem a line:

- **no acknowledged write lost**: a read that starts after write w of its key was
  acknowledged returns w's value or a later write's (the final reads, done after every
  link healed, start after every write: they see the last acknowledged one or later);
- **no read of a value never written**: a read returns the value of a write of that key
  that began before the read ended (or nothing, while no write of the key was acknowledged);
- **no two leaders acknowledging in one epoch**: the operations whose epoch is known name
  one server per epoch;
- **an old leader stops before the new one starts**: no operation acknowledged in epoch e
  started after one acknowledged in a later epoch had ended.

Figures: writes acknowledged, acknowledged writes lost (those some later read missed),
and the pause: the longest time without any successful operation within a window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Op = dict[str, Any]


@dataclass
class Report:
    ops: int = 0
    acked_writes: int = 0
    lost_writes: int = 0
    problems: list[str] = field(default_factory=list)
    pause: float = 0.0
    leaders: dict[int, list[str]] = field(default_factory=dict)
    """epoch -> the servers seen acknowledging in it."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        epochs = ", ".join(f"{e}: {'+'.join(s)}" for e, s in sorted(self.leaders.items()))
        return (f"{self.ops} ops, {self.acked_writes} acknowledged writes, "
                f"{self.lost_writes} lost; longest pause {self.pause:.2f}s; "
                f"epochs {epochs or 'none known'}; {len(self.problems)} problem(s)")


def _describe(op: Op) -> str:
    return (f"{op['client']} {op['op']} {op['key']}={op['value']!r} "
            f"[{op['start']:.3f}, {op['end']:.3f}] via {op.get('server')} "
            f"epoch {op.get('epoch')}")


def pause(history: Iterable[Op], start: float, end: float) -> float:
    """The longest stretch of [start, end] in which no operation succeeded."""
    ends = sorted(op["end"] for op in history
                  if op["status"] == "ok" and start <= op["end"] <= end)
    marks = [start, *ends, end]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


def _check_reads(ops: list[Op], report: Report) -> None:
    writes = [op for op in ops if op["op"] == "write"]
    by_value = {(w["key"], w["value"]): w for w in writes}
    acked: dict[str, list[Op]] = {}
    for w in writes:
        if w["status"] == "ok":
            acked.setdefault(w["key"], []).append(w)
    lost: set[tuple[str, str]] = set()
    for read in (op for op in ops if op["op"] == "read" and op["status"] == "ok"):
        seen = None
        if read["value"] is not None:
            seen = by_value.get((read["key"], read["value"]))
            if seen is None or seen["start"] > read["end"]:
                report.problems.append(f"read of a value never written: {_describe(read)}")
                continue
        for w in acked.get(read["key"], []):
            if w["end"] < read["start"] and (seen is None or w["seq"] > seen["seq"]):
                if (w["key"], w["value"]) not in lost:
                    report.problems.append(f"acknowledged write lost: {_describe(w)}; "
                                           f"later {_describe(read)}")
                lost.add((w["key"], w["value"]))
    report.lost_writes = len(lost)


def _check_leaders(ops: list[Op], report: Report) -> None:
    known = [op for op in ops if op["status"] == "ok" and op.get("epoch") is not None]
    servers: dict[int, set[str]] = {}
    latest_start: dict[int, Op] = {}
    earliest_end: dict[int, Op] = {}
    for op in known:
        epoch = op["epoch"]
        servers.setdefault(epoch, set()).add(op["server"])
        if epoch not in latest_start or op["start"] > latest_start[epoch]["start"]:
            latest_start[epoch] = op
        if epoch not in earliest_end or op["end"] < earliest_end[epoch]["end"]:
            earliest_end[epoch] = op
    report.leaders = {e: sorted(s) for e, s in servers.items()}
    for epoch, names in sorted(servers.items()):
        if len(names) > 1:
            report.problems.append(f"two leaders acknowledged in epoch {epoch}: "
                                   f"{', '.join(sorted(names))}")
    for old in sorted(latest_start):
        for new in (e for e in sorted(earliest_end) if e > old):
            late, early = latest_start[old], earliest_end[new]
            if late["start"] > early["end"]:
                report.problems.append(
                    f"epoch {old} still served after epoch {new} had: {_describe(late)} "
                    f"began after {_describe(early)} ended")


def check(history: Iterable[Op], window: tuple[float, float] | None = None) -> Report:
    """Every check above over ``history``; the pause over ``window`` (default: from the
    first operation's start to the last one's end)."""
    ops = sorted(history, key=lambda op: op["start"])
    report = Report(ops=len(ops))
    report.acked_writes = sum(1 for op in ops if op["op"] == "write" and op["status"] == "ok")
    _check_reads(ops, report)
    _check_leaders(ops, report)
    if ops:
        start, end = window or (ops[0]["start"], max(op["end"] for op in ops))
        report.pause = pause(ops, start, end)
    return report

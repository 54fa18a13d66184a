"""What a metadata server says about the cluster: ``cluster_status`` (the `dfs status` call
and this page share it) and the read-only status page its HTTP port serves at ``/``
(nodes/web.py): the leader, the workers, capacity, under-replicated chunks and the latest
events.

Every piece of text on the page passes ``html.escape``: worker ids, hosts and user names
come from outside (a worker names itself), and an id like ``<script>`` must show as text.
The page has no script at all (nodes/web.py forbids it in its headers too). Events are
shown without their detail: a path can say more than whoever can reach this port should
know; `dfs events` (admin) shows it.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

from dfs import wire
from dfs.cli.output import human
from nodes.master import trash_pressure
from nodes.master.election import LEADER

if TYPE_CHECKING:
    from nodes.master.state import MasterState

PAGE_EVENTS = 20  # the latest events shown

STYLE = """
body { font: 14px/1.4 sans-serif; margin: 0; color: #1d2733; background: #f4f6f8; }
header { background: #1f4e79; color: #fff; padding: 12px 24px; }
header h1 { margin: 0; font-size: 22px; }
main { padding: 8px 24px; }
table { border-collapse: collapse; background: #fff; margin: 4px 0 16px; }
th, td { border: 1px solid #c9d2db; padding: 3px 10px; text-align: left; }
th { background: #e3e9ef; }
.alive { color: #1b7a35; font-weight: bold; }
.dead, .refused, .warning { color: #b3261e; font-weight: bold; }
.standby { background: #fff4ce; padding: 6px 10px; }
"""


def capacity(state: MasterState) -> tuple[int, int]:
    """(total, free) bytes of the live workers after replication. Lock held."""
    live = state.workers.live()
    free = sum(w.free for w in live) // state.config.replication
    used = sum(w.used for w in live) // state.config.replication
    return used + free, free


def cluster_status(state: MasterState) -> wire.ClusterStatus:
    """What this server knows of the cluster (takes the metadata lock)."""
    with state.lock:
        now = state.clock()
        referenced = state.ns.referenced_chunk_ids()
        holders = tuple(sorted(vid for vid, until in state.leadership.grants.items()
                               if until > now))
        return wire.ClusterStatus(
            state.me, state.epoch, "%s:%d" % state.address,
            tuple(state.workers.status(now)), state.workers.under_replicated(referenced),
            len(state.ns.inodes), state.replicator.describe(), holders,
            trash_pressure.warning(state.config, state.workers.live()), state.web_url)


def page(state: MasterState) -> str:
    """The page of this server now."""
    status = cluster_status(state)
    with state.lock:
        total, free = capacity(state)
        leading = state.leadership.role == LEADER
        leader = state.leader_address()
    return render(status, leading, leader, total, free, state.events.last(PAGE_EVENTS),
                  time.time())


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _table(table_id: str, header: tuple[str, ...], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    return f'<table id="{table_id}">{thead}<tbody>{body}</tbody></table>'


def render(status: wire.ClusterStatus, leading: bool, leader: str, total: int, free: int,
           events: list[wire.Event], now: float) -> str:
    """The page's HTML: pure, for tests (``events`` newest first)."""
    role = "leader" if leading else "standby"
    parts = [f"<header><h1>DFS cluster status</h1><p>{_e(status.leader)} ({role}) at "
             f"{_e(status.address)}, epoch {status.epoch}</p></header><main>"]
    if not leading:
        where = f"the leader is {_e(leader)}" if leader else "no leader is known yet"
        parts.append(f'<p class="standby">This server is the standby: {where}. '
                     "Its view of the workers may be behind.</p>")
    alive = sum(1 for w in status.workers if w.alive)
    summary = [["standby", _e(status.standby)],
               ["leases held from", _e(", ".join(status.lease_holders) or "nobody")],
               ["workers", f"{alive} alive of {len(status.workers)}"],
               ["capacity", f"{_e(human(total))} ({_e(human(free))} free, after replication)"],
               ["files and folders", str(status.files)],
               ["under-replicated chunks", str(status.under_replicated)]]
    if status.space_warning:
        summary.append(["warning", f'<span class="warning">{_e(status.space_warning)}</span>'])
    parts.append("<h2>Cluster</h2>" + _table("summary", ("", ""), summary))
    rows = [[_e(w.worker_id), _e(f"{w.host}:{w.port}"),
             f'<span class="{"alive" if w.alive else "dead"}">'
             f'{"alive" if w.alive else "dead"}</span>',
             str(w.chunks), _e(human(w.used)), _e(human(w.free)),
             f"{w.seconds_since_heartbeat:.1f} s ago"] for w in status.workers]
    parts.append(f"<h2>Workers ({alive} alive)</h2>" + _table(
        "workers", ("worker", "address", "state", "chunks", "used", "free", "last heard"),
        rows))
    rows = [[_e(_when(ev.time)), _e(ev.user or "-"), _e(ev.op), _e(ev.entry),
             _e(ev.address or "-"), f'<span class="{_e(ev.outcome)}">{_e(ev.outcome)}</span>']
            for ev in events]
    parts.append(f"<h2>Latest events ({len(events)})</h2>" + _table(
        "events", ("time", "user", "op", "entry", "from", "outcome"), rows))
    parts.append(f"<p>Made at {_e(_when(now))}. Read-only; metrics at "
                 '<a href="/metrics">/metrics</a>.</p></main>')
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>DFS status</title><style>{STYLE}</style></head><body>"
            + "".join(parts) + "</body></html>")

"""`dfs workers list | drain ID | remove ID` (admin): who belongs to the cluster.
What each does and why it is safe for the election: nodes/master/membership.py."""

from __future__ import annotations

import argparse
import sys

from dfs import errors
from dfs.cli.common import Subparsers, client_command, open_client
from dfs.cli.output import human, print_table
from dfs.retry import poll
from dfs.wire import WorkerMember

DRAIN_POLL = 0.5  # seconds between two looks at a draining worker (drain --wait)


def _member(members: list[WorkerMember], worker_id: str) -> WorkerMember | None:
    return next((m for m in members if m.worker_id == worker_id), None)


def cmd_workers(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        if args.action == "list":
            members = dfs.workers_list()
            print_table([(m.worker_id, f"{m.host}:{m.port}", m.state, m.chunks, human(m.used),
                          human(m.free), "yes" if m.voter else "no",
                          "-" if m.seconds_since_heartbeat < 0
                          else f"{m.seconds_since_heartbeat:.1f}s") for m in members],
                        ("worker", "address", "state", "chunks", "used", "free", "voter",
                         "last seen"))
            dead = [m.worker_id for m in members if m.voter and m.state.startswith("dead")]
            if dead:
                print(f"dead workers still vote: {', '.join(dead)}; once one will not come "
                      "back, `dfs workers remove ID` takes it out of the majority")
            return 0
        if not args.id:
            raise errors.InvalidArgument(f"workers {args.action} needs a worker ID "
                                         "(dfs workers list shows them)")
        if args.action == "drain":
            count = dfs.workers_drain(args.id)
            print(f"worker {args.id} is draining: its {count} chunk(s) are copied to other "
                  "workers and nothing new goes there")
            if args.wait is None:
                print("`dfs workers list` shows it as drained when they are all elsewhere; "
                      f"then `dfs workers remove {args.id}`")
                return 0

            def drained() -> bool:
                member = _member(dfs.workers_list(), args.id)
                return member is None or member.state == "drained"
            if not poll(drained, args.wait, DRAIN_POLL):
                raise errors.Unavailable(f"worker {args.id} not drained after {args.wait:.0f}s "
                                         "(dfs workers list shows where it is)")
            print(f"worker {args.id} is drained: `dfs workers remove {args.id}` takes it out")
            return 0
        lost = dfs.workers_remove(args.id, force=args.force)
        if lost:
            print(f"WARNING: removed {args.id} with the only copy of {lost} chunk(s): "
                  "those files cannot be read (dfs fsck lists them)", file=sys.stderr)
        print(f"removed worker {args.id}: it no longer votes, and it may not join again "
              "under that id (wipe its data directory to add the machine back)")
        return 0


def add_commands(sub: Subparsers) -> None:
    p = client_command(sub, "workers", cmd_workers,
                       "list, drain or remove workers (admin)")
    p.add_argument("action", choices=["list", "drain", "remove"])
    p.add_argument("id", nargs="?", help="the worker's id (dfs workers list)")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="with drain: wait until every chunk has its copies elsewhere")
    p.add_argument("--force", action="store_true",
                   help="with remove: even when it holds the only copy of some chunks "
                        "(they are lost)")

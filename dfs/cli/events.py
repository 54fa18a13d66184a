"""`dfs events`: the leader's audit log (admin): who changed what, who logged in, when and
from where. Pages of events are asked for with a cursor (nodes/master/events.py);
``--follow`` asks again every second for what came after, until Ctrl-C."""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dfs import errors
from dfs.cli.common import Subparsers, client_command, open_client
from dfs.cli.output import printable
from dfs.wire import Event

if TYPE_CHECKING:
    from dfs.client import DfsClient

FOLLOW_EVERY = 1.0  # seconds between two questions of --follow
PAGE = 1000  # events asked for at once (the master's page limit)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: how long ago ("30s", "10m", "2h", "1d", "1w"), a local date and time
    ("2026-05-01", "2026-05-01 14:30", ISO 8601 with a zone too), or Unix seconds.
    -> Unix seconds."""
    text = text.strip()
    relative = RELATIVE.fullmatch(text)
    if relative:
        ago = float(relative.group(1)) * UNITS[relative.group(2)]
        return (time.time() if now is None else now) - ago
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise errors.InvalidArgument(
            f"--since: not a time: {text!r} (try 10m, 2h, 1d, 2026-05-01 or "
            "'2026-05-01 14:30')") from None
    return when.timestamp()  # a naive time is local time


def format_event(event: Event) -> str:
    """One line: time, who, from where, what (and its arguments), the journal entry."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time))
    what = f"{event.op} {event.detail}".strip()
    outcome = "" if event.outcome == "ok" else f"  {event.outcome.upper()}"
    entry = f"  [{event.entry}]" if event.entry else ""
    return printable(f"{stamp}  {event.user or '-'}  {event.address or '-'}  {what}"
                     f"{entry}{outcome}")


def _drain(dfs: DfsClient, after: int, since: float, user: str,
           each: Callable[[Event], object]) -> int:
    """Call ``each`` on every event after ``after`` there is now. -> the cursor after them."""
    while True:
        events, cursor = dfs.events(after, since, user, PAGE)
        for event in events:
            each(event)
        if len(events) < PAGE or cursor <= after:
            return max(cursor, after)
        after = cursor


def cmd_events(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else 0.0
    if args.lines is not None and args.lines < 1:
        raise errors.InvalidArgument("--lines must be at least 1")
    with open_client(args) as dfs:
        if args.lines is None:
            cursor = _drain(dfs, 0, since, args.user, lambda e: print(format_event(e)))
        else:
            last: collections.deque[Event] = collections.deque(maxlen=args.lines)
            cursor = _drain(dfs, 0, since, args.user, last.append)
            for event in last:
                print(format_event(event))
        if not args.follow:
            return 0
        try:
            while True:
                sys.stdout.flush()
                time.sleep(FOLLOW_EVERY)
                cursor = _drain(dfs, cursor, since, args.user,
                                lambda e: print(format_event(e)))
        except KeyboardInterrupt:
            return 0


def add_commands(sub: Subparsers) -> None:
    p = client_command(sub, "events", cmd_events,
                       "the audit log: changes and logins, who, when, from where (admin)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new events as they come, until Ctrl-C")
    p.add_argument("--user", "-u", default="", help="only this user's events")
    p.add_argument("--since", "-s", default="", metavar="TIME",
                   help="only events since TIME: 10m, 2h, 1d ago, or a date and time "
                        "('2026-05-01 14:30')")
    p.add_argument("--lines", "-n", type=int, default=None, metavar="N",
                   help="only the last N of them (before following)")

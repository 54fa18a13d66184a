"""The master's endpoint for reading its audit log (`dfs events`, admin only): one bounded
page at a time, from a cursor (nodes/master/events.py keeps the log)."""

from __future__ import annotations

from dfs import wire
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect


class EventEndpoints(Session):
    @boundary
    def exposed_events(self, after: object = 0, since: object = 0.0, user: object = "",
                       limit: object = 500) -> wire.Wire:
        """Events after id ``after``, at or after wall time ``since``, by ``user`` if not
        empty; at most ``limit`` (and never more than events.PAGE_MAX), oldest first.
        -> (events, cursor): ask again with ``after=cursor`` for the ones that follow."""
        after = expect(after, int, "cursor")
        since = float(expect(since, (int, float), "since"))
        user = expect(user, str, "user")
        limit = expect(limit, int, "limit")
        self._admin()
        events, cursor = self.state.events.page(after, since, user, limit)
        return wire.events_to_wire(events, cursor)

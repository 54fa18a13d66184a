"""Who calls the mount, for an admin's mount (a trusted host's, with allow_other): each
FUSE request acts as the process that made it, with its uid, gid and supplementary groups,
so the master decides with the POSIX rules for that local user (uid 0: the superuser).

A normal user's mount does not use this: its key acts as that user whatever the process
(and without allow_other only its own local user reaches it).

``Callers.client()`` returns a client view per credentials (DfsClient.acting_as: its own
master connections, shared workers and buffers), the last ``MAX_VIEWS`` kept; a process's
supplementary groups are read from /proc/PID/status and kept ``GROUPS_SECONDS`` (per
process and ids).
Thread-safe: one lock around both tables, never held during an RPC.

``OwnUser`` is the other case: on a normal user's mount (no default_permissions) the
kernel asks the mount about access(2), and the answer is the master's rules for the DFS
user the key acts as, whoever the local process is.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from dfs.client.client import DfsClient
from dfs.namespace.access import Cred

MAX_VIEWS = 32
GROUPS_SECONDS = 1.0
CRED_SECONDS = 1.0  # how long OwnUser trusts the ids it asked for
Context = Callable[[], tuple[int, int, int]]  # -> (uid, gid, pid) of the calling process
Ids = tuple[int, int, tuple[int, ...]]


def process_groups(pid: int) -> tuple[int, ...]:
    """The supplementary groups of process ``pid`` (none if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return tuple(sorted(int(g) for g in line.split()[1:]))
    except (OSError, ValueError):
        pass
    return ()


class Callers:
    def __init__(self, base: DfsClient, context: Context,
                 groups_of: Callable[[int], tuple[int, ...]] = process_groups,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.context = context
        self.groups_of = groups_of
        self.clock = clock
        self.lock = threading.Lock()
        self.views: OrderedDict[Ids, DfsClient] = OrderedDict()
        # (pid, uid, gid) -> (when, groups): a process that changes its ids (su, a daemon
        # dropping privileges: setgroups then setresuid) is read again at once
        self.groups: dict[tuple[int, int, int], tuple[float, tuple[int, ...]]] = {}

    def ids(self) -> Ids:
        uid, gid, pid = self.context()
        now = self.clock()
        key = (pid, uid, gid)
        with self.lock:
            known = self.groups.get(key)
        if known is None or now - known[0] > GROUPS_SECONDS:
            known = (now, self.groups_of(pid) if pid > 0 else ())
            with self.lock:
                self.groups[key] = known
                if len(self.groups) > 4 * MAX_VIEWS:
                    self.groups = {p: g for p, g in self.groups.items()
                                   if now - g[0] <= GROUPS_SECONDS}
        return uid, gid, known[1]

    def client(self) -> DfsClient:
        ids = self.ids()
        with self.lock:
            view = self.views.get(ids)
            if view is not None:
                self.views.move_to_end(ids)
                return view
        view = self.base.acting_as(*ids)
        with self.lock:
            self.views[ids] = view
            while len(self.views) > MAX_VIEWS:
                _ids, old = self.views.popitem(last=False)
                old.close()  # its master connections only; an open file keeps working
        return view

    def close(self) -> None:
        with self.lock:
            views, self.views = list(self.views.values()), OrderedDict()
        for view in views:
            view.close()


class OwnUser:
    """The ids a normal user's key acts as (uid, primary gid, groups), asked of the master
    and kept ``CRED_SECONDS``: an admin may change the user's groups meanwhile."""

    def __init__(self, client: DfsClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self.lock = threading.Lock()
        self.known: tuple[float, Cred] | None = None

    def cred(self) -> Cred:
        now = self.clock()
        with self.lock:
            known = self.known
        if known is None or now - known[0] > CRED_SECONDS:
            me = self.client.usage()
            known = (now, Cred(me.uid, me.gid, frozenset(me.groups), me.name))
            with self.lock:
                self.known = known
        return known[1]

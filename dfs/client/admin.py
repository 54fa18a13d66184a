"""The administration calls of DfsClient (dfs.client.client): users, groups and quotas
(and a user's own usage), the workers (list, drain, remove), fsck, the audit log.

``AdminCalls`` is a mixin of DfsClient: the same methods on the one client, so the CLI and
the tests call them there. The master refuses every call marked (admin) to other keys.
"""

from __future__ import annotations

from dfs import errors, wire
from dfs.client.connections import MasterLink
from dfs.config import ClientConfig
from dfs.retry import RetryPolicy
from dfs.wire import FSCK_FIXABLE, FsckReport

# An fsck job is asked for its result every 0.2 s; between repair rounds the master's repair
# loop gets a second to copy chunks. Each call sets the deadline.
FSCK_POLL = RetryPolicy(deadline=None, first=0.2, cap=0.2)
REPAIR_POLL = RetryPolicy(deadline=None, first=1.0, cap=1.0)


class AdminCalls:
    master: MasterLink  # DfsClient's link to the leader
    config: ClientConfig

    def events(self, after: int = 0, since: float = 0.0, user: str = "",
               limit: int = 500) -> tuple[list[wire.Event], int]:
        """The leader's audit log (admin): events after id ``after``, at or after Unix time
        ``since``, by ``user`` if given, oldest first. -> (events, cursor): pass the cursor
        as ``after`` to get the ones that follow."""
        return wire.events_from_wire(self.master.call("events", after, float(since), user,
                                                      limit))

    # --- fsck (admin) ------------------------------------------------------------------

    def _fsck_once(self, repair: bool, deadline: float) -> FsckReport:
        job = self.master.call("fsck_start", bool(repair))
        poll = FSCK_POLL.within(deadline).start()
        while True:
            result = wire.fsck_result_from_wire(self.master.call("fsck_result", job))
            if result.report is not None:
                return result.report
            if result.state == "failed":
                raise errors.DfsError(f"fsck failed: {result.message}")
            if not poll.wait():
                raise errors.Unavailable(f"fsck did not finish within {deadline:.0f}s")

    def fsck(self, repair: bool = False, deadline: float | None = None) -> FsckReport:
        """Check every file's chunks against what the workers hold (admin only).

        With ``repair``: schedule the fixes (new copies for under-replicated and corrupt
        chunks, orphans deleted), then check again until only unrecoverable problems
        (missing chunks) are left or ``deadline`` seconds (default: the config's
        fsck_deadline) pass. -> the last FsckReport."""
        if deadline is None:
            deadline = self.config.fsck_deadline
        rounds = REPAIR_POLL.within(deadline).start()
        report = self._fsck_once(repair, deadline)
        repairs = report.repairs
        while repair and any(p.kind in FSCK_FIXABLE for p in report.problems) and rounds.wait():
            report = self._fsck_once(True, max(1.0, rounds.remaining() or 0.0))
            repairs += report.repairs
        return report._replace(repairs=repairs)

    # --- users (admin) -----------------------------------------------------------------

    def users_list(self) -> list[wire.UserUsage]:
        """Every user, what they hold and their quotas (admin)."""
        return [wire.usage_from_wire(u) for u in self.master.call("users_list")]

    def usage(self) -> wire.UserUsage:
        """What this user holds, and their quotas."""
        return wire.usage_from_wire(self.master.call("usage"))

    def users_quota(self, name: str, quota_bytes: int | None, quota_inodes: int | None) -> None:
        """Limit user ``name`` to these many bytes and inodes (None: no limit; admin)."""
        self.master.call("users_quota", name, quota_bytes, quota_inodes)

    def users_add(self, name: str, admin: bool = False, uid: int | None = None,
                  gid: int | None = None, groups: tuple[int, ...] = ()) -> str:
        """Register user ``name`` (with ``uid``: those POSIX ids, if free). -> their key."""
        key: str = self.master.call("users_add", name, admin, uid, gid, tuple(groups))
        return key

    def users_groups(self, name: str, groups: tuple[int | str, ...]) -> None:
        """User ``name``'s supplementary groups become ``groups`` (ids or group names)."""
        self.master.call("users_groups", name, tuple(groups))

    def groups_list(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """[(group name, gid, member names)] of the groups an admin named."""
        return [(str(n), int(g), tuple(m)) for n, g, m in self.master.call("groups_list")]

    def groups_add(self, name: str, gid: int | None = None) -> int:
        gid_given: int = self.master.call("groups_add", name, gid)
        return gid_given

    def groups_remove(self, name: str) -> None:
        self.master.call("groups_remove", name)

    def users_revoke(self, name: str) -> None:
        self.master.call("users_revoke", name)

    # --- workers (admin) ---------------------------------------------------------------

    def workers_list(self) -> list[wire.WorkerMember]:
        """Every worker the leader knows: state, chunks, space, voter or not."""
        return wire.members_from_wire(self.master.call("workers_list"))

    def workers_drain(self, worker_id: str) -> int:
        """Move the worker's chunks to other workers, place nothing new on it. -> how many
        chunks it holds now (`workers_list` says "drained" once they are all elsewhere)."""
        count: int = self.master.call("workers_drain", worker_id)
        return count

    def workers_remove(self, worker_id: str, force: bool = False) -> int:
        """Take the worker out of the cluster and the electorate; errors.Busy if it may hold
        the only copy of a chunk, unless ``force``. -> chunks lost that way."""
        lost: int = self.master.call("workers_remove", worker_id, bool(force))
        return lost

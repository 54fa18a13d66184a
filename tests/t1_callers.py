"""Pure units: who calls an admin's mount (mount/callers.py): each caller's ids with its
supplementary groups, one client view per set of ids, the oldest closed past MAX_VIEWS;
and the ids a normal user's mount acts as, asked again after CRED_SECONDS."""

import os

from helpers import SteppedClock

from mount import callers
from mount.callers import Callers, OwnUser, process_groups


class View:
    def __init__(self, ids):
        self.ids = ids
        self.closed = False

    def close(self):
        self.closed = True


class Base:
    """What Callers needs of the mount's client: acting_as (a view per ids)."""

    def __init__(self):
        self.made = []

    def acting_as(self, uid, gid, groups=()):
        view = View((uid, gid, tuple(groups)))
        self.made.append(view)
        return view


def test_each_caller_acts_with_its_own_groups_read_once_a_second():
    clock = SteppedClock()
    context = [(2001, 2001, 50)]
    groups = {50: (3000,)}
    reads = []

    def groups_of(pid):
        reads.append(pid)
        return groups[pid]

    who = Callers(Base(), lambda: context[0], groups_of, clock)
    assert who.ids() == (2001, 2001, (3000,))
    groups[50] = (3000, 4000)
    assert who.ids() == (2001, 2001, (3000,)) and reads == [50]  # kept a while
    clock.step(callers.GROUPS_SECONDS + 0.1)
    assert who.ids() == (2001, 2001, (3000, 4000))
    # the same process after setgroups + setresuid (su, a daemon dropping privileges)
    groups[50] = ()
    context[0] = (2002, 2002, 50)
    assert who.ids() == (2002, 2002, ())
    context[0] = (0, 0, 0)  # no process (the kernel's own requests)
    assert who.ids() == (0, 0, ())


def test_one_view_per_ids_and_the_oldest_closed_past_the_limit():
    base = Base()
    context = [(1, 1, 1)]
    who = Callers(base, lambda: context[0], lambda pid: (), SteppedClock())
    first = who.client()
    assert who.client() is first and first.ids == (1, 1, ())
    for uid in range(2, callers.MAX_VIEWS + 2):
        context[0] = (uid, uid, uid)
        who.client()
    assert first.closed and not base.made[-1].closed
    context[0] = (1, 1, 1)
    assert who.client() is not first  # made again
    who.close()
    assert all(view.closed for view in base.made)


def test_this_process_groups_are_read_from_proc():
    assert set(process_groups(os.getpid())) == set(os.getgroups())
    assert process_groups(2 ** 22 + 12345) == ()  # no such process


class Usage:
    def __init__(self):
        self.asked = 0
        self.groups = (3000,)

    def usage(self):
        from dfs.wire import UserUsage
        self.asked += 1
        return UserUsage("dave", False, 10001, 0, 0, 0, None, None, 10001, self.groups)


def test_a_users_mount_knows_its_users_ids_and_asks_again_after_a_while():
    client, clock = Usage(), SteppedClock()
    own = OwnUser(client, clock)
    cred = own.cred()
    assert (cred.uid, cred.gid, cred.groups, cred.name) == (10001, 10001, {3000}, "dave")
    client.groups = ()
    assert own.cred().groups == {3000} and client.asked == 1
    clock.step(callers.CRED_SECONDS + 0.1)
    assert own.cred().groups == frozenset() and client.asked == 2

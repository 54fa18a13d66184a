"""Pure units: users that stay revoked (dfs/namespace/rules_users.py and the model's uids and
tombstones, through their snapshots and journals) and the failed-login limiter
(nodes/master/login_limits.py) on a stepped clock."""

import json
import math

import pytest
from helpers import SteppedClock
from t1_rules import ADMIN, ALICE, BOB, Fs

from dfs import errors
from dfs.journal import Journal
from dfs.namespace import rules_users
from dfs.namespace.entries import AddUser, Record, Revoke
from dfs.namespace.model import Namespace
from nodes.master import login_limits
from nodes.master.login_limits import LoginLimits


@pytest.fixture
def fs():
    return Fs()


def _uids(ns):
    return {name: u.serial for name, u in ns.users.items()}


# --- revoked names, stable ids ---------------------------------------------------------------

def test_users_get_ids_in_order_and_a_revoked_name_is_never_given_out_again(fs):
    assert _uids(fs.ns) == {ADMIN.name: 1, ALICE.name: 2, BOB.name: 3} and fs.ns.next_serial == 4
    fs.do(rules_users.revoke(fs.ns, ADMIN.name, ALICE.name))
    assert ALICE.name not in fs.ns.users and fs.ns.revoked == {ALICE.name}
    for admin in (False, True):  # `dfs register` and `dfs users add` both come here
        with pytest.raises(errors.NotPermitted, match="alice was revoked.*reserved"):
            rules_users.add_user(fs.ns, ALICE.name, admin, "ff")
    with pytest.raises(errors.FileNotFound, match="already revoked"):
        rules_users.revoke(fs.ns, ADMIN.name, ALICE.name)
    carol = rules_users.add_user(fs.ns, "carol", False, "ff")
    assert carol == AddUser("carol", False, "ff", 4, 10000, 10000)  # the first free uid
    fs.do(carol)
    fs.do(rules_users.revoke(fs.ns, ADMIN.name, "carol"))
    fs.do(rules_users.add_user(fs.ns, "dave", False, "ee"))
    assert fs.ns.users["dave"].serial == 5 and fs.ns.next_serial == 6  # 2 and 4 stay unused


def test_a_session_lives_only_as_long_as_the_user_it_logged_in_as(fs):
    bob = fs.ns.users[BOB.name]
    assert rules_users.session_user(fs.ns, BOB.name, bob.serial) is bob
    fs.do(Revoke(BOB.name))
    with pytest.raises(errors.AuthenticationFailed, match="revoked"):
        rules_users.session_user(fs.ns, BOB.name, bob.serial)
    fs.do(AddUser(BOB.name, False, "11"))  # only an older journal can do this: the rules refuse
    assert fs.ns.users[BOB.name].serial != bob.serial
    with pytest.raises(errors.AuthenticationFailed, match="revoked"):
        rules_users.session_user(fs.ns, BOB.name, bob.serial)  # same name, other user: still dead


def test_uids_and_revoked_names_survive_a_snapshot_and_a_replay(fs, tmp_path):
    fs.do(rules_users.revoke(fs.ns, ADMIN.name, ALICE.name))
    fs.do(rules_users.add_user(fs.ns, "carol", True, "ff"))
    again = Namespace.from_json(json.loads(json.dumps(fs.ns.to_json())))
    assert _uids(again) == _uids(fs.ns) == {ADMIN.name: 1, BOB.name: 3, "carol": 4}
    assert again.revoked == {ALICE.name} and again.next_serial == 5 and again.users["carol"].admin
    journal = Journal(str(tmp_path))
    ns = journal.load()
    for seq, entry in enumerate(_user_entries(), 1):
        record = Record(seq, 1, entry)
        journal.append([record])
        ns.apply(record)
    journal.close()
    replayed = Journal(str(tmp_path)).load()
    assert _uids(replayed) == _uids(ns) and replayed.revoked == ns.revoked == {"x"}


def _user_entries():
    """x and y registered (ids from the rules), then x revoked."""
    ns = Namespace()
    out = []
    for name in ("x", "y"):
        entry = rules_users.add_user(ns, name, False, "00")
        ns.apply(Record(len(out) + 1, 1, entry))
        out.append(entry)
    out.append(rules_users.revoke(ns, "y", "x"))
    return out


def test_an_old_snapshot_without_ids_or_tombstones_loads_with_ids_in_name_order(fs):
    data = fs.ns.to_json()
    del data["next_serial"], data["revoked"]
    data["users"] = {name: {"stored_key": u["stored_key"], "admin": u["admin"]}
                     for name, u in reversed(list(data["users"].items()))}
    first, second = Namespace.from_json(data), Namespace.from_json(data)
    assert _uids(first) == _uids(second) == {ADMIN.name: 1, ALICE.name: 2, BOB.name: 3}
    assert first.next_serial == 4 and first.revoked == set()
    first.apply(Record(99, 1, rules_users.add_user(first, "carol", False, "ff")))
    assert first.users["carol"].serial == 4


def test_old_adduser_lines_without_ids_replay_the_same_ids_every_time():
    lines = ['{"op":"adduser","name":"zed","admin":false,"stored_key":"00","seq":1}',
             '{"op":"adduser","name":"amy","admin":false,"stored_key":"00","seq":2}',
             '{"op":"revoke","name":"zed","seq":3}']
    for _ in range(2):
        ns = Namespace()
        for line in lines:
            record = Record.from_line(line)
            extra = {"groups": []} if "adduser" in line else {}
            assert record.to_json() == {**json.loads(line), **extra}  # no ids: none written
            ns.apply(record)
        assert _uids(ns) == {"amy": 2} and ns.revoked == {"zed"} and ns.next_serial == 3
        assert (ns.users["amy"].uid, ns.retired_uids) == (10002, {10001})  # users.legacy_uid
    written = json.loads(Record(4, 1, AddUser("b", False, "0", 7, 10007, 10007)).to_line())
    assert (written["serial"], written["uid"], written["gid"]) == (7, 10007, 10007)


# --- the failed-login limiter ------------------------------------------------------------------

WINDOW = 30.0


def _limits(clock, failures=3):
    return LoginLimits(failures, WINDOW, clock)


def test_failures_lock_the_host_for_the_rest_of_the_window_and_log_twice():
    clock = SteppedClock()
    limits = _limits(clock)
    lines = []
    for attempt in range(50):
        try:
            limits.check("10.0.0.9", "alice")
        except errors.AuthenticationFailed as refused:
            assert attempt >= 3
            wait = math.ceil(WINDOW - 0.5 * attempt)  # the window began at the first failure
            assert str(refused) == f"too many failed logins; try again in {wait} s"
        else:
            assert attempt < 3
            lines.append(limits.failed("10.0.0.9", "alice"))
        clock.step(0.5)
    logged = [line for line in lines if line]
    assert len(logged) == 2
    assert logged[0].startswith("failed login for 'alice' from 10.0.0.9")
    assert "refusing logins from 10.0.0.9 and logins as 'alice'" in logged[1]
    clock.now = 100.0 + WINDOW  # the window of the first failure is over
    limits.check("10.0.0.9", "alice")
    assert limits.failed("10.0.0.9", "alice").startswith("failed login")  # a new window


def test_one_host_guessing_many_names_and_many_hosts_one_name_are_both_stopped():
    clock = SteppedClock()
    limits = _limits(clock)
    for name in ("a", "b", "c"):
        limits.failed("h1", name)
    with pytest.raises(errors.AuthenticationFailed):
        limits.check("h1", "never-tried")
    limits.check("h2", "a")  # another host is not locked, nor is "a" (one failure)
    for host in ("h2", "h3", "h4"):
        limits.failed(host, "bob")
    with pytest.raises(errors.AuthenticationFailed):
        limits.check("h5", "bob")
    limits.check("h5", "carol")


def test_a_success_forgets_the_names_failures_but_not_the_hosts():
    clock = SteppedClock()
    limits = _limits(clock)
    limits.failed("h1", "alice")
    limits.failed("h1", "alice")
    limits.succeeded("alice")  # she mistyped, then got it right
    limits.failed("h2", "alice")
    limits.failed("h3", "alice")
    limits.check("h9", "alice")  # two failures since the success, not four
    limits.failed("h1", "mallory")  # the host's third failure: a success there did not reset it
    with pytest.raises(errors.AuthenticationFailed):
        limits.check("h1", "mallory")
    limits.check("h9", "alice")


def test_the_table_of_windows_stays_bounded(monkeypatch):
    monkeypatch.setattr(login_limits, "MAX_TRACKED", 10)
    clock = SteppedClock()
    limits = _limits(clock, failures=100)
    for i in range(40):
        limits.failed("h", f"name-{i}")
        clock.step(1.0)
    assert len(limits.windows) <= 10
    assert limits.windows[("name", "name-39")].failures == 1

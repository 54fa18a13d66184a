"""Pure units of the RPC boundary (issue 9): plain arguments only, checked before any use;
a client's report of a bad copy is a hint the worker checks; a corrupt copy is quarantined,
never the last one; commit by inode needs an inode the caller can reach. No sockets."""

import inspect
import os
import time

import pytest

from dfs import chunks, errors
from dfs.config import WorkerConfig
from dfs.namespace.access import Cred
from dfs.namespace.inode import Inode
from dfs.namespace.model import Namespace
from dfs.namespace.users import User
from nodes.master.placement import VERIFIES_PER_WORKER, VERIFY_DEADLINE, WorkerTable
from nodes.master.service import MasterService
from nodes.rpcserver import plain
from nodes.worker.node import Worker
from nodes.worker.service import WorkerService

CALLED = []  # what the hostile values below were asked to do


class SneakyStr(str):
    """Passes isinstance(x, str) and answers differently each time: the issue's attack."""

    def split(self, *args):
        CALLED.append("split")
        return ["", f"x{len(CALLED)}"]

    def __eq__(self, other):
        CALLED.append("__eq__")
        return True

    def __hash__(self):
        CALLED.append("__hash__")
        return len(CALLED)


class SneakyInt(int):
    def __index__(self):
        CALLED.append("__index__")
        return 7


class SneakyTuple(tuple):
    def __iter__(self):
        CALLED.append("__iter__")
        return iter(())


HOSTILE = [SneakyStr("/a"), SneakyInt(3), SneakyTuple(("/a",)), ("/a", (1, SneakyStr("b"))),
           ["/a"], {"a": 1}, frozenset({1}), object(), 1j]


@pytest.fixture(autouse=True)
def nothing_called():
    CALLED.clear()
    yield
    assert CALLED == [], "the server ran code of a client's object"


@pytest.mark.parametrize("value", [None, True, 0, -5, 2.5, "", "/x", b"\0", (),
                                   ((1, "chunks"), (2, b"x", (None, 3.0)))])
def test_plain_data_passes(value):
    plain(value, "argument")


@pytest.mark.parametrize("value", HOSTILE)
def test_anything_else_is_refused_without_calling_it(value):
    with pytest.raises(errors.InvalidArgument, match="plain data"):
        plain(value, "argument")


def test_a_deeply_nested_tuple_is_checked_without_recursion():
    value: object = 1
    for _ in range(100_000):
        value = (value,)
    plain(value, "argument")
    with pytest.raises(errors.InvalidArgument):
        plain((value, [1]), "argument")


def _exposed(service_class):
    found = []
    for name in sorted(dir(service_class)):
        if name.startswith("exposed_"):
            params = list(inspect.signature(getattr(service_class, name)).parameters)
            found.extend((name, params[1:], i) for i in range(len(params) - 1))
    return found


SERVICES = [(MasterService, name, params, i) for name, params, i in _exposed(MasterService)] + \
           [(WorkerService, name, params, i) for name, params, i in _exposed(WorkerService)]


@pytest.mark.parametrize("value", HOSTILE[:4])
@pytest.mark.parametrize("service_class, name, params, position", SERVICES,
                         ids=[f"{c.__name__}.{n}[{i}]" for c, n, _p, i in SERVICES])
def test_every_exposed_method_refuses_a_non_plain_value_in_every_position(
        service_class, name, params, position, value):
    """The service has no state at all: a method that used anything before checking its
    arguments would fail with an internal error, not InvalidArgument."""
    service = service_class(None)
    method = getattr(service, name)
    args = [None] * position + [value]
    with pytest.raises(errors.InvalidArgument, match="plain data"):
        method(*args)
    with pytest.raises(errors.InvalidArgument, match="plain data"):
        method(**{params[position]: value})


def test_both_services_refuse_client_objects_as_they_arrive():
    from nodes.rpcserver import PlainConnection
    assert MasterService._protocol is PlainConnection
    assert WorkerService._protocol is PlainConnection


# --- reports of bad copies -------------------------------------------------------------------

def _table():
    workers = WorkerTable(replication=2, dead_after=10, chunk_size=1 << 20)
    for wid in ("a", "b", "c"):
        workers.register(wid, "h", 1, 1 << 30, 0, [], now=0)
    return workers


def _commands(workers, wid):
    return workers.heartbeat(wid, 1 << 30, 0, 0, (), (), now=0)


def test_a_clients_report_only_asks_the_worker_to_verify_once():
    workers = _table()
    workers.register("a", "h", 1, 1 << 30, 0, [(5, "chunks")], now=0)
    workers.register("b", "h", 1, 1 << 30, 0, [(5, "backups")], now=0)
    assert workers.suspect(5, "a", now=1)
    assert not workers.suspect(5, "a", now=2)  # already asked
    assert not workers.suspect(5, "c", now=2) and not workers.suspect(6, "a", now=2)
    assert not workers.suspect(5, "nobody", now=2)
    assert len(workers.replicas(5)) == 2  # nothing dropped on a client's word
    assert _commands(workers, "a") == [("verify", 5, "chunks")]
    assert workers.suspect(5, "a", now=2 + VERIFY_DEADLINE)  # asked again after a while


def test_a_flood_of_reports_costs_each_worker_a_bounded_number_of_checks():
    workers = _table()
    workers.register("a", "h", 1, 1 << 30, 0, [(cid, "chunks") for cid in range(100)], now=0)
    asked = sum(workers.suspect(cid, "a", now=1) for cid in range(100))
    assert asked == VERIFIES_PER_WORKER
    assert len(workers.replicas(0)) == 1


def test_a_corrupt_copy_the_worker_found_is_quarantined_but_never_the_last_one():
    workers = _table()
    workers.register("a", "h", 1, 1 << 30, 0, [(5, "chunks")], now=0)
    workers.register("b", "h", 1, 1 << 30, 0, [(5, "backups")], now=0)
    assert workers.drop_corrupt(5, "a")
    assert [r.worker_id for r in workers.replicas(5)] == ["b"]
    assert _commands(workers, "a") == [("quarantine", 5, "chunks")]  # moved aside, not deleted
    assert not workers.drop_corrupt(5, "b")  # the last copy: kept, and still served
    assert [r.worker_id for r in workers.replicas(5)] == ["b"] and _commands(workers, "b") == []
    assert not workers.drop_corrupt(5, "c")  # not there


# --- the worker's side ---------------------------------------------------------------------

@pytest.fixture
def worker(tmp_path):
    node = Worker(WorkerConfig(data_dir=str(tmp_path), masters=(), join_token="ab" * 32))
    node.store.chunk_size = 1 << 20
    return node


def _put(store, cid, data, kind="chunks"):
    store.write(cid, kind, 0, data, len(data), chunks.crc(data))


def test_the_worker_verifies_a_reported_copy_and_reports_only_what_it_finds(worker):
    store = worker.store
    store.take_changes("m")  # a feed, as a reporter makes
    _put(store, 1, b"good" * 1000)
    _put(store, 2, b"bad!" * 1000)
    with open(store.path(2, "chunks"), "r+b") as f:
        f.write(b"X")
    worker.execute(("verify", 1, "chunks"))
    worker.execute(("verify", 2, "chunks"))
    assert store.take_changes("m").bad == ((2, "chunks"),)


def test_quarantine_moves_the_copy_aside_and_keeps_its_bytes(worker):
    store = worker.store
    store.take_changes("m")
    data = b"q" * 5000
    _put(store, 3, data, "backups")
    worker.execute(("quarantine", 3, "backups"))
    assert store.inventory() == [] and store.used == len(data)  # its room is still taken
    assert store.take_changes("m").removed == ((3, "backups"),)
    kept = os.path.join(worker.config.data_dir, "quarantine", "3.backups")
    with open(kept, "rb") as f:
        assert f.read() == data
    assert os.path.exists(kept + ".crc")
    assert os.stat(os.path.dirname(kept)).st_mode & 0o777 == 0o700
    worker.execute(("quarantine", 3, "backups"))  # gone already: nothing happens
    assert os.path.exists(kept)
    assert store.expire_quarantine(3600) == 0 and store.used == len(data)  # kept a while
    reopened = type(store)(store.data_dir, 0)  # a restart counts the kept copy again
    assert reopened.used == len(data)
    assert store.expire_quarantine(3600, now=time.time() + 3601) == 2  # data and checksums
    assert store.used == 0 and os.listdir(os.path.dirname(kept)) == []


# --- commit by inode: reachability -----------------------------------------------------------

CREDS = {"admin": Cred(0, 0), "alice": Cred(10001, 10001), "bob": Cred(10002, 10002)}


def _ns():
    ns = Namespace()
    ns.initialise(1 << 20, 1)
    for name, admin in (("admin", True), ("alice", False), ("bob", False)):
        uid = 0 if admin else CREDS[name].uid
        ns.users[name] = User(name=name, stored_key="0" * 64, admin=admin, uid=uid, gid=uid)
    nxt = [2]

    def add(parent, name, kind, owner, mode):
        uid = CREDS[owner].uid
        inode = Inode(nxt[0], kind, uid, uid, mode, 1, 1, 1)
        nxt[0] += 1
        ns.inodes[inode.ino] = inode
        ns.inodes[parent].children[name] = inode.ino
        ns.parents.add(inode.ino, parent)  # what apply() keeps up to date
        return inode.ino
    return ns, add


def test_an_inode_is_reachable_only_through_searchable_directories():
    ns, add = _ns()
    vault = add(1, "vault", "d", "alice", 0o700)
    hidden = add(vault, "open-to-all", "f", "alice", 0o666)
    public = add(1, "public", "d", "alice", 0o711)
    shared = add(public, "doc", "f", "alice", 0o666)
    inner = add(vault, "inner", "d", "alice", 0o777)
    deep = add(inner, "deep", "f", "alice", 0o666)
    assert not ns.reachable(CREDS["bob"], hidden) and not ns.reachable(CREDS["bob"], deep)
    assert ns.reachable(CREDS["bob"], shared) and ns.reachable(CREDS["bob"], vault)
    assert ns.reachable(CREDS["bob"], 1)
    for ino in (hidden, deep, shared):
        assert ns.reachable(CREDS["alice"], ino) and ns.reachable(CREDS["admin"], ino)
    assert not ns.reachable(CREDS["alice"], 999)  # no such inode: the same answer
    ns.inodes[public].children["link"] = hidden  # a hard link in a searchable directory
    ns.parents.add(hidden, public)
    assert ns.reachable(CREDS["bob"], hidden)

"""t3: stat_many, the mount's look-ahead call, on real processes: the same answers as one
stat per name (None for a missing one), the same permission rule, bad arguments refused
cleanly (at the RPC boundary, before any lock) and the master unharmed."""

import pytest

from dfs import errors
from dfs.namespace.rules import MAX_STAT_MANY


@pytest.fixture(scope="module")
def folder(shared_dfs):
    shared_dfs.mkdir("/many", 0o755)
    for i in range(20):
        shared_dfs.put_bytes(f"/many/f{i}", b"x" * i)
    shared_dfs.mkdir("/many/sub", 0o700)
    return "/many"


def test_the_same_answers_as_one_stat_each(shared_dfs, folder):
    names = ["f3", "nope", "sub", "f19", "f0"]
    found = shared_dfs.stat_many(folder, names)
    assert found[1] is None
    for name, st in zip(names, found, strict=True):
        if name != "nope":
            assert st == shared_dfs.stat(f"{folder}/{name}")
    assert [st.size for st in shared_dfs.stat_many("/", ["many"])] == [
        shared_dfs.stat("/many").size]


def test_a_folder_others_may_not_search_is_refused_as_stat_is(shared_cluster, shared_dfs,
                                                                folder):
    with shared_cluster.client("bob") as bob:
        assert bob.stat_many(folder, ["f1"])[0].size == 1  # 0755: bob may look
        with pytest.raises(errors.PermissionDenied):
            bob.stat("/many/sub/x")
        with pytest.raises(errors.PermissionDenied):
            bob.stat_many("/many/sub", ["x"])


@pytest.mark.parametrize("folder_arg, names, error", [
    ("/many", (), errors.InvalidArgument),
    ("/many", ("f1",) * (MAX_STAT_MANY + 1), errors.InvalidArgument),
    ("/many", ("a/b",), errors.InvalidPath),
    ("/many", ("..",), errors.InvalidPath),
    ("/many", ("",), errors.InvalidPath),
    ("/many", ("f1", 7), errors.InvalidPath),
    ("/many", ("x" * 256,), errors.NameTooLong),
    ("/many", "f1", errors.InvalidArgument),
    (7, ("f1",), errors.InvalidPath),
    ("/many/f1", ("x",), errors.NotADirectory),
    ("relative", ("x",), errors.InvalidPath),
])
def test_bad_arguments_are_refused_and_change_nothing(shared_dfs, folder, folder_arg, names,
                                                      error):
    with pytest.raises(error):
        shared_dfs.master.call("stat_many", folder_arg, names)
    assert shared_dfs.stat_many(folder, ["f2"])[0].size == 2  # the master goes on


def test_a_name_not_utf8_is_refused_by_the_client_as_a_path_is(shared_dfs, folder):
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")  # as the mount passes it
    for call in (lambda: shared_dfs.stat(f"{folder}/{latin1}"),
                 lambda: shared_dfs.stat_many(folder, ["f1", latin1])):
        with pytest.raises(errors.InvalidPath, match="UTF-8"):
            call()
    assert shared_dfs.stat_many(folder, ["f1"])[0] == shared_dfs.stat(f"{folder}/f1")

"""Real processes: the trash is read a bounded page at a time (``trash_page``: a limit and a
cursor, from the master's trash index), with a version that changes only when the trash
does (``trash_version``: what the mount's .Trash-UID folder asks before listing again);
``DfsClient.trash_list`` and `dfs trash list` page through all of it. Every argument is
checked at the master's boundary: wrong types, limits and cursors are refused cleanly."""

import os

import pytest
from helpers import run_dfs

from dfs import errors
from dfs.namespace.trash_index import PAGE_MAX


def trash_files(dfs, prefix, count):
    for i in range(count):
        dfs.create(f"/{prefix}-{i:04d}")
        dfs.rm(f"/{prefix}-{i:04d}")


def test_pages_give_the_whole_trash_once_and_the_version_follows_changes(shared_cluster):
    with shared_cluster.client("paula") as dfs, shared_cluster.client("quinn") as other:
        trash_files(dfs, "paula", 7)
        trash_files(other, "quinn", 2)
        before = dfs.trash_version()
        pages, cursor = [], None
        while True:
            entries, cursor, version = dfs.trash_page(3, cursor)
            assert version == before and len(entries) <= 3
            pages.append([e.path for e in entries])
            if cursor is None:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        whole = dfs.trash_list()
        assert [p for page in pages for p in page] == [e.path for e in whole]
        assert sorted(e.path for e in whole) == [f"/paula-{i:04d}" for i in range(7)]
        assert dfs.trash_listing(2) == (whole, before)
        trash_files(other, "quinn-more", 1)  # another user's trash: hers did not change
        assert dfs.trash_version() == before
        dfs.trash_purge(whole[3].trash_id)
        assert dfs.trash_version() != before
        assert [e.path for e in dfs.trash_list()] == [e.path for e in whole if e != whole[3]]


BAD_ARGUMENTS = [
    (True, None),  # a bool is no limit
    (2.0, None),
    ("5", None),
    (0, None),
    (-3, None),
    (PAGE_MAX + 1, None),
    (5, 17),  # a cursor is a string a page gave
    (5, b"1.0:3"),
    (5, ["1.0:3"]),
    (5, "junk"),
    (5, "nan:3"),
    (5, "1.5:" + "9" * 200),
]


@pytest.mark.parametrize(("limit", "cursor"), BAD_ARGUMENTS)
def test_bad_limits_and_cursors_are_refused_at_the_boundary(shared_cluster, limit, cursor):
    with shared_cluster.client("paula") as dfs:
        with pytest.raises(errors.InvalidArgument):
            dfs._call("trash_page", limit, cursor)
        assert dfs.trash_page(PAGE_MAX)[1] is None  # and the connection still serves


def test_dfs_trash_list_pages_through_more_than_one_page(shared_cluster):
    with shared_cluster.client("rhea") as dfs:
        trash_files(dfs, "rhea", PAGE_MAX + 2)
        env = dict(os.environ, DFS_AUTH=os.path.join(shared_cluster.data_dir, "auth-rhea.txt"))
        shown = run_dfs("trash", "list", env=env, timeout=120).stdout.splitlines()
        paths = sorted(line.split()[0] for line in shown if line.startswith("/rhea-"))
        assert paths == [f"/rhea-{i:04d}" for i in range(PAGE_MAX + 2)]
        assert len(dfs.trash_list()) == PAGE_MAX + 2
        assert dfs.trash_empty() == PAGE_MAX + 2 and dfs.trash_list() == []

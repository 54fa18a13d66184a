"""t1: the mount's attribute cache (mount.attrcache), pure: expiry, the mount's own
changes, hard links, and the trees a rename or an rmdir forgets."""

import random

import pytest

from dfs.wire import DirEntry, Stat
from mount.attrcache import AHEAD_MIN, ORDERS_KEPT, SWEEP_EVERY, AttrCache


def stat(ino, nlink=1, mode=0o644, size=0):
    return Stat(ino, "f", mode, "alice", size, 1, 2, 3, nlink)


def folder(ino):
    return Stat(ino, "d", 0o755, "alice", 0, 1, 2, 3, 2)


@pytest.fixture
def now():
    return [0.0]


@pytest.fixture
def cache(now):
    return AttrCache(ttl=1.0, clock=lambda: now[0])


def test_attr_cache_expires_and_follows_own_changes():
    now = [0.0]
    cache = AttrCache(ttl=1.0, clock=lambda: now[0])
    st = Stat(5, "f", 0o644, "alice", 3, 1, 2, 3, 1)
    cache.put("/d", Stat(2, "d", 0o755, "alice", 0, 1, 1, 1, 2))
    cache.put_listing("/d", [DirEntry("a", st)])
    assert cache.get("/d/a") == st
    cache.added("/d/b", st._replace(ino=6, ctime_ns=9))
    assert cache.get("/d/b").ino == 6 and cache.get("/d").mtime_ns == 9
    cache.moved("/d/b", "/d/c")
    assert cache.get("/d/b") is None and cache.get("/d/c") is None
    cache.put("/d/c/x", st)
    cache.moved("/d/c", "/e")
    assert cache.get("/d/c/x") is None
    cache.removed("/d/a")
    assert cache.get("/d/a") is None and cache.get("/d") is None
    cache.put("/f", st)
    now[0] = 2.0
    assert cache.get("/f") is None


# --- hard links ------------------------------------------------------------------------------

def test_a_change_through_one_name_reaches_every_name_of_the_inode():
    told = []
    cache = AttrCache(ttl=1.0, clock=lambda: 0.0, on_stale=told.append)
    cache.put_listing("/d", [DirEntry("a", stat(7)), DirEntry("x", stat(8))])
    cache.added("/d/b", stat(7, nlink=2))  # link /d/a /d/b
    assert cache.get("/d/a").nlink == 2 and told == ["/d/a"]
    cache.put("/d/b", stat(7, nlink=2, mode=0o600))  # chmod through b
    assert cache.get("/d/a").mode == 0o600 and told == ["/d/a", "/d/a"]
    cache.put("/d/a", stat(7, nlink=2, mode=0o600))  # the same again: nobody is told
    assert told == ["/d/a", "/d/a"]
    cache.removed("/d/b")  # unlink b: a lost a link, its new attributes are not known
    assert cache.get("/d/a") is None and cache.last_known("/d/a").nlink == 2
    assert told == ["/d/a", "/d/a", "/d/a"]
    assert cache.get("/d/x").ino == 8  # other inodes are left alone


def test_a_rename_over_one_name_expires_the_others():
    told = []
    cache = AttrCache(ttl=1.0, clock=lambda: 0.0, on_stale=told.append)
    cache.put("/a", stat(7, nlink=2))
    cache.put("/b", stat(7, nlink=2))
    cache.put("/c", stat(9))
    cache.moved("/c", "/b")  # /b's inode lost a link
    assert cache.get("/a") is None and told == ["/a"]
    cache.put("/a", stat(7))
    cache.put("/e", stat(3))  # a path that names another inode now
    cache.put("/e", stat(7))
    assert cache.names[7] == {"/a", "/e"} and 3 not in cache.names
    told.clear()
    cache.moved("/e", "/d/.fuse_hidden1")  # libfuse hides an open file it is asked to unlink
    assert told == ["/a"] and cache.get("/d/.fuse_hidden1") is None
    cache.put("/a", stat(7))
    cache.removed("/d/.fuse_hidden1")  # ... and unlinks it at the last close
    assert told == ["/a", "/a"] and cache.get("/a") is None
    cache.forget("/a")
    cache.clear()
    assert cache.names == {} and cache.stats == {}


# --- trees: what a directory knows of its children ------------------------------------------

def test_a_new_listing_drops_what_vanished_and_what_was_below(cache):
    cache.put_listing("/d", [DirEntry("a", stat(5)), DirEntry("sub", folder(6))])
    cache.put_listing("/d/sub", [DirEntry("deep", stat(7))])
    cache.put_listing("/d", [DirEntry("a", stat(5))])  # another client removed sub
    assert cache.get("/d/sub") is None and cache.get("/d/sub/deep") is None
    assert cache.names.get(7) is None and cache.get("/d/a") is not None


def test_dropping_a_tree_leaves_names_that_only_share_a_prefix(cache):
    cache.put_listing("/", [DirEntry("d", folder(2)), DirEntry("dx", folder(3))])
    cache.put("/d/f", stat(5))
    cache.put("/d/s/g", stat(8))
    cache.put("/dx/f", stat(6))
    cache.removed("/d", tree=True)
    assert cache.get("/d/f") is None and cache.get("/d/s/g") is None
    assert cache.get("/dx/f") is not None and cache.get("/dx") is not None
    assert set(cache.children) == {"/", "/dx"}
    cache.moved("/dx", "/dy")
    assert cache.get("/dx/f") is None and set(cache.children) == {"/"}


def test_a_change_in_a_folder_expires_the_folder_and_keeps_the_rest(cache):
    cache.put_listing("/", [DirEntry("d", folder(2))])
    cache.put_listing("/d", [DirEntry("a", stat(5)), DirEntry("b", stat(6))])
    cache.removed("/d/a")  # the folder's mtime and nlink changed
    assert cache.get("/d") is None and cache.last_known("/d") == folder(2)
    assert cache.get("/d/b") is not None and cache.children["/d"] == {"/d/b"}


def test_the_sweep_forgets_what_expired_long_ago(cache, now):
    cache.put("/old", stat(5))
    now[0] = 5.0
    for i in range(SWEEP_EVERY):
        cache.put(f"/other/f{i}", stat(100 + i))
    assert "/old" not in cache.stats and "/old" not in cache.children.get("/", set())


def test_random_changes_forget_exactly_what_a_scan_by_prefix_would():
    """The children index against the obvious model: a set of paths, trees dropped by
    scanning for their prefix."""
    rng = random.Random(12)
    cache = AttrCache(ttl=1.0, clock=lambda: 0.0)
    known: dict[str, bool] = {}  # path -> is a folder

    def drop_tree(path):
        for key in [k for k in known if k == path or k.startswith(path.rstrip("/") + "/")]:
            del known[key]

    names = ["a", "b", "ab", "c"]
    for step in range(3000):
        path = "/" + "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
        action = rng.randrange(5)
        if action == 0:
            is_dir = rng.random() < 0.5
            cache.put(path, folder(step) if is_dir else stat(step))
            known[path] = is_dir
        elif action == 1:
            tree = rng.random() < 0.5
            cache.removed(path, tree=tree)
            drop_tree(path) if tree else known.pop(path, None)
        elif action == 2:
            new = "/" + "/".join(rng.choice(names) for _ in range(rng.randint(1, 3)))
            if new == path or new.startswith(path + "/") or path.startswith(new + "/"):
                continue
            was = known.get(path)
            cache.moved(path, new)
            drop_tree(path)
            drop_tree(new)
            if was is False:
                known[new] = False
        elif action == 3:
            listed = rng.sample(names, rng.randint(0, len(names)))
            base = path.rstrip("/")
            for key in [k for k in known if k.startswith(base + "/")
                        and k[len(base) + 1:].split("/")[0] not in listed]:
                del known[key]  # gone from the folder, with whatever was below it
            cache.put_listing(path, [DirEntry(n, stat(step)) for n in listed])
            for n in listed:
                known[f"{base}/{n}"] = False
        else:
            cache.added(path, stat(step))
            known[path] = False
        assert set(cache.stats) == set(known), step
    for parent, kids in cache.children.items():  # nothing linked that leads nowhere
        for kid in kids:
            assert kid in cache.stats or cache.children.get(kid), (parent, kid)


# --- look-ahead: the names after a miss in a big listed folder ----------------------------------

def test_a_big_listing_gives_the_names_after_a_miss(cache):
    names = [f"f{i:03}" for i in range(AHEAD_MIN)]
    cache.put_listing("/big", [DirEntry(n, stat(i)) for i, n in enumerate(names)])
    assert cache.ahead("/big/f010", 5) == names[10:15]
    assert cache.ahead(f"/big/{names[-1]}", 5) == names[-1:]
    assert cache.ahead("/big/unknown", 5) is None and cache.ahead("/other/f010", 5) is None
    cache.put_listing("/small", [DirEntry("a", stat(1))])
    assert cache.ahead("/small/a", 5) is None  # a small folder is listed again instead
    cache.put_listing("/", [DirEntry(n, stat(i)) for i, n in enumerate(names)])
    assert cache.ahead("/f001", 2) == names[1:3]


def test_a_walk_in_inode_order_gets_the_names_after_it_in_that_order(cache, now):
    """find (gnulib fts) visits a folder of over 10,000 entries in inode order; ls in the
    listing's. The look-ahead follows whichever order the lookups so far went in."""
    made = [f"e{i}" for i in range(2 * AHEAD_MIN)]  # made in turn: inode order
    listed = sorted(made)  # the master lists by name: e0, e1, e10, e100, ...
    cache.put_listing("/big", [DirEntry(n, stat(100 + made.index(n))) for n in listed])
    now[0] = 5.0  # the listing expired: every lookup is a miss
    for name in ("e10", "e11"):
        assert cache.get(f"/big/{name}") is None
    assert cache.ahead("/big/e11", 3) == ["e11", "e12", "e13"]
    for name in ("e1", "e10"):  # back to the listing's order
        cache.get(f"/big/{name}")
    assert cache.ahead("/big/e10", 3) == ["e10", "e100", "e101"]
    cache.get("/big/e100")
    cache.get("/big/e100")  # a getattr and a getxattr of one name: one step
    assert cache.ahead("/big/e100", 2) == ["e100", "e101"]


def test_only_the_latest_listings_keep_their_order(cache):
    names = [f"n{i}" for i in range(AHEAD_MIN)]
    for k in range(ORDERS_KEPT + 1):
        cache.put_listing(f"/d{k}", [DirEntry(n, stat(i)) for i, n in enumerate(names)])
    assert cache.ahead("/d0/n0", 1) is None and cache.ahead(f"/d{ORDERS_KEPT}/n0", 1) == ["n0"]
    cache.put_listing("/d1", [DirEntry("n0", stat(1))])  # listed again, small now
    assert cache.ahead("/d1/n0", 1) is None
    cache.put_many("/d1", [DirEntry("x", stat(2))])
    assert cache.get("/d1/x").ino == 2 and cache.get("/d1/n0").ino == 1

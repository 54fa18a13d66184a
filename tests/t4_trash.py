"""t4: the DFS trash as the mount's freedesktop trash (``/.Trash-UID``, mount.trashops).

Through a real `dfs mount`: ``gio trash`` (GLib's own implementation of the spec) puts a
file into the DFS trash, and no real ``.Trash-UID`` folder appears in the cluster; the spec's
operations done with os calls in the order GLib and gvfs do them (reserve
``info/NAME.trashinfo`` with O_EXCL, write it through a temporary file, rename the file into
``files/NAME``; restore = rename out; delete = unlink, or rename into ``expunged/``) are DFS
trash calls; what `dfs rm` and `dfs trash` do shows in the folder. ``gio trash --list``,
``--restore`` and ``--empty`` need gvfs's trash backend (``gvfsd-trash``, Debian package
gvfs-daemons) on a session bus: that test runs them under ``dbus-run-session`` when both
are installed and is skipped otherwise.
"""

import errno
import os
import shutil
import subprocess
import urllib.parse

import pytest
from conftest import cluster_config
from t4_mount import Mounted

from dfs import errors
from dfs.local.cluster import LocalCluster, wait_for
from dfs.wire import TrashEntry
from mount import records
from mount.trashdir import TrashDir, trashinfo, unique_name

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3")
                                           or shutil.which("fusermount")),
    reason="no /dev/fuse or fusermount: FUSE is not available here")

TRASH = f".Trash-{os.getuid()}"  # the mount shows the mounting user's files as this uid
GIO = shutil.which("gio")
GIO_ENV = dict(os.environ, GIO_USE_VFS="local")  # `gio trash FILE` needs no session bus
GVFSD_TRASH = next((p for p in ("/usr/libexec/gvfsd-trash", "/usr/lib/gvfs/gvfsd-trash")
                    if os.path.exists(p)), None)  # started by the session bus when asked
DEADLINE = 30.0


@pytest.fixture(scope="module")
def trash_mount(shared_cluster, tmp_path_factory):
    with Mounted(shared_cluster, tmp_path_factory.mktemp("mnt")) as m:
        yield m


@pytest.fixture
def alice(shared_cluster, trash_mount):
    """alice's client, with her trash empty before and after the test."""
    with shared_cluster.client("alice", cache_dir="") as client:
        client.trash_empty()
        yield client
        client.trash_empty()


def trash_paths(client):
    return sorted(t.path for t in client.trash_list())


def write(path, data=b"x"):
    with open(path, "wb") as f:
        f.write(data)


def listing(m, area):
    return sorted(os.listdir(m.join(TRASH, area)))


def wait_listing(m, area, want):
    wait_for(lambda: listing(m, area) == want, DEADLINE, f"{area}/ to list {want}")


# --- names and trashinfo (pure) ----------------------------------------------------------

class Listed:
    """What DfsClient.trash_version and trash_listing answer (the only calls TrashDir's
    names depend on), counting the listings."""

    def __init__(self):
        self.entries = []
        self.listings = 0

    def trash_version(self):
        return repr(self.entries)

    def trash_listing(self):
        self.listings += 1
        return list(self.entries), self.trash_version()


def entry(tid, path, when):
    return TrashEntry(str(tid), path, 1, when, when + 100)


def test_names_are_glib_like_unique_and_stable():
    assert [unique_name("a.tar.gz", n) for n in (1, 2)] == ["a.tar.gz", "a.2.tar.gz"]
    assert unique_name(".bashrc", 3) == ".bashrc.3" and unique_name("README", 2) == "README.2"
    assert len(unique_name("x" * 255, 12).encode()) + len(".trashinfo") <= 255
    listed = Listed()
    td = TrashDir(listed, 0, 0, cache_seconds=0)
    listed.entries = [entry(7, "/b/a.txt", 20.0), entry(5, "/a.txt", 10.0)]  # newest first
    assert td.listing() == [("a.2.txt", listed.entries[0]), ("a.txt", listed.entries[1])]
    listed.entries = listed.entries[:1]  # the older one left: the newer keeps its name
    assert [n for n, _e in td.listing()] == ["a.2.txt"]
    assert td.add_scratch("a.trashinfo")  # gio reserved "a" (no such item yet)
    listed.entries = [entry(9, "/a", 30.0), entry(8, "/c/a.txt", 25.0)] + listed.entries
    assert [n for n, _e in td.listing()] == ["a.2", "a.2.txt", "a.txt"]
    listed.entries.insert(0, entry(10, "/x/a", 40.0))
    td.adopt("10", "a")  # moved in as files/a: takes the reserved name, drops the scratch
    assert td.scratch_names() == [] and td.item("a")[0] == "10"
    assert td.rename("a", "a.txt") is False and td.rename("a", "z") is True


def test_the_folder_is_listed_again_only_when_the_trash_changed():
    listed = Listed()
    now = [0.0]
    td = TrashDir(listed, 0, 0, cache_seconds=1.0, clock=lambda: now[0])
    listed.entries = [entry(5, "/a.txt", 10.0)]
    assert [n for n, _e in td.listing()] == ["a.txt"] and listed.listings == 1
    for _ in range(5):  # a trash monitor polling: one version call per cache time, no listing
        now[0] += 1.5
        assert [n for n, _e in td.listing()] == ["a.txt"]
    assert listed.listings == 1
    listed.entries = [entry(6, "/b.txt", 20.0), *listed.entries]
    assert [n for n, _e in td.listing()] == ["a.txt"]  # within the cache time: as it was
    now[0] += 1.5
    assert [n for n, _e in td.listing()] == ["a.txt", "b.txt"] and listed.listings == 2
    td.adopt("7", "c.txt")  # moved in here: listed again at the next look, whatever the version
    listed.entries = [entry(7, "/c.txt", 30.0), *listed.entries]
    assert [n for n, _e in td.listing()] == ["a.txt", "b.txt", "c.txt"] and listed.listings == 3


def test_trashinfo_is_the_specs_format():
    info = trashinfo(TrashEntry("3", "/dir/my file%.txt", 5, 0.0, 1.0)).decode()
    lines = info.splitlines()
    assert lines[0] == "[Trash Info]" and lines[1] == "Path=dir/my%20file%25.txt"
    assert lines[2].startswith("DeletionDate=") and len(lines[2]) == len("DeletionDate=") + 19
    assert urllib.parse.unquote(lines[1][5:]) == "dir/my file%.txt"


# --- the client calls the folder is made of ------------------------------------------------

def test_trash_move_restore_to_a_destination_and_purge_one(alice, shared_cluster):
    alice.put_bytes("/tm-a", b"first")
    alice.symlink("/tm-link", "/tm-a")
    alice.link("/tm-a", "/tm-b")
    for refused in ("/tm-link", "/tm-b"):  # a symlink; a file with two names: not kept
        with pytest.raises(errors.NotSupported):
            alice.trash_move(refused)
        assert alice.exists(refused)
    alice.rm("/tm-link")
    alice.rm("/tm-b")
    ino = alice.stat("/tm-a").ino
    alice.trash_move("/tm-a")
    assert not alice.exists("/tm-a")
    [item] = alice.trash_list()
    assert (item.trash_id, item.path) == (str(ino), "/tm-a")
    alice.mkdir("/tm-dir")
    st = alice.trash_restore("/tm-dir/back", item.trash_id)  # that item, somewhere else
    assert st.ino == ino and alice.read_bytes("/tm-dir/back") == b"first"
    alice.rm("/tm-dir/back")
    [item] = alice.trash_list()
    with shared_cluster.client("bob", cache_dir="") as bob:  # not bob's to take or free
        assert bob.trash_purge(item.trash_id) is False
        with pytest.raises(errors.FileNotFound):
            bob.trash_restore("/bob-has-it", item.trash_id)
    assert alice.trash_purge(item.trash_id) is True
    assert alice.trash_list() == [] and alice.trash_purge(item.trash_id) is False
    alice.rmdir("/tm-dir")


def test_with_the_trash_off_nothing_is_moved_in(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "c", workers=1, trash_seconds=0)) as cluster:
        with cluster.client("alice", cache_dir="") as client:
            client.put_bytes("/kept", b"data")
            with pytest.raises(errors.NotSupported):  # it would be freed at once: refused
                client.trash_move("/kept")
            assert client.read_bytes("/kept") == b"data" and client.trash_list() == []


# --- through the mount ------------------------------------------------------------------------

@pytest.mark.skipif(GIO is None, reason="gio is not installed (Debian package libglib2.0-bin)")
def test_gio_trash_puts_files_into_the_dfs_trash(trash_mount, alice):
    m = trash_mount
    os.mkdir(m.join("gio-t"))
    write(m.join("gio-t", "a.txt"), b"one")
    subprocess.run([GIO, "trash", m.join("gio-t", "a.txt")], check=True, env=GIO_ENV,
                   timeout=60, capture_output=True)
    write(m.join("gio-t", "a.txt"), b"two!")
    subprocess.run([GIO, "trash", m.join("gio-t", "a.txt")], check=True, env=GIO_ENV,
                   timeout=60, capture_output=True)
    assert not os.path.exists(m.join("gio-t", "a.txt"))
    assert trash_paths(alice) == ["/gio-t/a.txt", "/gio-t/a.txt"]
    assert not alice.exists("/" + TRASH)  # no real folder: the trash is the DFS trash
    assert listing(m, "files") == ["a.2.txt", "a.txt"]
    assert listing(m, "info") == ["a.2.txt.trashinfo", "a.txt.trashinfo"]
    assert os.path.getsize(m.join(TRASH, "files", "a.2.txt")) == 4  # gio's second name
    with open(m.join(TRASH, "info", "a.2.txt.trashinfo")) as f:
        info = f.read()
    assert info.startswith("[Trash Info]\nPath=gio-t/a.txt\nDeletionDate=")
    st = os.stat(m.join(TRASH))
    assert st.st_uid == os.getuid() and st.st_mode & 0o7777 == 0o700
    alice.rmdir("/gio-t")


def test_spec_operations_in_glib_order(trash_mount, alice):
    m = trash_mount
    files, info = m.join(TRASH, "files"), m.join(TRASH, "info")
    write(m.join("spec.txt"), b"spec data")
    # g_local_file_trash: reserve the name, write the info via a temporary file, move in
    fd = os.open(os.path.join(info, "spec.txt.trashinfo"), os.O_CREAT | os.O_EXCL | os.O_RDONLY,
                 0o666)
    os.close(fd)
    temp = os.path.join(info, "spec.txt.trashinfo.XYZ123")
    with open(temp, "w") as f:
        f.write("[Trash Info]\nPath=spec.txt\nDeletionDate=2000-01-01T00:00:00\n")
    os.rename(temp, os.path.join(info, "spec.txt.trashinfo"))
    os.rename(m.join("spec.txt"), os.path.join(files, "spec.txt"))
    assert trash_paths(alice) == ["/spec.txt"] and not os.path.exists(m.join("spec.txt"))
    assert listing(m, "info") == ["spec.txt.trashinfo"]  # generated: no scratch is left
    with open(os.path.join(info, "spec.txt.trashinfo")) as f:
        assert "DeletionDate=2000" not in f.read()  # what was written was discarded
    # the name is taken now: gio's next try for the same name is spec.2.txt
    with pytest.raises(FileExistsError):
        os.open(os.path.join(info, "spec.txt.trashinfo"), os.O_CREAT | os.O_EXCL, 0o666)
    # restore = rename out, to the destination asked for
    os.mkdir(m.join("elsewhere"))
    os.rename(os.path.join(files, "spec.txt"), m.join("elsewhere", "got-back.txt"))
    with open(m.join("elsewhere", "got-back.txt"), "rb") as f:
        assert f.read() == b"spec data"
    assert trash_paths(alice) == [] and listing(m, "files") == []
    # delete from the trash: unlink files/NAME, gvfs's rename into expunged/, rm -rf
    for name in ("u1", "u2", "u3", "u4"):
        write(m.join(name))
        os.rename(m.join(name), os.path.join(files, name))
    assert trash_paths(alice) == ["/u1", "/u2", "/u3", "/u4"]
    os.unlink(os.path.join(files, "u1"))
    os.unlink(os.path.join(info, "u2.trashinfo"))
    os.rename(os.path.join(files, "u3"), m.join(TRASH, "expunged", "12345"))
    assert trash_paths(alice) == ["/u4"] and os.listdir(m.join(TRASH, "expunged")) == []
    with pytest.raises(OSError) as exc:
        os.rmdir(files)
    assert exc.value.errno == errno.ENOTEMPTY
    subprocess.run(["rm", "-rf", m.join(TRASH)], check=True, timeout=60)
    assert trash_paths(alice) == [] and listing(m, "files") == []
    assert sorted(os.listdir(m.join(TRASH))) == ["expunged", "files", "info"]  # still there
    os.unlink(m.join("elsewhere", "got-back.txt"))
    os.rmdir(m.join("elsewhere"))
    alice.trash_empty()


def test_what_the_trash_cannot_keep_is_refused_unchanged(trash_mount, alice):
    m = trash_mount
    files = m.join(TRASH, "files")
    os.mkdir(m.join("keep"))
    write(m.join("keep", "f"))
    os.symlink("f", m.join("keep", "link"))
    for refused in ("link", ""):  # a symlink; a folder with a symlink in it
        with pytest.raises(OSError) as exc:
            os.rename(m.join("keep", refused).rstrip("/"), os.path.join(files, "k"))
        assert exc.value.errno == errno.ENOTSUP
    assert sorted(os.listdir(m.join("keep"))) == ["f", "link"] and trash_paths(alice) == []
    os.unlink(m.join("keep", "link"))
    os.mkdir(m.join("keep", "sub"))
    write(m.join("keep", "sub", "g"))
    os.rename(m.join("keep"), os.path.join(files, "keep"))  # a folder: each file goes
    assert not os.path.exists(m.join("keep"))
    assert trash_paths(alice) == ["/keep/f", "/keep/sub/g"]
    wait_listing(m, "files", ["f", "g"])
    # only moves in, moves out and deletes: nothing else is made or changed in there
    for make in (lambda: write(os.path.join(files, "new")),
                 lambda: os.mkdir(os.path.join(files, "d")),
                 lambda: os.symlink("x", os.path.join(files, "l")),
                 lambda: os.chmod(os.path.join(files, "f"), 0o644),
                 lambda: os.rename(os.path.join(files, "f"), m.join(TRASH, "info", "f"))):
        with pytest.raises(PermissionError):
            make()
    with pytest.raises(OSError) as exc:
        open(os.path.join(files, "f"), "rb")
    assert exc.value.errno == errno.ENOTSUP  # restore it to read it
    os.rename(os.path.join(files, "g"), m.join("g-back"))  # its folder is gone: not needed
    assert alice.read_bytes("/g-back") == b"x"
    os.unlink(m.join("g-back"))


def test_dfs_rm_and_dfs_trash_show_in_the_folder(trash_mount, alice):
    m = trash_mount
    alice.put_bytes("/other-1", b"1")
    alice.put_bytes("/other-2", b"22")
    alice.rm("/other-1")
    alice.rm("/other-2")
    wait_listing(m, "files", ["other-1", "other-2"])
    assert os.path.getsize(m.join(TRASH, "files", "other-2")) == 2
    alice.trash_restore("/other-1")
    wait_listing(m, "files", ["other-2"])
    wait_listing(m, "info", ["other-2.trashinfo"])
    alice.trash_empty()
    wait_listing(m, "files", [])
    alice.rm("/other-1")
    alice.trash_empty()


@pytest.mark.skipif(GIO is None or GVFSD_TRASH is None or shutil.which("dbus-run-session") is None,
                    reason="gio trash --list/--restore/--empty need gvfs's trash backend "
                           "(gvfs-daemons) and dbus-run-session")
def test_gio_trash_list_restore_and_empty_through_gvfs(trash_mount, alice, tmp_path):
    m = trash_mount
    for name in ("g1", "g2", "g3"):
        write(m.join(name), name.encode())
    subprocess.run([GIO, "trash", m.join("g1"), m.join("g2"), m.join("g3")], check=True,
                   env=GIO_ENV, timeout=60, capture_output=True)
    assert trash_paths(alice) == ["/g1", "/g2", "/g3"]
    script = tmp_path / "gvfs.sh"
    script.write_text(
        'gio trash --list > list.txt || exit 1\n'
        'uri=$(grep -F "$1" list.txt | cut -f1)\n'
        'gio trash --restore "$uri" || exit 2\n'
        'gio trash --list > after-restore.txt || exit 3\n'
        'gio trash --empty || exit 4\n'
        'gio trash --list > after-empty.txt || exit 5\n')
    for _attempt in range(2):  # gvfsd's own 25 s D-Bus timeout can pass on a loaded machine
        try:
            done = subprocess.run(["dbus-run-session", "--", "sh", str(script), m.join("g2")],
                                  cwd=tmp_path, timeout=30, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            continue  # the session bus or gvfsd hung (not the mount: it answered gio above)
        if done.returncode != 1 or "Timeout was reached" not in done.stderr:
            break  # (exit 1: the first `gio trash --list` failed, nothing was changed)
    else:
        pytest.skip("gvfs did not answer twice (its D-Bus services hang on a loaded machine)")
    assert done.returncode == 0, done.stdout + done.stderr

    def ours(name):  # gvfs lists the trash of every mount on the machine: this one's
        lines = (tmp_path / name).read_text().splitlines()
        return sorted(o for o in (line.split("\t")[1] for line in lines)
                      if o.startswith(m.join("")))
    assert ours("list.txt") == [m.join("g1"), m.join("g2"), m.join("g3")]
    assert m.join("g2") not in ours("after-restore.txt")
    with open(m.join("g2"), "rb") as f:
        assert f.read() == b"g2"
    assert ours("after-empty.txt") == []
    assert trash_paths(alice) == [] and listing(m, "files") == []
    os.unlink(m.join("g2"))


@pytest.mark.log_allows(r"the cluster has a real folder /\.Trash-\d+")
def test_a_real_trash_folder_from_before_is_shadowed(shared_cluster, alice, tmp_path):
    alice.mkdir("/" + TRASH)
    alice.mkdir(f"/{TRASH}/files")
    alice.put_bytes(f"/{TRASH}/files/old.txt", b"from a desktop, before")
    try:
        with Mounted(shared_cluster, tmp_path / "mnt2") as m:
            assert os.listdir(m.path).count(TRASH) == 1
            assert os.listdir(m.join(TRASH, "files")) == []  # the DFS trash, not the folder
            with open(records.log_path(m.path)) as f:
                assert f"real folder /{TRASH}" in f.read()  # and the mount says so
        assert alice.read_bytes(f"/{TRASH}/files/old.txt") == b"from a desktop, before"
    finally:
        alice.rm_tree("/" + TRASH)

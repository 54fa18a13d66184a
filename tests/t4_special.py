"""t4: special files, rename flags, hard links, long paths and nosymfollow through a real
mount (issue 11), each checked against what ext4 answers.

The mount is the cluster admin's (``LocalCluster.admin_auth_file``): allow_other, and each
request acts as the process that made it, so this root test process may make device nodes
and children of other uids (tests/t4_posix.py ``as_user``) are refused as ext4 refuses
them. Fifos and sockets are checked between two real processes; renameat2 is called
through ctypes (os.rename has no flags).
"""

import ctypes
import errno
import os
import socket
import stat
import subprocess
import sys

import mount_users
import pytest
from t4_mount import MOUNT_DEADLINE, dfs_command, pytestmark  # noqa: F401 (skip without FUSE)
from t4_posix import OTHER, OWNER, AdminMount, attempt

from dfs.local.cluster import wait_for
from mount import lifecycle, records

PATH_MAX = 4096  # bytes, with the terminating NUL
NAME_MAX = 255
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
LIBC = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    """renameat2(2) through glibc (2.28+); raises OSError as os.rename does."""
    if LIBC.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), old)


def errno_name(call, *args):
    try:
        call(*args)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"


open_dir, admin_mount = mount_users.open_dir, mount_users.admin_mount  # the fixtures


@pytest.fixture(scope="module")
def mount(admin_mount):
    return admin_mount


@pytest.fixture
def here(mount, request):
    """A fresh folder for one test, 0777 so that other uids may make names in it."""
    path = mount.join(request.node.name[:NAME_MAX])
    os.mkdir(path)
    os.chmod(path, 0o777)
    return path


def python(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(child, timeout=60):
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, err
    return out


# --- special files ------------------------------------------------------------------------

def test_a_fifo_carries_data_between_two_processes(here, shared_cluster):
    fifo = os.path.join(here, "fifo")
    os.mkfifo(fifo, 0o640)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_IMODE(os.lstat(fifo).st_mode) == 0o640
    reader = python("import sys; print(open(sys.argv[1]).read())", fifo)
    writer = python("import sys; open(sys.argv[1], 'w').write('through the pipe')", fifo)
    finish(writer)
    assert finish(reader).strip() == "through the pipe"
    assert os.lstat(fifo).st_size == 0  # the bytes went through the kernel's pipe only
    env = dict(os.environ, DFS_AUTH=shared_cluster.admin_auth_file)
    remote = "/" + os.path.relpath(fifo, shared_mount_root(here))
    listed = dfs_command("ls", "-l", os.path.dirname(remote), env=env).stdout
    assert any(line.startswith("prw-r-----") and line.endswith(" fifo")
               for line in listed.splitlines()), listed
    assert "type: fifo" in dfs_command("stat", remote, env=env).stdout


def shared_mount_root(path):
    """The mount point above ``path`` (its path in the cluster is what follows)."""
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def test_device_nodes_need_the_superuser_and_keep_their_number(here, shared_cluster):
    dev = os.path.join(here, "null")
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    st = os.lstat(dev)
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    os.mknod(os.path.join(here, "sda9"), 0o660 | stat.S_IFBLK, os.makedev(8, 9))
    assert stat.S_ISBLK(os.lstat(os.path.join(here, "sda9")).st_mode)
    # FUSE mounts are nodev: the node is metadata, never a way into this machine's devices
    assert errno_name(open, dev, "rb") == "EACCES"
    listed = subprocess.run(["ls", "-l", here], capture_output=True, text=True).stdout
    assert any(line.startswith("crw-") and " 1, 3 " in line for line in listed.splitlines())
    env = dict(os.environ, DFS_AUTH=shared_cluster.admin_auth_file)
    remote = "/" + os.path.relpath(dev, shared_mount_root(here))
    assert "device: 1, 3" in dfs_command("stat", remote, env=env).stdout
    # another uid: EPERM for a device, a fifo and a socket are anyone's (w+x on the folder)
    for name, kind, expected in (("c", stat.S_IFCHR, "EPERM"), ("b", stat.S_IFBLK, "EPERM"),
                                 ("p", stat.S_IFIFO, "ok"), ("s", stat.S_IFSOCK, "ok")):
        made = attempt(OWNER, f"os.mknod(args[0], 0o644 | {kind}, os.makedev(1, 3))",
                       os.path.join(here, name))
        assert made == expected, name
    assert os.lstat(os.path.join(here, "p")).st_uid == OWNER
    assert os.lstat(os.path.join(here, "s")).st_rdev == 0  # a number only for devices
    assert not os.path.lexists(os.path.join(here, "c"))


def test_a_unix_socket_bound_in_the_mount_takes_connections(here):
    path = os.path.join(here, "sock")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(path)
        server.listen()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        client = python("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                        "s.connect(sys.argv[1]); s.sendall(b'hello'); s.close()", path)
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"hello"
        finish(client)
    finally:
        server.close()
    os.unlink(path)  # like any name
    assert not os.path.lexists(path)


def shape(top):
    """{relative path: (type and mode, nlink, rdev, size, symlink target)} of a tree."""
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            size = st.st_size if stat.S_ISREG(st.st_mode) or link else 0
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_nlink, st.st_rdev, size,
                                                 link)
    return found


def test_tar_cp_a_and_rsync_copy_special_files_and_hard_links(here, tmp_path):
    src = tmp_path / "src"
    os.makedirs(src / "d")
    os.mkfifo(src / "fifo", 0o640)
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (src / "d" / "f").write_text("data")
    os.link(src / "d" / "f", src / "d" / "g")
    os.symlink("d/f", src / "l")
    want = shape(src)
    subprocess.run(["tar", "cf", str(tmp_path / "t.tar"), "-C", str(src), "."], check=True)
    os.mkdir(os.path.join(here, "tar"))
    subprocess.run(["tar", "xpf", str(tmp_path / "t.tar"), "-C", os.path.join(here, "tar")],
                   check=True)
    subprocess.run(["cp", "-a", str(src), os.path.join(here, "cp")], check=True)
    subprocess.run(["rsync", "-aH", f"{src}/", os.path.join(here, "rsync") + "/"], check=True)
    for copy in ("tar", "cp", "rsync"):
        assert shape(os.path.join(here, copy)) == want, copy
    back = tmp_path / "back"
    subprocess.run(["cp", "-a", os.path.join(here, "cp"), str(back)], check=True)
    assert shape(back) == want  # and out again


# --- rename flags ---------------------------------------------------------------------------

def test_rename_noreplace_and_exchange_are_atomic_at_the_master(here):
    f, d = os.path.join(here, "f"), os.path.join(here, "d")
    with open(f, "w") as out:
        out.write("file")
    os.mkdir(d)
    with open(os.path.join(d, "inner"), "w") as out:
        out.write("inner")
    assert errno_name(renameat2, f, d, RENAME_NOREPLACE) == "EEXIST"
    assert errno_name(renameat2, f, f, RENAME_NOREPLACE) == "EEXIST"
    assert errno_name(renameat2, f, os.path.join(here, "missing"), RENAME_EXCHANGE) == "ENOENT"
    assert errno_name(renameat2, f, d, RENAME_NOREPLACE | RENAME_EXCHANGE) == "EINVAL"
    assert errno_name(renameat2, d, os.path.join(d, "inner"), RENAME_EXCHANGE) == "EINVAL"
    renameat2(f, d, RENAME_EXCHANGE)  # a file and a folder swap names
    assert open(d).read() == "file"
    assert open(os.path.join(f, "inner")).read() == "inner"
    renameat2(f, os.path.join(here, "g"), RENAME_NOREPLACE)
    assert os.listdir(os.path.join(here, "g")) == ["inner"] and not os.path.lexists(f)
    # across folders: each side keeps the other's content and its link counts
    sub = os.path.join(here, "sub")
    os.mkdir(sub)
    with open(os.path.join(sub, "x"), "w") as out:
        out.write("x")
    renameat2(os.path.join(here, "g"), os.path.join(sub, "x"), RENAME_EXCHANGE)
    assert open(os.path.join(here, "g")).read() == "x"
    assert os.listdir(os.path.join(sub, "x")) == ["inner"]
    assert os.stat(sub).st_nlink == 3 and os.stat(here).st_nlink == 3  # sub, and x's ".."
    if "--exchange" in subprocess.run(["mv", "--help"], capture_output=True, text=True).stdout:
        subprocess.run(["mv", "--exchange", os.path.join(here, "g"), d], check=True)
        assert open(d).read() == "x" and open(os.path.join(here, "g")).read() == "file"


def test_exchange_in_a_sticky_folder_as_another_user(here):
    os.chmod(here, 0o1777)
    mine, theirs = os.path.join(here, "mine"), os.path.join(here, "theirs")
    for path, uid in ((mine, OWNER), (theirs, OTHER)):
        with open(path, "w") as out:
            out.write(str(uid))
        os.chown(path, uid, uid)
    call = ("__import__('ctypes').CDLL(None, use_errno=True).renameat2("
            "-100, args[0].encode(), -100, args[1].encode(), 2) == 0 or "
            "(_ for _ in ()).throw(OSError(__import__('ctypes').get_errno(), 'renameat2'))")
    assert attempt(OWNER, call, mine, theirs) == "EPERM"  # theirs is not OWNER's
    assert open(mine).read() == str(OWNER)
    renameat2(mine, theirs, RENAME_EXCHANGE)  # root may
    assert open(mine).read() == str(OTHER)


# --- hard links -------------------------------------------------------------------------------

def test_hard_links_show_the_same_attributes_through_every_name(here):
    a, b, c = (os.path.join(here, n) for n in "abc")
    with open(a, "w") as out:
        out.write("x")
    assert os.stat(a).st_nlink == 1
    os.link(a, b)
    assert (os.stat(a).st_nlink, os.stat(b).st_nlink) == (2, 2)
    os.link(b, c)
    assert [os.stat(p).st_nlink for p in (a, b, c)] == [3, 3, 3]
    os.unlink(c)
    assert (os.stat(a).st_nlink, os.stat(b).st_nlink) == (2, 2)
    os.chmod(a, 0o640)
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o640
    with open(b, "a") as out:
        out.write("more")
    assert os.stat(a).st_size == 5 and open(a).read() == "xmore"
    os.utime(b, (1, 2))
    assert os.stat(a).st_mtime == 2
    other = os.path.join(here, "other")
    with open(other, "w") as out:
        out.write("other")
    os.rename(other, b)  # b's inode loses that name
    assert os.stat(a).st_nlink == 1 and open(b).read() == "other"


# --- long paths -------------------------------------------------------------------------------

def nested(base, total):
    """A path of exactly ``total`` bytes below ``base`` (which it starts with): folders of
    NAME_MAX-byte names, then a file name filling the rest. -> (folder, file path)."""
    folder = base
    while total - len(folder) > NAME_MAX + 1:
        # a full name, or one that leaves room for "/" and a file name of a byte at least
        folder += "/" + "n" * min(NAME_MAX, total - len(folder) - 3)
    name = "f" * (total - len(folder) - 1)
    assert 0 < len(name) <= NAME_MAX
    return folder, folder + "/" + name


def test_a_path_of_path_max_minus_one_bytes(here):
    folder, path = nested(here, PATH_MAX - 1)
    assert len(path.encode()) == PATH_MAX - 1
    os.makedirs(folder)
    with open(path, "w") as out:
        out.write("deep")
    assert os.stat(path).st_size == 4 and open(path).read() == "deep"
    assert errno_name(os.stat, path + "x") == "ENAMETOOLONG"  # the kernel's own limit
    # a PATH_MAX-1 path relative to that deep folder: more than 4096 bytes in the cluster
    top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rel_folder, rel = nested("m" * NAME_MAX, PATH_MAX - 1)
        walked = ""
        for part in rel_folder.split("/"):
            walked = f"{walked}/{part}" if walked else part
            os.mkdir(walked, dir_fd=top)
        fd = os.open(rel, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=top)
        os.write(fd, b"deeper")
        os.close(fd)
        assert os.stat(rel, dir_fd=top).st_size == 6
        fd = os.open(rel, os.O_RDONLY, dir_fd=top)
        assert os.read(fd, 100) == b"deeper"
        os.close(fd)
    finally:
        os.close(top)


# --- symlinks and nosymfollow -------------------------------------------------------------------

def test_symlinks_are_stored_and_returned_as_written(here):
    for name, target in (("rel", "../../x//y/./"), ("abs", "/etc/shadow"),
                         ("long", "t" * (PATH_MAX - 1)), ("dangling", "no/such/thing"),
                         ("utf8", "caf\u00e9/\u65e5\u672c")):
        os.symlink(target, os.path.join(here, name))
        assert os.readlink(os.path.join(here, name)) == target
        assert os.lstat(os.path.join(here, name)).st_size == len(target.encode())
    # names and targets cross the wire as UTF-8: other bytes are refused with one errno
    assert errno_name(os.symlink, b"caf\xe9", os.fsencode(here) + b"/latin1") == "EINVAL"
    assert errno_name(open, os.fsencode(here) + b"/caf\xe9", "w") == "EINVAL"
    assert sorted(os.listdir(here)) == ["abs", "dangling", "long", "rel", "utf8"]


class NosymfollowMount(AdminMount):
    """`dfs mount DIR --config FILE` with ``nosymfollow = true`` in the file."""

    def __init__(self, cluster, path, config):
        super().__init__(cluster, path)
        self.config = config

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        dfs_command("mount", self.path, "--config", self.config, "--auth", self.auth,
                    "--cache-dir", "", timeout=MOUNT_DEADLINE + 30)
        wait_for(lambda: os.path.ismount(self.path), MOUNT_DEADLINE, f"{self.path} to mount")
        self.pid = records.read_record(self.path)["pid"]
        return self


def test_nosymfollow_stops_a_planted_absolute_symlink(mount, here, open_dir):
    secret = os.path.join(open_dir, "local-secret")
    with open(secret, "w") as out:
        out.write("this machine's")
    link = os.path.join(here, "planted")
    os.symlink(secret, link)
    assert os.readlink(link) == secret  # stored and returned as written
    assert open(link).read() == "this machine's"  # by default the kernel follows it
    config = os.path.join(open_dir, "mount.toml")
    with open(config, "w") as out:
        out.write("nosymfollow = true\n")
    guarded = os.path.join(open_dir, "guarded")
    with NosymfollowMount(mount.cluster, guarded, config) as m:
        assert "nosymfollow" in lifecycle.mount_options(m.path)
        same = os.path.join(m.path, os.path.relpath(link, mount.path))
        assert os.readlink(same) == secret  # ls -l, tar, rsync -a, cp -a still see it
        assert errno_name(open, same) == "ELOOP"
        assert errno_name(os.stat, same) == "ELOOP"
        assert stat.S_ISLNK(os.lstat(same).st_mode)
        with open(os.path.join(os.path.dirname(same), "plain"), "w") as out:
            out.write("files work")  # everything else is as before
        assert open(os.path.join(here, "plain")).read() == "files work"

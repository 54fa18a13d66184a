"""t4: extended attributes through a real mount (issue 11): setfattr/getfattr, the errnos
ext4 gives (the kernel's checks and the master's agree), the size protocol (a size query,
ERANGE for a short buffer), who may do what as processes of other uids on an admin mount,
``cp -a`` and ``rsync -aX`` keeping them both ways, and a failover of the master under a
live mount."""

import ctypes
import ctypes.util
import errno
import os
import shutil
import signal
import subprocess

import mount_users
import pytest
from conftest import cluster_config
from mount_users import CHILD_PYTHON, SYSTEM_PYTHON, as_user
from t4_mount import Mounted, pytestmark  # noqa: F401 (skip without FUSE)

from dfs.local.cluster import LocalCluster, wait_for
from dfs.retry import poll

OWNER, OTHER = 2101, 2102  # uids without passwd entries
NOTSUP = errno.errorcode[errno.EOPNOTSUPP]  # the same number as ENOTSUP on Linux
LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

needs = pytest.mark.skipif(not (shutil.which("setfattr") and shutil.which("rsync")),
                           reason="setfattr (attr) and rsync are needed (make system-deps)")
other_uids = pytest.mark.skipif(CHILD_PYTHON != SYSTEM_PYTHON,
                                reason="no /usr/bin/python3 for other uids")
open_dir, admin_mount = mount_users.open_dir, mount_users.admin_mount  # the fixtures


@pytest.fixture(scope="module")
def alice_mount(shared_cluster, open_dir):
    with Mounted(shared_cluster, os.path.join(open_dir, "alice")) as m:
        yield m


def sh(command, check=True):
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"
    return done


def err(call):
    """The errno name ``call`` fails with, or "ok"."""
    try:
        call()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"


@needs
@pytest.mark.log_allows(r"setxattr .* failed: .*would take more than 65536 bytes")
def test_setfattr_getfattr_and_the_errnos_of_ext4(alice_mount):
    f = alice_mount.join("tagged")
    with open(f, "wb") as out:
        out.write(b"content")
    ctime = os.stat(f).st_ctime_ns
    sh(f"setfattr -n user.comment -v 'hello world' {f}")
    sh(f"setfattr -n user.bin -v 0x00ff10 {f}")
    assert sh(f"getfattr -n user.comment --only-values {f}").stdout == "hello world"
    dump = sh(f"getfattr -d -e hex {f}").stdout
    assert "user.bin=0x00ff10" in dump and "user.comment=0x68656c6c6f20776f726c64" in dump
    assert os.stat(f).st_ctime_ns > ctime  # ctime changes with each set
    assert sorted(os.listxattr(f)) == ["user.bin", "user.comment"]
    assert os.getxattr(f, "user.bin") == b"\x00\xff\x10"
    sh(f"setfattr -x user.bin {f}")
    assert os.listxattr(f) == ["user.comment"]
    # flags, a missing attribute
    assert err(lambda: os.setxattr(f, "user.comment", b"x", os.XATTR_CREATE)) == "EEXIST"
    assert err(lambda: os.setxattr(f, "user.none", b"x", os.XATTR_REPLACE)) == "ENODATA"
    assert err(lambda: os.getxattr(f, "user.none")) == "ENODATA"
    assert err(lambda: os.removexattr(f, "user.none")) == "ENODATA"
    os.setxattr(f, "user.comment", b"replaced", os.XATTR_REPLACE)
    os.setxattr(f, "user.empty", b"", os.XATTR_CREATE)
    assert os.getxattr(f, "user.empty") == b""
    # limits: names to 255 bytes, values to 64 KiB, 64 KiB in all per inode
    os.setxattr(f, "user." + "n" * 250, b"255")
    assert err(lambda: os.setxattr(f, "user." + "n" * 251, b"x")) == "ERANGE"
    assert err(lambda: os.setxattr(f, "user.big", b"x" * 65537)) == "E2BIG"
    os.setxattr(f, "user.half", b"h" * 40000)
    assert err(lambda: os.setxattr(f, "user.more", b"m" * 30000)) == "ENOSPC"
    # namespaces: alice's key is no superuser (though this process is root); no ACLs
    assert err(lambda: os.setxattr(f, "trusted.t", b"1")) == "EPERM"
    assert err(lambda: os.setxattr(f, "security.s", b"1")) == "EPERM"
    acl = bytes.fromhex("02000000" "0100060000000000" "0400040000000000" "2000040000000000")
    assert err(lambda: os.setxattr(f, "system.posix_acl_access", acl)) == NOTSUP
    assert err(lambda: os.getxattr(f, "system.posix_acl_access")) in ("ENODATA", NOTSUP)
    # user.* only on files and directories: not on a symlink itself
    os.symlink("tagged", alice_mount.join("link"))
    link = alice_mount.join("link")
    assert err(lambda: os.setxattr(link, "user.x", b"1", follow_symlinks=False)) == "EPERM"
    assert os.getxattr(link, "user.comment") == b"replaced"  # followed: the file's
    os.mkdir(alice_mount.join("dir"))
    os.setxattr(alice_mount.join("dir"), "user.dir", b"yes")
    assert os.listxattr(alice_mount.join("dir")) == ["user.dir"]


@needs
def test_the_size_protocol_query_then_erange(alice_mount):
    f = alice_mount.join("sized")
    open(f, "wb").close()
    os.setxattr(f, "user.v", b"0123456789")
    getxattr, listxattr = LIBC.getxattr, LIBC.listxattr
    getxattr.restype = listxattr.restype = ctypes.c_ssize_t
    getxattr.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
    listxattr.argtypes = (ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)
    path = f.encode()
    assert getxattr(path, b"user.v", None, 0) == 10  # a size query
    small = ctypes.create_string_buffer(4)
    assert getxattr(path, b"user.v", small, 4) == -1 and ctypes.get_errno() == errno.ERANGE
    big = ctypes.create_string_buffer(64)
    assert getxattr(path, b"user.v", big, 64) == 10 and big.raw[:10] == b"0123456789"
    assert listxattr(path, None, 0) == len(b"user.v\0")
    assert listxattr(path, small, 4) == -1 and ctypes.get_errno() == errno.ERANGE


@needs
@other_uids
def test_who_may_do_what_as_other_uids(admin_mount):
    base = admin_mount.join("perm")
    os.mkdir(base, 0o755)
    os.chmod(base, 0o755)
    f = os.path.join(base, "f")
    with open(f, "wb") as out:
        out.write(b"x")
    os.chown(f, OWNER, OWNER)
    os.chmod(f, 0o644)
    os.setxattr(f, "trusted.secret", b"root's")  # root: the superuser on an admin mount
    os.setxattr(f, "security.label", b"lbl")
    code = ("p = args[0]\n"
            "print(attempt(os.setxattr, p, 'user.a', b'1'))\n"
            "print(attempt(os.getxattr, p, 'user.a'))\n"
            "print(attempt(os.getxattr, p, 'trusted.secret'))\n"
            "print(attempt(os.setxattr, p, 'trusted.mine', b'1'))\n"
            "print(attempt(os.setxattr, p, 'security.x', b'1'))\n"
            "print(attempt(os.getxattr, p, 'security.label'))\n"
            "print(','.join(sorted(os.listxattr(p))))\n")
    owner = as_user(OWNER, code, f)
    assert owner == ["ok", "ok", "ENODATA", "EPERM", "EPERM", "ok", "security.label,user.a"]
    other = as_user(OTHER, code, f)
    assert other == ["EACCES", "ok", "ENODATA", "EPERM", "EPERM", "ok", "security.label,user.a"]
    assert sorted(os.listxattr(f)) == ["security.label", "trusted.secret", "user.a"]
    os.chmod(f, 0o600)  # now only its owner reads user.*; security.* stays readable
    assert as_user(OTHER, code, f)[1:2] == ["EACCES"]
    assert as_user(OTHER, code, f)[5] == "ok"
    sticky = os.path.join(base, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    assert as_user(OTHER, "print(attempt(os.setxattr, args[0], 'user.a', b'1'))",
                   sticky) == ["EPERM"]


def test_every_hard_link_sees_a_change_at_once(alice_mount):
    f, g = alice_mount.join("one"), alice_mount.join("two")
    with open(f, "wb") as out:
        out.write(b"x")
    os.link(f, g)
    assert os.listxattr(g) == [] and os.stat(g).st_nlink == 2  # cached: no attributes
    os.setxattr(f, "user.shared", b"both")
    assert os.getxattr(g, "user.shared") == b"both"  # not the other name's cached "none"
    os.removexattr(g, "user.shared")
    assert os.listxattr(f) == []


def test_the_trash_folder_has_none_and_a_restore_brings_them_back(alice_mount):
    f = alice_mount.join("binned")
    with open(f, "wb") as out:
        out.write(b"x")
    os.setxattr(f, "user.keep", b"me")
    os.remove(f)  # into alice's trash, shown as the mount's .Trash-UID folder
    trash = alice_mount.join(f".Trash-{os.getuid()}")
    # the folder's listing is cached for a second (a desktop's trash monitor polls it)
    def shows_it():
        done = sh(f"ls -lR {trash}")
        return done if "binned" in done.stdout else None
    listed = poll(shows_it, 10.0, 0.2)
    assert listed and listed.stderr == ""  # ls asks security.selinux of every name
    assert err(lambda: os.setxattr(os.path.join(trash, "files", "binned"), "user.x",
                                   b"1")) == NOTSUP
    with alice_mount.cluster.client("alice") as client:
        client.trash_restore("/binned")
    assert os.getxattr(f, "user.keep") == b"me"


@other_uids
def test_a_write_by_another_uid_drops_file_capabilities(admin_mount):
    f = admin_mount.join("capable")
    with open(f, "wb") as out:
        out.write(b"#!/bin/sh\n")
    os.chmod(f, 0o777)
    # struct vfs_cap_data, revision 2: CAP_NET_BIND_SERVICE permitted
    caps = (0x02000000).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)
    os.setxattr(f, "security.capability", caps)
    assert os.getxattr(f, "security.capability") == caps
    code = ("fd = os.open(args[0], os.O_WRONLY | os.O_APPEND)\n"
            "print(attempt(os.write, fd, b'echo hi\\n'))\nos.close(fd)\n")
    assert as_user(OTHER, code, f) == ["ok"]  # the kernel removes them as that uid: allowed
    assert err(lambda: os.getxattr(f, "security.capability")) == "ENODATA"
    with open(f, "rb") as back:
        assert back.read() == b"#!/bin/sh\necho hi\n"


@needs
def test_cp_a_and_rsync_X_keep_them_both_ways(admin_mount, tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "sub" / "b.bin").write_bytes(os.urandom(5000))
    os.setxattr(source / "a.txt", "user.mime_type", b"text/plain")
    os.setxattr(source / "a.txt", "trusted.by_root", b"\x00\x01")
    os.setxattr(source / "sub", "user.folder", b"yes")
    os.setxattr(source / "sub" / "b.bin", "user.checksum", b"c" * 3000)
    expected = xattrs_of(source)
    assert len(expected) == 3
    into = admin_mount.join("copied")
    sh(f"cp -a --preserve=xattr {source} {into}")
    assert xattrs_of(into) == expected
    back = tmp_path / "back"
    sh(f"cp -a --preserve=xattr {into} {back}")
    assert xattrs_of(back) == expected
    sh(f"diff -r {source} {back}")
    synced = admin_mount.join("synced")
    sh(f"rsync -aX {source}/ {synced}/")
    assert xattrs_of(synced) == expected
    os.setxattr(source / "a.txt", "user.mime_type", b"text/markdown")  # a change is synced
    os.removexattr(source / "sub", "user.folder")
    sh(f"rsync -aX {source}/ {synced}/")
    assert xattrs_of(synced) == xattrs_of(source)
    returned = tmp_path / "returned"
    sh(f"rsync -aX {synced}/ {returned}/")
    assert xattrs_of(returned) == xattrs_of(source)


def xattrs_of(root):
    """{relative path: {name: value}} of every entry with attributes below ``root``."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            values = {a: os.getxattr(path, a, follow_symlinks=False)
                      for a in os.listxattr(path, follow_symlinks=False)}
            if values:
                found[os.path.relpath(path, root)] = values
    return found


# This test kills the leading metadata server on purpose: what the nodes log about it.
@pytest.mark.log_allows(r"steps down to standby", r"lost its majority of voters",
                        r"standby unreachable .*: marking it stale", r"silent for [\d.]+s: dead")
def test_attributes_survive_a_failover_under_a_live_mount(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "ha")) as ha, \
            Mounted(ha, tmp_path / "mnt", timeout=60.0) as m:
        f = m.join("f")
        with open(f, "wb") as out:
            out.write(b"data")
        os.setxattr(f, "user.before", b"1")
        old = wait_for(ha.leader, 30, "a leader")
        old.stop(signal.SIGKILL)
        os.setxattr(f, "user.after", b"2", os.XATTR_CREATE)  # rides through the failover
        assert wait_for(ha.leader, 30, "a new leader") is not old
        assert sorted(os.listxattr(f)) == ["user.after", "user.before"]
        assert os.getxattr(f, "user.before") == b"1"

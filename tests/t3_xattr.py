"""Extended attributes through the client on real processes: kept on the inode through hard
links, rename and the trash; a kill -9 of the leader loses none (journaled, replicated),
and a setxattr with XATTR_CREATE that rides through the failover is answered once."""

import os
import signal

import pytest
from conftest import cluster_config

from dfs import errors
from dfs.local.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.log_allows(
    r"steps down to standby", r"lost its majority of voters",
    r"standby unreachable .*: marking it stale", r"silent for [\d.]+s: dead")


def test_attributes_follow_the_inode(dfs):
    dfs.mkdir("/d", 0o755)
    dfs.put_bytes("/d/f", b"data")
    dfs.setxattr("/d/f", "user.colour", b"blue")
    dfs.link("/d/f", "/d/g")
    assert dfs.getxattr("/d/g", "user.colour") == b"blue"
    dfs.setxattr("/d/g", "user.size", b"", os.XATTR_CREATE)
    dfs.rename("/d/f", "/moved")
    assert sorted(dfs.listxattr("/moved")) == ["user.colour", "user.size"]
    dfs.rm("/d/g")
    dfs.trash_move("/moved")
    dfs.trash_restore("/moved")
    assert dfs.getxattr("/moved", "user.colour") == b"blue"
    dfs.removexattr("/moved", "user.colour")
    with pytest.raises(errors.NoAttribute):
        dfs.getxattr("/moved", "user.colour")
    with pytest.raises(errors.NotPermitted):
        dfs.setxattr("/moved", "trusted.x", b"1")  # alice is not the superuser
    with pytest.raises(errors.NotSupported):
        dfs.setxattr("/moved", "system.posix_acl_access", b"\x02\x00\x00\x00")
    assert dfs.stat("/d").xattrs == 0 and dfs.stat("/moved").xattrs != 0


def test_a_failover_keeps_every_attribute(tmp_path):
    with LocalCluster(cluster_config(tmp_path / "ha")) as ha, \
            ha.client("alice", failover_deadline=60) as dfs:
        dfs.put_bytes("/f", b"x")
        for i in range(50):
            dfs.setxattr("/f", f"user.n{i}", str(i).encode() * 10)
        dfs.removexattr("/f", "user.n7")
        with ha.admin_client() as admin:
            admin.setxattr("/f", "trusted.origin", b"admin")
        old = wait_for(ha.leader, 30, "a leader")
        old.stop(signal.SIGKILL)
        dfs.setxattr("/f", "user.after", b"1", os.XATTR_CREATE)  # rides through, once
        assert wait_for(ha.leader, 30, "a new leader") is not old
        names = dfs.listxattr("/f")
        assert sorted(names) == sorted([f"user.n{i}" for i in range(50) if i != 7]
                                       + ["user.after"])
        assert dfs.getxattr("/f", "user.n42") == b"42" * 10
        with ha.admin_client() as admin:
            assert admin.getxattr("/f", "trusted.origin") == b"admin"
            assert "trusted.origin" in admin.listxattr("/f")

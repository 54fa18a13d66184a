"""t4: the mount over TLS (issue 9, point 6): a cluster with TLS forced on, mounted by
`dfs mount` with an auth file that pins the cluster's CA; files copied in with cp read back
exactly, through the mount and through the client; a mount whose auth file pins another CA
refuses to start and says why."""

import os
import shutil

import pytest
from conftest import cluster_config
from helpers import random_bytes, sha256, sha256_file
from t4_mount import Mounted, dfs_command

from dfs import auth
from dfs.local.cluster import LocalCluster

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3")
                                           or shutil.which("fusermount")),
    reason="no /dev/fuse or fusermount: FUSE is not available here")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    config = cluster_config(tmp_path_factory.mktemp("tls-mount"), workers=3, tls=True)
    with LocalCluster(config) as running:
        yield running


def test_copy_in_and_read_back_through_a_mount_over_tls(tls_cluster, tmp_path):
    source = tmp_path / "source.bin"
    data = random_bytes(3 * 1024 * 1024 + 5, seed=11)
    source.write_bytes(data)
    with Mounted(tls_cluster, tmp_path / "mnt") as mounted:
        assert auth.read_auth_pin(mounted.auth) == tls_cluster.tls_pin
        shutil.copy(source, mounted.join("copied.bin"))
        assert sha256_file(mounted.join("copied.bin")) == sha256(data)
        os.mkdir(mounted.join("folder"))
        names = [n for n in os.listdir(mounted.path) if not n.startswith(".Trash")]
        assert sorted(names) == ["copied.bin", "folder", "home"]
    with tls_cluster.client("alice") as client:
        assert sha256(client.read_bytes("/copied.bin")) == sha256(data)


def test_a_mount_pinning_another_ca_refuses_to_start(tls_cluster, tmp_path):
    masters, user, key = auth.read_auth_file(tls_cluster.register("mallory"))
    wrong = tmp_path / "wrong-ca.txt"
    auth.write_auth_file(str(wrong), masters, user, key, ca="sha256:" + "00" * 32)
    target = tmp_path / "mnt"
    target.mkdir()
    done = dfs_command("mount", target, "--auth", wrong, "--timeout", "5", check=False,
                       timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert not os.path.ismount(target)

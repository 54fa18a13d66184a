"""Pure units of issue 9's points 6b, 8 and 4 (partial uploads): what DFS keeps on disk is
private whatever the umask, the client cache serves only its owner's own entries that
match the master's checksum, a mount record is believed only when it is the caller's own
and names its real mount process, and an abandoned partial upload is dropped after its
idle time (stepped clock). No cluster, no sockets."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from helpers import SteppedClock, random_bytes

from dfs import auth, chunks, errors, fsutil
from dfs.backup.state import FileRecord, StateStore
from dfs.client.cache import ChunkCache
from dfs.config import BLOCK_SIZE
from dfs.journal import Journal
from dfs.namespace.model import Namespace
from dfs.retry import poll
from dfs.wire import ChunkRef
from mount import lifecycle, records
from nodes.master.voter import Voter
from nodes.worker.store import ChunkStore

OTHER_UID = 65534  # "nobody": the other local user of these tests


@pytest.fixture
def umask_zero():
    """What the mount runs under (and a careless operator's shell)."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_private_tree(root):
    """Every directory under ``root`` (itself included) is 0700, every file 0600."""
    assert mode(root) == 0o700, root
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            assert mode(os.path.join(folder, name)) == 0o700, os.path.join(folder, name)
        for name in files:
            assert mode(os.path.join(folder, name)) == 0o600, os.path.join(folder, name)


# --- dfs.fsutil ----------------------------------------------------------------------------

def test_private_dirs_and_files_ignore_the_umask_and_fix_what_exists(tmp_path, umask_zero):
    made = fsutil.private_dir(str(tmp_path / "a" / "b" / "c"))
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == mode(made) == 0o700
    os.mkdir(tmp_path / "old", 0o755)
    fsutil.private_dir(str(tmp_path / "old"))
    assert mode(tmp_path / "old") == 0o700
    with fsutil.open_private(str(tmp_path / "old" / "f")) as f:
        f.write(b"x")
    assert mode(tmp_path / "old" / "f") == 0o600
    (tmp_path / "loose").write_bytes(b"old")
    os.chmod(tmp_path / "loose", 0o666)
    with fsutil.open_private(str(tmp_path / "loose"), "ab") as f:
        f.write(b"+")
    assert mode(tmp_path / "loose") == 0o600 and (tmp_path / "loose").read_bytes() == b"old+"
    fsutil.write_atomic(str(tmp_path / "w"), b"data")
    assert mode(tmp_path / "w") == 0o600
    with pytest.raises(FileExistsError):
        fsutil.open_private(str(tmp_path / "w"), "xb")


def test_create_dirs_leaves_existing_folders_alone(tmp_path, umask_zero):
    os.mkdir(tmp_path / "mine", 0o755)
    fsutil.create_dirs(str(tmp_path / "mine" / "new"))
    assert mode(tmp_path / "mine") == 0o755 and mode(tmp_path / "mine" / "new") == 0o700


def test_a_symlink_or_another_users_folder_is_refused(tmp_path):
    (tmp_path / "target").write_bytes(b"keep")
    os.symlink(tmp_path / "target", tmp_path / "link")
    with pytest.raises(OSError):
        fsutil.open_private(str(tmp_path / "link"))
    assert (tmp_path / "target").read_bytes() == b"keep"
    os.mkdir(tmp_path / "theirs")
    os.chmod(tmp_path / "theirs", 0o777)
    os.chown(tmp_path / "theirs", OTHER_UID, OTHER_UID)
    with pytest.raises(errors.PermissionDenied, match="belongs to another user"):
        fsutil.private_dir(str(tmp_path / "theirs"))
    assert mode(tmp_path / "theirs") == 0o777  # not taken over either


def test_journal_voter_auth_and_backup_state_are_private(tmp_path, umask_zero):
    journal = Journal(str(tmp_path / "meta"))
    journal.load()
    journal.snapshot(Namespace())
    journal.append([])
    journal.close()
    Voter(str(tmp_path / "meta" / "election.json"), time.monotonic).lease(1, "master")
    auth.write_auth_file(str(tmp_path / "cfg" / "auth.txt"), [("127.0.0.1", 1)], "ann", "k")
    state = StateStore(str(tmp_path / "state" / "s.json"), str(tmp_path), "/r", "m", "ann")
    state.record("a", FileRecord(1, 2, "0" * 64, 5))
    state.flush()
    for folder in ("meta", "cfg", "state"):
        assert_private_tree(tmp_path / folder)
    assert sorted(os.listdir(tmp_path / "meta")) == ["election.json", "journal.jsonl",
                                                     "saved-files.json"]


# --- the worker's chunk store and its partial uploads --------------------------------------

def new_store(path, clock=None, idle=10.0):
    store = ChunkStore(str(path), 0, upload_idle=idle, clock=clock or SteppedClock())
    store.chunk_size = 1 << 20
    return store


def test_chunk_files_backups_and_uploads_are_private(tmp_path, umask_zero):
    store = new_store(tmp_path / "w")
    data = random_bytes(3 * BLOCK_SIZE)
    for kind in ("chunks", "backups"):
        store.write(1, kind, 0, data, len(data), chunks.crc(data))
    store.write(2, "chunks", 0, data[:BLOCK_SIZE], len(data), chunks.crc(data))  # partial
    assert os.listdir(tmp_path / "w" / "tmp") == ["2.chunks"]
    assert_private_tree(tmp_path / "w")
    store.close()
    assert os.listdir(tmp_path / "w" / "tmp") == []


def test_an_idle_partial_upload_is_dropped_and_its_descriptor_closed(tmp_path):
    clock = SteppedClock()
    store = new_store(tmp_path, clock, idle=10.0)
    data = random_bytes(3 * BLOCK_SIZE)
    crc = chunks.crc(data)
    assert store.write(1, "chunks", 0, data[:BLOCK_SIZE], len(data), crc) is False
    assert store.write(2, "chunks", 0, data[:BLOCK_SIZE], len(data), crc) is False
    upload = store.staging[(1, "chunks")]
    clock.step(8)
    assert store.expire_uploads() == 0
    store.write(2, "chunks", BLOCK_SIZE, data[BLOCK_SIZE:2 * BLOCK_SIZE], len(data), crc)
    clock.step(3)  # upload 1 idle for 11 s, upload 2 for 3 s
    assert store.expire_uploads() == 1
    assert upload.file.closed and not os.path.exists(upload.path)
    assert list(store.staging) == [(2, "chunks")]
    with pytest.raises(errors.InvalidArgument, match="unexpected offset"):
        store.write(1, "chunks", BLOCK_SIZE, data[BLOCK_SIZE:2 * BLOCK_SIZE], len(data), crc)
    assert store.write(2, "chunks", 2 * BLOCK_SIZE, data[2 * BLOCK_SIZE:], len(data), crc)
    assert store.read(2, 0, len(data)) == (data, len(data))  # the live one was kept
    assert store.expire_uploads() == 0 and store.inventory() == [(2, "chunks")]
    assert os.listdir(tmp_path / "tmp") == []
    store.close()


def test_the_expiry_task_starts_with_the_first_upload(tmp_path):
    store = new_store(tmp_path)
    assert not store._expiry_started
    data = random_bytes(2 * BLOCK_SIZE)
    store.write(1, "chunks", 0, data[:BLOCK_SIZE], len(data), chunks.crc(data))
    assert store._expiry_started and store.expiry.next_pause() == 5.0
    store.close()
    assert store.expiry.stopping and store.staging == {}


# --- the client's chunk cache --------------------------------------------------------------

def cached(tmp_path, data=b"hello cache" * 100):
    cache = ChunkCache(str(tmp_path / "cache"), 1 << 20)
    ref = ChunkRef(7, 1, len(data), chunks.crc(data), 0)
    cache.put(ref, data)
    return cache, ref, data, os.path.join(cache.directory, "7-1")


def test_the_cache_is_private_whatever_the_umask(tmp_path, umask_zero):
    os.makedirs(tmp_path / "cache", 0o777)  # left by an older version (umask 0 here)
    cache, ref, data, _path = cached(tmp_path)
    assert cache.get(ref) == data
    assert_private_tree(tmp_path / "cache")


def forge_crc(data, target):
    """``data`` with its last 4 bytes changed so that its CRC32C is ``target``: CRC32C is
    linear, so a planted entry can always match the master's checksum (only its place on
    disk protects the cache)."""
    def delta(bits):
        patch = bytes(len(data) - 4) + bits.to_bytes(4, "little")
        return chunks.crc(patch) ^ chunks.crc(bytes(len(data)))
    rows = [(delta(1 << i), 1 << i) for i in range(32)]  # (effect, patch bits)
    want, patch = chunks.crc(data) ^ target, 0
    basis = []
    for effect, bits in rows:  # Gaussian elimination over GF(2)
        for b_effect, b_bits in basis:
            if effect ^ b_effect < effect:
                effect, bits = effect ^ b_effect, bits ^ b_bits
        if effect:
            basis.append((effect, bits))
            basis.sort(reverse=True)
    for b_effect, b_bits in basis:
        if want ^ b_effect < want:
            want, patch = want ^ b_effect, patch ^ b_bits
    assert want == 0
    tail = int.from_bytes(data[-4:], "little") ^ patch
    forged = data[:-4] + tail.to_bytes(4, "little")
    assert chunks.crc(forged) == target
    return forged


def test_only_private_entries_of_our_own_that_match_the_masters_crc_are_served(tmp_path):
    cache, ref, data, path = cached(tmp_path)
    forged = b"evil" + data[4:]
    with open(path, "wb") as f:
        f.write(forged)
    with open(path + ".crc", "w") as f:  # a "matching" checksum stored beside: never read
        f.write(str(chunks.crc(forged)))
    assert cache.get(ref) is None and not os.path.exists(path)

    crc_matching = forge_crc(b"evil" + data[4:], ref.crc)
    for planted_by_other in (True, False):
        with open(path, "wb") as f:
            f.write(crc_matching)
        if planted_by_other:
            os.chown(path, OTHER_UID, OTHER_UID)
        else:
            os.chmod(path, 0o666)  # anyone could have written it
        assert cache.get(ref) is None and not os.path.exists(path)
    os.symlink(tmp_path / "elsewhere", path)
    (tmp_path / "elsewhere").write_bytes(data)
    assert cache.get(ref) is None and not os.path.lexists(path)
    cache.put(ref, data)
    assert cache.get(ref) == data


def test_a_cache_opened_drops_entries_that_are_not_private(tmp_path):
    _cache, ref, data, path = cached(tmp_path)
    os.chmod(path, 0o644)
    reopened = ChunkCache(os.path.dirname(path), 1 << 20)
    assert not os.path.exists(path) and reopened.size == 0 and reopened.get(ref) is None


# --- mount records -------------------------------------------------------------------------

@pytest.fixture
def records_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def plant(mount_dir, pid, dir_=None, file_mode=0o600, owner=None):
    path = records.record_path(str(mount_dir), ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"pid": pid, "dir": str(dir_ or mount_dir), "auth": "/a", "log": "/l"}, f)
    os.chmod(path, file_mode)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


@pytest.fixture
def victim():
    proc = subprocess.Popen(["sleep", "300"])
    started(proc, "sleep")
    yield proc
    proc.kill()
    proc.wait()


def test_records_are_private_and_read_back(records_home, umask_zero):
    folder = os.path.realpath(records_home)
    records.write_record(folder, {"pid": os.getpid(), "dir": folder, "auth": "/a", "log": "/l"})
    with records.open_log(folder) as log:
        log.write(b"line\n")
    assert_private_tree(records.records_dir())
    assert records.read_record(folder)["pid"] == os.getpid()
    assert records.all_records() == [records.record_path(folder, ".json")]


@pytest.mark.parametrize("how", ["world-writable", "another user's", "names another folder"])
def test_a_record_that_is_not_our_own_is_refused(records_home, victim, how):
    folder = str(records_home / "m")
    if how == "world-writable":
        plant(folder, victim.pid, file_mode=0o666)
    elif how == "another user's":
        plant(folder, victim.pid, owner=OTHER_UID)
    else:
        plant(folder, victim.pid, dir_="/")
    with pytest.raises(errors.PermissionDenied, match="refusing"):
        records.read_record(folder)
    records.remove_record(folder, victim.pid)  # nor is it removed: it is not ours
    assert os.path.exists(records.record_path(folder, ".json"))


def started(proc, word):
    """Wait until ``proc`` runs its program (right after fork its command line is still
    ours, or empty while it execs: what check_pid reads must be the program's own)."""
    def running():
        try:
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                return word.encode() in f.read()
        except FileNotFoundError:
            return False
    assert poll(running, 10.0, 0.01), f"{word} did not start"


def test_check_pid_knows_a_dfs_mount_of_that_folder_from_any_other_process(records_home,
                                                                           victim):
    folder = str(records_home / "m")
    os.mkdir(folder)
    plant(folder, victim.pid)
    with pytest.raises(errors.PermissionDenied, match="not your DFS mount"):
        records.check_pid(records.read_record(folder), folder)
    fake = records_home / "dfs"  # a program named like ours, serving that folder
    fake.write_text("import time\ntime.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, str(fake), "mount", "m", "--foreground"],
                            cwd=str(records_home))
    started(proc, str(fake))
    try:
        plant(folder, proc.pid)
        assert records.check_pid(records.read_record(folder), folder) == proc.pid
        other = str(records_home / "other")
        plant(other, proc.pid)
        with pytest.raises(errors.PermissionDenied):
            records.check_pid(records.read_record(other), other)  # it serves another folder
    finally:
        proc.kill()
        proc.wait()
    assert records.check_pid(records.read_record(folder), folder) is None  # exited
    with pytest.raises(errors.PermissionDenied):
        records.check_pid({"pid": 1, "dir": folder, "auth": "", "log": ""}, folder)


def test_only_a_dfs_fuse_mount_may_be_unmounted():
    lifecycle.check_dfs_mount("/tmp/not-mounted-here")  # nothing mounted: nothing to refuse
    with pytest.raises(errors.PermissionDenied, match="not a DFS mount"):
        lifecycle.check_dfs_mount("/")
    with pytest.raises(errors.PermissionDenied, match="not a DFS mount"):
        lifecycle.unmount("/proc")

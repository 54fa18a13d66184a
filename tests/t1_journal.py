"""The journal's two steps (write under the lock, fsync shared outside it), its room on
disk (the reserve ordinary entries may not eat into), a failed write that leaves the file
as it was, and snapshots off the request path: seal, the child's compaction, adoption,
and every crash point in between loading the same namespace. The reserve across a seal
is tried on a real full disk: a small tmpfs (we run as root), always unmounted."""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path

import pytest
from helpers import fill, tmpfs

from dfs import compact, errors
from dfs.journal import JOURNAL, SEALED, SNAPSHOT, Journal, encode
from dfs.namespace import entries
from dfs.namespace.entries import Record
from dfs.namespace.model import ROOT_INO, Namespace

HUGE = 1 << 60  # more than any disk has free


def lines(ns: Namespace, count: int, start: int) -> list[Record]:
    """``count`` mkdir records after ``ns.seq`` (applied to ``ns``)."""
    records = []
    for i in range(start, start + count):
        entry = entries.Init(chunk_size=1 << 20, time_ns=1) if ns.seq == 0 else \
            entries.Mkdir(parent=ROOT_INO, name=f"d{i}", ino=ns.next_ino, uid=0, gid=0,
                          mode=0o755, time_ns=1)
        record = Record(ns.seq + 1, 1, entry)
        ns.apply(record)
        records.append(record)
    return records


def state(ns: Namespace) -> str:
    return json.dumps(ns.to_json(), sort_keys=True)


def write(journal: Journal, records: list[Record], essential: bool = False) -> None:
    journal.write([r.to_line() for r in records], records[-1].seq, essential)


def test_entries_written_together_share_one_fsync(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    ns = journal.load()
    for i in range(3):
        write(journal, lines(ns, 1, i))
    assert journal.written_seq == 3 and journal.synced_seq == 0 and journal.fsyncs == 0
    journal.sync_to(2)
    assert journal.synced_seq == 3 and journal.fsyncs == 1  # all written so far
    journal.sync_to(3)
    assert journal.fsyncs == 1
    journal.close()
    assert state(Journal(str(tmp_path)).load()) == state(ns)


def test_an_ordinary_entry_needs_free_room_a_deletion_does_not(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), reserve=HUGE)
    ns = journal.load()
    records = lines(ns, 2, 0)
    size = os.path.getsize(journal.journal_path) if os.path.exists(journal.journal_path) else 0
    with pytest.raises(errors.NoSpace):
        write(journal, records[:1])
    assert journal.low_space and journal.written_seq == 0
    assert (os.path.getsize(journal.journal_path) if os.path.exists(journal.journal_path)
            else 0) == size  # nothing written
    write(journal, records, essential=True)  # into the reserve: what frees space goes in
    journal.reserve = 4096  # space is back
    write(journal, lines(ns, 1, 2))
    assert not journal.low_space and journal.written_seq == 3
    if journal.can_preallocate:  # the reserve is held past the end
        held = os.stat(journal.journal_path).st_blocks * 512
        assert held >= os.path.getsize(journal.journal_path) + 4096
    journal.sync_to(3)
    journal.close()
    assert state(Journal(str(tmp_path)).load()) == state(ns)


def test_a_failed_write_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path), reserve=0)
    ns = journal.load()
    write(journal, lines(ns, 2, 0))
    size = os.path.getsize(journal.journal_path)
    big = [Record(ns.seq + 1, 1, entries.Mkdir(parent=ROOT_INO, name="x" * 200, ino=99,
                                                uid=0, gid=0, mode=0o755, time_ns=1))] * 50
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, hard))
    try:  # the file may not grow past size + 1000: the write fails half-way (EFBIG)
        with pytest.raises(errors.Unavailable):
            journal.write([r.to_line() for r in big], big[-1].seq, essential=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert os.path.getsize(journal.journal_path) == size and journal.written_seq == 2
    write(journal, lines(ns, 1, 2))  # and it goes on
    journal.sync_to(3)
    journal.close()
    assert state(Journal(str(tmp_path)).load()) == state(ns)


def test_a_snapshot_is_folded_off_the_request_path_and_every_crash_point_loads(
        tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    ns = journal.load()
    write(journal, lines(ns, 5, 0))
    journal.seal()  # the journal so far is sealed (fsynced); new entries go to a new one
    assert journal.synced_seq == 5 and os.path.exists(tmp_path / SEALED)
    write(journal, lines(ns, 3, 5))
    journal.sync_to(8)
    generation = journal.generation
    # a crash now: snapshot (none) + sealed + journal
    assert state(Journal(str(tmp_path)).load()) == state(ns)
    result = journal.compacted_name(generation)
    assert compact.compact(str(tmp_path), result) == 5  # what the child process does
    assert os.path.exists(tmp_path / result)
    # a crash before adoption: the new snapshot is ignored (removed), nothing lost
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (SEALED, JOURNAL, result):
        (copy / name).write_bytes((tmp_path / name).read_bytes())
    assert state(Journal(str(copy)).load()) == state(ns)
    assert not (copy / result).exists()
    assert journal.adopt_compacted(generation)
    assert not os.path.exists(tmp_path / SEALED) and journal.snapshot_bytes > 0
    data = (tmp_path / SNAPSHOT).read_bytes()
    assert json.loads(data)["seq"] == 5 and b"\n" in data  # compact, a line per inode
    assert state(Journal(str(tmp_path)).load()) == state(ns)
    journal.close()


def test_a_snapshot_installed_meanwhile_wins_over_a_compaction(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    ns = journal.load()
    write(journal, lines(ns, 4, 0))
    journal.seal()
    generation = journal.generation
    result = journal.compacted_name(generation)
    compact.compact(str(tmp_path), result)
    stray = tmp_path / f"{SNAPSHOT}.other-{generation}.new"  # a child of an earlier process
    stray.write_bytes((tmp_path / result).read_bytes())
    write(journal, lines(ns, 2, 4))
    journal.install(encode(ns.to_json()), ns.seq)  # the leader's snapshot (a standby)
    assert not journal.adopt_compacted(generation)  # older: dropped
    assert not os.path.exists(tmp_path / result) and not os.path.exists(tmp_path / SEALED)
    assert json.loads((tmp_path / SNAPSHOT).read_bytes())["seq"] == 6
    journal.close()
    assert state(Journal(str(tmp_path)).load()) == state(ns)
    assert not stray.exists()  # never adopted, removed at start


def test_compaction_without_a_sealed_journal_fails_cleanly(tmp_path: Path) -> None:
    Journal(str(tmp_path)).load()
    assert compact.main([str(tmp_path), f"{SNAPSHOT}.x-1.new"]) == 1
    assert compact.main([str(tmp_path), "../elsewhere"]) == 1
    assert os.listdir(tmp_path) == []


RESERVE = 256 << 10


def another(ns: Namespace) -> Record:
    """An ordinary entry after ``ns.seq``, not applied (it is to be refused)."""
    return Record(ns.seq + 1, 1, entries.Mkdir(parent=ROOT_INO, name="refused",
                                                ino=ns.next_ino, uid=0, gid=0, mode=0o755,
                                                time_ns=1))


def held(path: str) -> int:
    return os.stat(path).st_blocks * 512


def test_after_a_seal_deletions_still_have_the_reserve_on_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        journal = Journal(disk, reserve=RESERVE)
        ns = journal.load()
        write(journal, lines(ns, 3, 0))  # an ordinary entry: the reserve is held past the end
        if not journal.can_preallocate:
            pytest.skip("this tmpfs cannot preallocate")
        journal.seal()
        assert held(journal.journal_path) >= RESERVE  # the new journal's, from the start
        assert held(journal.sealed_path) < RESERVE  # the sealed one gave its own back
        compact.compact(disk, journal.compacted_name(journal.generation))  # its snapshot
        fill(os.path.join(disk, "filler"))
        with pytest.raises(errors.NoSpace):
            write(journal, [another(ns)])
        write(journal, lines(ns, 2, 3), essential=True)  # a deletion: into the reserve
        assert journal.adopt_compacted(journal.generation)  # frees the sealed entries only,
        with pytest.raises(errors.NoSpace):  # not a reserve: still full for other changes
            write(journal, [another(ns)])
        write(journal, lines(ns, 1, 5), essential=True)
        journal.sync_to(6)
        journal.close()
        assert state(Journal(disk).load()) == state(ns)


def test_a_seal_that_cannot_give_the_new_journal_its_reserve_seals_nothing(
        tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        journal = Journal(disk, reserve=RESERVE)
        ns = journal.load()
        write(journal, lines(ns, 3, 0))
        if not journal.can_preallocate:
            pytest.skip("this tmpfs cannot preallocate")
        fill(os.path.join(disk, "filler"))
        with pytest.raises(errors.NoSpace):
            journal.seal()
        assert sorted(os.listdir(disk)) == ["filler", JOURNAL]  # as it was
        write(journal, lines(ns, 2, 3), essential=True)  # the journal keeps its reserve
        journal.sync_to(5)
        os.unlink(os.path.join(disk, "filler"))  # space is back: the seal goes through
        journal.seal()
        assert sorted(os.listdir(disk)) == [JOURNAL, SEALED]
        write(journal, lines(ns, 1, 5))
        journal.sync_to(6)
        journal.close()
        assert state(Journal(disk).load()) == state(ns)

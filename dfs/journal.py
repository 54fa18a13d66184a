"""Durable metadata: a JSON snapshot plus a JSON-lines journal.

``cache-metadata/saved-files.json`` is the namespace at sequence number ``seq``, written
atomically (temp file, fsync, rename, fsync of the directory). ``journal.jsonl`` holds one
entry per line (``Record.to_line``: the entry's JSON with its ``seq`` and epoch ``ep``);
an entry is fsynced before the change it records is acknowledged. Start-up loads the
snapshot and replays entries with a larger ``seq``.

A kill -9 can leave a torn last line: it was never fsynced, so never acknowledged, and
``load`` cuts it off. A crash between writing a snapshot and rotating the journal leaves
entries the snapshot already holds: replay skips them by ``seq``.

Thread safety: one writer; the master calls it under its metadata lock.
"""

from __future__ import annotations

import json
import logging
import os
from typing import BinaryIO

from dfs import metrics
from dfs.fsutil import open_private, private_dir, write_atomic
from dfs.namespace.entries import Record
from dfs.namespace.model import Namespace

log = logging.getLogger(__name__)

SNAPSHOT = "saved-files.json"
JOURNAL = "journal.jsonl"


class Journal:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.snapshot_path = os.path.join(directory, SNAPSHOT)
        self.journal_path = os.path.join(directory, JOURNAL)
        self._file: BinaryIO | None = None
        self.entries_since_snapshot = 0

    def load(self) -> Namespace:
        """-> Namespace rebuilt from snapshot + journal (empty if there is neither)."""
        private_dir(self.directory)  # every name and key hash is in there
        if os.path.exists(self.snapshot_path):
            with open(self.snapshot_path, "rb") as f:
                ns = Namespace.from_json(json.load(f))
        else:
            ns = Namespace()
        replayed = 0
        good_bytes = 0
        if os.path.exists(self.journal_path):
            with open(self.journal_path, "rb") as f:
                for line in f:
                    try:
                        record = Record.from_line(line)
                    except ValueError:
                        log.warning("journal: cutting off a torn last entry (never acknowledged)")
                        break
                    if not line.endswith(b"\n"):
                        log.warning("journal: cutting off an unterminated last entry")
                        break
                    good_bytes += len(line)
                    if record.seq <= ns.seq:
                        continue
                    ns.apply(record)
                    replayed += 1
            with open(self.journal_path, "r+b") as f:
                f.truncate(good_bytes)
        self.entries_since_snapshot = replayed
        log.info("metadata loaded: snapshot seq %d, %d journal entries replayed", ns.seq, replayed)
        return ns

    def _open(self) -> BinaryIO:
        if self._file is None:
            self._file = open_private(self.journal_path, "ab")
        return self._file

    def append(self, records: list[Record]) -> None:
        """Write records and fsync once (group commit); only then may they be acknowledged."""
        f = self._open()
        f.write(b"".join(r.to_line().encode() + b"\n" for r in records))
        f.flush()
        with metrics.JOURNAL_FSYNC.time():
            os.fdatasync(f.fileno())
        self.entries_since_snapshot += len(records)

    def snapshot(self, ns: Namespace) -> None:
        """Write saved-files.json for ``ns``, then start an empty journal."""
        data = json.dumps(ns.to_json(), indent=1, sort_keys=True).encode()
        write_atomic(self.snapshot_path, data)
        self.close()
        write_atomic(self.journal_path, b"")
        self.entries_since_snapshot = 0

    def read_tail(self, after_seq: int) -> list[Record] | None:
        """Journal records with seq > after_seq (for a standby catching up), or None if
        the journal no longer reaches back that far."""
        records = []
        with open(self.journal_path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    records.append(Record.from_line(line))
        if records and records[0].seq > after_seq + 1:
            return None
        return [r for r in records if r.seq > after_seq]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

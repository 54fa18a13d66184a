"""The master's audit log, "events" in the original design: every mutation and every login,
who asked, what, when and from which address. `dfs events` reads it (admin only).

- A **mutation** is recorded once its journal entry is committed (``MasterState.commit``
  calls ``mutation(record)``): the request being served (nodes/rpcserver.py
  ``current_call``) says who and from where; the master's own work (expiry, admitting
  workers from its tick) is recorded as op "(master)" with no user.
- A **login** is recorded by the login endpoints: accepted, or refused for a wrong key or
  join token (``login``).
- What is kept of the request (``detail``) are only the arguments named in ``DETAIL``:
  paths, user names, modes, sizes. Never keys, proofs, nonces, tokens or chunk lists.

Off the request path: ``mutation`` and ``login`` only number the event and put it in a
bounded queue (and in ``recent``, the last RECENT in memory); one writer thread appends
them, at most one write per GATHER seconds, to ``cache-metadata/events.jsonl`` (0600, one
JSON object per line, flushed, not fsynced: a crash may lose the last events, never a
mutation). A full queue or a failing disk (ENOSPC) drops events with one warning (at most
one per WARN_EVERY), until writing works again with nothing left queued; a request never
waits for it or fails because of it. The file is rotated at a quarter of
``MasterConfig.events_bytes`` into events.1.jsonl .. events.3.jsonl (the oldest dropped),
so the log stays under that bound. Event ids go on across restarts (read back from the
last line). Each metadata server keeps the events it served as leader: after a failover
the earlier ones are in the other server's file.

Thread-safe: ``lock`` guards the numbering and ``recent``; the file is the writer's alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import BinaryIO

from dfs.fsutil import open_private
from dfs.namespace.entries import Record
from dfs.wire import Event
from nodes.rpcserver import current_call

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
ROTATED = 3  # events.1.jsonl (newest) .. events.3.jsonl
QUEUE = 5_000  # events waiting for the writer; more are dropped
BATCH = 1_000  # events the writer takes from the queue at once
RECENT = QUEUE + BATCH  # the last events kept in memory: every one not yet written is here
PAGE_MAX = 1_000  # events in one answer
DETAIL_MAX = 512  # characters of an event's detail
MASTER_OP = "(master)"
WARN_EVERY = 600.0  # seconds: at most one "dropping events" warning in this long
GATHER = 0.05  # seconds the writer rests after a write: the events of a busy master share a
# write and a wake of the writer (one per event cost the request path a context switch each)

DETAIL: dict[str, tuple[str, ...]] = {
    # method -> the arguments recorded (by parameter name); the others never are
    "mkdir": ("path", "mode"), "create": ("path", "mode"), "symlink": ("path", "target"),
    "mknod": ("path", "kind", "mode", "rdev"), "rename": ("src", "dst", "flags"),
    "link": ("existing", "path"), "unlink": ("path",), "rmdir": ("path",),
    "setattr": ("path", "mode", "uid", "gid"),
    "setxattr": ("path", "name", "flags"), "removexattr": ("path", "name"),
    "trash_move": ("path",), "trash_restore": ("path", "trash_id"),
    "trash_purge": ("trash_id",), "allocate": ("path", "count"), "commit": ("ino", "size"),
    "put": ("path", "size"), "register": ("name",), "Auth_Host": ("name",),
    "login": ("name",), "users_add": ("name", "admin"), "users_revoke": ("name",),
    "users_quota": ("name", "quota_bytes", "quota_inodes"), "fsck_start": ("repair",),
    "worker_register": ("host", "port"), "worker_login": ("worker_id",),
}


def caller() -> tuple[str, str, str, str]:
    """(user, address, op, detail) of the request this thread serves; the master's own
    work when it serves none."""
    call = current_call()
    if call is None:
        return "", "", MASTER_OP, ""
    service = call.service
    user = getattr(service, "user", None)
    worker = getattr(service, "worker_id", None)
    who = user if isinstance(user, str) else f"worker:{worker}" if isinstance(worker, str) else ""
    address = getattr(service, "peer", "")
    return who, address if isinstance(address, str) else "", call.op, describe(
        call.op, call.arguments)


def describe(op: str, arguments: dict[str, object]) -> str:
    """The recorded arguments of a call: ``path='/a b' mode=0o700`` (strings as Python
    literals: quotes, and control characters escaped)."""
    parts = []
    for name in DETAIL.get(op, ()):
        value = arguments.get(name)
        if value is None:
            continue
        if name == "mode" and type(value) is int:
            parts.append(f"mode={value:#o}")
        elif type(value) in (str, int, bool, float):
            parts.append(f"{name}={value!r}")
    text = " ".join(parts)
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX - 3] + "..."


class EventLog:
    def __init__(self, directory: str, max_bytes: int,
                 wall: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.path = os.path.join(directory, EVENTS_FILE)
        self.file_bytes = max_bytes // (ROTATED + 1)
        self.wall = wall
        self.lock = threading.Lock()
        self.recent: deque[Event] = deque(maxlen=RECENT)
        self.queue: queue.Queue[Event | None] = queue.Queue(QUEUE)
        self.next_id = self._last_id() + 1
        self.recorded = 0
        self.dropped = 0
        self.failing = False  # dropping now; cleared once written again with nothing queued
        self.quiet_until = 0.0  # no new warning before this (monotonic), even then
        self.writer: threading.Thread | None = None
        self.file: BinaryIO | None = None

    def files(self) -> list[str]:
        """The log's files, oldest first."""
        rotated = [os.path.join(self.directory, f"events.{n}.jsonl")
                   for n in range(ROTATED, 0, -1)]
        return [*rotated, self.path]

    def _last_id(self) -> int:
        for path in reversed(self.files()):
            with contextlib.suppress(OSError):
                with open(path, "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - 64 * 1024))
                    for line in reversed(f.read().splitlines()):
                        event = _parse(line)
                        if event is not None:
                            return event.event_id
        return 0

    # --- recording (request threads) ---------------------------------------------------

    def mutation(self, record: Record) -> None:
        """A journal entry was committed for the request this thread serves (if any)."""
        user, address, op, detail = caller()
        self._add(user, address, op, detail, f"{record.entry.op} #{record.seq}", "ok")

    def login(self, name: str, address: str, accepted: bool) -> None:
        """A login as ``name`` from ``address`` was accepted or refused (wrong secret)."""
        _user, _address, op, detail = caller()
        if op == MASTER_OP:  # not inside a request (tests): a login all the same
            op = "login"
        self._add(name, address, op, detail, "", "ok" if accepted else "refused")

    def _add(self, user: str, address: str, op: str, detail: str, entry: str,
             outcome: str) -> None:
        with self.lock:
            event = Event(self.next_id, self.wall(), user, address, op, detail, entry, outcome)
            self.next_id += 1
            self.recorded += 1
            self.recent.append(event)
            if self.writer is None:
                self.writer = threading.Thread(target=self._write_loop, name="events",
                                               daemon=True)
                self.writer.start()
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self._dropped(1, "the writer is behind")

    def _dropped(self, count: int, why: str) -> None:
        with self.lock:
            self.dropped += count
            warn = not self.failing and time.monotonic() >= self.quiet_until
            self.failing = True
            if warn:
                self.quiet_until = time.monotonic() + WARN_EVERY
        if warn:
            log.warning("events: %s: dropping events until they can be written again "
                        "(requests are not affected)", why)

    # --- reading (`dfs events`, the status page) ----------------------------------------

    def last(self, count: int) -> list[Event]:
        """The newest ``count`` events, newest first."""
        with self.lock:
            return list(reversed(list(self.recent)[-count:]))

    def page(self, after: int, since: float = 0.0, user: str = "",
             limit: int = PAGE_MAX) -> tuple[list[Event], int]:
        """Events with id > ``after``, time >= ``since``, by ``user`` if given, oldest first,
        at most ``limit``. -> (events, cursor): ask again with the cursor for what follows."""
        limit = max(1, min(limit, PAGE_MAX))
        with self.lock:
            recent = list(self.recent)
            cursor = self.next_id - 1
        in_memory = recent[0].event_id if recent else cursor + 1
        found: list[Event] = []
        sources = self._from_files(after, in_memory) if after + 1 < in_memory else iter(())
        for event in (*sources, *(e for e in recent if e.event_id > after)):
            if event.time >= since and (not user or event.user == user):
                found.append(event)
                if len(found) == limit:
                    return found, event.event_id
        return found, max(cursor, after)

    def _from_files(self, after: int, before: int) -> Iterator[Event]:
        """Events in the files with ``after`` < id < ``before``, oldest first (each once,
        should the writer rotate the files meanwhile)."""
        for path in self.files():
            try:
                f = open(path, "rb")
            except OSError:
                continue
            with f:
                for line in f:
                    event = _parse(line)
                    if event is not None and after < event.event_id < before:
                        after = event.event_id
                        yield event

    # --- the writer thread ---------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            event = self.queue.get()
            batch = [event]
            while event is not None and len(batch) < BATCH:
                try:
                    event = self.queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(event)
            events = [e for e in batch if e is not None]
            if events:
                self._write(events)
            if None in batch:
                self._close_file()
                return
            time.sleep(GATHER)

    def _write(self, events: list[Event]) -> None:
        lines = [json.dumps(e._asdict(), ensure_ascii=False).encode() + b"\n" for e in events]
        try:
            while lines:
                if self.file is None:
                    self.file = open_private(self.path, "ab")
                room, take = self.file_bytes - self.file.tell(), 0
                while take < len(lines) and (room > 0 or take == 0):
                    room -= len(lines[take])
                    take += 1
                self.file.write(b"".join(lines[:take]))
                self.file.flush()
                del lines[:take]
                if self.file.tell() >= self.file_bytes:
                    self._rotate()
        except OSError as exc:
            self._close_file()
            self._dropped(len(events), f"cannot write {self.path} ({exc.strerror or exc})")
            return
        if not self.queue.empty():
            return  # still behind: not over yet
        with self.lock:
            recovered, self.failing = self.failing, False
        if recovered:
            log.info("events: written again (%d dropped so far)", self.dropped)

    def _rotate(self) -> None:
        self._close_file()
        names = self.files()  # oldest first: each moves one older, the oldest is replaced
        for older, newer in zip(names, names[1:], strict=False):
            with contextlib.suppress(FileNotFoundError):
                os.replace(newer, older)

    def _close_file(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the writer (the master's shutdown)."""
        with self.lock:
            writer = self.writer
        if writer is None:
            return
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=timeout)
        writer.join(timeout)


def _parse(line: bytes) -> Event | None:
    try:
        data = json.loads(line)
        return Event(int(data["event_id"]), float(data["time"]), str(data["user"]),
                     str(data["address"]), str(data["op"]), str(data["detail"]),
                     str(data["entry"]), str(data["outcome"]))
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line (a crash), or not ours

"""The watchdog adapter: file-system events of the watched folder -> ChangeQueue calls.

watchdog is imported only when a watcher starts (``--once`` runs without it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, cast

from dfs import errors
from dfs.backup.changes import ChangeQueue, Op
from dfs.backup.tree import Scanner, Tree

if TYPE_CHECKING:
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)


class Event(Protocol):
    """What we read of a watchdog event."""

    event_type: str
    src_path: str | bytes
    dest_path: str | bytes
    is_directory: bool


class EventHandler:
    """watchdog events -> ChangeQueue calls. Runs in watchdog's observer thread."""

    def __init__(self, tree: Tree, queue: ChangeQueue, scanner: Scanner,
                 mirror_deletes: bool) -> None:
        self.tree = tree
        self.queue = queue
        self.scanner = scanner
        self.mirror_deletes = mirror_deletes

    def dispatch(self, event: Event) -> None:
        try:
            self._dispatch(event)
        except Exception:  # an event handler must never kill the observer thread
            log.exception("while handling %r", event)

    def _dispatch(self, event: Event) -> None:
        kind = event.event_type
        src = self.tree.relative(event.src_path) if event.src_path else None
        if kind == "moved":
            dst = self.tree.relative(event.dest_path) if event.dest_path else None
            if src is not None and dst is not None:
                log.debug("event: moved %s -> %s", src, dst)
                self.queue.moved(src, dst, event.is_directory)
                return
            if src is not None:  # moved out of the folder: like a delete
                self.queue.deleted(src, event.is_directory, self.mirror_deletes)
            src, kind = dst, "created"  # moved in from outside: like a create
        if src is None:
            return
        if kind == "deleted":
            log.debug("event: deleted %s", src)
            self.queue.deleted(src, event.is_directory, self.mirror_deletes)
        elif event.is_directory:
            if kind == "created":
                log.debug("event: new directory %s", src)
                self.queue.add(Op("mkdir", src, is_dir=True))
                for rel in self.scanner.scan(src).files:  # files already inside it
                    self.queue.changed(rel)
        elif kind in ("created", "modified", "attrib", "closed"):
            self.queue.changed(src)


def start_observer(handler: EventHandler) -> BaseObserver:
    """Watch ``handler.tree`` recursively on watchdog's threads (daemons). -> the observer."""
    from watchdog import events
    from watchdog.observers import Observer
    wanted = [events.FileCreatedEvent, events.FileModifiedEvent, events.FileAttribEvent,
              events.FileClosedEvent, events.FileMovedEvent, events.FileDeletedEvent,
              events.DirCreatedEvent, events.DirMovedEvent, events.DirDeletedEvent]
    root = handler.tree.local_root
    observer = Observer()
    # watchdog only calls dispatch(): our handler needs none of its base class.
    observer.schedule(cast("FileSystemEventHandler", handler), root, recursive=True,
                      event_filter=wanted)
    observer.daemon = True
    try:
        observer.start()
    except OSError as exc:  # typically the inotify watch limit on a huge tree
        raise errors.NoSpace(f"cannot watch {root}: {exc} (on Linux, raise "
                             "fs.inotify.max_user_watches, or use --once from cron)") from None
    return observer

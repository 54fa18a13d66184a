"""The trash calls of DfsClient (dfs.client.client): list a user's deleted files a page at
a time, move a file into the trash, restore, purge and empty it.

``TrashCalls`` is a mixin of DfsClient: the same methods on the one client, so the CLI, the
mount's ``.Trash-UID`` (mount.trashdir) and the tests call them there. The rules are the
master's (dfs/namespace/rules_trash.py, the index: dfs/namespace/trash_index.py).
"""

from __future__ import annotations

from dfs import wire
from dfs.client.connections import MasterLink
from dfs.namespace.trash_index import PAGE_MAX as TRASH_PAGE
from dfs.wire import TrashEntry


class TrashCalls:
    master: MasterLink  # DfsClient's link to the leader

    def trash_list(self) -> list[TrashEntry]:
        """[TrashEntry] of this user's deleted files, newest first: every page of it
        (``trash_page``; an item deleted meanwhile may be missing, none is listed twice)."""
        return self.trash_listing()[0]

    def trash_listing(self, limit: int = TRASH_PAGE) -> tuple[list[TrashEntry], str | None]:
        """(the whole trash as ``trash_list`` gives it, in pages of ``limit``; its version:
        None if it changed while the pages were read, so the listing may match no version)."""
        entries, cursor, version = self.trash_page(limit)
        same: str | None = version
        while cursor is not None:
            more, cursor, version = self.trash_page(limit, cursor)
            entries.extend(more)
            same = same if version == same else None
        return entries, same

    def trash_page(self, limit: int = TRASH_PAGE, cursor: str | None = None
                   ) -> tuple[list[TrashEntry], str | None, str]:
        """At most ``limit`` (1 to 1000) of this user's deleted files after ``cursor`` (None:
        from the newest), newest first. -> (entries, the next page's cursor, None after the
        last page, the trash's version)."""
        entries, after, version = self.master.call("trash_page", limit, cursor)
        return wire.trash_from_wire(entries), after, version

    def trash_version(self) -> str:
        """Changes whenever this user's trash does (compare for equality only): one cheap
        call before listing the trash again."""
        version: str = self.master.call("trash_version")
        return version

    def trash_move(self, path: str) -> None:
        """Delete the file ``path`` into the trash, or change nothing and raise NotSupported
        if the trash would not keep it (the trash is off; not a file with one name)."""
        self.master.call("trash_move", path)

    def trash_restore(self, path: str, trash_id: str | None = None) -> wire.Stat:
        """Put the newest deleted version of ``path`` back (with ``trash_id``: that item, at
        ``path``); FileExists if the path is taken."""
        if trash_id is None:
            return wire.stat_from_wire(self.master.call("trash_restore", path))
        return wire.stat_from_wire(self.master.call("trash_restore", path, trash_id))

    def trash_purge(self, trash_id: str) -> bool:
        """Free one item of the trash now. -> False if it was not (or no longer) there."""
        return bool(self.master.call("trash_purge", trash_id))

    def trash_empty(self) -> int:
        """Free this user's trash now. -> how many files it held."""
        count: int = self.master.call("trash_empty")
        return count

"""The mount's operations with the DFS trash as the mount's freedesktop trash.

``TrashOperations`` is ``DfsOperations`` (mount.ops) plus the virtual ``/.Trash-UID``
folder (mount.trashdir): each operation on a path inside it is answered here, every other
one goes to ``DfsOperations`` unchanged. What a desktop does there becomes a DFS trash
call, in the order GLib's ``gio trash`` (g_local_file_trash) and gvfs's trash backend do
it:

- **Delete** (gio trash, Nautilus "Move to Trash"): ``open(info/NAME.trashinfo,
  O_CREAT|O_EXCL)`` reserves a name (accepted, kept as a scratch file: see mount.trashdir),
  the trashinfo is written through a temporary file renamed over it (accepted, discarded:
  the info is generated from the DFS trash record), then ``rename(FILE, files/NAME)`` is
  ``DfsClient.trash_move(FILE)``: the file goes into the DFS trash (as ``rm`` on the mount
  and ``dfs rm`` do) and is called NAME there. What the DFS trash cannot keep is refused
  with ENOTSUP before anything changes (the trash is off; a symlink; a file with other
  hard links), so the desktop offers to delete it for good instead. A folder: every file
  in it goes to the trash and the folders are removed, like ``dfs rm -r``: each file is an
  item of its own, restored to its own path (a restore makes missing folders again, 0700);
  the folders themselves, and so an empty folder, are not kept. Refused with ENOTSUP
  before anything changes if something in it could not be kept.
- **Restore**: ``rename(files/NAME, DEST)`` is ``DfsClient.trash_restore(DEST, id)``: that
  item, at the destination asked for. An existing DEST is replaced as rename does (the old
  file goes to the trash first; a folder: EISDIR); with RENAME_NOREPLACE: EEXIST.
- **Delete from the trash / Empty Trash**: ``unlink(files/NAME)``, ``unlink(info/
  NAME.trashinfo)`` (either half of an item), or ``rename(files/NAME, expunged/ANY)`` (gvfs)
  is ``DfsClient.trash_purge(id)``. ``rmdir`` of the virtual folders is a no-op when they
  are empty (so ``rm -rf .Trash-UID/files`` succeeds) and ENOTEMPTY otherwise.
- **Refused**: items cannot be opened (ENOTSUP: restore one to read it); making anything
  but scratch files in info/, symlinks, links, and changing attributes: EPERM.

A real folder of that name in the cluster (made by a desktop before the mount showed the
DFS trash there) is hidden by the virtual one and reported once in the mount's log; it is
still there for ``dfs ls``/``dfs rm -r``. Only the mounting user's uid gets this folder:
another local user of an allow_other mount finds a plain ``.Trash-THEIRUID`` as before.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mod
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from dfs import errors
from dfs.client.client import DfsClient
from mount import binding
from mount.ops import CACHE_SECONDS, Attrs, DfsOperations, FuseError, Listing, operation
from mount.trashdir import INFO_SUFFIX, TrashDir, trashinfo

log = logging.getLogger(__name__)

ROOT_INO = 1  # the cluster root's inode number (its .. in a listing)

P = ParamSpec("P")
R = TypeVar("R")


def trash_operation(func: Callable[Concatenate[TrashOperations, str, P], R]
                    ) -> Callable[Concatenate[TrashOperations, str, P], R]:
    """mount.ops.operation (DfsError -> its errno, anything else logged and EIO), typed for
    TrashOperations' methods."""
    return cast("Callable[Concatenate[TrashOperations, str, P], R]", operation(cast(Any, func)))


class TrashOperations(DfsOperations):
    """DfsOperations with the virtual trash folder. Attributes: ``trash_dir`` (its
    contents), ``trash_handles`` (fh -> bytes of an open info/ file)."""

    def __init__(self, client: DfsClient, cache_seconds: float = CACHE_SECONDS,
                 uid: int | None = None, gid: int | None = None) -> None:
        super().__init__(client, cache_seconds, uid, gid)
        self.trash_dir = TrashDir(client, self.uid, self.gid, cache_seconds)
        self.xattrs.virtual = lambda path: self.trash_dir.locate(path) is not None
        self.trash_handles: dict[int, bytes] = {}

    def _trash_attrs(self, area: str, name: str) -> Attrs:
        """The attributes of something in the trash folder; ENOENT if it is not there."""
        td = self.trash_dir
        if not name:  # the folder itself, or one of its three
            return td.dir_attrs(area)
        if area == "files" and "/" not in name:
            found = td.item(name)
            if found is not None:
                return td.item_attrs(*found)
        elif area == "info" and "/" not in name:
            found = td.info_item(name)
            if found is not None:
                return td.info_attrs(*found)
            ino = td.scratch_ino(name)
            if ino is not None:
                return td.file_attrs(ino, 0, td.started_ns)
        raise FuseError(errno.ENOENT)

    def _trash_id(self, name: str) -> str:
        found = self.trash_dir.item(name)
        if found is None:
            raise FuseError(errno.ENOENT)
        return found[0]

    def _purge(self, tid: str) -> None:
        self.client.trash_purge(tid)  # False: gone already, which is what was asked
        self.trash_dir.forget(tid)

    # --- looking ----------------------------------------------------------------------------

    @trash_operation
    def getattr(self, path: str, fh: int | None = None) -> Attrs:
        place = self.trash_dir.locate(path)
        if place is None:
            return super().getattr(path, fh)
        return self._trash_attrs(*place)

    @trash_operation
    def entries(self, path: str) -> Listing:
        place = self.trash_dir.locate(path)
        if place is None:
            found = super().entries(path)
            return found if path != "/" else self.trash_dir.root_entries(found, _warn_real)
        area, name = place
        attrs = self._trash_attrs(area, name)
        if not stat_mod.S_ISDIR(attrs["st_mode"]):
            raise FuseError(errno.ENOTDIR)
        td = self.trash_dir
        up = td.dir_attrs("") if area else {"st_mode": stat_mod.S_IFDIR, "st_ino": ROOT_INO}
        listed: Listing = [(".", attrs), ("..", up)]
        if not area:
            listed.extend((a, td.dir_attrs(a)) for a in ("files", "info", "expunged"))
        elif area == "files":
            listed.extend((n, td.item_attrs(e.trash_id, e)) for n, e in td.listing())
        elif area == "info":
            listed.extend((n + INFO_SUFFIX, td.info_attrs(e.trash_id, e))
                          for n, e in td.listing())
            listed.extend((n, self._trash_attrs("info", n)) for n in td.scratch_names())
        return listed

    @trash_operation
    def readlink(self, path: str) -> str:
        if self.trash_dir.locate(path) is None:
            return super().readlink(path)
        self.getattr(path)
        raise FuseError(errno.EINVAL)

    # --- making and removing ------------------------------------------------------------------

    @trash_operation
    def mkdir(self, path: str, mode: int) -> None:
        place = self.trash_dir.locate(path)
        if place is None:
            return super().mkdir(path, mode)
        raise FuseError(errno.EEXIST if not place[1] else errno.EPERM)

    @trash_operation
    def rmdir(self, path: str) -> None:
        place = self.trash_dir.locate(path)
        if place is None:
            return super().rmdir(path)
        area, name = place
        if name:
            self._trash_attrs(area, name)  # ENOENT if not there
            raise FuseError(errno.ENOTDIR)
        td = self.trash_dir
        if (area in ("", "files", "info") and td.listing()
                or area in ("", "info") and td.scratch_names()):
            raise FuseError(errno.ENOTEMPTY)
        return None  # the folders are always there: removing an empty one changes nothing

    @trash_operation
    def unlink(self, path: str) -> None:
        place = self.trash_dir.locate(path)
        if place is None:
            return super().unlink(path)  # the folder shows it within its 1 s cache time
        area, name = place
        attrs = self._trash_attrs(area, name)  # ENOENT if not there
        if stat_mod.S_ISDIR(attrs["st_mode"]):
            raise FuseError(errno.EISDIR)
        if area == "info" and self.trash_dir.drop_scratch(name):
            return None
        found = self.trash_dir.info_item(name) if area == "info" else self.trash_dir.item(name)
        if found is None:
            raise FuseError(errno.ENOENT)
        self._purge(found[0])
        return None

    @trash_operation
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        place = self.trash_dir.locate(path)
        if place is None:
            return super().create(path, mode, flags)
        area, name = place
        if area != "info" or not name or "/" in name:
            raise FuseError(errno.EPERM)
        if self.trash_dir.info_item(name) is not None:
            if flags & os.O_EXCL:
                raise FuseError(errno.EEXIST)
            return self.open(path, flags)
        if not self.trash_dir.add_scratch(name):
            raise FuseError(errno.ENOSPC)
        return self._trash_handle(b"")

    @trash_operation
    def symlink(self, path: str, target: str) -> None:
        if self.trash_dir.locate(path) is None:
            return super().symlink(path, target)
        raise FuseError(errno.EPERM)

    @trash_operation
    def mknod(self, path: str, mode: int, dev: int) -> None:
        if self.trash_dir.locate(path) is None:
            return super().mknod(path, mode, dev)
        raise FuseError(errno.EPERM)

    @trash_operation
    def link(self, path: str, existing: str) -> None:
        if self.trash_dir.locate(path) is None and self.trash_dir.locate(existing) is None:
            return super().link(path, existing)
        raise FuseError(errno.EPERM)

    # --- moving: into the trash, out of it, within it ---------------------------------------

    @trash_operation
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        src, dst = self.trash_dir.locate(old), self.trash_dir.locate(new)
        if src is None and dst is None:
            return super().rename(old, new, flags)
        known = binding.RENAME_NOREPLACE | binding.RENAME_EXCHANGE
        if flags & binding.RENAME_EXCHANGE or flags & ~known:
            raise FuseError(errno.EINVAL)
        if src is None and dst is not None:
            area, name = dst
            if area != "files" or not name or "/" in name:
                raise FuseError(errno.EPERM)
            if self.trash_dir.item(name) is not None:
                raise FuseError(errno.EEXIST)  # the name is another item's
            try:
                self._move_in(old, name)
            except errors.NotSupported as exc:  # an answer to the desktop, not a fault
                log.info("not moved into the trash: %s", exc.message)
                raise FuseError(errno.ENOTSUP) from None
        elif src is not None and dst is None:
            area, name = src
            if area != "files" or not name:
                raise FuseError(errno.EPERM)
            self._restore(self._trash_id(name), new, flags)
        elif src is not None and dst is not None:
            self._move_within(src, dst)
        return 0

    def _move_in(self, path: str, name: str) -> None:
        st = self.client.stat(path)  # not the cache: the trash id is this inode's number
        if st.kind == "d":
            self._move_tree_in(path)
            self.trash_dir.drop_scratch(name + INFO_SUFFIX)
        else:
            self.client.trash_move(path)
            self.trash_dir.adopt(str(st.ino), name)
        self.attrs.removed(path, tree=True)

    def _move_tree_in(self, top: str) -> None:
        """Every file below ``top`` into the trash, then its folders: checked first, so a
        tree the trash cannot keep whole is refused (ENOTSUP) with nothing changed."""
        files: list[str] = []
        folders: list[str] = []
        pending = [top]
        while pending:
            folder = pending.pop()
            folders.append(folder)
            for entry in self.client.listdir(folder):
                child = folder.rstrip("/") + "/" + entry.name
                if entry.stat.kind == "d":
                    pending.append(child)
                elif entry.stat.kind == "f" and entry.stat.nlink == 1:
                    files.append(child)
                else:
                    raise errors.NotSupported(f"{child}: the trash keeps only files with one "
                                              "name, so this folder cannot go there whole")
        for path in files:
            self.client.trash_move(path)
        for folder in reversed(folders):  # children before their parents
            self.client.rmdir(folder)

    def _restore(self, tid: str, dest: str, flags: int) -> None:
        try:
            there = self.client.stat(dest)
        except errors.FileNotFound:
            there = None
        if there is not None:
            if flags & binding.RENAME_NOREPLACE:
                raise FuseError(errno.EEXIST)
            if there.kind == "d":
                raise FuseError(errno.EISDIR)
            self.client.rm(dest)  # replaced, as rename does: into the trash, like any delete
        st = self.client.trash_restore(dest, tid)
        self.trash_dir.forget(tid)
        self.attrs.added(dest, st)

    def _move_within(self, src: tuple[str, str], dst: tuple[str, str]) -> None:
        (src_area, src_name), (dst_area, dst_name) = src, dst
        if not src_name or not dst_name or "/" in src_name + dst_name:
            raise FuseError(errno.EPERM)
        if src_area == "files" and dst_area == "expunged":
            self._purge(self._trash_id(src_name))  # gvfs deletes an item this way
        elif src_area == dst_area == "files":
            self._trash_id(src_name)
            if not self.trash_dir.rename(src_name, dst_name):
                raise FuseError(errno.EEXIST)
        elif src_area == dst_area == "info":
            if self.trash_dir.drop_scratch(src_name):  # gio's temporary trashinfo, done
                if self.trash_dir.info_item(dst_name) is None:
                    self.trash_dir.add_scratch(dst_name)
            elif dst_name.startswith(".fuse_hidden"):  # libfuse's unlink of an open file
                self.unlink(self.trash_dir.top + "/info/" + src_name)
                self.trash_dir.add_scratch(dst_name)
            else:
                raise FuseError(errno.EPERM)  # generated from the item: it has no other name
        else:
            raise FuseError(errno.EPERM)

    # --- open files: only info/ can be opened ---------------------------------------------

    def _trash_handle(self, content: bytes) -> int:
        fh = self.files.new_fh()
        self.trash_handles[fh] = content
        return fh

    @trash_operation
    def open(self, path: str, flags: int) -> int:
        place = self.trash_dir.locate(path)
        if place is None:
            return super().open(path, flags)
        area, name = place
        attrs = self._trash_attrs(area, name)
        if stat_mod.S_ISDIR(attrs["st_mode"]):
            raise FuseError(errno.EISDIR)
        if area == "files":
            log.debug("%s: a file in the trash cannot be read; restore it first", path)
            raise FuseError(errno.ENOTSUP)
        found = self.trash_dir.info_item(name)
        entry = found[1] if found is not None else None
        return self._trash_handle(trashinfo(entry) if entry is not None else b"")

    @trash_operation
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        content = self.trash_handles.get(fh)
        if content is None:
            return super().read(path, size, offset, fh)
        return content[offset:offset + size]

    @trash_operation
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if fh not in self.trash_handles:
            return super().write(path, data, offset, fh)
        return len(data)  # the info is generated from the trash record: what is written goes

    @trash_operation
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        place = self.trash_dir.locate(path)
        if place is None and fh not in self.trash_handles:
            return super().truncate(path, length, fh)
        return self._trash_setattr(path)

    @trash_operation
    def flush(self, path: str, fh: int) -> None:
        if fh not in self.trash_handles:
            return super().flush(path, fh)
        return None

    @trash_operation
    def fsync(self, path: str, datasync: int, fh: int) -> None:
        if fh not in self.trash_handles:
            return super().fsync(path, datasync, fh)
        return None

    @trash_operation
    def release(self, path: str, fh: int) -> int:
        if self.trash_handles.pop(fh, None) is None:
            return super().release(path, fh)
        return 0

    # --- attributes: info/ files take changes (and forget them), the rest refuses ------------

    def _trash_setattr(self, path: str) -> int:
        place = self.trash_dir.locate(path)
        if place is not None and place[0] == "info" and place[1]:
            self._trash_attrs(*place)  # ENOENT if not there
            return 0
        raise FuseError(errno.EPERM)

    @trash_operation
    def chmod(self, path: str, mode: int) -> None:
        if self.trash_dir.locate(path) is None:
            return super().chmod(path, mode)
        self._trash_setattr(path)
        return None

    @trash_operation
    def chown(self, path: str, uid: int | None, gid: int | None) -> int:
        if self.trash_dir.locate(path) is None:
            return super().chown(path, uid, gid)
        return self._trash_setattr(path)

    @trash_operation
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if self.trash_dir.locate(path) is None:
            return super().utimens(path, times)
        return self._trash_setattr(path)


def _warn_real(path: str) -> None:
    log.warning("the cluster has a real folder %s (made before this mount showed your DFS "
                "trash there); the mount shows your DFS trash in its place. See the folder "
                "with `dfs ls %s`, remove it with `dfs rm -r %s`", path, path, path)

"""The master's extended-attribute endpoints: getxattr, listxattr, setxattr, removexattr.
Each checks its arguments' types and sizes (a name of at most 255 bytes, a value of at most
64 KiB) before any lock, then asks dfs/namespace/rules_xattr.py. setxattr and removexattr
carry a request id (``rid``), so a retry after a failover is answered with what the first
try did instead of EEXIST/ENODATA; they answer the inode's new stat."""

from __future__ import annotations

from dfs import wire
from dfs.namespace import rules_xattr
from dfs.namespace.inode import as_path
from nodes.master.fs_service import FsEndpoints
from nodes.rpcserver import boundary


class XattrEndpoints(FsEndpoints):
    @boundary
    def exposed_getxattr(self, path: object, name: object) -> bytes:
        """-> the whole value (the mount cuts nothing: a short buffer is ERANGE there)."""
        path, name = as_path(path), rules_xattr.check_name(name)
        with self.state.lock:
            user = self._serving()
            return rules_xattr.get(self.state.ns, user, path, name)

    @boundary
    def exposed_listxattr(self, path: object) -> tuple[str, ...]:
        """-> the names this caller may see (trusted.* only to the superuser)."""
        path = as_path(path)
        with self.state.lock:
            user = self._serving()
            return tuple(rules_xattr.names(self.state.ns, user, path))

    @boundary
    def exposed_setxattr(self, path: object, name: object, value: object, flags: object = 0,
                         rid: object = None) -> wire.Wire:
        """``flags``: XATTR_CREATE, XATTR_REPLACE (linux/xattr.h). -> the inode's stat."""
        path, name = as_path(path), rules_xattr.check_name(name)
        value = rules_xattr.check_value(value)
        flags = rules_xattr.check_flags(flags)
        return self._once(rid, lambda ns, user, now: rules_xattr.set_value(
            ns, user, path, name, value, flags, now), made=True)

    @boundary
    def exposed_removexattr(self, path: object, name: object, rid: object = None) -> wire.Wire:
        """-> the inode's stat; ENODATA if it has no such attribute."""
        path, name = as_path(path), rules_xattr.check_name(name)
        return self._once(rid, lambda ns, user, now: rules_xattr.remove(ns, user, path, name,
                                                                        now), made=True)

"""The mount's extended attributes: getxattr, listxattr, setxattr, removexattr, one client
call each (the rules: dfs/namespace/rules_xattr.py); mount.ops dispatches to ``Xattrs``.

The size protocol is mfusepy's: it asks for the whole value (or list) and answers a size
query (a NULL buffer) with its length, a buffer too small with ERANGE; so here every call
answers whole values.

No round trip where the answer is known: the kernel asks for ``security.capability``
before every write(2) (to drop file capabilities; ``no_capability`` answers it before
the operation's machinery) and ``ls -l`` asks for
``security.selinux`` of every name. Each Stat says in which namespaces (user., security.)
its inode has attributes (wire.Stat.xattrs) and the mount keeps Stats a second
(mount.attrcache), so a get in a namespace the inode has nothing in answers ENODATA, and a
list of an inode with neither answers nothing (not to the superuser, who also sees
trusted.*, which a Stat never tells), all without asking the master. Another client's
change shows within that second, as its other attribute changes do; this mount's own at
once (set and remove answer the new Stat). Names the cluster does not keep (system.*,
other prefixes) are refused here too, as the master would (EOPNOTSUPP). Paths the mount
makes up itself (``virtual``: the trash folder of mount.trashops) have no attributes and
take none (ENOTSUP), as a file system without xattrs answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dfs import errors
from dfs.namespace import rules_xattr
from dfs.wire import XATTR_SECURITY, XATTR_USER

if TYPE_CHECKING:
    from mount.ops import DfsOperations


def namespace_bit(name: str) -> int:
    """The Stat.xattrs bit that says whether ``name`` may exist (0: a Stat does not say)."""
    if name.startswith(rules_xattr.USER):
        return XATTR_USER
    if name.startswith(rules_xattr.SECURITY):
        return XATTR_SECURITY
    return 0


def nothing_virtual(path: str) -> bool:
    return False


class Xattrs:
    def __init__(self, ops: DfsOperations) -> None:
        self.ops = ops
        self.virtual: Callable[[str], bool] = nothing_virtual  # paths the mount makes up

    def _real(self, path: str) -> None:
        if self.virtual(path):
            raise errors.NotSupported(f"{path} keeps no extended attributes")

    def _superuser(self) -> bool:
        """Does the caller of this request act as the superuser (and see trusted.*)?"""
        if self.ops.callers is not None:
            return self.ops.callers.ids()[0] == 0
        return self.ops.base_client.is_admin

    def no_capability(self, path: str) -> bool:
        """Is ``security.capability`` surely not on ``path`` by the Stat cached now? The
        kernel asks before every write(2): answered without a call or a raised errno
        (mount.binding). False when the cache cannot tell: ``get`` then decides."""
        st = self.ops.attrs.get(path)
        return st is not None and not st.xattrs & XATTR_SECURITY

    def get(self, path: str, name: str) -> bytes:
        rules_xattr.check_name(name)
        bit = namespace_bit(name)
        if self.virtual(path) or bit and not self.ops._stat(path).xattrs & bit:
            raise errors.NoAttribute(f"{path}: no attribute {name}")
        return self.ops.client.getxattr(path, name)

    def names(self, path: str) -> list[str]:
        if self.virtual(path):
            return []
        if not self.ops._stat(path).xattrs and not self._superuser():
            return []
        return self.ops.client.listxattr(path)

    def set(self, path: str, name: str, value: bytes, flags: int) -> None:
        rules_xattr.check_name(name)
        rules_xattr.check_value(value)
        self._real(path)
        self.ops.attrs.put(path, self.ops.client.setxattr(path, name, value, flags))

    def remove(self, path: str, name: str) -> None:
        rules_xattr.check_name(name)
        self._real(path)
        self.ops.attrs.put(path, self.ops.client.removexattr(path, name))

"""The rules of extended attributes, as pure functions (see dfs/namespace/rules.py for the
conventions). They answer as Linux's VFS (fs/xattr.c, commoncap) over ext4 mounted without
POSIX ACLs does, so the mount, whose kernel checks the same things first, and the client
API agree:

- Namespaces: ``user.*``, ``trusted.*`` and ``security.*`` are stored on the inode (so every
  hard link, a rename, the trash, snapshots and failover keep them). Any other name,
  ``system.posix_acl_access``/``_default`` included, is EOPNOTSUPP, as ext4 without ACLs
  says. A name that is only a prefix (``user.``) is EINVAL.
- ``user.*``: only regular files and directories have them (setting one elsewhere is EPERM,
  reading ENODATA, whoever asks: Linux has no owner exception); reading needs read
  permission, setting or removing write permission (EACCES), and on a sticky directory
  also ownership (EPERM).
- ``trusted.*``: the superuser only; to anyone else they do not exist: not listed, reading
  is ENODATA, setting EPERM.
- ``security.*``: anyone who reaches the inode reads and lists them (no permission bits
  asked, as Linux with no security module); only the superuser sets or removes them
  (commoncap's CAP_SYS_ADMIN: EPERM). One exception: ``security.capability`` is removed by
  whoever may write the file or owns it, since the kernel itself removes it (as the writer)
  when a file is written or chowned, and that write must not fail.
- Listing needs no permission on the inode itself (Linux asks none): ``user.*`` and
  ``security.*`` names are shown to whoever reaches it.
- Limits: a name of at most 255 bytes (longer or empty: ERANGE, as the syscall), a value
  of at most 64 KiB (XATTR_SIZE_MAX: E2BIG), and the names, a NUL each and values of one
  inode within XATTR_SPACE bytes (ENOSPC beyond: ext4 keeps them in one 4 KiB block unless
  ``ea_inode``; here 64 KiB, which also keeps a listing within XATTR_LIST_MAX).
- ``flags``: XATTR_CREATE (EEXIST if the name is set), XATTR_REPLACE (ENODATA if it is not);
  any other bit is EINVAL. Setting or removing changes ctime.

Where the caller's buffer is too small (ERANGE) is the mount's business: the rules answer
whole values and lists.
"""

from __future__ import annotations

from dfs import errors
from dfs.namespace import access
from dfs.namespace.access import Cred
from dfs.namespace.entries import SetXattr
from dfs.namespace.inode import Inode, R, W
from dfs.namespace.model import Namespace

XATTR_NAME_MAX = 255  # bytes (linux/limits.h)
XATTR_SIZE_MAX = 65536  # bytes of one value (linux/limits.h)
XATTR_SPACE = 65536  # bytes of one inode's names (+ a NUL each) and values
XATTR_CREATE, XATTR_REPLACE = 1, 2  # linux/xattr.h
USER, TRUSTED, SECURITY = "user.", "trusted.", "security."
CAPABILITY = "security.capability"  # file capabilities: dropped by a write or a chown
NAMESPACES = (USER, TRUSTED, SECURITY)


# --- the arguments, checked at the boundary before any lock ------------------------------------

def check_name(name: object) -> str:
    """An attribute name from a request: a str of 1..255 bytes (UTF-8) without NUL, in a
    namespace this file system keeps, with something after the prefix."""
    if type(name) is not str:
        raise errors.InvalidArgument("an attribute name must be a string")
    size = len(name.encode("utf-8", "surrogateescape"))
    if not 0 < size <= XATTR_NAME_MAX:
        raise errors.OutOfRange(f"attribute names are 1 to {XATTR_NAME_MAX} bytes long")
    if "\0" in name:
        raise errors.InvalidArgument("an attribute name cannot contain a NUL byte")
    prefix = next((p for p in NAMESPACES if name.startswith(p)), None)
    if prefix is None:
        raise errors.NotSupported(f"{name}: only user.*, trusted.* and security.* attributes "
                                  "are kept (no POSIX ACLs: as ext4 mounted noacl)")
    if name == prefix:
        raise errors.InvalidArgument(f"{name}: an attribute name needs more than its prefix")
    return name


def check_value(value: object) -> bytes:
    if type(value) is not bytes:
        raise errors.InvalidArgument("an attribute value must be bytes")
    if len(value) > XATTR_SIZE_MAX:
        raise errors.TooBig(f"attribute values are at most {XATTR_SIZE_MAX} bytes")
    return value


def check_flags(flags: object) -> int:
    if type(flags) is not int or flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise errors.InvalidArgument("flags may only be XATTR_CREATE and XATTR_REPLACE")
    return flags


def space(xattrs: dict[str, bytes]) -> int:
    """What one inode's attributes take of XATTR_SPACE: each name, its NUL and its value."""
    return sum(len(k.encode("utf-8", "surrogateescape")) + 1 + len(v)
               for k, v in xattrs.items())


# --- who may do what -----------------------------------------------------------------------------

def _may_read(user: Cred, ns: Namespace, inode: Inode, name: str, path: str) -> None:
    """Raise unless ``user`` may read attribute ``name`` of ``inode`` (existing or not)."""
    if name.startswith(TRUSTED) and not user.superuser:
        raise errors.NoAttribute(f"{path}: no attribute {name}")
    if name.startswith(USER):
        if inode.kind not in ("f", "d"):
            raise errors.NoAttribute(f"{path}: no attribute {name}")
        ns.require(user, inode, R, path)


def _may_write(user: Cred, ns: Namespace, inode: Inode, name: str, path: str) -> None:
    """Raise unless ``user`` may set or remove attribute ``name`` of ``inode``."""
    if name.startswith((TRUSTED, SECURITY)):
        if not user.superuser:
            raise errors.NotPermitted(f"{path}: only the superuser sets {name.split('.')[0]}.* "
                                      "attributes")
        return
    if inode.kind not in ("f", "d"):
        raise errors.NotPermitted(f"{path}: user.* attributes are kept only on regular files "
                                  "and directories")
    if inode.kind == "d" and inode.mode & access.S_ISVTX and not access.owns(user,
                                                                             inode.owned()):
        raise errors.NotPermitted(f"{path}: the directory is sticky: only its owner sets its "
                                  "user.* attributes")
    ns.require(user, inode, W, path)


def visible(user: Cred, name: str) -> bool:
    """Is ``name`` listed to ``user``? (trusted.* only to the superuser)"""
    return user.superuser or not name.startswith(TRUSTED)


# --- the rules ------------------------------------------------------------------------------------

def get(ns: Namespace, user: Cred, path: str, name: str) -> bytes:
    """The value of attribute ``name`` (checked by check_name) of what ``path`` names."""
    inode = ns.resolve(path, user)
    _may_read(user, ns, inode, name, path)
    value = inode.xattrs.get(name)
    if value is None:
        raise errors.NoAttribute(f"{path}: no attribute {name}")
    return value


def names(ns: Namespace, user: Cred, path: str) -> list[str]:
    """The attribute names of what ``path`` names that ``user`` may see, in the order set."""
    inode = ns.resolve(path, user)
    return [name for name in inode.xattrs if visible(user, name)]


def set_value(ns: Namespace, user: Cred, path: str, name: str, value: bytes, flags: int,
              now_ns: int) -> SetXattr:
    """setxattr: ``name``, ``value`` and ``flags`` passed check_name, check_value and
    check_flags."""
    inode = ns.resolve(path, user)
    _may_write(user, ns, inode, name, path)
    old = inode.xattrs.get(name)
    if flags & XATTR_CREATE and old is not None:
        raise errors.FileExists(f"{path}: attribute {name} exists (XATTR_CREATE)")
    if flags & XATTR_REPLACE and old is None:
        raise errors.NoAttribute(f"{path}: no attribute {name} to replace (XATTR_REPLACE)")
    if space({**inode.xattrs, name: value}) > XATTR_SPACE:
        raise errors.NoSpace(f"{path}: its attributes would take more than {XATTR_SPACE} "
                             "bytes")
    return SetXattr(inode.ino, name, value, now_ns)


def remove(ns: Namespace, user: Cred, path: str, name: str, now_ns: int) -> SetXattr:
    """removexattr: ENODATA if ``name`` (checked by check_name) is not set."""
    inode = ns.resolve(path, user)
    if not (name == CAPABILITY and (access.owns(user, inode.owned())
                                    or ns.allowed(user, inode, W))):
        _may_write(user, ns, inode, name, path)
    if name not in inode.xattrs:
        raise errors.NoAttribute(f"{path}: no attribute {name}")
    return SetXattr(inode.ino, name, None, now_ns)

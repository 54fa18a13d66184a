"""`dfs mount --nosymfollow`: the local kernel follows no symlink on the mount.

What a remote symlink can do: DFS stores a symlink's target as written and gives it back as
written; it is resolved by the kernel of whoever follows it, on that machine. An absolute
target ("/etc/shadow") names a *local* file, and a relative one may climb out of the mount
("../../etc"). So a symlink that another user planted in a folder you share makes a local
program that opens a path through it (a backup running as root, say) read or write a file
of this machine, outside the mount. The kernel's ``nosymfollow`` (Linux 5.10) makes every
path walk through the mount refuse to follow a symlink (ELOOP), whichever process walks;
readlink(2) still answers, so ``ls -l``, ``tar``, ``rsync -a`` and ``cp -a`` (which copy a
link as a link) keep working, while ``realpath``, ``cd LINK`` and opening through a link
fail.

How: libfuse 3.14 does not know the option (it refuses ``-o nosymfollow``), so the mount
process, once the folder is live, remounts it with MS_REMOUNT | MS_BIND | MS_NOSYMFOLLOW,
keeping its other per-mount flags. That needs root (CAP_SYS_ADMIN): asked by anyone else
the mount is refused before it starts. `dfs mount` returns only once /proc/self/mountinfo
shows the flag; a remount that fails unmounts the folder again and the mount fails.
"""

from __future__ import annotations

import ctypes
import os
import sys

from dfs import errors

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8  # linux/mount.h
MS_REMOUNT = 32
MS_NOSYMFOLLOW = 256
MS_BIND = 4096
KEPT = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
"""Per-mount options a bind remount must pass again to keep them (the atime ones are kept
by the kernel when none is passed)."""
OPTION = "nosymfollow"


def check_possible() -> None:
    """NotPermitted unless this process may remount (root), before anything is mounted."""
    if not hasattr(os, "geteuid") or not sys.platform.startswith("linux"):
        raise errors.NotSupported("--nosymfollow needs Linux (its nosymfollow mount flag)")
    if os.geteuid() != 0:
        raise errors.NotPermitted("--nosymfollow needs root: the kernel's nosymfollow flag "
                                  "is set by remounting the folder (libfuse cannot pass it)")


def apply(mount_dir: str, options: list[str]) -> None:
    """Remount ``mount_dir`` (whose per-mount options are ``options``) with nosymfollow."""
    flags = MS_REMOUNT | MS_BIND | MS_NOSYMFOLLOW
    for option in options:
        flags |= KEPT.get(option, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p)
    if libc.mount(None, os.fsencode(mount_dir), None, flags, None) != 0:
        code = ctypes.get_errno()
        raise errors.NotSupported(f"cannot set nosymfollow on {mount_dir}: "
                                  f"{os.strerror(code)} (it needs root and Linux 5.10)")

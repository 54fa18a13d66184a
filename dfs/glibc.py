"""glibc's malloc controls, for the processes that give freed memory back to the system:
the mount (mount/memory.py) and the metadata servers (nodes/master/heap.py). Each keeps its
own policy; this is only the door to the library. Elsewhere than glibc: None, a no-op."""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt parameters (malloc.h)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def libc() -> ctypes.CDLL | None:
    """glibc, if it is this process's C library and has malloc_trim and mallopt."""
    try:
        found = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return found if hasattr(found, "malloc_trim") and hasattr(found, "mallopt") else None


def resident_bytes() -> int | None:
    """This process's resident size (Linux /proc), or None when it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None

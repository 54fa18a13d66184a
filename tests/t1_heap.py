"""t1: the processes' heap policies over glibc (dfs/glibc.py): the metadata server trims
once its resident size grew enough since the last trim (nodes/master/heap.py), the mount
once enough was freed (mount/memory.py); without glibc both do nothing."""

import pytest

from dfs import glibc
from mount.memory import TRIM_AFTER
from mount.memory import Heap as MountHeap
from nodes.master.heap import TRIM_GROWTH, Heap

needs_glibc = pytest.mark.skipif(glibc.libc() is None, reason="not glibc")


def test_resident_size_is_read():
    assert glibc.resident_bytes() > 1 << 20


@needs_glibc
def test_the_master_trims_only_after_its_resident_size_grew():
    heap = Heap()
    heap.tick()
    assert heap.trims == 0  # it has not grown by TRIM_GROWTH since it was made
    heap.floor = glibc.resident_bytes() - TRIM_GROWTH  # as if it had
    heap.tick()
    assert heap.trims == 1 and heap.floor > 0
    heap.tick()
    assert heap.trims == 1


@needs_glibc
def test_the_mount_trims_once_enough_was_freed():
    heap = MountHeap()
    heap.freed(TRIM_AFTER - 1)
    assert heap.trimmed_at == 0
    heap.freed(TRIM_AFTER)
    assert heap.trimmed_at == TRIM_AFTER
    heap.freed(TRIM_AFTER + 10)
    assert heap.trimmed_at == TRIM_AFTER


def test_without_glibc_nothing_happens():
    heap, mount_heap = Heap(), MountHeap()
    heap.libc = mount_heap.libc = None
    heap.floor = 0
    heap.tick()
    mount_heap.freed(1 << 30)
    assert heap.trims == 0 and mount_heap.trimmed_at == 0

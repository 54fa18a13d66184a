"""Chunk arithmetic and checksums.

A chunk is at most ``chunk_size`` bytes of one file. Each chunk carries a CRC32C of its
whole content (kept by the master, checked by readers end to end) and one CRC32C per
64 KiB block (kept by the worker beside the chunk, checked on every read so a bad block is
found before any byte leaves the worker). crc32c is C code that releases the GIL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import crc32c as _crc32c

from dfs.config import BLOCK_SIZE

BytesLike = bytes | bytearray | memoryview

MAX_FILE_SIZE = (1 << 63) - 1
"""The largest file: the kernel's (MAX_LFS_FILESIZE, what ftruncate and pwrite accept)."""


def crc(data: BytesLike) -> int:
    return _crc32c.crc32c(data)


def crc_update(data: BytesLike, previous: int) -> int:
    """CRC32C of the bytes so far followed by ``data``."""
    return _crc32c.crc32c(data, previous)


def block_crcs(data: BytesLike, block_size: int = BLOCK_SIZE) -> tuple[int, ...]:
    """CRC32C of each block of ``data`` (the last block may be short)."""
    view = memoryview(data)
    return tuple(_crc32c.crc32c(view[i:i + block_size]) for i in range(0, len(data), block_size))


def first_bad_block(data: BytesLike, crcs: Sequence[int], block_size: int = BLOCK_SIZE,
                    first_block: int = 0) -> int | None:
    """Index of the first block of ``data`` whose CRC differs from ``crcs``, or None.

    ``data`` starts at block ``first_block`` of the chunk.
    """
    view = memoryview(data)
    for n, start in enumerate(range(0, len(data), block_size)):
        index = first_block + n
        if index >= len(crcs) or _crc32c.crc32c(view[start:start + block_size]) != crcs[index]:
            return index
    return None


def chunk_spans(offset: int, length: int, chunk_size: int) -> Iterator[tuple[int, int, int]]:
    """Split the byte range [offset, offset+length) into (chunk_index, start_in_chunk, count)."""
    end = offset + length
    while offset < end:
        index, start = divmod(offset, chunk_size)
        count = min(chunk_size - start, end - offset)
        yield index, start, count
        offset += count


def chunk_count(size: int, chunk_size: int) -> int:
    return (size + chunk_size - 1) // chunk_size


def is_zero(data: bytes | bytearray) -> bool:
    """Only zero bytes (a chunk like that is a hole: it need not be stored)."""
    if not data:
        return True
    if data[0] or data[-1]:  # most data says no at once
        return False
    return data.count(0) == len(data)


def data_length(data: BytesLike, block: int = BLOCK_SIZE) -> int:
    """``len(data)`` without its trailing zeros if they run for ``block`` bytes or more
    (they read as zeros when left out). A shorter run stays: it would save little, and a
    chunk of ordinary data then keeps the length of that data."""
    view = memoryview(data)
    end = len(view)
    if end < block or view[end - 1]:
        return end
    while end:
        start = max(0, end - block)
        kept = len(bytes(view[start:end]).rstrip(b"\0"))
        if kept:
            end = start + kept
            break
        end = start
    return end if len(view) - end >= block else len(view)


# Where data and holes are (SEEK_DATA, SEEK_HOLE): ``lengths`` maps each stored chunk's
# index to its length; everything else below ``size`` is a hole, and so is the end of file.

def find_data(lengths: Mapping[int, int], offset: int, size: int, chunk_size: int) -> int | None:
    """The first offset >= ``offset`` holding stored bytes, or None (only holes up to the
    end: lseek's ENXIO)."""
    if offset >= size:
        return None
    for index in sorted(i for i in lengths if (i + 1) * chunk_size > offset):
        start = index * chunk_size
        if start + lengths[index] > offset:
            return max(start, offset)
    return None


def find_hole(lengths: Mapping[int, int], offset: int, size: int, chunk_size: int) -> int | None:
    """The first offset >= ``offset`` in a hole (the end of the file counts as one), or
    None if ``offset`` is at or past the end."""
    if offset >= size:
        return None
    pos = offset
    for index in sorted(i for i in lengths if (i + 1) * chunk_size > offset):
        start = index * chunk_size
        if start > pos:
            break  # a missing chunk before this one
        end = start + lengths[index]
        if end < start + chunk_size or end <= pos:
            pos = max(pos, end)  # the short chunk's tail reads as zeros
            break
        pos = end
    return min(pos, size)

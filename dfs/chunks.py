"""Chunk arithmetic and checksums.

A chunk is at most ``chunk_size`` bytes of one file. Each chunk carries a CRC32C of its
whole content (kept by the master, checked by readers end to end) and one CRC32C per
64 KiB block (kept by the worker beside the chunk, checked on every read so a bad block is
found before any byte leaves the worker). crc32c is C code that releases the GIL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import crc32c as _crc32c

from dfs.config import BLOCK_SIZE

BytesLike = bytes | bytearray | memoryview


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

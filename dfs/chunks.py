"""Chunk arithmetic and checksums.

A chunk is at most ``chunk_size`` bytes of one file. Each chunk carries a CRC32C of its
whole content (kept by the master, checked by readers end to end) and one CRC32C per
64 KiB block (kept by the worker beside the chunk, checked on every read so a bad block is
found before any byte leaves the worker). crc32c is C code that releases the GIL.
"""

import crc32c as _crc32c

from dfs.config import BLOCK_SIZE


def crc(data):
    return _crc32c.crc32c(data)


def crc_update(data, previous):
    """CRC32C of the bytes so far followed by ``data``."""
    return _crc32c.crc32c(data, previous)


def block_crcs(data, block_size=BLOCK_SIZE):
    """CRC32C of each block of ``data`` (the last block may be short)."""
    view = memoryview(data)
    return tuple(_crc32c.crc32c(view[i:i + block_size]) for i in range(0, len(data), block_size))


def first_bad_block(data, crcs, block_size=BLOCK_SIZE, first_block=0):
    """Index of the first block of ``data`` whose CRC differs from ``crcs``, or None.

    ``data`` starts at block ``first_block`` of the chunk.
    """
    view = memoryview(data)
    for n, start in enumerate(range(0, len(data), block_size)):
        index = first_block + n
        if index >= len(crcs) or _crc32c.crc32c(view[start:start + block_size]) != crcs[index]:
            return index
    return None


def chunk_spans(offset, length, chunk_size):
    """Split the byte range [offset, offset+length) into (chunk_index, start_in_chunk, count)."""
    end = offset + length
    while offset < end:
        index, start = divmod(offset, chunk_size)
        count = min(chunk_size - start, end - offset)
        yield index, start, count
        offset += count


def chunk_count(size, chunk_size):
    return (size + chunk_size - 1) // chunk_size

"""One chunk being received by a worker, from its temp file to its place in the store.

Pieces are appended in order to ``DATA/tmp/<id>.<kind>`` and checksummed as they arrive
(the whole chunk's CRC32C and each 64 KiB block's). ``commit`` makes the chunk complete:
the ``.crc`` file is renamed into place first, the data file last, both after an fsync, so
a data file without its ``.crc`` is a torn write (ChunkStore.inventory removes it).

Threads: an Upload is used by one writer at a time; the staging table that holds the
uploads in progress, and its lock, are the ChunkStore's.
"""

from __future__ import annotations

import array
import contextlib
import os

from dfs import chunks, errors
from dfs.config import BLOCK_SIZE
from dfs.fsutil import fsync_dir, open_private


class Upload:
    """A chunk being received: appended in order, checksummed as it arrives."""

    def __init__(self, path: str, total: int, now: float) -> None:
        self.path = path
        self.total = total
        self.written = 0
        self.crc = 0
        self.block_crcs: list[int] = []
        self.touched = now  # when the last piece came (ChunkStore.lock)
        self.file = open_private(path)

    def add(self, data: bytes) -> None:
        if self.written + len(data) > self.total:
            raise errors.InvalidArgument("more bytes than the chunk's announced length")
        if self.written % BLOCK_SIZE or (len(data) % BLOCK_SIZE and
                                         self.written + len(data) != self.total):
            raise errors.InvalidArgument(f"pieces must be multiples of {BLOCK_SIZE} bytes")
        self.file.write(data)
        self.crc = chunks.crc_update(data, self.crc)
        self.block_crcs.extend(chunks.block_crcs(data))
        self.written += len(data)

    def commit(self, chunk_id: int, crc: int, final: str) -> None:
        """The whole chunk arrived: check it against the sender's ``crc`` (ChunkCorrupt),
        then make it durable as ``final`` and ``final.crc``. On any error the caller
        ``abort``s: the temp files go."""
        if self.crc != crc:
            raise errors.ChunkCorrupt(f"chunk {chunk_id} arrived damaged (checksum mismatch)")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        crc_tmp = self.path + ".crc"
        with open_private(crc_tmp) as f:
            f.write(array.array("I", self.block_crcs).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(crc_tmp, final + ".crc")
        os.replace(self.path, final)
        fsync_dir(os.path.dirname(final))  # the renames too must survive a power cut

    def abort(self) -> None:
        """Close and remove the temp files (the data, and the checksums if begun)."""
        self.file.close()
        for path in (self.path, self.path + ".crc"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

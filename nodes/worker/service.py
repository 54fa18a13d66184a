"""The worker's rpyc service: the door to its chunks.

Each exposed method checks its arguments' exact types (``expect``) and its authority (a
chunk token the master signed for that chunk and op, or the voter signature), then calls
the store. Threads: rpyc runs one per connection (clients, other workers, metadata
servers); what they share is in the ChunkStore and the Voter, each with its own lock.

The whole worker (this service, the scrubber, a reporter per metadata server) is started
by ``nodes.worker.main.run``.
"""

from __future__ import annotations

import rpyc

from dfs import errors, metrics
from nodes.master.links import serve_voter_call
from nodes.replay import check_signed_call
from nodes.rpcserver import PlainConnection, boundary, expect
from nodes.worker.node import Worker
from nodes.worker.store import MAX_PIECE, as_kind


class WorkerService(rpyc.Service):
    """Data calls from clients and other workers; each needs a chunk token."""

    _protocol = PlainConnection  # no client object ever reaches a method (nodes/rpcserver.py)

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    @boundary
    def exposed_write(self, token: object, chunk_id: object, kind: object, offset: object,
                      data: object, total: object, crc: object) -> bool:
        """Store a piece of a chunk. -> True once the whole chunk is durable."""
        chunk_id = expect(chunk_id, int, "chunk id")
        offset = expect(offset, int, "offset")
        data = expect(data, bytes, "data")
        total = expect(total, int, "total")
        crc = expect(crc, int, "crc")
        replica = as_kind(kind)
        self.worker.check_token(token, "w", chunk_id)
        store = self.worker.store
        if not 0 < total <= store.chunk_size or len(data) > MAX_PIECE:
            raise errors.InvalidArgument("chunk or piece larger than allowed")
        if offset < 0 or offset + len(data) > total or not data:
            raise errors.InvalidArgument("piece outside the chunk")
        with self.worker.activity():
            done = store.write(chunk_id, replica, offset, data, total, crc)
        metrics.BYTES_IN.labels("client").inc(len(data))
        return done

    @boundary
    def exposed_voter(self, method: object, args: object, stamp: object, mac: object) -> object:
        """Leases, votes and stale marks asked by a metadata server (signed)."""
        return serve_voter_call(self.worker.voter_secret, self.worker.voter,
                                self.worker.worker_id, method, args, stamp, mac)

    @boundary
    def exposed_fsck_scan(self, stamp: object, mac: object) -> tuple[tuple[int, str, bool], ...]:
        """A metadata server (signed with the voter secret) asks for every chunk here, each
        re-read and checked: -> ((chunk id, kind, checksums good), ...)."""
        check_signed_call(self.worker.voter_secret, "fsck_scan", (), stamp, mac,
                          self.worker.worker_id)
        store = self.worker.store
        found = []
        for chunk_id, kind in sorted(store.inventory()):
            ok = store.verify(chunk_id, kind)
            if ok is not None:
                found.append((chunk_id, kind, ok))
        return tuple(found)

    @boundary
    def exposed_read(self, token: object, chunk_id: object, offset: object,
                     length: object) -> tuple[bytes, int]:
        """-> (bytes, chunk length); every block touched is checksum-verified first."""
        chunk_id = expect(chunk_id, int, "chunk id")
        offset = expect(offset, int, "offset")
        length = expect(length, int, "length")
        self.worker.check_token(token, "r", chunk_id)
        with self.worker.activity():
            data, chunk_length = self.worker.store.read(chunk_id, offset, length)
        metrics.BYTES_OUT.inc(len(data))
        return data, chunk_length

    @boundary
    def exposed_read_blocks(self, token: object, chunk_id: object, first_block: object,
                            count: object) -> tuple[bytes, tuple[int, ...], int]:
        """-> (whole blocks from ``first_block``, their stored CRC32Cs, chunk length): a
        random read's few blocks, which the client verifies itself."""
        chunk_id = expect(chunk_id, int, "chunk id")
        first_block = expect(first_block, int, "first block")
        count = expect(count, int, "block count")
        self.worker.check_token(token, "r", chunk_id)
        with self.worker.activity():
            data, crcs, chunk_length = self.worker.store.read_blocks(chunk_id, first_block,
                                                                     count)
        metrics.BYTES_OUT.inc(len(data))
        return data, crcs, chunk_length


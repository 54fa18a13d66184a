"""One worker's identity and what it does for the master: check chunk tokens, carry out
the commands heartbeats bring back (delete a replica, copy one from another worker,
re-check one a client reported corrupt, quarantine one found corrupt here).

``DATA/worker-id`` holds this worker's stable name, created at the first start. The
secrets are derived from the cluster's join token (dfs.auth). Commands run on the
reporters' executors, data calls on rpyc's connection threads; everything shared is in
the ChunkStore (its own lock) or the Voter (``Voter.lock``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid

from dfs import auth, chunks, errors, metrics, rpc, tls
from dfs.config import MIB, Address, WorkerConfig
from dfs.fsutil import write_atomic
from nodes.master.voter import Voter
from nodes.rpcserver import expect
from nodes.worker.store import ChunkStore, Kind, as_kind

log = logging.getLogger(__name__)

Command = tuple[object, ...]
"""What a heartbeat answer holds, decided by the master (nodes/master/placement.py):
``("delete", chunk_id, kind)``, ``("verify", chunk_id, kind)``, ``("quarantine", chunk_id,
kind)`` or ``("replicate", chunk_id, kind, source_host, source_port, source_kind,
read_token)``."""

REPLICATE_PIECE = MIB  # bytes asked per read call when copying a chunk from another worker


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.store = ChunkStore(config.data_dir, config.capacity, config.upload_idle,
                                reserve=config.disk_reserve)
        self.worker_id = self._load_or_create_id()
        self.secret = auth.chunk_secret(config.join_token)
        self.voter_secret = auth.voter_secret(config.join_token)
        self.tokens = auth.VerifiedTokens()
        if tls.enabled(config.tls, config.host):
            # the cluster certificate from a master (kept for restarts): dfs.tls says why
            # that is safe; until then this worker does not listen
            tls.activate(tls.join_identity(config.data_dir, config.join_token, config.masters))
        self.voter = Voter(os.path.join(config.data_dir, "voter.json"), time.monotonic,
                           config.lease)
        self.address: Address = (config.host, config.port)
        """Where clients reach us: the real port once the server is bound."""

    def _load_or_create_id(self) -> str:
        path = os.path.join(self.config.data_dir, "worker-id")
        try:
            with open(path, encoding="ascii") as f:
                return f.read().strip()
        except FileNotFoundError:
            worker_id = "w-" + uuid.uuid4().hex[:10]
            write_atomic(path, worker_id.encode("ascii") + b"\n")
            return worker_id

    def check_token(self, token: object, op: str, chunk_id: int) -> None:
        """Fencing: a token from an epoch older than the newest we know is refused. Each
        token's signature is checked once (auth.VerifiedTokens): it comes with every piece."""
        self.tokens.verify(self.secret, token, op, chunk_id, self.voter.epoch)

    def activity(self) -> contextlib.AbstractContextManager[None]:
        """Wraps a data call, so heartbeats report the load."""
        return self.store.serving()

    def replicate(self, chunk_id: int, kind: Kind, host: str, port: int, source_kind: str,
                  token: str) -> None:
        """Copy a chunk from another worker (the master asked, to restore replication)."""
        conn = rpc.connect(host, port)
        try:
            blob = rpc.read_pieces(
                lambda offset: rpc.call(conn, "read", token, chunk_id, offset, REPLICATE_PIECE),
                None, f"chunk {chunk_id} while replicating")
        finally:
            conn.close()
        if not blob:
            return
        self.store.write(chunk_id, kind, 0, blob, len(blob), chunks.crc(blob))
        metrics.BYTES_IN.labels("replication").inc(len(blob))
        log.info("replicated chunk %d from %s:%d (%s) as %s", chunk_id, host, port,
                 source_kind, kind)

    def verify(self, chunk_id: int, kind: Kind) -> None:
        """A client reported this copy corrupt: check it here. Only a failure found here
        is reported to the metadata servers (as the scrubber reports, in the heartbeat)."""
        if self.store.verify(chunk_id, kind) is False:
            log.error("verify: chunk %d (%s) fails its checksum: reporting it", chunk_id, kind)
            self.store.report_bad(chunk_id, kind)
        else:
            log.info("verify: chunk %d (%s) checked after a client's report: not corrupt here",
                     chunk_id, kind)

    def quarantine(self, chunk_id: int, kind: Kind) -> None:
        """A corrupt copy, once another is served: kept aside a while (ChunkStore)."""
        target = self.store.quarantine(chunk_id, kind)
        if target is not None:
            log.info("quarantined corrupt chunk %d (%s) as %s", chunk_id, kind, target)

    def execute(self, command: Command) -> None:
        """Run one master command; a failure is logged (the master asks again if needed)."""
        try:
            if command[0] in ("delete", "verify", "quarantine"):
                action = {"delete": self.store.delete, "verify": self.verify,
                          "quarantine": self.quarantine}[str(command[0])]
                action(expect(command[1], int, "chunk id"), as_kind(command[2]))
            elif command[0] == "replicate":
                _op, chunk_id, kind, host, port, source_kind, token = command
                self.replicate(expect(chunk_id, int, "chunk id"), as_kind(kind),
                               expect(host, str, "host"), expect(port, int, "port"),
                               expect(source_kind, str, "kind"), expect(token, str, "token"))
        except errors.Unavailable as exc:  # the copy's source is away (stopped, cut off)
            log.info("command %s for chunk %s: %s; the master asks another source later",
                     command[0], command[1], exc)
        except Exception as exc:
            log.warning("command %s for chunk %s failed: %s", command[0], command[1], exc)


"""A client host's agent: runs on that host (``ip netns exec NS python -m
dfs.local.hosts_agent``), takes one JSON request per line on stdin and answers one JSON
line on stdout. dfs.local.hosts.ClientHost drives it.

Requests (``{"op": NAME, ...arguments}``), answers ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``:

- ``roles`` {auth, only}: {"host:port": [role, epoch] or null} of each metadata server (or
  of those listed in ``only``), from its ``hello``;
- ``status`` {auth, address}: that server's view (wire.ClusterStatus as a dict);
- ``start`` {name, auth, kind, directory, threads, keys, size, failover}: a workload of
  ``threads`` writers in the background, each owning ``keys`` keys: write one of its
  keys, read a random key of the workload, again and again; every operation recorded;
- ``progress`` {name}: counts of its recorded operations; ``stop`` {name}: -> its history;
  ``reset``: stop every workload, their histories dropped;
- ``home`` {auth, owner}: as the admin, find (or make) user ``owner``'s folder -> its path;
- ``read`` {auth, kind, paths}: read each path once -> those operations (the final reads);
- ``layout`` {auth, paths}: {path: [[chunk id, [worker id, ...]], ...]}.

A workload's ``kind`` says what a key is: ``data``, a file put whole (a value is checked
against every byte), or ``meta``, a symlink replaced by rename (metadata only: it works
where no worker can be reached). Each recorded operation (dfs.local.history's format)::

    {"client", "op": "write"|"read", "key", "value", "seq", "start", "end",
     "status": "ok"|"fail"|"unknown", "server", "epoch", "error"}

``start``/``end`` are wall-clock seconds, comparable across hosts of one machine. ``server``
is the metadata server that answered; ``epoch`` its epoch, known when a status call just
before and just after the operation found that same server in the same epoch (else null).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import sys
import threading
import time
from typing import Any

from dfs import auth, errors, rpc
from dfs.client import DfsClient
from dfs.config import parse_address

Json = dict[str, Any]
PROBE_TIMEOUT = 2.0
WORKER_TIMEOUT = 5.0
"""The agent's clients give up on one silent worker after this long (the mount's
--timeout), so a cut worker costs seconds, not the default half minute."""


def _client(auth_file: str, failover: float, address: str = "") -> DfsClient:
    masters, user, key = auth.read_auth_file(auth_file)  # also trusts the cluster's CA
    if address:
        masters = (parse_address(address),)
    return DfsClient.connect(masters, user, key, cache_dir="", timeout=WORKER_TIMEOUT,
                             failover_deadline=failover)


def payload(path: str, value: str, size: int) -> bytes:
    line = f"{path} {value}\n".encode()
    return (line * (size // len(line) + 1))[:max(size, len(line))]


def _parse(path: str, data: bytes) -> str:
    """The value a file's bytes hold, or "<garbled>" when they are not one payload."""
    first = data.split(b"\n", 1)[0].decode(errors="replace")
    name, _sep, value = first.partition(" ")
    if name != path or data != payload(path, value, len(data)):
        return "<garbled>"
    return value


class Recorder:
    """Runs and records operations of one client (one DfsClient: ``server`` is exact)."""

    def __init__(self, client: DfsClient, name: str, kind: str, size: int) -> None:
        self.client, self.name, self.kind, self.size = client, name, kind, size

    def _where(self) -> tuple[str, int] | None:
        try:
            st = self.client.status()
            return st.address, st.epoch
        except errors.DfsError:
            return None

    def _answered_by(self) -> str:
        host, port = self.client.master.masters[self.client.master.preferred]
        return f"{host}:{port}"

    def write(self, path: str, value: str, seq: int) -> Json:
        def act() -> None:
            if self.kind == "data":
                self.client.put_bytes(path, payload(path, value, self.size))
            else:
                temp = f"{path}.w{seq}"
                self.client.symlink(temp, value)
                self.client.rename(temp, path)
        return self._record("write", path, value, seq, act)

    def read(self, path: str) -> Json:
        def act() -> str | None:
            try:
                if self.kind == "data":
                    return _parse(path, self.client.read_bytes(path))
                return self.client.readlink(path)
            except errors.FileNotFound:
                return None
        return self._record("read", path, None, None, act)

    def _record(self, op: str, path: str, value: str | None, seq: int | None,
                act: Any) -> Json:
        before = self._where()
        start = time.time()
        status, error, server = "ok", "", None
        try:
            got = act()
            if op == "read":
                value = got
            server = self._answered_by()
        except Exception as exc:  # every outcome is recorded: the checker judges
            status = "unknown" if op == "write" else "fail"
            error = f"{type(exc).__name__}: {exc}"[:300]
        end = time.time()
        after = self._where() if status == "ok" else None
        epoch = before[1] if before and before == after and before[0] == server else None
        return {"client": self.name, "op": op, "key": path, "value": value, "seq": seq,
                "start": start, "end": end, "status": status, "server": server,
                "epoch": epoch, "error": error}


class Workload:
    """``threads`` writers, each with its own client and keys; reads any key."""

    def __init__(self, request: Json) -> None:
        self.name: str = request["name"]
        self.kind: str = request["kind"]
        self.directory: str = request["directory"]
        threads, keys = int(request["threads"]), int(request["keys"])
        self.keys = [[f"{self.directory}/{self.name}-{t}-{k}" for k in range(keys)]
                     for t in range(threads)]
        self.every_key = [key for own in self.keys for key in own]
        self.clients = [_client(request["auth"], float(request["failover"]))
                        for _ in range(threads)]
        self.size = int(request["size"])
        self.history: list[Json] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        try:  # in the user's own folder (not mkdir -p: the folders above are not theirs)
            self.clients[0].mkdir(self.directory)
        except errors.FileExists:
            pass
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True,
                                         name=f"{self.name}-{t}") for t in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, index: int) -> None:
        recorder = Recorder(self.clients[index], f"{self.name}-{index}", self.kind, self.size)
        rng = random.Random(index)
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            own = self.keys[index]
            key = own[seq % len(own)]
            done = [recorder.write(key, f"{self.name}.{index}.{seq}", seq),
                    recorder.read(rng.choice(self.every_key))]
            with self.lock:
                self.history.extend(done)

    def progress(self) -> Json:
        with self.lock:
            ok = [op for op in self.history if op["status"] == "ok"]
            return {"ops": len(self.history), "ok": len(ok),
                    "last_ok": max((op["end"] for op in ok), default=0.0)}

    def stop(self) -> list[Json]:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        for client in self.clients:
            client.close()
        with self.lock:
            return list(self.history)


class Agent:
    def __init__(self) -> None:
        self.workloads: dict[str, Workload] = {}

    def roles(self, request: Json) -> Json:
        masters, _user, _key = auth.read_auth_file(request["auth"])
        only = request.get("only")
        found: Json = {}
        for host, port in masters:
            if only and f"{host}:{port}" not in only:
                continue
            try:
                conn = rpc.connect(host, port, timeout=PROBE_TIMEOUT,
                                   connect_timeout=PROBE_TIMEOUT)
            except errors.Unavailable:
                found[f"{host}:{port}"] = None
                continue
            try:
                _nonce, role, epoch = rpc.call(conn, "hello")
                found[f"{host}:{port}"] = [role, epoch]
            except Exception:
                found[f"{host}:{port}"] = None
            finally:
                rpc.hard_close(conn)
        return found

    def status(self, request: Json) -> Json:
        with _client(request["auth"], PROBE_TIMEOUT, request["address"]) as client:
            st = client.status()
        return dict(dataclasses.asdict(st), workers=[w._asdict() for w in st.workers])

    def start(self, request: Json) -> None:
        if request["name"] in self.workloads:
            raise errors.InvalidArgument(f"workload {request['name']} already runs")
        self.workloads[request["name"]] = Workload(request)

    def progress(self, request: Json) -> Json:
        return self.workloads[request["name"]].progress()

    def stop(self, request: Json) -> list[Json]:
        return self.workloads.pop(request["name"]).stop()

    def reset(self, request: Json) -> list[str]:
        """Stop every workload (a test that failed half-way left them running). -> names."""
        names = sorted(self.workloads)
        for name in names:
            self.workloads.pop(name).stop()
        return names

    def home(self, request: Json) -> str:
        """As the admin (``auth``): the home folder of user ``owner`` (``/home/OWNER``,
        where the cluster makes one), else a folder ``/OWNER`` made for them. -> its path."""
        owner = request["owner"]
        with _client(request["auth"], 30.0) as client:
            home = f"/home/{owner}"
            if client.exists(home):
                return home
            try:
                client.mkdir(f"/{owner}", 0o700)
            except errors.FileExists:
                pass
            client.chown(f"/{owner}", owner)
            return f"/{owner}"

    def read(self, request: Json) -> list[Json]:
        with _client(request["auth"], float(request.get("failover", 30.0))) as client:
            recorder = Recorder(client, "final", request["kind"], 0)
            return [recorder.read(path) for path in request["paths"]]

    def layout(self, request: Json) -> Json:
        with _client(request["auth"], 30.0) as client:
            return {path: [[c.ref.chunk_id, [r.worker_id for r in c.replicas]]
                           for c in client.layout(path).chunks]
                    for path in request["paths"]}

    def handle(self, request: Json) -> Any:
        op = request.get("op")
        if op not in ("roles", "status", "home", "start", "progress", "stop", "reset", "read",
                      "layout"):
            raise errors.InvalidArgument(f"unknown request {op!r}")
        return getattr(self, op)(request)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent()
    for line in sys.stdin:
        try:
            answer = {"ok": True, "result": agent.handle(json.loads(line))}
        except Exception as exc:  # the driver gets every failure as an answer
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for workload in agent.workloads.values():
        workload.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

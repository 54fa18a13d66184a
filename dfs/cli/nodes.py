"""Node commands: run a master, shadow or worker in the foreground, or a whole local
cluster in the background (`dfs up` / `dfs down`). The only module of the CLI that
imports the node code (``nodes/``), lazily, inside the commands that start one."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
from collections.abc import Callable
from types import FrameType

from dfs import errors, paths
from dfs.cli import mount
from dfs.cli.common import Command, Subparsers
from dfs.config import (
    DEFAULT_SHADOW_PORT,
    METRICS_OFF,
    METRICS_PORT_OFFSET,
    ClusterConfig,
    MasterConfig,
    WorkerConfig,
    default,
    parse_address,
    parse_addresses,
)


def _ready_writer(path: str) -> Callable[[int], None] | None:
    """``--ready-file``: the node writes its real port there (atomically) once it listens;
    LocalCluster polls for it."""
    if not path:
        return None

    def ready(port: int) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, path)
    return ready


def _exit_on_sigterm() -> None:
    """SIGTERM ends a node like Ctrl-C does: its `finally` blocks run (the master snapshots)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, handler)


TOKEN_ENV = "DFS_JOIN_TOKEN"


def read_token(args: argparse.Namespace) -> str:
    """The join token ("" if none): ``--token-file``, else ``--token``, else $DFS_JOIN_TOKEN.
    A file or the environment keep it out of ``ps``; ``--token`` is still accepted."""
    if not args.token_file:
        return str(args.token or os.environ.get(TOKEN_ENV, ""))
    try:
        with open(args.token_file, encoding="ascii") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a token file"
        raise errors.InvalidArgument(f"cannot read {args.token_file}: {reason}") from None
    if not token:
        raise errors.InvalidArgument(f"{args.token_file} is empty: no join token in it")
    return token


def cmd_master(args: argparse.Namespace) -> int:
    """`dfs master` and `dfs shadow`: the same server; ``args.role`` names it."""
    from nodes.master import main as master
    _exit_on_sigterm()
    config = MasterConfig(data_dir=os.path.abspath(args.data), host=args.host, port=args.port,
                          chunk_size=args.chunk_size, dead_after=args.dead_after,
                          heartbeat_interval=args.heartbeat, snapshot_every=args.snapshot_every,
                          open_registration=args.open_registration, role=args.role,
                          peer=parse_address(args.peer) if args.peer else None,
                          lease=args.lease, lock_lease=args.lock_lease,
                          join_token=read_token(args),
                          trash_seconds=args.trash_hours * 3600, low_space=args.low_space,
                          low_space_bytes=args.low_space_bytes,
                          login_failures=args.login_failures, login_window=args.login_window,
                          metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    master.run(config, ready=_ready_writer(args.ready_file))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from nodes.worker import main as worker
    _exit_on_sigterm()
    config = WorkerConfig(data_dir=os.path.abspath(args.data), masters=parse_addresses(args.master),
                          join_token=read_token(args), host=args.host, port=args.port,
                          capacity=args.capacity, scrub_bytes_per_second=args.scrub_rate,
                          metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    worker.run(config, ready=_ready_writer(args.ready_file))
    return 0


def _data_dir(args: argparse.Namespace) -> str:
    return os.path.abspath(args.data or paths.default_data_dir())


def _mount_for_up(args: argparse.Namespace, auth_file: str) -> int:
    if args.no_mount:
        return 0
    return mount.mount_for_up(args.mount or paths.default_mount_dir(), auth_file)


def cmd_up(args: argparse.Namespace) -> int:
    """Start (or restart, keeping its state) the local cluster, then mount it."""
    from dfs.local import default_auth
    from dfs.local.cluster import LocalCluster, expected_nodes, running_pids, stop_detached
    data = _data_dir(args)
    running = running_pids(data)
    if running and set(running) >= expected_nodes(data):
        print(f"a local cluster is already running in {data} (dfs down --data {data} stops it)")
        cluster_auth = os.path.join(data, "auth.txt")
        print(f"credentials in {cluster_auth}; {default_auth.point_at(cluster_auth, data)}")
        return _mount_for_up(args, cluster_auth)
    config = ClusterConfig(data_dir=data, workers=args.workers, base_port=args.base_port,
                           shadow=not args.no_shadow)
    cluster = LocalCluster(config, detach=True)
    keep: dict[str, int] = {}
    if running:
        stopped = sorted(expected_nodes(data) - set(running))
        missing = ", ".join(stopped)
        if cluster.node_names() == expected_nodes(data):
            print(f"{missing} stopped: starting {'it' if len(stopped) == 1 else 'them'} "
                  "again; the other nodes keep running")
            keep = running
        else:  # another shape (--workers, --no-shadow): every node starts anew
            print(f"{missing} stopped: restarting the local cluster (state is kept)")
            stop_detached(data)
    try:
        cluster.start(keep)
    except errors.AddressInUse as exc:
        raise errors.AddressInUse(f"{exc.message}; or `dfs up --base-port N` moves the whole "
                                  "cluster to ports from N on") from None
    user = getpass.getuser()
    if not os.path.exists(cluster.auth_file):
        cluster.register(user, cluster.auth_file)
        cluster.give_root_to(user)
    servers = ", ".join(f"{n.name} on 127.0.0.1:{n.port}" for n in cluster.metadata_nodes)
    print(f"DFS is up: {servers}, {len(cluster.workers)} workers, data in {data}")
    print(f"you are '{user}'; credentials in {cluster.auth_file}; "
          f"{default_auth.point_at(cluster.auth_file, data)}")
    print("try:  dfs put FILE /FILE   dfs ls -l /   dfs get /FILE COPY   dfs status")
    print(f"stop: dfs down --data {data}")
    return _mount_for_up(args, cluster.auth_file)


def cmd_down(args: argparse.Namespace) -> int:
    from dfs.local.cluster import stop_detached
    data = _data_dir(args)
    for mount_dir in mount.unmount_for_down(data):
        print(f"unmounted {mount_dir}")
    stopped = stop_detached(data)
    print(f"stopped {', '.join(stopped)}" if stopped else f"no local cluster running in {data}")
    return 0


# --- options ---------------------------------------------------------------------------------

def _node_command(sub: Subparsers, name: str, func: Command, help_text: str,
                  config_class: type, port: int) -> argparse.ArgumentParser:
    """A node run in the foreground: its data dir, where it listens, ``--ready-file``."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--data", required=True, help="this node's data directory")
    p.add_argument("--host", default=default(config_class, "host"),
                   help="the address this node listens on and gives the others: one they "
                        "can reach")
    p.add_argument("--port", type=int, default=port, help="the port it listens on")
    p.add_argument("--ready-file", default="", help=argparse.SUPPRESS)
    p.add_argument("--metrics-port", type=_metrics_port, default=None, metavar="PORT",
                   help=f"HTTP port for /metrics (and a metadata server's status page at /); "
                        f"default --port + {METRICS_PORT_OFFSET}, 0: any free port, off: none")
    p.add_argument("--metrics-host", default=default(config_class, "metrics_host"),
                   metavar="HOST", help="address the HTTP port listens on (default loopback)")
    p.set_defaults(func=func)
    return p


def _metrics_port(text: str) -> int:
    if text.strip().lower() in ("off", "none"):
        return METRICS_OFF
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (a number, or off)") from None


def token_options(p: argparse.ArgumentParser, token_help: str) -> None:
    """``--token-file`` or $DFS_JOIN_TOKEN first in ``--help``: ``--token`` shows in ``ps``."""
    given = p.add_mutually_exclusive_group()
    given.add_argument("--token-file", default="", metavar="FILE",
                       help=f"file holding {token_help} (or set ${TOKEN_ENV})")
    given.add_argument("--token", default="",
                       help="the token itself (other local users see it in `ps`: prefer "
                            f"--token-file or ${TOKEN_ENV})")


def add_commands(sub: Subparsers) -> None:
    def master_default(name: str) -> object:
        return default(MasterConfig, name)

    p = sub.add_parser("up", help="start a local cluster in the background")
    p.add_argument("--data", default=None, help="data directory (default: user data dir)")
    p.add_argument("--workers", type=int, default=default(ClusterConfig, "workers"))
    p.add_argument("--base-port", type=int, default=default(ClusterConfig, "base_port"),
                   help="master on it, shadow on +1, workers from +9 (0: any free ports)")
    p.add_argument("--no-shadow", action="store_true", help="run without a shadow master")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--mount", default=None, metavar="DIR",
                       help="mount the cluster here (default: $DFS_MOUNT or ~/dfs)")
    where.add_argument("--no-mount", action="store_true", help="do not mount the cluster")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop the local cluster")
    p.add_argument("--data", default=None)
    p.set_defaults(func=cmd_down)

    master_port = default(MasterConfig, "port")
    for role, port, peer in (("master", master_port, None),
                             ("shadow", DEFAULT_SHADOW_PORT, f"127.0.0.1:{master_port}")):
        p = _node_command(sub, role, cmd_master,
                          f"run the {role} metadata server in the foreground", MasterConfig, port)
        p.set_defaults(role=role)
        p.add_argument("--peer", default=peer,
                       help="HOST:PORT of the other metadata server (master <-> shadow)")
        token_options(p, "the cluster's join token (a shadow needs the master's)")
        p.add_argument("--lease", type=float, default=master_default("lease"),
                       help="voter lease in seconds")
        p.add_argument("--lock-lease", type=float, default=master_default("lock_lease"),
                       help="seconds a mount's file locks outlive its last call (a dead "
                            "mount's are freed after it); also a new leader's grace period")
        p.add_argument("--chunk-size", type=int, default=master_default("chunk_size"),
                       help="bytes per chunk, fixed when the cluster is initialised")
        p.add_argument("--dead-after", type=float, default=master_default("dead_after"),
                       help="seconds a worker may stay silent before it is dead (its chunks "
                            "are copied again)")
        p.add_argument("--heartbeat", type=float, default=master_default("heartbeat_interval"),
                       help="seconds between two reports of each worker")
        p.add_argument("--snapshot-every", type=int, default=master_default("snapshot_every"),
                       help="journal entries between snapshots of saved-files.json")
        p.add_argument("--open-registration", action="store_true",
                       help="accept `dfs register` from this machine without the join token")
        p.add_argument("--trash-hours", type=float,
                       default=default(MasterConfig, "trash_seconds") / 3600,
                       help="hours a deleted file stays in its owner's trash (0: no trash)")
        p.add_argument("--low-space", type=float, default=master_default("low_space"),
                       help="share of the workers' space under which free space is low: the "
                            "trash is purged, oldest first, and `dfs status` warns")
        p.add_argument("--low-space-bytes", type=int, default=master_default("low_space_bytes"),
                       help="free bytes (all copies) under which space is low, instead of "
                            "the share")
        p.add_argument("--login-failures", type=int, default=master_default("login_failures"),
                       help="failed logins from one host, or as one name, per window before "
                            "further logins from it are refused until the window ends")
        p.add_argument("--login-window", type=float, default=master_default("login_window"),
                       help="seconds of that window")

    p = _node_command(sub, "worker", cmd_worker, "run a worker in the foreground", WorkerConfig,
                      default(WorkerConfig, "port"))
    p.add_argument("--master", default=f"127.0.0.1:{master_port}",
                   help="HOST:PORT[,HOST:PORT] of the metadata servers")
    token_options(p, "the cluster's join token")
    p.add_argument("--capacity", type=int, default=default(WorkerConfig, "capacity"),
                   help="bytes this worker may use (0: the free space of its disk)")
    p.add_argument("--scrub-rate", type=int,
                   default=default(WorkerConfig, "scrub_bytes_per_second"),
                   help="bytes per second the scrubber re-reads to verify checksums (0: off)")

"""The `dfs` command. Every subcommand is a function ``(args) -> int``; ``main(argv)``
parses, sets up logging, runs it, and turns a DfsError into one line on stderr and exit
status 1 (``--debug`` shows the traceback). Node code (``nodes``) and the mount are
imported lazily, inside the subcommands that start them.
"""

import argparse
import getpass
import logging
import os
import posixpath
import sys

from dfs import auth, errors, paths
from dfs.config import (
    DEFAULT_MASTER_PORT,
    DEFAULT_SHADOW_PORT,
    MIB,
    ClusterConfig,
    MasterConfig,
    WorkerConfig,
    parse_address,
    parse_addresses,
)
from dfs.progress import progress_bar

log = logging.getLogger("dfs")


# --- helpers ---------------------------------------------------------------------------

def remote_path(text):
    """Remote paths are absolute; 'a/b' means '/a/b'."""
    return text if text.startswith("/") else "/" + text


def _client(args):
    from dfs.client import DfsClient
    return DfsClient.from_auth_file(args.auth)


def _human(n):
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _mode_string(stat):
    kind = {"d": "d", "l": "l"}.get(stat.kind, "-")
    bits = ""
    for shift in (6, 3, 0):
        value = (stat.mode >> shift) & 7
        bits += ("r" if value & 4 else "-") + ("w" if value & 2 else "-") + \
            ("x" if value & 1 else "-")
    return kind + bits


def _print_table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


# --- nodes -------------------------------------------------------------------------------

def _ready_writer(path):
    if not path:
        return None

    def ready(port):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, path)
    return ready


def _exit_on_sigterm():
    """SIGTERM ends a node like Ctrl-C does: its `finally` blocks run (the master snapshots)."""
    import signal

    def handler(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, handler)


def _read_token(args):
    token = args.token or os.environ.get("DFS_JOIN_TOKEN", "")
    if args.token_file:
        try:
            with open(args.token_file, encoding="ascii") as f:
                token = f.read().strip()
        except OSError as exc:
            raise errors.InvalidArgument(f"cannot read {args.token_file}: {exc.strerror}") from None
    return token


def cmd_master(args):
    from nodes.master import main as master
    _exit_on_sigterm()
    config = MasterConfig(data_dir=os.path.abspath(args.data), host=args.host, port=args.port,
                          chunk_size=args.chunk_size, dead_after=args.dead_after,
                          heartbeat_interval=args.heartbeat, snapshot_every=args.snapshot_every,
                          open_registration=args.open_registration, role=args.role,
                          peer=parse_address(args.peer) if args.peer else None,
                          lease=args.lease, join_token=_read_token(args),
                          trash_seconds=args.trash_hours * 3600)
    master.run(config, ready=_ready_writer(args.ready_file))
    return 0


def cmd_worker(args):
    from nodes.worker import service as worker
    _exit_on_sigterm()
    token = _read_token(args)
    config = WorkerConfig(data_dir=os.path.abspath(args.data), masters=parse_addresses(args.master),
                          join_token=token, host=args.host, port=args.port,
                          capacity=args.capacity, scrub_bytes_per_second=args.scrub_rate)
    worker.run(config, ready=_ready_writer(args.ready_file))
    return 0


# --- the local cluster -------------------------------------------------------------------

def cmd_up(args):
    from dfs.local.cluster import LocalCluster, expected_nodes, running_pids, stop_detached
    data = os.path.abspath(args.data or paths.default_data_dir())
    running = running_pids(data)
    if running and set(running) >= expected_nodes(data):
        print(f"a local cluster is already running in {data} (dfs down --data {data} stops it)")
        return _mount_for_up(args, os.path.join(data, "auth.txt"))
    if running:
        missing = sorted(expected_nodes(data) - set(running))
        print(f"{', '.join(missing)} stopped: restarting the local cluster (state is kept)")
        stop_detached(data)
    config = ClusterConfig(data_dir=data, workers=args.workers, base_port=args.base_port,
                           shadow=not args.no_shadow)
    cluster = LocalCluster(config, detach=True).start()
    user = getpass.getuser()
    if not os.path.exists(cluster.auth_file):
        cluster.register(user, cluster.auth_file)
    default_auth = paths.default_auth_file()
    if not os.path.exists(default_auth) or args.data is None:
        masters, name, key = auth.read_auth_file(cluster.auth_file)
        auth.write_auth_file(default_auth, masters, name, key)
    servers = ", ".join(f"{n.name} on 127.0.0.1:{n.port}" for n in cluster.metadata_nodes)
    print(f"DFS is up: {servers}, {len(cluster.workers)} workers, data in {data}")
    print(f"you are '{user}'; credentials in {cluster.auth_file} (and {default_auth})")
    print("try:  dfs put FILE /FILE   dfs ls -l /   dfs get /FILE COPY   dfs status")
    print(f"stop: dfs down --data {data}")
    return _mount_for_up(args, cluster.auth_file)


def _mount_for_up(args, auth_file):
    if args.no_mount:
        return 0
    from mount import fuse
    return fuse.mount_for_up(args.mount or paths.default_mount_dir(), auth_file)


def cmd_down(args):
    from dfs.local.cluster import stop_detached
    data = os.path.abspath(args.data or paths.default_data_dir())
    try:
        from mount import fuse
    except ImportError:
        fuse = None
    for mount_dir in fuse.unmount_for_down(data) if fuse else ():
        print(f"unmounted {mount_dir}")
    stopped = stop_detached(data)
    print(f"stopped {', '.join(stopped)}" if stopped else f"no local cluster running in {data}")
    return 0


def cmd_register(args):
    from dfs.client import register
    masters = parse_addresses(args.master)
    key = register(masters, args.name, args.token)
    path = args.auth or paths.default_auth_file()
    auth.write_auth_file(path, masters, args.name, key)
    print(f"registered {args.name}; key saved in {path} (mode 0600)")
    return 0


# --- files -------------------------------------------------------------------------------

def cmd_put(args):
    remote = remote_path(args.remote)
    with _client(args) as dfs:
        if remote.endswith("/") or (dfs.exists(remote) and dfs.stat(remote).is_dir):
            remote = posixpath.join(remote, os.path.basename(args.local))
        size = os.path.getsize(args.local) if os.path.isfile(args.local) else 0
        bar, progress = progress_bar(size, os.path.basename(args.local))
        try:
            result = dfs.put(args.local, remote, progress=progress)
        finally:
            if bar:
                bar.close()
    if result.under_replicated:
        print(f"warning: {result.under_replicated} chunk(s) of {remote} have a single copy "
              "(too few live workers); the master adds the second copy later", file=sys.stderr)
    return 0


def _confirm_overwrite(path, force):
    if force or not os.path.exists(path):
        return
    if not sys.stdin.isatty():
        raise errors.FileExists(f"{path} exists; use -f to overwrite it")
    answer = input(f"{path} exists. Overwrite? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise errors.FileExists(f"{path} left as it was")


def cmd_get(args):
    remote = remote_path(args.remote)
    local = args.local
    if os.path.isdir(local):
        local = os.path.join(local, posixpath.basename(remote))
    with _client(args) as dfs:
        stat = dfs.stat(remote)
        if stat.is_dir:
            raise errors.IsADirectory(f"{remote} is a directory")
        _confirm_overwrite(local, args.force)
        bar, progress = progress_bar(stat.size, posixpath.basename(remote))
        try:
            dfs.get(remote, local, progress=progress)
        finally:
            if bar:
                bar.close()
    return 0


def cmd_cat(args):
    with _client(args) as dfs:
        for data in dfs.iter_chunks(remote_path(args.remote)):
            sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def cmd_ls(args):
    import time

    from dfs.wire import DirEntry
    path = remote_path(args.path)
    with _client(args) as dfs:
        stat = dfs.stat(path)
        entries = dfs.listdir(path) if stat.is_dir else [
            DirEntry(posixpath.basename(path), stat)]
    for entry in entries:
        name = entry.name + ("/" if entry.stat.is_dir else "")
        if args.long:
            s = entry.stat
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.mtime_ns / 1e9))
            print(f"{_mode_string(s)} {s.nlink:>3} {s.owner:<10} {s.size:>12} {when} {name}")
        else:
            print(name)
    return 0


def cmd_mkdir(args):
    with _client(args) as dfs:
        for path in args.paths:
            dfs.mkdir(remote_path(path), parents=args.parents)
    return 0


def cmd_rm(args):
    with _client(args) as dfs:
        for path in map(remote_path, args.paths):
            if dfs.stat(path).is_dir:
                if not args.recursive:
                    raise errors.IsADirectory(f"{path} is a directory (use rm -r)")
                dfs.rm_tree(path)
            else:
                dfs.rm(path)
    return 0


def cmd_mv(args):
    with _client(args) as dfs:
        dfs.rename(remote_path(args.src), remote_path(args.dst))
    return 0


def cmd_chmod(args):
    try:
        mode = int(args.mode, 8)
    except ValueError:
        raise errors.InvalidArgument(f"mode must be octal, like 644: {args.mode!r}") from None
    with _client(args) as dfs:
        dfs.chmod(remote_path(args.path), mode)
    return 0


def cmd_stat(args):
    import time
    with _client(args) as dfs:
        s = dfs.stat(remote_path(args.path))
    kind = {"d": "directory", "f": "regular file", "l": "symbolic link"}[s.kind]
    print(f"  path: {remote_path(args.path)}\n  type: {kind}\n  size: {s.size}\n"
          f"  mode: {_mode_string(s)} ({s.mode:04o})\n owner: {s.owner}\n inode: {s.ino}\n"
          f" links: {s.nlink}\nmodify: {time.ctime(s.mtime_ns / 1e9)}")
    return 0


def cmd_status(args):
    with _client(args) as dfs:
        st = dfs.status()
        total, free, chunk_size, files = dfs.statfs()
    print(f"leader: {st['leader']} at {st['address']}, epoch {st['epoch']}; "
          f"standby: {st['standby']}")
    print(f"leases held from: {', '.join(st['lease_holders']) or 'nobody (alone)'}")
    print(f"{files} inodes, chunk size {_human(chunk_size)}")
    print(f"capacity {_human(total)}, free {_human(free)} (after replication); "
          f"under-replicated chunks: {st['under_replicated']}")
    rows = [(w.worker_id, f"{w.host}:{w.port}", "alive" if w.alive else "DEAD", w.chunks,
             _human(w.used), _human(w.free), f"{w.seconds_since_heartbeat:.1f}s")
            for w in st["workers"]]
    _print_table(rows, ("worker", "address", "state", "chunks", "used", "free", "last seen"))
    return 0


def cmd_users(args):
    with _client(args) as dfs:
        if args.action == "list":
            _print_table([(name, "admin" if admin else "") for name, admin in dfs.users_list()],
                         ("user", "role"))
        elif args.action == "add":
            key = dfs.users_add(args.name, admin=args.admin)
            if args.out:
                auth.write_auth_file(args.out, dfs.config.masters, args.name, key)
                print(f"added {args.name}; credentials written to {args.out}")
            else:
                print(f"added {args.name}; give them this auth.txt (keep it private):")
                print(f"masters = {','.join('%s:%d' % m for m in dfs.config.masters)}")
                print(f"user = {args.name}\nkey = {key}")
        else:
            dfs.users_revoke(args.name)
            print(f"revoked {args.name}")
    return 0


def cmd_trash(args):
    import time

    def when(t):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    with _client(args) as dfs:
        if args.action == "list":
            _print_table([(t.path, t.size, when(t.deleted_at), when(t.expires))
                          for t in dfs.trash_list()], ("path", "size", "deleted", "expires"))
        elif args.action == "restore":
            path = remote_path(args.path)
            dfs.trash_restore(path)
            print(f"restored {path}")
        else:
            print(f"emptied the trash ({dfs.trash_empty()} file(s) freed)")
    return 0


def cmd_fsck(args):
    with _client(args) as dfs:
        report = dfs.fsck(repair=args.repair, deadline=args.deadline)
    counts = {}
    for problem in report.problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    print(f"checked {report.files} files, {report.chunks} chunks on {report.workers} workers"
          + (f"; {report.repairs} repairs scheduled" if args.repair else ""))
    if report.unreachable:
        print(f"workers not scanned: {', '.join(report.unreachable)}")
    if report.clean:
        print("clean")
        return 0
    labels = {"missing": "missing (no good copy left)", "under": "under-replicated",
              "corrupt": "corrupt copies", "orphan": "orphan chunk files"}
    for kind in ("missing", "under", "corrupt", "orphan"):
        if counts.get(kind):
            print(f"{labels[kind]}: {counts[kind]}")
    for problem in report.problems[:args.show]:
        where = problem.path or f"on {problem.worker_id}"
        extra = f" on {problem.worker_id}" if problem.path and problem.worker_id else ""
        print(f"  {problem.kind:<8} chunk {problem.chunk_id}{extra}: {where}")
    if len(report.problems) > args.show:
        print(f"  ... and {len(report.problems) - args.show} more")
    if any(p.kind == "missing" for p in report.problems):
        print("files with missing chunks cannot be repaired: restore them from a backup")
    return 1


# --- the mount and the backup watcher (their own modules, imported only here) -------------

def cmd_mount(args):
    from mount import fuse
    return fuse.cmd_mount(args)


def cmd_umount(args):
    from mount import fuse
    return fuse.cmd_umount(args)


def cmd_backup(args):
    from dfs.backup import watcher as backup
    return backup.cmd_backup(args)


# --- parser --------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(prog="dfs", description="A distributed file system.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def client_command(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--auth", default=None, help="auth file (default $DFS_AUTH or the "
                                                    "user's config dir)")
        p.set_defaults(func=func)
        return p

    def node_command(name, func, help_text, port):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data", required=True, help="this node's data directory")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=port)
        p.add_argument("--ready-file", default="", help=argparse.SUPPRESS)
        p.set_defaults(func=func)
        return p

    p = sub.add_parser("up", help="start a local cluster in the background")
    p.add_argument("--data", default=None, help="data directory (default: user data dir)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--base-port", type=int, default=DEFAULT_MASTER_PORT,
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

    for role, port, peer in (("master", DEFAULT_MASTER_PORT, None),
                             ("shadow", DEFAULT_SHADOW_PORT, f"127.0.0.1:{DEFAULT_MASTER_PORT}")):
        p = node_command(role, cmd_master, f"run the {role} metadata server in the foreground",
                         port)
        p.set_defaults(role=role)
        p.add_argument("--peer", default=peer,
                       help="HOST:PORT of the other metadata server (master <-> shadow)")
        p.add_argument("--token", default="", help="the cluster's join token (a shadow needs "
                                                   "the master's)")
        p.add_argument("--token-file", default="", help="file holding the join token")
        p.add_argument("--lease", type=float, default=3.0, help="voter lease in seconds")
        p.add_argument("--chunk-size", type=int, default=4 * MIB)
        p.add_argument("--dead-after", type=float, default=10.0)
        p.add_argument("--heartbeat", type=float, default=1.0)
        p.add_argument("--snapshot-every", type=int, default=1000,
                       help="journal entries between snapshots of saved-files.json")
        p.add_argument("--open-registration", action="store_true",
                       help="accept `dfs register` from this machine without the join token")
        p.add_argument("--trash-hours", type=float, default=24.0,
                       help="hours a deleted file stays in its owner's trash (0: no trash)")

    p = node_command("worker", cmd_worker, "run a worker in the foreground", 18870)
    p.add_argument("--master", default=f"127.0.0.1:{DEFAULT_MASTER_PORT}",
                   help="HOST:PORT[,HOST:PORT] of the metadata servers")
    p.add_argument("--token", default="", help="the cluster's join token")
    p.add_argument("--token-file", default="", help="file holding the join token")
    p.add_argument("--capacity", type=int, default=0, help="bytes this worker may use")
    p.add_argument("--scrub-rate", type=int, default=4 * MIB,
                   help="bytes per second the scrubber re-reads to verify checksums (0: off)")

    p = sub.add_parser("register", help="get a key from the master and write auth.txt")
    p.add_argument("name")
    p.add_argument("--master", default=f"127.0.0.1:{DEFAULT_MASTER_PORT}")
    p.add_argument("--token", default=None, help="the cluster's join token")
    p.add_argument("--auth", default=None, help="where to write the auth file")
    p.set_defaults(func=cmd_register)

    p = client_command("put", cmd_put, "upload a file")
    p.add_argument("local")
    p.add_argument("remote")
    p = client_command("get", cmd_get, "download a file")
    p.add_argument("remote")
    p.add_argument("local")
    p.add_argument("-f", "--force", action="store_true", help="overwrite without asking")
    p = client_command("cat", cmd_cat, "print a file")
    p.add_argument("remote")
    p = client_command("ls", cmd_ls, "list a directory")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("-l", "--long", action="store_true")
    p = client_command("mkdir", cmd_mkdir, "make directories")
    p.add_argument("paths", nargs="+")
    p.add_argument("-p", "--parents", action="store_true")
    p = client_command("rm", cmd_rm, "remove files")
    p.add_argument("paths", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true")
    p = client_command("mv", cmd_mv, "rename or move")
    p.add_argument("src")
    p.add_argument("dst")
    p = client_command("chmod", cmd_chmod, "change permissions (o+r shares with other users)")
    p.add_argument("mode")
    p.add_argument("path")
    p = client_command("stat", cmd_stat, "show a file's attributes")
    p.add_argument("path")
    client_command("status", cmd_status, "show the master and each worker")
    p = client_command("users", cmd_users, "manage users (admin)")
    p.add_argument("action", choices=["add", "list", "revoke"])
    p.add_argument("name", nargs="?")
    p.add_argument("--admin", action="store_true", help="with add: an admin user")
    p.add_argument("--out", default=None, help="with add: write their auth file here")
    p = client_command("fsck", cmd_fsck, "check files against the workers' chunks (admin)")
    p.add_argument("--repair", action="store_true",
                   help="re-replicate, drop corrupt copies, delete orphans; then check again")
    p.add_argument("--deadline", type=float, default=120.0,
                   help="seconds to wait for the check (and the repairs)")
    p.add_argument("--show", type=int, default=10, help="problems listed in detail")
    p = client_command("trash", cmd_trash, "deleted files: list, restore PATH, empty")
    p.add_argument("action", choices=["list", "restore", "empty"])
    p.add_argument("path", nargs="?")
    p = client_command("mount", cmd_mount, "mount the cluster as a folder")
    p.add_argument("dir")
    p.add_argument("--foreground", action="store_true", help="stay attached (logs to stderr)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds before an operation fails while a node is unreachable")
    p.add_argument("--cache-dir", default=None, help="on-disk chunk cache ('' disables it)")
    p = sub.add_parser("umount", help="unmount a DFS folder and wait for the mount to exit")
    p.add_argument("dir")
    p.set_defaults(func=cmd_umount)
    p = client_command("backup", cmd_backup, "watch a local folder and upload what appears")
    p.add_argument("local_dir")
    p.add_argument("remote_dir", nargs="?", default="/")
    p.add_argument("--mirror-deletes", action="store_true",
                   help="also delete in the cluster what is deleted locally")
    p.add_argument("--state", default=None, help="state file (default: the user's state dir)")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds a file must stay unchanged before it is uploaded")
    p.add_argument("--once", action="store_true", help="sync once and exit (for cron)")
    return parser


def setup_logging(debug, command):
    level = logging.DEBUG if debug else logging.INFO
    if command not in ("master", "worker", "shadow"):
        level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.debug, args.command)
    if args.command == "users" and args.action != "list" and not args.name:
        parser.error(f"users {args.action} needs a NAME")
    if args.command == "trash" and args.action == "restore" and not args.path:
        parser.error("trash restore needs a PATH")
    try:
        return args.func(args)
    except errors.DfsError as exc:
        if args.debug:
            raise
        print(f"dfs: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())

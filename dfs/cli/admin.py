"""Who may use the cluster and how it is doing: register, status (--watch), users, fsck."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from dfs import auth, errors, paths, tls
from dfs.cli import mount
from dfs.cli.common import Subparsers, client_command, open_client
from dfs.cli.nodes import read_token, token_options
from dfs.cli.output import human, parse_size, print_table, printable, table_lines
from dfs.config import DEFAULT_MASTER_PORT, ClientConfig, default, parse_addresses

if TYPE_CHECKING:
    from dfs.client import DfsClient

WATCH_EVERY = 2.0
"""Seconds between refreshes of `dfs status --watch` without a number."""

FSCK_LABELS = {"missing": "missing (no good copy left)", "under": "under-replicated",
               "corrupt": "corrupt copies", "orphan": "orphan chunk files"}
"""The kinds of fsck problems, in the order they are summed up."""


def cmd_register(args: argparse.Namespace) -> int:
    from dfs.client import register
    masters = parse_addresses(args.master)
    pin = args.ca or ""
    if pin:  # a TLS cluster: only a server with a certificate from that CA is believed
        tls.use(tls.Trust(pin=pin))
    key = register(masters, args.name, read_token(args) or None)
    path = args.auth or paths.default_auth_file()
    auth.write_auth_file(path, masters, args.name, key, ca=pin)
    print(f"registered {args.name}; key saved in {path} (mode 0600)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        if args.watch is None:
            print("\n".join(status_lines(dfs)))
            return 0
        return _watch(dfs, args.watch)


def status_lines(dfs: DfsClient) -> list[str]:
    """What `dfs status` prints."""
    st = dfs.status()
    total, free, chunk_size, files = dfs.statfs()
    me = dfs.usage()
    trust = tls.trust()  # this client reached the cluster over TLS iff auth.txt pins a CA
    lines = [
        f"leader: {st.leader} at {st.address}, epoch {st.epoch}; standby: {st.standby}",
        f"leases held from: {', '.join(st.lease_holders) or 'nobody (alone)'}",
        f"TLS: on, cluster CA {trust.pin}" if trust else "TLS: off",
        f"{files} inodes, chunk size {human(chunk_size)}",
        f"you ({me.name}): {_of(human(me.bytes + me.pending_bytes), me.quota_bytes, human)}"
        f" in {_of(str(me.inodes), me.quota_inodes, str)} files"
        + ("" if me.quota_bytes is None and me.quota_inodes is None else " (quota)"),
        f"capacity {human(total)}, free {human(free)} (after replication); "
        f"under-replicated chunks: {st.under_replicated}"]
    if st.space_warning:
        lines.append(f"WARNING: {st.space_warning}")
    if st.web:
        lines.append(f"status page: {printable(st.web)} (metrics: {printable(st.web)}metrics)")
    rows = [(printable(w.worker_id), printable(f"{w.host}:{w.port}"),
             "alive" if w.alive else "DEAD", w.chunks, human(w.used), human(w.free),
             f"{w.seconds_since_heartbeat:.1f}s") for w in st.workers]
    lines += table_lines(rows, ("worker", "address", "state", "chunks", "used", "free",
                                "last seen"))
    mounts = [(folder, pid, "running" if alive else f"DEAD: dfs umount {folder}", log)
              for folder, pid, alive, log in mount.known_mounts()]
    if mounts:
        lines += ["mounts on this machine:", *table_lines(mounts, ("folder", "pid", "state",
                                                                   "log"))]
    return lines


CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _watch(dfs: DfsClient, interval: float) -> int:
    """`dfs status --watch`: the status again every ``interval`` seconds until Ctrl-C (exit
    0). On a terminal the screen is cleared first; otherwise each refresh is printed after
    the last, under a line with its time. A failing refresh (a failover going on) says so
    and the next one tries again."""
    if not interval > 0:
        raise errors.InvalidArgument("--watch needs a positive number of seconds")
    on_terminal = sys.stdout.isatty()
    try:
        while True:
            try:
                lines = status_lines(dfs)
            except errors.Unavailable as exc:
                lines = [f"dfs: {exc.message} (trying again)"]
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            head = f"dfs status at {stamp}, every {interval:g}s (Ctrl-C to stop)"
            sys.stdout.write((CLEAR_SCREEN if on_terminal else "\n") + head + "\n"
                             + "\n".join(lines) + "\n")
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def cmd_users(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        if args.action == "list":
            print_table([(u.name, "admin" if u.admin else "", u.uid,
                          _of(human(u.bytes + u.pending_bytes), u.quota_bytes, human),
                          _of(str(u.inodes), u.quota_inodes, str))
                         for u in dfs.users_list()],
                        ("user", "role", "uid", "bytes (quota)", "files (quota)"))
        elif args.action == "quota":
            dfs.users_quota(args.name, _limit(args.bytes, parse_size),
                            _limit(args.inodes, int))
            print(f"quota of {args.name}: {args.bytes} bytes, {args.inodes} files")
        elif args.action == "add":
            key = dfs.users_add(args.name, admin=args.admin, uid=args.uid, gid=args.gid,
                                groups=tuple(int(g) for g in args.groups.split(",") if g))
            trust = tls.trust()
            pin = trust.pin if trust else ""
            if args.out:
                auth.write_auth_file(args.out, dfs.config.masters, args.name, key, ca=pin)
                print(f"added {args.name}; credentials written to {args.out}")
            else:
                print(f"added {args.name}; give them this auth.txt (keep it private):")
                print(f"masters = {','.join('%s:%d' % m for m in dfs.config.masters)}")
                print(f"user = {args.name}\nkey = {key}" + (f"\nca = {pin}" if pin else ""))
        else:
            dfs.users_revoke(args.name)
            print(f"revoked {args.name}")
    return 0


def _of(used: str, limit: int | None, show: Callable[[int], str]) -> str:
    return used if limit is None else f"{used} ({show(limit)})"


def _limit(text: str, parse: Callable[[str], int]) -> int | None:
    """A quota from the command line: a number, or 'none' for no limit."""
    if text.lower() in ("none", "unlimited"):
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise errors.InvalidArgument(f"bad quota {text!r}: {exc}") from None


def _group_list(items: list[str]) -> tuple[int | str, ...]:
    return tuple(int(g) if g.isdigit() else g for g in items if g)


def cmd_groups(args: argparse.Namespace) -> int:
    with open_client(args) as dfs:
        if args.action == "list":
            print_table([(name, gid, ", ".join(members))
                         for name, gid, members in dfs.groups_list()],
                        ("group", "gid", "members"))
        elif args.action == "add":
            print(f"group {args.name} is gid {dfs.groups_add(args.name, args.gid)}")
        elif args.action == "remove":
            dfs.groups_remove(args.name)
            print(f"group {args.name} removed (files keep its id)")
        else:
            dfs.users_groups(args.name, _group_list(args.members))
            print(f"{args.name}'s groups: {' '.join(args.members) or 'none'}")
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    """Exit status 0 when clean, 1 when anything is wrong (or a worker was not scanned)."""
    with open_client(args) as dfs:
        report = dfs.fsck(repair=args.repair, deadline=args.deadline)
    counts = Counter(problem.kind for problem in report.problems)
    print(f"checked {report.files} files, {report.chunks} chunks on {report.workers} workers"
          + (f"; {report.repairs} repairs scheduled" if args.repair else ""))
    if report.unreachable:
        print(f"workers not scanned: {', '.join(report.unreachable)}")
    if report.clean:
        print("clean")
        return 0
    for kind, label in FSCK_LABELS.items():
        if counts[kind]:
            print(f"{label}: {counts[kind]}")
    for problem in report.problems[:args.show]:
        where = problem.path or f"on {problem.worker_id}"
        extra = f" on {problem.worker_id}" if problem.path and problem.worker_id else ""
        print(f"  {problem.kind:<8} chunk {problem.chunk_id}{extra}: {where}")
    if len(report.problems) > args.show:
        print(f"  ... and {len(report.problems) - args.show} more")
    if any(p.kind == "missing" for p in report.problems):
        print("files with missing chunks cannot be repaired: restore them from a backup")
    return 1


def add_register(sub: Subparsers) -> None:
    p = sub.add_parser("register", help="get a key from the master and write auth.txt")
    p.add_argument("name")
    p.add_argument("--master", default=f"127.0.0.1:{DEFAULT_MASTER_PORT}")
    token_options(p, "the cluster's join token (none: open registration, local clusters)")
    p.add_argument("--auth", default=None, help="where to write the auth file")
    p.add_argument("--ca", default=None, metavar="FINGERPRINT",
                   help="a TLS cluster's CA fingerprint (sha256:..., `dfs status` shows it): "
                        "pinned in the auth file")
    p.set_defaults(func=cmd_register)


def add_commands(sub: Subparsers) -> None:
    p = client_command(sub, "status", cmd_status, "show the master and each worker")
    p.add_argument("--watch", nargs="?", type=float, const=WATCH_EVERY, default=None,
                   metavar="SECONDS", help=f"refresh every SECONDS (default {WATCH_EVERY:g}) "
                                           "until Ctrl-C")
    p = client_command(sub, "users", cmd_users, "manage users (admin)")
    p.add_argument("action", choices=["add", "list", "revoke", "quota"])
    p.add_argument("name", nargs="?")
    p.add_argument("--bytes", default="none",
                   help="with quota: bytes the user may store, e.g. 10G ('none': no limit)")
    p.add_argument("--inodes", default="none",
                   help="with quota: files and folders the user may own ('none': no limit)")
    p.add_argument("--admin", action="store_true", help="with add: an admin user")
    p.add_argument("--out", default=None, help="with add: write their auth file here")
    p.add_argument("--uid", type=int, default=None, help="with add: their uid (if free)")
    p.add_argument("--gid", type=int, default=None, help="with add: their primary group")
    p.add_argument("--groups", default="",
                   help="with add: supplementary group ids, comma-separated")
    p = client_command(sub, "groups", cmd_groups, "name groups and set who is in them "
                                                  "(admin; list: anyone)")
    p.add_argument("action", choices=["list", "add", "remove", "set"])
    p.add_argument("name", nargs="?", help="a group (add, remove) or a user (set)")
    p.add_argument("members", nargs="*", help="with set: the user's groups (ids or names)")
    p.add_argument("--gid", type=int, default=None, help="with add: the group's id")
    p = client_command(sub, "fsck", cmd_fsck, "check files against the workers' chunks (admin)")
    p.add_argument("--repair", action="store_true",
                   help="re-replicate, drop corrupt copies, delete orphans; then check again")
    p.add_argument("--deadline", type=float, default=default(ClientConfig, "fsck_deadline"),
                   help="seconds to wait for the check (and the repairs)")
    p.add_argument("--show", type=int, default=10, help="problems listed in detail")

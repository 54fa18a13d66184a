"""Starting and stopping mounts: the detached mount process, unmount, and the CLI's calls.

    dfs mount ~/dfs            # returns once the folder is live; the mount runs detached
    dfs umount ~/dfs           # unmounts and waits until the mount process has exited

`dfs mount` starts ``python -m dfs.cli mount DIR --foreground`` in a new session (its
output goes to the mount's log, see mount.records) and returns once DIR shows up in
/proc/self/mountinfo; that process runs ``run`` until the folder is unmounted. Whether a
folder is mounted is read from mountinfo, never by touching the mount itself (a hung
mount would hang the caller).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from dfs import auth, errors, paths
from dfs.client import DfsClient
from dfs.config import MIB, ClientConfig, default
from dfs.retry import poll
from mount import binding, logfile, records, symfollow
from mount.callers import Callers
from mount.memory import HEAP
from mount.trashops import TrashOperations

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: float = default(ClientConfig, "timeout")  # the mount's --timeout
MEMORY_FLAGS = (("--write-back", "write_back", "write_back_bytes"),
                ("--read-buffers", "read_buffers", "read_buffer_bytes"))
"""`dfs mount` options (in MiB): flag, argparse dest, the ClientConfig field it sets."""
MOUNT_DEADLINE = 60.0  # `dfs mount` waits this long for the folder to go live
UMOUNT_DEADLINE = 120.0  # `dfs umount` waits this long for the mount process to exit
DFS_FSTYPE = "fuse.dfs"  # mountinfo's type of our mounts (subtype "dfs", see ``run``)


# --- what is mounted, what runs -------------------------------------------------------------

def _unescape_mountinfo(text: str) -> str:
    return text.encode().decode("unicode_escape") if "\\" in text else text


def _mountinfo(mount_dir: str) -> tuple[str, str, list[str]] | None:
    """("major:minor", file system type, per-mount options) of what is mounted on
    ``mount_dir`` (Linux)."""
    target = os.path.realpath(mount_dir)
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):  # the last mount on a path is the visible one
        fields = line.split()
        if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
            after = fields[fields.index("-", 6) + 1:] if "-" in fields[6:] else []
            return fields[2], after[0] if after else "", fields[5].split(",")
    return None


def mount_options(mount_dir: str) -> list[str]:
    """The per-mount options of ``mount_dir`` ("nosuid", "nosymfollow"...; Linux)."""
    found = _mountinfo(mount_dir)
    return found[2] if found else []


def mount_device(mount_dir: str) -> str | None:
    """"major:minor" of the file system mounted on ``mount_dir`` (Linux), or None."""
    found = _mountinfo(mount_dir)
    return found[0] if found else None


def check_dfs_mount(mount_dir: str) -> None:
    """PermissionDenied unless what is mounted on ``mount_dir`` is a DFS (FUSE) mount:
    `dfs umount` and `dfs down` unmount nothing else."""
    found = _mountinfo(mount_dir)
    if found is not None and found[1] != DFS_FSTYPE:
        raise errors.PermissionDenied(f"{mount_dir} is not a DFS mount ({found[1] or 'unknown'}"
                                      "): refusing to unmount it")


def is_mounted(mount_dir: str) -> bool:
    """True if something is mounted on ``mount_dir``; never touches the mount itself."""
    if os.path.exists("/proc/self/mountinfo"):
        return mount_device(mount_dir) is not None
    return os.path.ismount(mount_dir)


def pid_alive(pid: int | None) -> bool:
    from dfs.local.cluster import pid_alive as alive
    return pid is not None and pid != 0 and alive(pid)


def wait_until(condition: Callable[[], object], deadline: float,
               interval: float = 0.05) -> bool:
    """Poll ``condition`` every ``interval`` seconds for up to ``deadline`` seconds.
    -> whether it came true (dfs.retry.poll)."""
    return poll(condition, deadline, interval) is not None


# --- the mount process ----------------------------------------------------------------------

def make_client(auth_file: str, timeout: float, cache_dir: str | None = None,
                memory: dict[str, int] | None = None) -> DfsClient:
    """The mount's client: with a node unreachable, or a restarted master that has no
    workers yet, every call is retried for ``timeout`` seconds, then fails (the errno)."""
    options: dict[str, object] = {"timeout": timeout, "failover_deadline": timeout,
                                  "no_workers_wait": timeout}
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    options.update(memory or {})  # write_back_bytes, read_buffer_bytes (MEMORY_FLAGS)
    return DfsClient.from_auth_file(auth_file, **options)


def _when_live(mount_dir: str, nosymfollow: bool, failed: list[str]) -> None:
    """Once the folder is mounted: nosymfollow (mount.symfollow; failing, the folder is
    unmounted again and ``failed`` says why), then a bigger read-ahead."""
    if not wait_until(lambda: is_mounted(mount_dir), MOUNT_DEADLINE, 0.02):
        return
    if nosymfollow:
        try:
            symfollow.apply(mount_dir, mount_options(mount_dir))
        except errors.DfsError as exc:
            log.error("%s: unmounting again", exc.message)
            failed.append(exc.message)
            subprocess.run(fusermount_argv(mount_dir), stdin=subprocess.DEVNULL,
                           capture_output=True)
            return
    binding.raise_read_ahead(mount_device(mount_dir), mount_dir)


def is_live(mount_dir: str, nosymfollow: bool) -> bool:
    """Mounted, and with nosymfollow set if asked for."""
    return is_mounted(mount_dir) and (not nosymfollow
                                      or symfollow.OPTION in mount_options(mount_dir))


def run(mount_dir: str, auth_file: str, timeout: float = DEFAULT_TIMEOUT,
        cache_dir: str | None = None, debug: bool = False,
        memory: dict[str, int] | None = None, nosymfollow: bool = False) -> int:
    """Serve ``mount_dir`` in this process until it is unmounted."""
    if nosymfollow:
        symfollow.check_possible()
    HEAP.limit_arenas()  # before the client's threads start (mount/memory.py)
    mfusepy = binding.import_mfusepy()
    mount_dir = os.path.realpath(mount_dir)
    client = make_client(auth_file, timeout, cache_dir, memory)
    try:
        client.statfs()  # fail now, with a clear message, if the cluster cannot be reached
        # DfsOperations with the DFS trash as .Trash-UID, UID the local user who mounts (the
        # desktop's trash is theirs, whatever uid the cluster gives their DFS user)
        ops = TrashOperations(client)
        ops.kernel_forget = binding.kernel_forget(mfusepy)
    except BaseException:
        client.close()
        raise
    options: dict[str, str | bool] = {"fsname": "dfs", "subtype": "dfs"}
    if client.is_admin:  # a trusted host: every local user, each as themselves
        ops.callers = Callers(client, mfusepy.fuse_get_context)
        options["allow_other"] = True
        options["default_permissions"] = True  # the kernel checks too, from our attributes
    # else: the key acts as its user for whoever calls, so only the local user who mounted
    # reaches the folder (no allow_other, as sshfs), and the master alone decides access
    if debug:
        options["debug"] = True
    os.umask(0)  # the kernel has already applied the caller's umask to every mode
    pid = os.getpid()
    records.write_record(mount_dir, {"pid": pid, "dir": mount_dir,
                                     "auth": os.path.abspath(auth_file),
                                     "log": records.log_path(mount_dir)})
    failed: list[str] = []
    threading.Thread(target=_when_live, args=(mount_dir, nosymfollow, failed),
                     name="dfs-readahead", daemon=True).start()
    log.info("mounting %s on %s as %s", client.config.masters, mount_dir, client.user)
    HEAP.steady_gc()  # big listings allocate fast (mount/memory.py)
    try:
        binding.serve(mfusepy, ops, mount_dir, options)
    finally:
        records.remove_record(mount_dir, pid)
        log.info("%s unmounted: mount process %d ends", mount_dir, pid)
    return 1 if failed else 0


# --- starting one in the background -----------------------------------------------------------

def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def mount_background(mount_dir: str, auth_file: str | None = None,
                     timeout: float = DEFAULT_TIMEOUT, cache_dir: str | None = None,
                     debug: bool = False, memory: dict[str, int] | None = None,
                     nosymfollow: bool = False) -> int:
    """Start a detached mount process; return its pid once ``mount_dir`` is live."""
    mount_dir = os.path.realpath(mount_dir)
    auth_file = os.path.abspath(auth_file or paths.default_auth_file())
    _say(clean_dead(mount_dir, "dfs mount"))  # one that died: unmounted, said so
    check_mountable(mount_dir, auth_file)
    if nosymfollow:
        symfollow.check_possible()
    log_path = records.log_path(mount_dir)
    argv = [sys.executable, "-m", "dfs.cli", *(["--debug"] if debug else []), "mount",
            mount_dir, "--foreground", "--auth", auth_file, "--timeout", str(timeout),
            "--log-file", log_path]
    if cache_dir is not None:
        argv += ["--cache-dir", cache_dir]
    if nosymfollow:
        argv.append("--nosymfollow")
    for flag, _dest, key in MEMORY_FLAGS:
        if memory and key in memory:
            argv += [flag, str(memory[key] / MIB)]
    records.rotate_log(mount_dir)
    with records.open_log(mount_dir) as out:
        out.write(f"--- {time.ctime()}: {' '.join(argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=_child_env(), cwd="/",
                                 start_new_session=True)
    wait_until(lambda: is_live(mount_dir, nosymfollow) or child.poll() is not None,
               MOUNT_DEADLINE + timeout, 0.02)
    if is_live(mount_dir, nosymfollow):
        return child.pid
    if child.poll() is not None:
        raise errors.Unavailable(f"the mount of {mount_dir} exited at start; "
                                 f"see {log_path}:\n{_tail(log_path)}")
    child.terminate()
    raise errors.Unavailable(f"{mount_dir} was not mounted after {MOUNT_DEADLINE:.0f}s;"
                             f" see {log_path}")


def check_mountable(mount_dir: str, auth_file: str) -> None:
    if os.name == "nt":  # WinFsp creates the folder (or drive) itself
        if os.path.exists(mount_dir):
            raise errors.FileExists(f"{mount_dir} exists: WinFsp mounts on a new folder or drive")
    elif not os.path.isdir(mount_dir):
        raise errors.FileNotFound(f"mount point {mount_dir} is not an existing folder")
    if is_mounted(mount_dir):
        raise errors.FileExists(f"{mount_dir} is already mounted (dfs umount {mount_dir})")
    if not os.path.exists(auth_file):
        raise errors.FileNotFound(f"no auth file {auth_file}: run `dfs register NAME` or "
                                  "`dfs up` first, or pass --auth")
    auth.read_auth_file(auth_file)


# --- unmounting -------------------------------------------------------------------------------

def clean_dead(mount_dir: str, by: str) -> str | None:
    """A mount of ``mount_dir`` whose process died is unmounted and forgotten
    (mount.logfile.clean_dead). -> a line saying so and where its log is, or None."""
    mount_dir = os.path.realpath(mount_dir)
    mounted = is_mounted(mount_dir)
    if mounted and logfile.dead_mount(mount_dir) is not None:
        check_dfs_mount(mount_dir)  # only ever a DFS mount is unmounted
    return logfile.clean_dead(mount_dir, mounted, fusermount_argv(mount_dir),
                              fusermount_argv(mount_dir, lazy=True), by)


def fusermount_argv(mount_dir: str, lazy: bool = False) -> list[str]:
    for tool in ("fusermount3", "fusermount"):
        path = shutil.which(tool)
        if path:
            return [path, "-u", *(["-z"] if lazy else []), mount_dir]
    return ["umount", *(["-l"] if lazy else []), mount_dir]


def unmount(mount_dir: str, deadline: float = UMOUNT_DEADLINE) -> None:
    """Unmount ``mount_dir`` and wait until its mount process has exited. A record that is
    not the caller's own, a pid that is not its DFS mount of ``mount_dir`` or a folder that
    is not a DFS mount: PermissionDenied, and nothing is signalled or unmounted."""
    mount_dir = os.path.realpath(mount_dir)
    record = records.read_record(mount_dir)
    pid = records.check_pid(record, mount_dir) if record else None
    mounted = is_mounted(mount_dir)
    if not mounted and not pid_alive(pid):
        if record:
            records.remove_record(mount_dir, record["pid"])
        raise errors.InvalidArgument(f"{mount_dir} is not mounted")
    if mounted:
        check_dfs_mount(mount_dir)
        done = subprocess.run(fusermount_argv(mount_dir), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        if done.returncode != 0 and is_mounted(mount_dir):
            message = (done.stderr or done.stdout).strip().splitlines()
            raise errors.Unavailable(f"cannot unmount {mount_dir}: "
                                     f"{message[-1] if message else 'unmount failed'}")
    if pid and not wait_until(lambda: not pid_alive(pid), deadline):
        log.warning("mount process %d did not exit after unmount: stopping it", pid)
        try:
            if record is not None and records.check_pid(record, mount_dir) is not None:
                os.kill(pid, signal.SIGTERM)  # checked again: a pid may be reused meanwhile
        except ProcessLookupError:
            pass
        if not wait_until(lambda: not pid_alive(pid), 10.0):
            raise errors.Unavailable(f"mount process {pid} for {mount_dir} does not exit")
    if record is not None:
        records.remove_record(mount_dir, record["pid"])


# --- the CLI's entry points (dfs/cli calls these) ---------------------------------------------

def cmd_mount(args: argparse.Namespace) -> int:
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT
    cache_dir = getattr(args, "cache_dir", None)
    memory = {key: int(value * MIB) for _flag, dest, key in MEMORY_FLAGS
              if (value := getattr(args, dest, None)) is not None}
    auth_file = os.path.abspath(args.auth or paths.default_auth_file())
    nosymfollow = bool(getattr(args, "nosymfollow", False))
    if args.foreground:
        mount_dir = os.path.realpath(args.dir)
        if getattr(args, "log_file", None):  # started by `dfs mount`: log to the kept file
            logfile.log_to(args.log_file, args.debug)
        check_mountable(mount_dir, auth_file)
        return run(mount_dir, auth_file, timeout, cache_dir, args.debug, memory, nosymfollow)
    mount_background(args.dir, auth_file, timeout, cache_dir, args.debug, memory, nosymfollow)
    print(f"mounted DFS on {os.path.realpath(args.dir)} (dfs umount {args.dir} to unmount)")
    print(f"its log: {records.log_path(args.dir)}")
    return 0


def _say(line: str | None) -> None:
    if line:
        print(f"dfs: {line}")


def cmd_umount(args: argparse.Namespace) -> int:
    dead = clean_dead(args.dir, "dfs umount")
    if dead:
        _say(dead)
        return 0
    unmount(args.dir)
    return 0


def mount_for_up(mount_dir: str, auth_file: str) -> int:
    """`dfs up`: mount the local cluster on ``mount_dir`` (made if missing). -> exit status.

    A failure to mount is reported on one line but leaves the cluster running."""
    mount_dir = os.path.realpath(os.path.expanduser(mount_dir))
    try:
        _say(clean_dead(mount_dir, "dfs up"))
        if is_mounted(mount_dir):
            print(f"{mount_dir} is already mounted")
            return 0
        os.makedirs(mount_dir, exist_ok=True)
        mount_background(mount_dir, auth_file)
    except (errors.DfsError, OSError) as exc:
        message = exc.message if isinstance(exc, errors.DfsError) else str(exc)
        print(f"dfs: the cluster is up but mounting {mount_dir} failed: "
              f"{message.splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"mounted on {mount_dir}: open it in your file manager, copy files in and out; "
          f"dfs umount {mount_dir} unmounts it (its log: {records.log_path(mount_dir)})")
    return 0


def unmount_for_down(data_dir: str) -> list[str]:
    """`dfs down`: unmount every mount of the cluster in ``data_dir``. -> dirs unmounted.

    A mount belongs to that cluster if its auth file lives in ``data_dir``."""
    prefix = os.path.realpath(data_dir).rstrip(os.sep) + os.sep
    done = []
    for path in records.all_records():
        try:
            record = records.load(path)
            if record and os.path.realpath(record["auth"]).startswith(prefix):
                dead = clean_dead(record["dir"], "dfs down")
                if dead:
                    _say(dead)
                else:
                    unmount(record["dir"])
                done.append(record["dir"])
        except errors.DfsError as exc:
            print(f"dfs: {exc.message}", file=sys.stderr)
    return done

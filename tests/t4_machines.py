"""The README's "Running nodes on several machines", run as written: every ```sh block of that
section in order, each machine a folder of its own on 127.0.0.1 (its own ports), the lines
`systemctl enable --now dfs-ROLE` replaced by what the unit in docs/systemd/ would run (its
ExecStartPre and ExecStart lines), up to alice's mount of ~/dfs. What is rewritten is only
where things are: addresses and ports, /var/lib/dfs, /etc/dfs, ~ and /opt/dfs; `sudo` is
dropped (we are root) and so is the owner in `install -o dfs -g dfs` (there is no user dfs).
The block that installs DFS on every machine is not run (it would install this machine);
that it names the right files is checked."""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from dfs.local.cluster import SOURCE_ROOT, free_port, wait_for

README = os.path.join(SOURCE_ROOT, "README.md")
UNITS = os.path.join(SOURCE_ROOT, "docs", "systemd")
SECTION = "## Running nodes on several machines"
HOSTS = {"A": "10.0.0.1", "S": "10.0.0.2", "B": "10.0.0.11", "C": "10.0.0.12"}
PORTS = {"10.0.0.1": 18861, "10.0.0.2": 18862}
ENABLE = re.compile(r"systemctl (--user )?enable --now (dfs-[\w-]+)")

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse: cannot mount"),
    pytest.mark.log_allows(r"is now the leader", r"standby unreachable .*: marking it stale"),
]


def readme_blocks():
    """[(first comment line, [command lines])] of the section's ```sh blocks."""
    with open(README) as f:
        text = f.read()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n### ", len(SECTION))]  # up to its first subsection
    blocks = []
    for body in re.findall(r"```sh\n(.*?)```", section, re.S):
        lines = body.strip().splitlines()
        blocks.append((lines[0], [line for line in lines[1:] if line.strip()]))
    return blocks


class Machines:
    """Each machine a folder; its nodes and its mount as processes of this test."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.ports = {name: free_port() for name in HOSTS}
        self.processes = []  # (name, Popen, mount dir or None, ExecStop command lines)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        shim = self.bin / "dfs"  # what /opt/dfs/.venv/bin/dfs is on every machine
        shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m dfs.cli \"$@\"\n")
        shim.chmod(0o755)
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        for name in [*HOSTS, "alice"]:
            for folder in ("var/lib/dfs", "etc/dfs", "home"):
                (self.root(name) / folder).mkdir(parents=True)
        self.token = ""

    def root(self, machine):
        return self.tmp / machine

    def rewrite(self, machine, line):
        root = self.root(machine)
        for host, port in PORTS.items():
            name = next(n for n, h in HOSTS.items() if h == host)
            line = line.replace(f"{host}:{port}", f"127.0.0.1:{self.ports[name]}")
        for name, host in HOSTS.items():
            line = re.sub(rf"--host {re.escape(host)}\b",
                          f"--host 127.0.0.1 --port {self.ports[name]}", line)
        line = line.replace("sudo ", "").replace("-o dfs -g dfs ", "")
        line = line.replace("/opt/dfs/.venv/bin/dfs", str(self.bin / "dfs"))
        line = line.replace("/opt/dfs", SOURCE_ROOT)
        line = line.replace("/var/lib/dfs", str(root / "var/lib/dfs"))
        line = line.replace("/etc/dfs", str(root / "etc/dfs"))
        line = line.replace("%h", str(root / "home"))
        return re.sub(r"(^|\s)~(?=/|\s|$)", rf"\g<1>{root / 'home'}", line)

    def env(self, machine):
        environment = dict(os.environ, HOME=str(self.root(machine) / "home"), DFS_TLS="1",
                           PATH=f"{self.bin}:{os.environ['PATH']}", PYTHONPATH=SOURCE_ROOT)
        for name in ("XDG_CONFIG_HOME", "DFS_AUTH", "DFS_JOIN_TOKEN"):
            environment.pop(name, None)
        return environment

    def shell(self, machine, line, stdin=""):
        done = subprocess.run(["bash", "-ec", self.rewrite(machine, line)], input=stdin,
                              capture_output=True, text=True, timeout=120,
                              cwd=self.root(machine) / "home", env=self.env(machine))
        assert done.returncode == 0, f"{machine}: {line}\n{done.stdout}{done.stderr}"
        return done.stdout

    def start_unit(self, machine, unit, user):
        path = (self.root(machine) / "home/.config/systemd/user" / f"{unit}.service"
                if user else os.path.join(UNITS, f"{unit}.service"))
        with open(path) as f:
            settings = re.findall(r"^(ExecStartPre|ExecStart|ExecStop)=(.*)$", f.read(), re.M)
        stop = [shlex.split(self.rewrite(machine, command)) for key, command in settings
                if key == "ExecStop"]
        log = open(self.logs / f"{machine}-{unit}.log", "ab")
        for key, command in settings:
            argv = shlex.split(self.rewrite(machine, command.lstrip("-")))
            if key == "ExecStartPre":
                subprocess.run(argv, check=True, env=self.env(machine))
                continue
            if key != "ExecStart":
                continue
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       env=self.env(machine), cwd="/")
            mount_dir = argv[argv.index("mount") + 1] if "mount" in argv else None
            self.processes.append((f"{machine} {unit}", process, mount_dir, stop))
            self.wait_started(machine, unit, process, mount_dir)

    def wait_started(self, machine, unit, process, mount_dir):
        if mount_dir:
            wait_for(lambda: os.path.ismount(mount_dir) or process.poll() is not None,
                     60, f"{unit} on {machine}")
            assert os.path.ismount(mount_dir), f"{unit} exited"
        else:
            wait_for(lambda: self.listening(machine) or process.poll() is not None, 60,
                     f"{unit} on {machine} to listen")
            assert process.poll() is None, f"{unit} on {machine} exited"

    def listening(self, machine):
        try:
            socket.create_connection(("127.0.0.1", self.ports[machine]), 0.5).close()
            return True
        except OSError:
            return False

    def run(self, machine, line):
        enable = ENABLE.search(line)
        if enable:
            self.start_unit(machine, enable.group(2), user=bool(enable.group(1)))
        elif "/dev/stdin" in line:
            self.shell(machine, line, stdin=self.token)  # the token, pasted
        elif re.search(r"\bcat \S*join-token", line):
            self.token = self.shell(machine, line)
            assert re.fullmatch(r"[0-9a-f]{64}\n", self.token)
        else:
            self.shell(machine, line)

    def stop(self):
        """As `systemctl stop` does: each unit's ExecStop, then SIGTERM if it still runs.
        -> {unit: exit status} (systemd counts anything but 0 as a failure)."""
        statuses = {}
        for name, process, mount_dir, stop in reversed(self.processes):
            machine = name.split()[0]
            for argv in stop:
                subprocess.run(argv, env=self.env(machine), capture_output=True, timeout=90)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                statuses[name] = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                statuses[name] = process.wait()
            if mount_dir and os.path.ismount(mount_dir):
                subprocess.run(["fusermount3", "-u", mount_dir])
                statuses[name] = f"left {mount_dir} mounted"
        return statuses


def test_the_readme_runs_as_written_on_four_machines_and_a_client(tmp_path):
    blocks = readme_blocks()
    machines = Machines(tmp_path)
    setup = [lines for title, lines in blocks if title.startswith("# every machine")]
    assert len(setup) == 1
    for unit in re.findall(r"docs/systemd/(\S+\.service)", " ".join(setup[0])):
        assert os.path.exists(os.path.join(UNITS, unit)), unit
    ran = set()
    try:
        for title, lines in blocks:
            if title.startswith("# every machine"):
                continue
            if title.startswith("# alice's machine"):
                machine_names = ["alice"]
                made = machines.root("A") / "home" / "alice-auth.txt"  # the admin hands it
                (machines.root("alice") / "home" / "alice-auth.txt").write_bytes(
                    made.read_bytes())
            else:
                host = re.match(r"# machine \w \(([\d.]+)\)", title).group(1)
                machine_names = [n for n, h in HOSTS.items() if h == host]
                if "C, D, ..." in title:  # the same on another worker, with its own --host
                    machine_names.append("C")
            for machine in machine_names:
                if "the admin" in title:  # the first worker initialised the cluster
                    admin = machines.root("A") / "var/lib/dfs/master/admin-auth.txt"
                    wait_for(admin.exists, 60, "the admin's credentials")
                for line in lines:
                    machines.run(machine, line.replace("10.0.0.11", HOSTS[machine])
                                 if machine == "C" else line)
                ran.add(machine)
        assert ran == {"A", "S", "B", "C", "alice"}
        # what the section promises: both workers vote, alice's folder is the cluster
        listing = machines.shell("A", "dfs workers list --auth "
                                      "/var/lib/dfs/master/admin-auth.txt")
        rows = [line.split() for line in listing.splitlines()[1:] if line.startswith("w-")]
        assert len(rows) == 2 and all(r[2] == "alive" and r[-2] == "yes" for r in rows), listing
        status = machines.shell("alice", "dfs status")
        assert "TLS: on" in status and "standby: in sync" in status, status
        folder = machines.root("alice") / "home" / "dfs" / "home" / "alice"  # her home in it
        (folder / "hello.txt").write_text("from alice's folder\n")
        assert machines.shell("alice", "dfs cat hello.txt") == "from alice's folder\n"
    finally:
        statuses = machines.stop()
    assert statuses == {name: 0 for name, *_rest in machines.processes}  # clean stops


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze here")
@pytest.mark.parametrize("unit", ["dfs-master", "dfs-shadow", "dfs-worker", "dfs-mount"])
def test_the_units_are_valid_for_systemd(tmp_path, unit):
    """`systemd-analyze verify` with /opt/dfs/.venv/bin/dfs where this DFS is: no unknown
    key, no missing command, and each one runs its config file."""
    with open(os.path.join(UNITS, f"{unit}.service")) as f:
        text = f.read()
    role = unit.removeprefix("dfs-")
    config = "%h/.config/dfs/mount.toml" if role == "mount" else f"/etc/dfs/{role}.toml"
    assert f"/opt/dfs/.venv/bin/dfs {role} " in text and f"--config {config}" in text
    shim = tmp_path / "dfs"
    shim.write_text("#!/bin/sh\n")
    shim.chmod(0o755)
    path = tmp_path / f"{unit}.service"
    path.write_text(text.replace("/opt/dfs/.venv/bin/dfs", str(shim)))
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and unit not in done.stderr, done.stderr

"""`dfs up` and the default auth file: the cluster the `dfs` commands talk to afterwards.

Every client command without ``--auth`` reads the default auth file
(``paths.default_auth_file``: ``~/.config/dfs/auth.txt`` on Linux). A user who runs
`dfs up` expects `dfs ls` to show the cluster just started, whichever data dir it lives
in, so `dfs up` points the default file at it (``point_at``):

- no default file yet: it is written (a copy of DATA/auth.txt);
- already this cluster's credentials (a second `dfs up` of the same data dir): unchanged;
- written by `dfs up` for another local cluster (its comment line says which): replaced,
  and `dfs up` says which cluster it pointed at before;
- anything else (a `dfs register` with a remote cluster, say): kept as ``auth.txt.bak``
  (``.bak.2`` ... if that is taken by other credentials) before it is replaced, and `dfs up`
  says so and how to use it;
- ``$DFS_AUTH`` set: the user chose that file; it is left alone and `dfs up` says which
  ``--auth`` to pass for the new cluster.
"""

from __future__ import annotations

import os

from dfs import auth, errors, paths
from dfs.config import format_addresses, parse_addresses
from dfs.fsutil import open_private

NOTE = "written by dfs up for the local cluster in "


def _credentials(path: str) -> tuple[str, str, str, str]:
    masters, user, key = auth.read_auth_file(path)
    return format_addresses(masters), user, key, auth.read_auth_pin(path)


def written_for(path: str) -> str | None:
    """The data dir whose local cluster `dfs up` wrote auth file ``path`` for, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("# " + NOTE):
                    return line[len("# " + NOTE):].strip()
    except (OSError, UnicodeDecodeError):
        pass
    return None


def _backup(path: str) -> str:
    """Copy ``path`` to a free ``.bak`` name (or one holding the same bytes). -> its name."""
    with open(path, "rb") as f:
        data = f.read()
    for n in range(1, 1000):
        candidate = f"{path}.bak" if n == 1 else f"{path}.bak.{n}"
        try:
            with open(candidate, "rb") as f:
                if f.read() == data:
                    return candidate  # kept already
            continue
        except FileNotFoundError:
            with open_private(candidate, "xb") as f:
                f.write(data)
            return candidate
    raise OSError(f"no free backup name for {path}")


def point_at(cluster_auth: str, data_dir: str) -> str:
    """Make the default auth file hold the credentials in ``cluster_auth`` (the local
    cluster in ``data_dir``), as the module docstring says. -> a line for the user."""
    default = paths.default_auth_file()
    if os.environ.get("DFS_AUTH"):
        if os.path.realpath(default) == os.path.realpath(cluster_auth):
            return f"dfs commands use them ($DFS_AUTH is {default})"
        return (f"$DFS_AUTH is set ({default}): for this cluster pass --auth {cluster_auth} "
                "or set DFS_AUTH to it")
    old = None
    if os.path.exists(default):
        try:
            old = _credentials(default)
        except errors.DfsError:  # malformed: not anyone's working credentials, but kept
            pass
    new = _credentials(cluster_auth)  # read last: its CA pin is this process's trust
    if old == new:
        return f"dfs commands use them ({default})"
    before = ""
    if os.path.exists(default):
        owner = written_for(default)
        if owner is not None:
            before = f" (it pointed at the local cluster in {owner})"
        else:
            kept = _backup(default)
            before = (f"; the credentials it held are kept as {kept} (use them with "
                      f"--auth {kept}, or copy them back)")
    masters, user, key, pin = new
    auth.write_auth_file(default, parse_addresses(masters), user, key, ca=pin,
                         note=NOTE + os.path.realpath(data_dir))
    return f"dfs commands use them: {default} now points at this cluster{before}"

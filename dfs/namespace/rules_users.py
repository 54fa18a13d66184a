"""The rules for users and keys, as pure functions (see dfs/namespace/rules.py).

A user name is 1-64 letters, digits, '.', '_' or '-', starting alphanumeric; a user is
never created twice, and a revoked name never again (whoever took it would own the revoked
user's files); an admin cannot revoke their own key (it would lock them out). A session
lives as long as the user it logged in as: same name and same uid (``session_user``).
Registration needs one of: the cluster's join token, an admin caller, or open registration
from this machine (``open_registration`` and a loopback peer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dfs import errors, paths
from dfs.namespace.access import ROOT_UID
from dfs.namespace.entries import AddUser, Group, Mkdir, Revoke, SetGroups
from dfs.namespace.inode import ROOT_INO
from dfs.namespace.model import Namespace
from dfs.namespace.users import FIRST_UID, User, valid_id

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_user_name(name: str) -> None:
    if not USER_NAME.match(name):
        raise errors.InvalidArgument(
            "user names are 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")


def may_register(ns: Namespace, caller: str | None, open_here: bool, token_ok: bool) -> None:
    """``caller``: the user logged in on this connection, if any."""
    admin_caller = caller is not None and ns.is_admin(caller)
    if not (open_here or token_ok or admin_caller):
        raise errors.AuthenticationFailed("registration needs the cluster's join token")


@dataclass(frozen=True)
class Claim:
    """The POSIX ids a registration asks for: on a local cluster, the registering local
    user's own (``dfs register`` sends them), or what an admin gives with ``users add``."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


MAX_GROUPS = 64


def add_user(ns: Namespace, name: str, admin: bool, stored_key: str,
             claim: Claim | None = None) -> AddUser:
    """Admins get uid 0. Others get the claimed ids if the uid is free (no other user has
    it, and no revoked one had it) and every id is valid; else the first free uid from
    FIRST_UID, with a group of their own of the same number."""
    if name in ns.users:
        raise errors.FileExists(f"user {name} already exists")
    if name in ns.revoked:
        raise errors.NotPermitted(f"user {name} was revoked: the name stays reserved, "
                                  "choose another")
    serial = ns.next_serial
    if admin:
        return AddUser(name, True, stored_key, serial, ROOT_UID, ROOT_UID)
    taken = {u.uid for u in ns.users.values()} | ns.retired_uids
    if (claim is not None and valid_id(claim.uid) and claim.uid not in taken
            and (valid_id(claim.gid) or claim.gid == ROOT_UID)
            and len(claim.groups) <= MAX_GROUPS
            and all(valid_id(g) or g == ROOT_UID for g in claim.groups)):
        groups = tuple(sorted(set(claim.groups) - {claim.gid}))
        return AddUser(name, False, stored_key, serial, claim.uid, claim.gid, groups)
    uid = FIRST_UID
    while uid in taken or uid in ns.groups.values():
        uid += 1
    return AddUser(name, False, stored_key, serial, uid, uid)


HOME_MODE = 0o700  # private by default: a user shares with chmod, as on any system
HOMES_MODE = 0o755


def home_folders(ns: Namespace, name: str, now_ns: int) -> list[Mkdir]:
    """The mkdir entries that make user ``name``'s home folder (paths.home_of), theirs and
    0700, and the folder of homes (the superuser's, 0755) if missing; none if the name is
    taken already (an older tree, or a home kept from a revoked user: it is not given)."""
    user = ns.users[name]
    root = ns.inodes[ROOT_INO]
    homes_name = paths.HOMES.strip("/")
    made: list[Mkdir] = []
    homes_ino = root.children.get(homes_name)
    if homes_ino is None:
        homes_ino = ns.next_ino
        made.append(Mkdir(ROOT_INO, homes_name, homes_ino, ROOT_UID, ROOT_UID, HOMES_MODE,
                          now_ns))
    elif ns.inodes[homes_ino].kind != "d" or name in ns.inodes[homes_ino].children:
        return []
    cred = user.cred
    made.append(Mkdir(homes_ino, name, ns.next_ino + len(made), cred.uid, cred.gid,
                      HOME_MODE, now_ns))
    return made


def check_group_name(name: str) -> None:
    if not USER_NAME.match(name):
        raise errors.InvalidArgument(
            "group names are 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")


def add_group(ns: Namespace, name: str, gid: object) -> Group:
    """Name a group (``gid`` None: the first free id from FIRST_UID)."""
    check_group_name(name)
    if name in ns.groups:
        raise errors.FileExists(f"group {name} already exists")
    used = set(ns.groups.values()) | {u.uid for u in ns.users.values()} | ns.retired_uids
    if gid is None:
        gid = FIRST_UID
        while gid in used:
            gid += 1
    elif not valid_id(gid):
        raise errors.InvalidArgument(f"bad group id {gid!r}")
    elif gid in ns.groups.values():
        raise errors.FileExists(f"group id {gid} already has a name")
    assert isinstance(gid, int)
    return Group(name, gid)


def remove_group(ns: Namespace, name: str) -> Group:
    """The name goes; files keep their group id (as on any system)."""
    if name not in ns.groups:
        raise errors.FileNotFound(f"no group {name}")
    return Group(name, None)


def set_groups(ns: Namespace, name: str, groups: tuple[object, ...]) -> SetGroups:
    """User ``name``'s supplementary groups: ids, or names of groups an admin made."""
    user = ns.users.get(name)
    if user is None:
        raise errors.FileNotFound(f"no user {name}")
    if len(groups) > MAX_GROUPS:
        raise errors.InvalidArgument(f"at most {MAX_GROUPS} groups")
    ids = []
    for group in groups:
        if type(group) is str and group in ns.groups:
            ids.append(ns.groups[group])
        elif valid_id(group) or group == ROOT_UID:
            assert isinstance(group, int)
            ids.append(group)
        else:
            raise errors.InvalidArgument(f"no group {group!r}")
    return SetGroups(name, tuple(sorted(set(ids) - {user.gid})))


def revoke(ns: Namespace, me: str, name: str) -> Revoke:
    if name == me:
        raise errors.InvalidArgument("you cannot revoke your own key")
    if name not in ns.users:
        gone = " (already revoked)" if name in ns.revoked else ""
        raise errors.FileNotFound(f"no user {name}{gone}")
    return Revoke(name)


def session_user(ns: Namespace, name: str, serial: int) -> User:
    """The user a session logged in as (``name``, ``serial``), if still there: a revoked
    user's sessions stay dead, whoever holds the name later."""
    user = ns.users.get(name)
    if user is None or user.serial != serial:
        raise errors.AuthenticationFailed(f"key for {name} was revoked")
    return user

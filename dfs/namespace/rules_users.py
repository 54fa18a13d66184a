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

from dfs import errors
from dfs.namespace.entries import AddUser, Revoke
from dfs.namespace.inode import User
from dfs.namespace.model import Namespace

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


def add_user(ns: Namespace, name: str, admin: bool, stored_key: str) -> AddUser:
    if name in ns.users:
        raise errors.FileExists(f"user {name} already exists")
    if name in ns.revoked:
        raise errors.NotPermitted(f"user {name} was revoked: the name stays reserved, "
                                  "choose another")
    return AddUser(name, admin, stored_key, ns.next_uid)


def revoke(ns: Namespace, me: str, name: str) -> Revoke:
    if name == me:
        raise errors.InvalidArgument("you cannot revoke your own key")
    if name not in ns.users:
        gone = " (already revoked)" if name in ns.revoked else ""
        raise errors.FileNotFound(f"no user {name}{gone}")
    return Revoke(name)


def session_user(ns: Namespace, name: str, uid: int) -> User:
    """The user a session logged in as (``name``, ``uid``), if still there: a revoked
    user's sessions stay dead, whoever holds the name later."""
    user = ns.users.get(name)
    if user is None or user.uid != uid:
        raise errors.AuthenticationFailed(f"key for {name} was revoked")
    return user

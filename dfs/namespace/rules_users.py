"""The rules for users and keys, as pure functions (see dfs/namespace/rules.py).

A user name is 1-64 letters, digits, '.', '_' or '-', starting alphanumeric; a user is
never created twice; an admin cannot revoke their own key (it would lock them out).
Registration needs one of: the cluster's join token, an admin caller, or open registration
from this machine (``open_registration`` and a loopback peer).
"""

from __future__ import annotations

import re

from dfs import errors
from dfs.namespace.entries import AddUser, Revoke
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
    return AddUser(name, admin, stored_key)


def revoke(ns: Namespace, me: str, name: str) -> Revoke:
    if name == me:
        raise errors.InvalidArgument("you cannot revoke your own key")
    if name not in ns.users:
        raise errors.FileNotFound(f"no user {name}")
    return Revoke(name)

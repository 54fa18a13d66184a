"""Who is on the other end of one rpyc connection to a metadata server.

rpyc builds one service object per connection (through classpartial), so the login state
lives on it: a user name after ``login``, a worker id after ``worker_login``. Every exposed
method starts by asking this object who the caller is.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import rpyc

from dfs import errors
from dfs.namespace import rules_users
from dfs.namespace.access import Cred
from dfs.namespace.rules import MAX_OWNER_ID
from dfs.namespace.rules_users import MAX_GROUPS
from nodes.rpcserver import PlainConnection, boundary, expect, peer_host

if TYPE_CHECKING:
    from nodes.master.state import MasterState

log = logging.getLogger(__name__)


class Session(rpyc.Service):
    """One per connection: who logged in on it, and the checks every method starts with."""

    _protocol = PlainConnection  # no client object ever reaches a method (nodes/rpcserver.py)

    def __init__(self, state: MasterState) -> None:
        super().__init__()
        self.state = state
        self.user: str | None = None
        self.serial = 0  # the user's stable id at login: a later user of that name is not us
        self.worker_id: str | None = None
        self.acting: Cred | None = None  # an admin's act_as credentials
        self.nonce: bytes | None = None
        self.peer = ""

    def on_connect(self, conn: Any) -> None:
        self.peer = peer_host(conn)

    def _me(self) -> str:
        if self.user is None:
            raise errors.AuthenticationFailed("log in first")
        with self.state.lock:
            rules_users.session_user(self.state.ns, self.user, self.serial)
        return self.user

    def _worker(self) -> str:
        if self.worker_id is None:
            raise errors.AuthenticationFailed("worker not logged in")
        return self.worker_id

    def _admin(self) -> str:
        user = self._me()
        if not self.state.ns.is_admin(user):
            raise errors.NotPermitted("only an admin may do that")
        return user

    def _secret_failed(self, name: str, error: str) -> errors.AuthenticationFailed:
        """A wrong key, join token or worker proof for ``name``: counted against this host
        and name (nodes/master/login_limits.py; ``LoginLimits.check`` comes first), logged
        as the limits say (once per window, not once per try). -> the error to raise."""
        self.state.events.login(name, self.peer, accepted=False)
        line = self.state.login_limits.failed(self.peer, name)
        if line:
            log.warning("%s", line)
        return errors.AuthenticationFailed(error)

    def _serving(self) -> Cred:
        """Who acts for the request, while this server serves: a normal user's key acts as
        that user, always (squash); an admin's as the superuser, or as the credentials
        ``act_as`` set on this connection (a trusted host's mount, per calling process)."""
        name = self._me()
        self.state.require_serving()
        user = self.state.ns.users[name]
        if user.admin and self.acting is not None:
            return self.acting
        return dataclasses.replace(user.cred, name=name)

    @boundary
    def exposed_act_as(self, uid: object, gid: object, groups: object = ()) -> None:
        """(Admins only.) Later calls on this connection act as this uid, gid and groups, as
        the kernel says the calling process is; uid 0 is the superuser."""
        name = self._admin()
        ids = [expect(uid, int, "uid"), expect(gid, int, "gid"),
               *(expect(g, int, "group id") for g in expect(groups, tuple, "groups"))]
        if not all(0 <= i <= MAX_OWNER_ID for i in ids) or len(ids) > 2 + MAX_GROUPS:
            raise errors.InvalidArgument("bad uid, gid or groups")
        self.acting = Cred(ids[0], ids[1], frozenset(ids[2:]), name)

    def _login_arguments(self, name: object, client_nonce: object, proof: object,
                         what: str) -> tuple[str, bytes, bytes, bytes]:
        """A login's arguments, type-checked, and the nonce ``hello()`` gave this
        connection (taken: one login per hello). -> (name, client nonce, proof, nonce)."""
        checked = expect(name, str, what)
        client = expect(client_nonce, bytes, "nonce")
        signed = expect(proof, bytes, "proof")
        nonce, self.nonce = self.nonce, None
        if nonce is None:
            raise errors.AuthenticationFailed("call hello() before logging in")
        return checked, client, signed, nonce

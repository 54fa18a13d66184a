"""Who is on the other end of one rpyc connection to a metadata server.

rpyc builds one service object per connection (through classpartial), so the login state
lives on it: a user name after ``login``, a worker id after ``worker_login``. Every exposed
method starts by asking this object who the caller is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import rpyc

from dfs import errors
from dfs.namespace import rules_users
from nodes.rpcserver import PlainConnection, expect, peer_host

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
        self.uid = 0  # the user's stable id at login: a later user of the same name is not us
        self.worker_id: str | None = None
        self.nonce: bytes | None = None
        self.peer = ""

    def on_connect(self, conn: Any) -> None:
        self.peer = peer_host(conn)

    def _me(self) -> str:
        if self.user is None:
            raise errors.AuthenticationFailed("log in first")
        with self.state.lock:
            rules_users.session_user(self.state.ns, self.user, self.uid)
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

    def _serving(self) -> str:
        user = self._me()
        self.state.require_serving()
        return user

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

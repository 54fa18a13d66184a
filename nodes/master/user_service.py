"""The master's endpoints for logging in and for users: hello/login (the HMAC handshake),
register and the original design's ``Auth_Host``, and the admin's user management. The
rules (name format, who may register, revoked names stay reserved, no revoking yourself)
are in dfs/namespace/rules_users.py; failed logins are limited by
nodes/master/login_limits.py."""

from __future__ import annotations

import logging
import secrets

from dfs import auth, wire
from dfs.namespace import quota, rules_users
from dfs.namespace.users import User
from nodes.master.session import Session
from nodes.rpcserver import boundary, expect, is_loopback

log = logging.getLogger(__name__)

def join_token_guesses(host: str) -> str:
    """The name failed guesses at the join token from ``host`` are counted under: per host,
    so guesses from one machine never lock out the workers of another."""
    return f"(join token from {host})"


class UserEndpoints(Session):
    @boundary
    def exposed_hello(self) -> tuple[bytes, str, int]:
        """-> (server nonce, "leader" or "standby", epoch). Starts a login."""
        self.nonce = auth.new_nonce()
        return self.nonce, self.state.leadership.role, self.state.epoch

    @boundary
    def exposed_login(self, name: object, client_nonce: object,
                      proof: object) -> tuple[str, bool]:
        name, client_nonce, proof, nonce = self._login_arguments(name, client_nonce, proof,
                                                                 "user name")
        limits = self.state.login_limits
        limits.check(self.peer, name)  # locked: refused before the key is looked at
        with self.state.lock:
            self.state.require_serving()
            user = self.state.ns.users.get(name)
            if user is None or not auth.check_proof(user.stored_key, name, nonce,
                                                    client_nonce, proof):
                user = None
            else:
                self.user, self.serial = name, user.serial
        if user is None:
            raise self._secret_failed(name, "unknown user or wrong key")
        limits.succeeded(name)
        self.state.events.login(name, self.peer, accepted=True)
        return name, user.admin

    @boundary
    def exposed_register(self, name: object, token: object, uid: object = None,
                         gid: object = None, groups: object = ()) -> str:
        """Create user ``name`` and return its new key (shown once, stored hashed). The
        POSIX ids asked for are given only on open registration from this machine (a
        local cluster: the registering local user's own); elsewhere the master chooses."""
        name = expect(name, str, "user name")
        token = expect(token, (str, type(None)), "token")
        claim = _claim(uid, gid, groups)
        rules_users.check_user_name(name)
        open_here = self.state.config.open_registration and is_loopback(self.peer)
        token_ok = False
        if token is not None:  # a guess at the join token counts as a failed login would
            self.state.login_limits.check(self.peer, join_token_guesses(self.peer))
            token_ok = secrets.compare_digest(token, self.state.join_token)
            if not token_ok and not open_here:
                raise self._secret_failed(join_token_guesses(self.peer), "wrong join token")
        rules_users.may_register(self.state.ns, self.user, open_here, token_ok)
        return self._add_user(name, admin=False, claim=claim if open_here else None)

    @boundary
    def exposed_Auth_Host(self, name: object, client_nonce: object = None, proof: object = None,
                          token: object = None) -> tuple[str, bool | str]:
        """The original design's entry point, kept by name: with a proof (after hello())
        it authorizes a known key -> ("authorized", is_admin); without one it starts a
        registration -> ("registered", new key)."""
        if proof is not None:
            return "authorized", self.exposed_login(name, client_nonce, proof)[1]
        return "registered", self.exposed_register(name, token)

    def _add_user(self, name: str, admin: bool,
                  claim: rules_users.Claim | None = None) -> str:
        key = auth.new_key()
        with self.state.lock:
            self.state.require_serving()
            ns = self.state.ns
            entry = rules_users.add_user(ns, name, admin, auth.stored_form(key), claim)
            self.state.commit(entry)
            for mkdir in rules_users.home_folders(ns, name, self.state.wall_ns()):
                self.state.commit(mkdir)
        log.info("registered user %s (uid %s)", name, entry.uid)
        return key

    # --- admin -----------------------------------------------------------------------

    def _usage(self, user: User) -> wire.UserUsage:
        ns = self.state.ns
        held = ns.usage.held(user.uid)
        cred = user.cred
        return wire.UserUsage(user.name, user.admin, cred.uid, held.bytes, held.inodes,
                              held.pending_chunks * ns.chunk_size, user.quota_bytes,
                              user.quota_inodes, cred.gid, tuple(sorted(cred.groups)))

    @boundary
    def exposed_users_list(self) -> tuple[wire.UserUsage, ...]:
        """Every user with what they hold and their quotas (admin)."""
        self._admin()
        with self.state.lock:
            return tuple(self._usage(u) for u in sorted(self.state.ns.users.values(),
                                                         key=lambda u: u.name))

    @boundary
    def exposed_usage(self) -> wire.UserUsage:
        """The caller's own usage and quotas."""
        with self.state.lock:
            name = self._me()
            return self._usage(self.state.ns.users[name])

    @boundary
    def exposed_users_quota(self, name: object, quota_bytes: object,
                            quota_inodes: object) -> None:
        """Set user ``name``'s limits (admin); None: no limit."""
        self._admin()
        name = expect(name, str, "user name")
        quota_bytes = expect(quota_bytes, (int, type(None)), "byte quota")
        quota_inodes = expect(quota_inodes, (int, type(None)), "inode quota")
        with self.state.lock:
            self.state.require_serving()
            self.state.commit(quota.set_quota(self.state.ns, name, quota_bytes, quota_inodes))
        log.info("quota of %s: %s bytes, %s inodes", name, quota_bytes, quota_inodes)

    @boundary
    def exposed_users_add(self, name: object, admin: object = False, uid: object = None,
                          gid: object = None, groups: object = ()) -> str:
        """A new user (admin): with ``uid`` (and ``gid``, ``groups``), those POSIX ids."""
        self._admin()
        name = expect(name, str, "user name")
        admin = expect(admin, bool, "admin")
        claim = _claim(uid, gid, groups)
        rules_users.check_user_name(name)
        return self._add_user(name, admin, claim)

    @boundary
    def exposed_users_groups(self, name: object, groups: object) -> None:
        """User ``name``'s supplementary groups become ``groups`` (ids or group names)."""
        self._admin()
        name = expect(name, str, "user name")
        groups = expect(groups, tuple, "groups")
        with self.state.lock:
            self.state.require_serving()
            self.state.commit(rules_users.set_groups(self.state.ns, name, groups))

    @boundary
    def exposed_groups_list(self) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
        """-> ((group name, gid, (member names, ...)), ...): named groups and who is in them."""
        self._me()
        with self.state.lock:
            users = self.state.ns.users.values()
            return tuple((name, gid, tuple(sorted(u.name for u in users
                                                  if gid in u.groups or gid == u.gid)))
                         for name, gid in sorted(self.state.ns.groups.items()))

    @boundary
    def exposed_groups_add(self, name: object, gid: object = None) -> int:
        """Name a group (admin). -> its gid."""
        self._admin()
        name = expect(name, str, "group name")
        gid = expect(gid, (int, type(None)), "gid")
        with self.state.lock:
            self.state.require_serving()
            entry = rules_users.add_group(self.state.ns, name, gid)
            self.state.commit(entry)
            assert entry.gid is not None
            return entry.gid

    @boundary
    def exposed_groups_remove(self, name: object) -> None:
        self._admin()
        name = expect(name, str, "group name")
        with self.state.lock:
            self.state.require_serving()
            self.state.commit(rules_users.remove_group(self.state.ns, name))

    @boundary
    def exposed_users_revoke(self, name: object) -> None:
        me = self._admin()
        name = expect(name, str, "user name")
        with self.state.lock:
            self.state.commit(rules_users.revoke(self.state.ns, me, name))


def _claim(uid: object, gid: object, groups: object) -> rules_users.Claim | None:
    """The POSIX ids a registration asks for, type-checked (None: none asked)."""
    uid = expect(uid, (int, type(None)), "uid")
    if uid is None:
        return None
    gid = expect(gid, (int, type(None)), "gid")
    groups = expect(groups, tuple, "groups")
    for group in groups:
        expect(group, int, "group id")
    return rules_users.Claim(uid, uid if gid is None else gid, groups)

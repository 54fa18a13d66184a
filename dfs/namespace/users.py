"""DFS users and groups as POSIX sees them: every user has a uid, a primary gid and
supplementary groups; the credentials their key acts with follow from them.

- ``serial``: the user's stable id, never reused (``Namespace.next_serial`` only grows): a
  session remembers it, so it can tell the user it logged in as from any later one.
- ``uid``: the POSIX owner id of everything the user makes. Admins are uid 0 (their key
  is the superuser's, or acts as the calling process on a trusted host's mount). Other
  users get a uid the rules choose: on a local cluster the registering local user's own
  (so one machine's tools agree with the cluster), else the first free one from
  ``FIRST_UID``. A uid is never given to two users, nor again after its user is revoked.
- ``gid`` and ``groups``: the primary group (by default a group of the user's own, with the
  uid's number) and supplementary group ids; groups an admin names are in
  ``Namespace.groups`` (name -> gid).

Users written before POSIX ids (no ``gid`` in their JSON or journal entry) get them at
load: admins uid 0, others ``FIRST_UID + serial``, each their own group.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfs.namespace.access import ROOT_UID, Cred
from dfs.namespace.entries import Json

FIRST_UID = 10000  # where assigned uids start: above a machine's own accounts
NOBODY = 65534  # owner of what names a user that is not known
MAX_ID = (1 << 31) - 1
RESERVED_IDS = frozenset({ROOT_UID, NOBODY, (1 << 32) - 1, (1 << 16) - 1})


@dataclass
class User:
    name: str
    stored_key: str  # sha256 of the key, hex (dfs.auth.stored_form)
    admin: bool = False
    serial: int = 0
    uid: int = NOBODY
    gid: int = NOBODY
    groups: tuple[int, ...] = ()
    quota_bytes: int | None = None  # None: no limit (dfs/namespace/quota.py)
    quota_inodes: int | None = None

    @property
    def cred(self) -> Cred:
        """What this user's key acts as (squash: whatever the local process is)."""
        if self.admin:
            return Cred(ROOT_UID, ROOT_UID, frozenset(self.groups))
        return Cred(self.uid, self.gid, frozenset(self.groups))

    def to_json(self) -> Json:
        data: Json = {"stored_key": self.stored_key, "admin": self.admin,
                      "serial": self.serial, "uid": self.uid, "gid": self.gid,
                      "groups": list(self.groups)}
        if self.quota_bytes is not None or self.quota_inodes is not None:
            data["quota"] = [self.quota_bytes, self.quota_inodes]
        return data

    @classmethod
    def from_json(cls, name: str, data: Json) -> User:
        quota_bytes, quota_inodes = data.get("quota", (None, None))
        if "gid" not in data:  # written before POSIX ids: "uid" was the serial
            serial = int(data.get("uid", 0))
            uid = legacy_uid(bool(data["admin"]), serial)
            return cls(name, data["stored_key"], data["admin"], serial, uid, uid, (),
                       quota_bytes, quota_inodes)
        return cls(name, data["stored_key"], data["admin"], data["serial"], data["uid"],
                   data["gid"], tuple(data.get("groups", ())), quota_bytes, quota_inodes)


def legacy_uid(admin: bool, serial: int) -> int:
    """The uid of a user made before POSIX ids (see the module's docstring)."""
    return ROOT_UID if admin else FIRST_UID + serial


def valid_id(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_ID and value not in RESERVED_IDS

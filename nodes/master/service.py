"""The master's rpyc service: one object per connection (see Session), with every exposed
method, grouped by who calls it:

- nodes/master/user_service.py     login and users (hello, login, register, Auth_Host, users_*)
- nodes/master/fs_service.py       the namespace (stat, listdir, mkdir ... rename, setattr, trash)
- nodes/master/xattr_service.py    extended attributes (getxattr, listxattr, setxattr, removexattr)
- nodes/master/data_service.py     file data (allocate, abandon, commit, put, layout, report_bad)
- nodes/master/cluster_service.py  workers, the other metadata server, status, statfs, fsck
- nodes/master/events_service.py   the audit log (events, admin)
- nodes/master/member_service.py   membership: workers list, drain, remove (admin)
- nodes/master/lock_service.py     file locks (flock, fcntl) held at the leader

The endpoints are thin: authenticate, check the arguments' types, take the metadata lock,
ask a rule (dfs/namespace/rules*.py) for the journal entry, commit it (MasterState.commit)
and answer in wire form (dfs/wire/). Every file-system decision is in the rules.
"""

from __future__ import annotations

from nodes.master.cluster_service import ClusterEndpoints
from nodes.master.data_service import DataEndpoints
from nodes.master.events_service import EventEndpoints
from nodes.master.fs_service import FsEndpoints
from nodes.master.lock_service import LockEndpoints
from nodes.master.member_service import MemberEndpoints
from nodes.master.user_service import UserEndpoints
from nodes.master.xattr_service import XattrEndpoints


class MasterService(ClusterEndpoints, UserEndpoints, XattrEndpoints, FsEndpoints, DataEndpoints,
                    MemberEndpoints, EventEndpoints, LockEndpoints):
    """The exposed methods (one service object per connection, see Session)."""

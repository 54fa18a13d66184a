"""POSIX access decisions, as pure functions of a caller's credentials and an inode's
owner, group and mode (the rules of ext4 without ACLs; see path_resolution(7), chmod(2),
chown(2), utimensat(2), inode(7)).

``Cred`` is who acts: a normal user's key always acts as that user (their uid, primary gid
and groups, whatever the local process is); an admin's key acts as the calling process
(the mount passes the FUSE context), uid 0 being the superuser. The rules in
dfs/namespace/rules*.py ask these functions and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

R, W, X = 4, 2, 1
S_ISUID, S_ISGID, S_ISVTX = 0o4000, 0o2000, 0o1000
S_IXGRP = 0o010
ANY_X = 0o111
ROOT_UID = 0


@dataclass(frozen=True)
class Cred:
    uid: int
    gid: int
    groups: frozenset[int] = field(default_factory=frozenset)  # supplementary group ids
    name: str = ""  # the DFS user whose key acts (what is booked to them: allocations)

    @property
    def superuser(self) -> bool:
        return self.uid == ROOT_UID

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


@dataclass(frozen=True)
class Owned:
    """What access depends on: an inode's owner, group, mode and whether it is a directory."""

    uid: int
    gid: int
    mode: int
    is_dir: bool


def permitted(cred: Cred, node: Owned, want: int) -> bool:
    """May ``cred`` read (R), write (W) and/or search/execute (X) ``node``? The class that
    matches first decides (owner, then group, then other), as POSIX says: an owner denied
    by the owner bits is denied even if "other" would allow. The superuser may do anything,
    except execute a file that has no x bit at all."""
    if cred.superuser:
        return not (want & X and not node.is_dir and not node.mode & ANY_X)
    if cred.uid == node.uid:
        bits = node.mode >> 6
    elif cred.in_group(node.gid):
        bits = node.mode >> 3
    else:
        bits = node.mode
    return bits & want == want


def owns(cred: Cred, node: Owned) -> bool:
    """The owner or the superuser: who may chmod, set times explicitly, and so on."""
    return cred.superuser or cred.uid == node.uid


def may_unlink_in_sticky(cred: Cred, directory: Owned, entry: Owned) -> bool:
    """In a sticky directory (mode 1000) only the entry's owner, the directory's owner or
    the superuser remove or rename an entry (w+x on the directory is checked apart)."""
    if not directory.mode & S_ISVTX:
        return True
    return cred.superuser or cred.uid in (entry.uid, directory.uid)


def chmod_mode(cred: Cred, node: Owned, mode: int) -> int:
    """The mode a chmod by ``cred`` (who owns ``node``: checked apart) really sets: a
    non-superuser outside the inode's group cannot set its set-gid bit (it is cleared, on
    a directory too), as Linux's setattr_prepare does without CAP_FSETID."""
    mode &= 0o7777
    if not cred.superuser and not cred.in_group(node.gid):
        mode &= ~S_ISGID
    return mode


def chown_allowed(cred: Cred, node: Owned, uid: int | None, gid: int | None) -> bool:
    """chown(2): only the superuser changes the owner; the owner may change the group to
    one they belong to."""
    if cred.superuser:
        return True
    if uid is not None and uid != node.uid:
        return False
    if gid is not None and gid != node.gid:
        return cred.uid == node.uid and cred.in_group(gid)
    return True


def drops_set_gid(cred: Cred, node: Owned) -> bool:
    """Does a write or chown by ``cred`` clear ``node``'s set-gid bit? When it is a real
    set-gid (group-executable), or when ``cred`` is neither in the file's group nor the
    superuser; a set-gid without group x (the mandatory-locking mark) is kept for a group
    member (Linux's setattr_should_drop_sgid)."""
    if node.is_dir or not node.mode & S_ISGID:
        return False
    return bool(node.mode & S_IXGRP) or not (cred.superuser or cred.in_group(node.gid))


def mode_after_chown(cred: Cred, node: Owned) -> int:
    """A chown (by anyone, the superuser too) of a non-directory clears set-uid, and
    set-gid as ``drops_set_gid`` says, as Linux does."""
    if node.is_dir:
        return node.mode
    mode = node.mode & ~S_ISUID
    if drops_set_gid(cred, node):
        mode &= ~S_ISGID
    return mode


def mode_after_write(cred: Cred, node: Owned) -> int:
    """Writing to (or truncating) a file clears set-uid and set-gid as a chown does, unless
    the superuser writes (it has CAP_FSETID)."""
    if cred.superuser or node.is_dir:
        return node.mode
    return mode_after_chown(cred, node)


def may_drop_set_id(cred: Cred, node: Owned, mode: int) -> bool:
    """A chmod by a non-owner that only clears some of the set-id bits a write by ``cred``
    would clear (``mode_after_write``), from a caller who may write the file: how FUSE asks
    the file system to "kill privileges" before such a caller's write or truncate (the
    kernel sends it as the writer, reckoning the bits by its own older rule). It gives no
    power a write does not: accepted, as on ext4 the write itself clears them."""
    mode &= 0o7777
    cleared = node.mode & ~mode
    write_clears = node.mode & ~mode_after_write(cred, node)
    return (not mode & ~node.mode and cleared != 0 and not cleared & ~write_clears
            and permitted(cred, node, W))


def times_allowed(cred: Cred, node: Owned, to_now: bool) -> bool:
    """utimensat(2): setting both times to now needs ownership or write permission;
    setting any explicit time needs ownership."""
    if owns(cred, node):
        return True
    return to_now and permitted(cred, node, W)


def new_inode_group(cred: Cred, parent: Owned) -> int:
    """A new inode's group: the parent's if the parent is set-gid (BSD semantics), else the
    creator's primary group."""
    return parent.gid if parent.mode & S_ISGID else cred.gid


def new_inode_mode(cred: Cred, parent: Owned, mode: int, is_dir: bool, gid: int) -> int:
    """The mode a new inode gets from the mode asked for (the umask already applied by the
    caller, as the kernel does before FUSE sees it): a directory's own set-id bits are
    dropped and one made in a set-gid directory is set-gid; a file's group-executable
    set-gid is dropped if the creator is not in its group and is not the superuser
    (Linux's mode_strip_sgid)."""
    mode &= 0o7777
    if is_dir:  # as Linux's mkdir: the set-id bits asked for are dropped, sticky kept
        mode &= ~(S_ISUID | S_ISGID)
    if is_dir and parent.mode & S_ISGID:
        mode |= S_ISGID
    elif (not is_dir and mode & S_ISGID and mode & S_IXGRP and not cred.superuser
          and not cred.in_group(gid)):
        mode &= ~S_ISGID
    return mode

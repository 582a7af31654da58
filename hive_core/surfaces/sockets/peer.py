"""Who is on the other end of a unix socket: peer credentials, and the admin group rule.

Rules kept here:
- `SO_PEERCRED` gives pid, uid and gid; `SO_PEERGROUPS` the supplementary groups the peer
  process held when it connected (not what /etc/group says of its user today);
- the host socket admits root, the daemon's own user, and a process holding the admin group.
"""

from __future__ import annotations

import grp
import os
import socket as stdsocket
import struct

import attrs
import trio


@attrs.frozen
class PeerCred:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int] | None = None  # supplementary groups at connect (SO_PEERGROUPS)


SO_PEERGROUPS = getattr(stdsocket, "SO_PEERGROUPS", 59)  # Linux 4.13+; Python 3.11 lacks it


def peer_cred(sock: trio.socket.SocketType) -> PeerCred | None:
    try:
        raw = sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    groups = None
    try:  # Python caps the buffer at 1024 bytes: 256 groups; more (ERANGE) falls back below
        raw_groups = sock.getsockopt(stdsocket.SOL_SOCKET, SO_PEERGROUPS, 1024)
        groups = frozenset(struct.unpack(f"{len(raw_groups) // 4}I", raw_groups))
    except OSError:
        pass
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid, groups)


def admin_gid(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _peer_groups(cred: PeerCred) -> set[int]:
    """The groups the peer process held when it connected; without SO_PEERGROUPS, its user's
    groups from the group database."""
    if cred.groups is not None:
        return {cred.gid, *cred.groups}
    import pwd

    try:
        name = pwd.getpwuid(cred.uid).pw_name
    except KeyError:
        return {cred.gid}
    return set(os.getgrouplist(name, cred.gid))


def is_admin(cred: PeerCred | None, group: str) -> bool:
    """May this peer use the host socket: root, the daemon's own user, or the admin group."""
    if cred is None:
        return False
    if cred.uid in (0, os.geteuid()):
        return True
    gid = admin_gid(group)
    return gid is not None and gid in _peer_groups(cred)

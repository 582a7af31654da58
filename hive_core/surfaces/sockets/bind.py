"""Binding a unix socket safely.

Rules kept here:
- a socket file gets its mode before anyone can connect (umask around `bind`, then `chmod`
  before `listen`);
- a stale socket file is reclaimed, a live one (another daemon) is refused, a symlink or any
  other file at the path is refused, never followed or replaced;
- the listen queue is deep (`BACKLOG`): a burst of connects queues instead of failing;
- on close, only a socket is unlinked.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as stdsocket
import stat
from pathlib import Path

import trio

from hive_wire.errors import Conflict, Forbidden

log = logging.getLogger(__name__)

# A burst of connections (a thousand idle clients opening at once) must queue, not fail: the
# kernel caps this at net.core.somaxconn (4096 on current kernels).
BACKLOG = max(4096, stdsocket.SOMAXCONN)


async def bind(path: Path, mode: int, group: int | None) -> trio.socket.SocketType:
    reclaim(path)
    sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)
    try:
        await sock.bind(os.fspath(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, mode)
    if group is not None:
        try:
            os.chown(path, -1, group)
        except PermissionError:
            log.warning("cannot give %s to group %d", path, group)
    sock.listen(BACKLOG)
    return sock


def reclaim(path: Path) -> None:
    """Remove a stale socket at `path`; refuse a live one or anything that is not a socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a socket"
        raise Forbidden(f"{path} is {kind}; refusing to replace or follow it")
    probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    probe.setblocking(False)  # a listener that never accepts must not hang start-up
    try:
        err = probe.connect_ex(os.fspath(path))
    finally:
        probe.close()
    if err in (errno.ECONNREFUSED, errno.ENOENT):
        os.unlink(path)  # stale: nobody listens
        return
    # Connected, or EAGAIN: a listener whose backlog is full is a live one all the same.
    raise Conflict(f"{path} is served by a running daemon")


def unlink_socket(path: Path) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass

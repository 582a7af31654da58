"""sd_notify(3) without a dependency: one datagram to `$NOTIFY_SOCKET`, silently nothing when
not run by systemd (or when the socket is gone)."""

from __future__ import annotations

import os
import socket


def notify(*fields: str) -> bool:
    """Send `READY=1`, `STATUS=...`, `WATCHDOG=1`, ...; True if a manager was told."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall("\n".join(fields).encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog period systemd asked for (seconds), if it asked for one for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None

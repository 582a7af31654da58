"""The blocking client: one request, one answer, no event loop and no cattrs to import.

The command line uses it so that `hive-core list` starts fast; the trio client shares its
answer check.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from .codec import WIRE_VERSION, LineBuffer, encode_line
from .errors import RemoteVersionError, error_for_code


def request_obj(request: Any) -> dict[str, Any]:
    """A request given as a dict or a `hive_wire.requests` instance, as its wire object."""
    if isinstance(request, dict):
        return request
    from .convert import encode_request

    return encode_request(request)


def check_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer's result fields, or the error it carries raised."""
    version = answer.get("version", 0)
    if not isinstance(version, int) or version > WIRE_VERSION:
        raise RemoteVersionError(
            f"the daemon speaks wire version {version}; this client understands up to "
            f"{WIRE_VERSION}: upgrade the client"
        )
    if answer.get("ok") is not True:
        raise error_for_code(answer.get("code"), str(answer.get("error", "request failed")))
    return {k: v for k, v in answer.items() if k not in ("version", "ok")}


def call_sync(path: str, request: Any, timeout: float | None = None) -> dict[str, Any]:
    """One request over a blocking socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(encode_line(request_obj(request)))
        buf = LineBuffer(1 << 30)
        while True:
            data = sock.recv(65536)
            if not data:
                raise EOFError("the daemon closed the connection without an answer")
            lines = buf.feed(data)
            if not lines and buf.overflow is not None:
                raise buf.overflow
            if lines:
                return check_answer(json.loads(lines[0]))

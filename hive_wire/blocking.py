"""The blocking client: no event loop and no cattrs to import.

`call_sync` is one request on a fresh connection (the command line uses it so that
`hive-core list` starts fast); `BlockingConnection` keeps one connection for any number of
requests, one at a time, for a harness that has no event loop. The trio client shares the
answer check.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from typing import Any

from .codec import WIRE_VERSION, LineBuffer, encode_line
from .errors import RemoteVersionError, error_for_code

# Answers are bounded by the daemon, not by the request limit: a `recv` of 32 bodies of 256 KiB,
# `logs`, `dead_letters` may exceed 1 MiB.
ANSWER_LINE_LIMIT = 1 << 30
# A unix socket whose listen queue is full answers a connect with EAGAIN at once (when the
# socket has a timeout, or is non-blocking): a burst of connections, not a refusal. Clients try
# again, backing off, for this long before they give up.
CONNECT_RETRY_SECONDS = 5.0


def retry_delays(total: float = CONNECT_RETRY_SECONDS) -> list[float]:
    """The pauses between connect attempts on EAGAIN: 1 ms doubling to 100 ms, `total` in all."""
    delays, delay, spent = [], 0.001, 0.0
    while spent < total:
        delays.append(delay)
        spent += delay
        delay = min(delay * 2, 0.1)
    return delays


def connect_unix(path: str, timeout: float | None = None) -> socket.socket:
    """A connected unix stream socket; EAGAIN (the daemon's listen queue is full) is retried
    for `CONNECT_RETRY_SECONDS`, anything else raised at once."""
    delays = iter(retry_delays())
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            return sock
        except OSError as e:
            sock.close()
            if e.errno != errno.EAGAIN:
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            time.sleep(delay)  # back-off before the next attempt, not synchronisation
        except BaseException:
            sock.close()
            raise


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


class BlockingConnection:
    """One connection to a socket; any number of requests, one at a time."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.sock = connect_unix(path, timeout)
        self._buf = LineBuffer(ANSWER_LINE_LIMIT)
        self._lines: list[bytes] = []

    def read(self) -> dict[str, Any]:
        """The next answer line, decoded (raw envelope). A failure (timeout, EOF) closes the
        connection: a late answer must never be taken for the next request's."""
        try:
            while not self._lines:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("the daemon closed the connection without an answer")
                self._lines.extend(self._buf.feed(data))
                if not self._lines and self._buf.overflow is not None:
                    raise self._buf.overflow
        except BaseException:
            self.close()
            raise
        answer: dict[str, Any] = json.loads(self._lines.pop(0))
        return answer

    def call(self, request: Any) -> dict[str, Any]:
        try:
            self.sock.sendall(encode_line(request_obj(request)))
        except (BrokenPipeError, ConnectionResetError) as e:
            # The daemon may have answered and closed before reading all of the request (a
            # line over its limit, a refused peer): that answer is the one to give.
            try:
                answer = self.read()
            except (OSError, EOFError):
                raise e from None
            return check_answer(answer)
        return check_answer(self.read())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call_sync(path: str, request: Any, timeout: float | None = None) -> dict[str, Any]:
    """One request on a fresh blocking connection."""
    with BlockingConnection(path, timeout) as conn:
        return conn.call(request)

"""The trio client for the daemon's sockets: `call`, `subscribe`, `Connection`.

It sends one request line and read one answer line; an answer with `ok: false` raises the
`WireError` subclass of its code; an answer with a newer `version` raises
`RemoteVersionError`.
"""

from __future__ import annotations

import errno
import json
from collections.abc import AsyncIterator
from typing import Any

import trio

from .blocking import ANSWER_LINE_LIMIT, check_answer, request_obj, retry_delays
from .codec import LineBuffer, encode_line


class Connection:
    """One connection to a socket; any number of requests, one at a time."""

    def __init__(self, stream: trio.SocketStream, limit: int = ANSWER_LINE_LIMIT) -> None:
        self.stream = stream
        self._buf = LineBuffer(limit)
        self._lines: list[bytes] = []

    @classmethod
    async def open(cls, path: str) -> Connection:
        """Connect; EAGAIN (the daemon's listen queue is full, a burst) is retried for a few
        seconds with a back-off, as the blocking client does."""
        delays = iter(retry_delays())
        while True:
            try:
                return cls(await trio.open_unix_socket(path))
            except OSError as e:
                delay = next(delays, None)
                if e.errno != errno.EAGAIN or delay is None:
                    raise
            await trio.sleep(delay)

    async def send(self, request: Any) -> None:
        await self.stream.send_all(encode_line(request_obj(request)))

    async def read(self) -> dict[str, Any]:
        """The next answer line, decoded (raw envelope)."""
        while not self._lines:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("the daemon closed the connection")
            self._lines.extend(self._buf.feed(data))
            if not self._lines and self._buf.overflow is not None:
                raise self._buf.overflow
        answer: dict[str, Any] = json.loads(self._lines.pop(0))  # the daemon's: no checks
        return answer

    async def call(self, request: Any) -> dict[str, Any]:
        await self.send(request)
        return check_answer(await self.read())

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def call(path: str, request: Any) -> dict[str, Any]:
    """One request on a fresh connection."""
    async with await Connection.open(path) as conn:
        return await conn.call(request)


async def subscribe(path: str, request: Any) -> AsyncIterator[dict[str, Any]]:
    """A feed verb (`subscribe_events`, `subscribe_agent_status`): the ack, then each answer."""
    async with await Connection.open(path) as conn:
        yield await conn.call(request)
        while True:
            yield check_answer(await conn.read())

"""`GET /dashboard/stream`: the event channel as Server-Sent Events.

Rules kept here (dashboard.md):
- one SSE message per event, `id: <seq>` and `data: <the event's JSON>`, default event type;
  a comment (`: ping`) after `PING` seconds without an event, so proxies and the page see a live
  connection;
- subscribe first, then catch up: a `Last-Event-ID` is served from the history (SQLite and the
  unwritten tail) up to where the live subscription began, then the subscription, skipping what
  was sent already; when the history no longer reaches back to it (or it is more than
  `CATCH_UP_MAX` events behind), the first message is `lagged` and the page re-fetches
  `/api/state`;
- a slow or frozen client never slows the daemon: its subscription's buffer is bounded (the
  channel's `buffer`), and a full one becomes a `lagged` message; nothing else queues for it;
- what arrived while a chunk was written goes out as one chunk, at most one every `COALESCE`
  seconds (the daemon writes a few chunks a second to a hundred subscribers, not an event each);
- the stream ends when the client goes, and at once when the daemon stops.
"""

from __future__ import annotations

from collections import OrderedDict

import trio
from starlette.types import Receive, Scope, Send

from hive_core.clock import now, rfc3339
from hive_core.services.events import Event, EventChannel, Subscriber

PING = 15.0
COALESCE = 0.02
CATCH_UP_MAX = 20_000
PAGE = 5000
FRAME_CACHE = 16384
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


def frame(channel: EventChannel, event: Event) -> str:
    return f"id: {event['seq']}\ndata: {channel.encode(event)}\n\n"


def _last_event_id(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"last-event-id":
            text = bytes(value).decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else None
    return None


class Stream:
    """The ASGI endpoint; `stopping` ends every stream when the daemon stops."""

    def __init__(self, channel: EventChannel, stopping: trio.Event, ping: float = PING) -> None:
        self.channel = channel
        self.stopping = stopping
        self.ping = ping
        self.open = 0  # streams being served (tests and benches read it)
        # Each event's frame, encoded once for every stream (by seq; lagged ones never kept).
        self._frames: OrderedDict[int, bytes] = OrderedDict()

    def frame(self, event: Event) -> bytes:
        seq = event["seq"]
        if event["kind"] == "lagged":
            return frame(self.channel, event).encode()
        data = self._frames.get(seq)
        if data is None:
            data = self._frames[seq] = frame(self.channel, event).encode()
            if len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
        return data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.open += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_until_gone, receive, nursery.cancel_scope)
                nursery.start_soon(_until_set, self.stopping, nursery.cancel_scope)
                await self._serve(scope, send)
                nursery.cancel_scope.cancel()
        finally:
            self.open -= 1

    async def _serve(self, scope: Scope, send: Send) -> None:
        channel = self.channel
        last = _last_event_id(scope)
        with channel.subscribe() as sub:
            live_from = channel.seq
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b": hello\n\n", "more_body": True})
            sent = live_from
            if last is not None and last < live_from:
                sent = await self._catch_up(send, last, live_from)
            async with trio.open_nursery() as nursery:
                idle = _Idle(sub, self.ping)
                nursery.start_soon(idle.run)
                while True:
                    events = await sub.drain()  # [] when the idle timer poked it
                    if not events:
                        chunk = b": ping\n\n"
                    else:
                        parts = []
                        for event in events:
                            if event["kind"] != "lagged":
                                if event["seq"] <= sent:
                                    continue
                                sent = event["seq"]
                            parts.append(self.frame(event))
                        chunk = b"".join(parts)
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        idle.sent()
                    if events:
                        await trio.sleep(COALESCE)  # let the next ones gather into one chunk

    async def _catch_up(self, send: Send, last: int, upto: int) -> int:
        """Send the history after `last` up to `upto`; the seq sent up to."""
        channel = self.channel
        if upto - last > CATCH_UP_MAX:
            return await _lagged(send, channel, upto)
        sent = last
        while sent < upto:
            _, rows = await channel.page(sent, PAGE)
            if not rows:
                break
            if rows[0][0] != sent + 1:  # the history no longer reaches back to it
                return await _lagged(send, channel, upto)
            body = "".join(f"id: {seq}\ndata: {text}\n\n" for seq, text in rows)
            await send({"type": "http.response.body", "body": body.encode(), "more_body": True})
            sent = rows[-1][0]
        return sent


class _Idle:
    """Pokes the subscription after `ping` seconds without a write (one timer per stream, not
    a cancel scope per chunk)."""

    def __init__(self, sub: Subscriber, ping: float) -> None:
        self.sub = sub
        self.ping = ping
        self.last = trio.current_time()

    def sent(self) -> None:
        self.last = trio.current_time()

    async def run(self) -> None:
        while True:
            await trio.sleep_until(self.last + self.ping)
            if trio.current_time() >= self.last + self.ping:
                self.last = trio.current_time()
                self.sub.poke()


async def _lagged(send: Send, channel: EventChannel, seq: int) -> int:
    event = {"seq": seq, "kind": "lagged", "at": rfc3339(now())}
    await send(
        {"type": "http.response.body", "body": frame(channel, event).encode(), "more_body": True}
    )
    return seq


async def _until_gone(receive: Receive, cancel: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            cancel.cancel()
            return


async def _until_set(event: trio.Event, cancel: trio.CancelScope) -> None:
    await event.wait()
    cancel.cancel()

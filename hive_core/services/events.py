"""The dashboard event channel: every state change the operator may care about, in order.

Rules kept here:
- `publish` never blocks and never fails: it stamps the event with the next `seq` (monotonic per
  process), keeps it in a bounded recent-history ring, and hands it to every subscriber;
- a subscriber's buffer is bounded; on overflow the buffer is dropped and the subscriber's next
  read is a `lagged` event (it must re-fetch a snapshot), so a slow reader never slows the daemon;
- a subscriber that asks for `since_seq` first gets the history after it, or `lagged` when the
  history no longer reaches back that far.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from hive_core.clock import now, rfc3339
from hive_wire.convert import converter
from hive_wire.events import DashboardEvent

Event = dict[str, Any]


class Subscriber:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf: deque[Event] = deque()
        self._lagged_at: int | None = None
        self._lot = trio.lowlevel.ParkingLot()

    def push(self, event: Event) -> None:
        if len(self._buf) >= self.limit:
            self._buf.clear()
            self._lagged_at = event["seq"]
        else:
            self._buf.append(event)
        self._lot.unpark_all()

    def lag(self, seq: int) -> None:
        self._buf.clear()
        self._lagged_at = seq
        self._lot.unpark_all()

    async def next(self) -> Event:
        while not self._buf and self._lagged_at is None:
            await self._lot.park()
        if self._lagged_at is not None:
            seq, self._lagged_at = self._lagged_at, None
            return {"seq": seq, "kind": "lagged", "at": rfc3339(now())}
        return self._buf.popleft()


class EventChannel:
    def __init__(self, history: int = 2000, buffer: int = 1000) -> None:
        self.seq = 0
        self.buffer = buffer
        self._recent: deque[Event] = deque(maxlen=history)
        self._subs: set[Subscriber] = set()

    def publish(self, typed: DashboardEvent) -> Event:
        """Stamp `typed` with the next `seq`, encode it once, hand it to every subscriber."""
        self.seq += 1
        event: Event = {"seq": self.seq, "kind": typed.kind, "at": rfc3339(now()),
                        **converter.unstructure(typed)}
        self._recent.append(event)
        for sub in self._subs:
            sub.push(event)
        return event

    def history(self, since_seq: int = 0, limit: int | None = None) -> list[Event]:
        events = [e for e in self._recent if e["seq"] > since_seq]
        return events[-limit:] if limit else events

    @contextmanager
    def subscribe(self, since_seq: int | None = None) -> Iterator[Subscriber]:
        sub = Subscriber(self.buffer)
        if since_seq is not None and since_seq < self.seq:
            oldest = self._recent[0]["seq"] if self._recent else self.seq + 1
            if since_seq < oldest - 1:
                sub.lag(self.seq)
            else:
                for event in self.history(since_seq):
                    sub.push(event)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

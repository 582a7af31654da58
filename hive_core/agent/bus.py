"""The agent's events: its bus (what happened in its turns, live with a per-process `seq`, and
as history in `<state dir>/hyperhive-events.sqlite`), and the activity reports to the daemon.

Rules kept here:
- `emit` never blocks and never fails: it stamps `seq`, hands the event to live subscribers and
  queues it for the history file;
- one writer task appends queued events in batches (one transaction each) in a worker thread,
  so SQLite never runs on the trio thread; a failed write is logged and its batch dropped;
- the queue is bounded (`max_pending`): past it the oldest unwritten events are dropped and
  counted, so a stuck disk costs memory once, never without bound;
- a live subscriber that does not keep up loses events (its buffer is bounded), never blocks
  `emit`;
- table `events (id, ts, kind, payload_json)`: `ts` in unix seconds (the daemon's vacuum sweeps
  by it, `store/agent_files.py`), `payload_json` the event's own JSON with its `kind`; a `stream`
  event is claude's stream-json object with `kind: "stream"` added;
- activity goes to the daemon (`activity {events}`, at most 64 a request) from a bounded buffer
  in a task of its own; what the daemon refuses (`limit`, `unknown_command`) or what cannot be
  sent is dropped and counted, never queued without bound; only a `turn_end` (the turn's cost)
  is kept and tried again: when it surely did not reach the daemon, or when it carries a
  `turn_id` (the daemon records a turn_id once).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import attrs
import trio

from hive_wire.blocking import check_answer
from hive_wire.client import Connection
from hive_wire.errors import WireError

from .stream import Activity

log = logging.getLogger("hive_core.agent.bus")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


@attrs.frozen(kw_only=True)
class BusEvent:
    kind: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        fields = attrs.asdict(self, recurse=False)
        return {"kind": self.kind, **{k.rstrip("_"): v for k, v in fields.items() if v is not None}}


@attrs.frozen(kw_only=True)
class TurnStart(BusEvent):
    kind: ClassVar[str] = "turn_start"
    from_: str
    body: str
    unread: int


@attrs.frozen(kw_only=True)
class Stream(BusEvent):
    kind: ClassVar[str] = "stream"
    obj: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {**self.obj, "kind": self.kind}


@attrs.frozen(kw_only=True)
class Note(BusEvent):
    kind: ClassVar[str] = "note"
    text: str


@attrs.frozen(kw_only=True)
class TurnEnd(BusEvent):
    kind: ClassVar[str] = "turn_end"
    ok: bool
    note: str | None = None


@attrs.frozen(kw_only=True)
class StatusChanged(BusEvent):
    kind: ClassVar[str] = "status_changed"
    status: str


@attrs.frozen(kw_only=True)
class ModelChanged(BusEvent):
    kind: ClassVar[str] = "model_changed"
    model: str


@attrs.frozen(kw_only=True)
class TokenUsageChanged(BusEvent):
    kind: ClassVar[str] = "token_usage_changed"
    usage: dict[str, Any]


@attrs.frozen(kw_only=True)
class TurnStateChanged(BusEvent):
    kind: ClassVar[str] = "turn_state_changed"
    state: str  # idle, thinking, compacting, rate_limited
    since_unix: int


@attrs.frozen(kw_only=True)
class LiveEvent:
    seq: int
    ts: float
    event: BusEvent

    def wire(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.event.payload()}


class EventBus:
    def __init__(
        self, path: Path | None, *, max_pending: int = 10_000, subscriber_buffer: int = 256
    ) -> None:
        self.path = path
        self.seq = 0
        self.dropped = 0  # events never written (queue full or a failed write)
        self.written = 0
        self._pending: deque[LiveEvent] = deque()
        self._max_pending = max_pending
        self._wakeup = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._subscribers: list[trio.MemorySendChannel[LiveEvent]] = []
        self._subscriber_buffer = subscriber_buffer
        self._conn: sqlite3.Connection | None = None

    def emit(self, event: BusEvent) -> LiveEvent:
        self.seq += 1
        live = LiveEvent(seq=self.seq, ts=time.time(), event=event)
        for chan in list(self._subscribers):
            try:
                chan.send_nowait(live)
            except trio.WouldBlock:
                pass  # a slow subscriber misses events; `seq` shows the gap
            except trio.BrokenResourceError:
                self._subscribers.remove(chan)
        if self.path is not None:
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append(live)
            self._idle = trio.Event() if self._idle.is_set() else self._idle
            self._wakeup.set()
        return live

    def subscribe(self) -> trio.MemoryReceiveChannel[LiveEvent]:
        """Live events from now on (bounded: a subscriber that lags loses events)."""
        send, receive = trio.open_memory_channel[LiveEvent](self._subscriber_buffer)
        self._subscribers.append(send)
        return receive

    async def flushed(self) -> None:
        """Wait until every event emitted so far was written (or dropped)."""
        await self._idle.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task; on cancellation it writes what is queued before it returns."""
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self._write_pending()
        finally:
            with trio.CancelScope(shield=True):
                await self._write_pending()
                if self._conn is not None:
                    await trio.to_thread.run_sync(self._conn.close)

    async def _write_pending(self) -> None:
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            rows = [
                (
                    ev.ts,
                    ev.event.kind,
                    json.dumps(ev.event.payload(), ensure_ascii=False, default=str),
                )
                for ev in batch
            ]
            try:
                with trio.CancelScope(shield=True):  # a batch taken is a batch written
                    await trio.to_thread.run_sync(self._insert, rows)
                self.written += len(rows)
            except (sqlite3.Error, OSError) as e:
                self.dropped += len(rows)
                log.warning(
                    "event history write failed path=%s events=%d error=%s", self.path, len(rows), e
                )
                self._close_quietly()
        self._idle.set()

    def _insert(self, rows: list[tuple[float, str, str]]) -> None:
        if self._conn is None:
            assert self.path is not None
            conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
            try:
                conn.executescript(SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        with self._conn:
            self._conn.executemany(
                "INSERT INTO events (ts, kind, payload_json) VALUES (?, ?, ?)", rows
            )

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None


def history(path: Path, limit: int = 2000) -> list[dict[str, Any]]:
    """The last `limit` events of a history file, oldest first (blocking; for readers)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT ts, payload_json FROM events ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
    finally:
        conn.close()
    return [{"ts": ts, **json.loads(p)} for ts, p in reversed(rows)]


# --- activity: what the daemon learns of the turns --------------------------------------------
class ActivityReporter:
    """`activity` requests from a bounded buffer, in a task of their own: `add` never waits.
    What the daemon refuses (`limit`, `unknown_command`, ...) is dropped and counted. What
    cannot be sent (the daemon restarting) is dropped too, except the `turn_end`s, which are
    the turns' costs: those stay at the head of the buffer and are tried again (1 s, doubling
    to 30 s, or with the next event). One that may have reached the daemon (the request failed
    after being written) is tried again only if it carries a `turn_id` (the daemon records a
    turn_id once), never counted twice."""

    def __init__(
        self, socket: str, max_buffer: int = 1024, batch: int = 64, keep: Path | None = None
    ) -> None:
        self.socket = socket
        self.max_buffer, self.batch = max_buffer, batch
        self.keep = keep  # where unsent turn_ends wait for the next start (`run` reads it)
        self.sent = self.dropped = 0
        self._buf: deque[dict[str, Any]] = deque()
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()

    def add(self, act: Activity) -> None:
        if len(self._buf) >= self.max_buffer:
            self.dropped += 1
            return
        self._buf.append(act.wire())
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._wake.set()

    async def flushed(self) -> None:
        """Until the buffer is empty (sent, or dropped)."""
        await self._idle.wait()

    async def run(self) -> None:
        conn: Connection | None = None
        retry = 0.0  # seconds before kept turn_ends are tried again (0: none kept)
        self._reload()
        try:
            while True:
                with trio.move_on_after(retry or math.inf):
                    await self._wake.wait()
                self._wake = trio.Event()
                while self._buf:
                    events = [self._buf.popleft() for _ in range(min(self.batch, len(self._buf)))]
                    written = False
                    try:
                        conn = conn or await Connection.open(self.socket)
                        with trio.fail_after(10):
                            await conn.send({"cmd": "activity", "events": events})
                            written = True
                            check_answer(await conn.read())
                        self.sent += len(events)
                        retry = 0.0
                    except WireError as e:
                        # Over the rate, the batch is refused whole; its turn_ends (never counted
                        # against the rate) go again at once, alone.
                        kept = [x for x in events if e.code == "limit" and x["kind"] == "turn_end"]
                        self.dropped += len(events) - len(kept)
                        self._buf.extendleft(reversed(kept))
                        log.debug("activity refused code=%s error=%s", e.code, e)
                    except trio.Cancelled:  # the harness stops: what may be unsent is kept
                        self._buf.extendleft(reversed([x for x in events if _keep(x, written)]))
                        raise
                    except (OSError, EOFError, trio.BrokenResourceError, trio.TooSlowError) as e:
                        if conn is not None:
                            with trio.CancelScope(shield=True):
                                await conn.aclose()
                            conn = None
                        kept = [e for e in events if _keep(e, written)]
                        self.dropped += len(events) - len(kept)
                        log.info(
                            "activity not sent (%s); dropped %d, kept %d turn_end(s)",
                            e,
                            len(events) - len(kept),
                            len(kept),
                        )
                        if kept:
                            self._buf.extendleft(reversed(kept))
                            retry = min(max(2 * retry, 1.0), 30.0)
                            break
                if not self._buf:
                    self._idle.set()
        finally:
            self._save()
            if conn is not None:
                with trio.CancelScope(shield=True):
                    await conn.aclose()

    def _save(self) -> None:
        """The turn_ends still unsent, to `keep` for the next start (best effort)."""
        ends = [e for e in self._buf if e["kind"] == "turn_end"]
        if self.keep is None or not ends:
            return
        try:
            tmp = self.keep.with_name(self.keep.name + ".tmp")
            tmp.write_text(json.dumps(ends))
            tmp.replace(self.keep)
            log.info("activity: %d unsent turn_end(s) kept in %s", len(ends), self.keep)
        except OSError as e:
            log.warning("activity: %d turn_end(s) lost: %s", len(ends), e)

    def _reload(self) -> None:
        """The turn_ends a previous run kept, first in the buffer (best effort)."""
        if self.keep is None or not self.keep.is_file():
            return
        try:
            ends = json.loads(self.keep.read_text())
            self.keep.unlink()
        except (OSError, ValueError) as e:
            log.warning("activity: cannot read %s: %s", self.keep, e)
            return
        kept = [e for e in ends if isinstance(e, dict) and e.get("kind") == "turn_end"]
        self._buf.extendleft(reversed(kept[: self.max_buffer]))
        if self._buf:
            self._idle = trio.Event()
            self._wake.set()


def _keep(event: dict[str, Any], written: bool) -> bool:
    """Whether an activity event whose request failed is sent again: a `turn_end` (a turn's
    cost) that surely did not arrive, or that the daemon would record once anyway."""
    return event["kind"] == "turn_end" and (not written or "turn_id" in event)

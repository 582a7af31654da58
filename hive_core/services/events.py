"""The dashboard event channel: every state change the operator may care about, in order.

Rules kept here:
- `publish` never blocks, never fails and does no I/O: it stamps the event with the next `seq`,
  keeps it in a bounded recent-history ring and in the queue of events not yet written, and
  hands it to every subscriber;
- a subscriber's buffer is bounded; on overflow the buffer is dropped and the subscriber's next
  read is a `lagged` event (it must re-fetch a snapshot), so a slow reader never slows the daemon;
- a subscriber that asks for `since_seq` first gets the history after it, or `lagged` when the
  history no longer reaches back that far;
- persistence (dashboard.md): `writer()` writes what was published since its last write to the
  `events` table, one transaction per batch, at most every `FLUSH_DELAY` s while events flow
  (nothing at all while none do); the queue is bounded: a store that falls `UNWRITTEN_MAX`
  events behind loses the oldest unwritten ones, and the log says how many. On shutdown what is
  left is written (bounded by a deadline). `seq` continues from the table's largest at start;
- history reads (`page`, `agents_at`) come from SQLite plus the unwritten tail in memory;
- replay: the writer folds the state events (`container_state_changed` with the full row,
  `container_removed`) as it writes them and stores the fold as a snapshot every
  `SNAPSHOT_EVERY` state events, and at start-up (`baseline`: the agents as they are then), so
  the agents at any seq are one snapshot plus at most that many rows.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

import orjson
import trio

from hive_core.clock import now, rfc3339
from hive_core.store import events as sql
from hive_core.store.db import Store
from hive_wire.convert import converter, float_free_class
from hive_wire.events import KINDS, DashboardEvent

log = logging.getLogger(__name__)

Event = dict[str, Any]
Rows = dict[str, dict[str, Any]]

FLUSH_DELAY = 0.1  # seconds a batch gathers once an event arrives
BATCH = 5000  # events per transaction at most
ENCODE_SLICE = 500  # events encoded between two checkpoints of the writer
UNWRITTEN_MAX = 100_000  # events waiting for the store at most; past it the oldest are dropped
SNAPSHOT_EVERY = 1000  # state events between two snapshots
JSON_CACHE = 16384  # encoded events kept (every SSE subscriber sends the same text)
SHUTDOWN_FLUSH = 5.0  # seconds to write what is left at shutdown
# Kinds whose events hold no float: their JSON is written by orjson (the same text).
PLAIN_KINDS = frozenset(kind for kind, cls in KINDS.items() if float_free_class(cls))


class Subscriber:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf: deque[Event] = deque()
        self._lagged_at: int | None = None
        self._poked = False
        self._lot = trio.lowlevel.ParkingLot()

    def push(self, event: Event) -> None:
        # On the publish path, once per subscriber: the reader is woken by the first event only
        # (it takes everything buffered when it runs).
        buf = self._buf
        if len(buf) >= self.limit:
            buf.clear()
            self._lagged_at = event["seq"]
        else:
            buf.append(event)
            if len(buf) > 1:
                return
        if self._lot:
            self._lot.unpark_all()

    def poke(self) -> None:
        """Wake the reader with nothing to read (`drain` answers [])."""
        self._poked = True
        self._lot.unpark_all()

    def lag(self, seq: int) -> None:
        self._buf.clear()
        self._lagged_at = seq
        self._lot.unpark_all()

    async def next(self) -> Event:
        while not self._buf and self._lagged_at is None:
            await self._lot.park()
        if self._lagged_at is not None:
            return self._lagged()
        return self._buf.popleft()

    async def drain(self) -> list[Event]:
        """Everything buffered (waiting for at least one event, or a `poke`: then []); a lag
        comes alone, first."""
        while not self._buf and self._lagged_at is None and not self._poked:
            await self._lot.park()
        self._poked = False
        if self._lagged_at is not None:
            return [self._lagged()]
        out = list(self._buf)
        self._buf.clear()
        return out

    def _lagged(self) -> Event:
        seq, self._lagged_at = self._lagged_at, None
        return {"seq": seq, "kind": "lagged", "at": rfc3339(now())}


class EventChannel:
    def __init__(
        self, history: int = 2000, buffer: int = 1000, unwritten_max: int = UNWRITTEN_MAX
    ) -> None:
        self.seq = 0
        self.buffer = buffer
        self.unwritten_max = unwritten_max
        self.written_seq = 0  # every event up to it is in the table (or was dropped)
        self.dropped = 0  # events lost because the store fell too far behind
        self._recent: deque[Event] = deque(maxlen=history)
        self._subs: set[Subscriber] = set()
        self._store: Store | None = None
        self._unwritten: deque[tuple[Event, float]] = deque()
        self._wake = trio.Event()
        self._written = trio.lowlevel.ParkingLot()
        self._json: OrderedDict[int, str] = OrderedDict()
        self._fold: Rows = {}
        self._fold_changes = 0
        self._baseline: tuple[int, float, Rows] | None = None
        self._logged_drops = 0

    # --- publishing -----------------------------------------------------------------------
    def publish(self, typed: DashboardEvent) -> Event:
        """Stamp `typed` with the next `seq`, encode it once, hand it to every subscriber."""
        self.seq += 1
        t = now()
        event: Event = {
            "seq": self.seq,
            "kind": typed.kind,
            "at": rfc3339(t),
            **converter.unstructure(typed),
        }
        self._recent.append(event)
        if self._store is not None:
            if len(self._unwritten) >= self.unwritten_max:
                self._unwritten.popleft()
                self.dropped += 1
            self._unwritten.append((event, t))
            if not self._wake.is_set():
                self._wake.set()
        for sub in self._subs:
            sub.push(event)
        return event

    def encode(self, event: Event) -> str:
        """The event as JSON text (one line), encoded once for every reader."""
        seq = event["seq"]
        if event["kind"] == "lagged":
            return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        text = self._json.get(seq)
        if text is None:
            text = _plain(event) if event["kind"] in PLAIN_KINDS else None
            if text is None:
                text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            self._json[seq] = text
            if len(self._json) > JSON_CACHE:
                self._json.popitem(last=False)
        return text

    # --- subscribing ------------------------------------------------------------------------
    def history(self, since_seq: int = 0, limit: int | None = None) -> list[Event]:
        """The recent events in memory after `since_seq` (the last `limit` of them)."""
        return _after(reversed(self._recent), since_seq, limit)

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

    # --- persistence ------------------------------------------------------------------------
    async def open(self, store: Store) -> None:
        """Continue `seq` from the table and the replay fold from its last snapshot; from now
        on every event is queued for `writer()`."""
        seq: int = await store.run(sql.max_seq)
        rows, _, _ = await store.run(sql.agents_at, seq)
        self.seq = self.written_seq = max(self.seq, seq)
        self._fold = rows
        self._store = store

    def baseline(self, rows: Rows) -> None:
        """The agents as they are now (start-up: the history cannot know what happened while
        the daemon was down); written as a snapshot at the current seq."""
        self._baseline = (self.seq, now(), rows)
        if not self._wake.is_set():
            self._wake.set()

    async def writer(self) -> None:
        """Write published events to the table, a batch at a time, until cancelled."""
        try:
            while True:
                await self._wake.wait()
                await trio.sleep(FLUSH_DELAY)  # let a batch gather: one commit for many
                self._wake = trio.Event()
                await self.flush()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + SHUTDOWN_FLUSH
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not write the last events at shutdown")

    async def flush(self) -> None:
        """Write everything queued now (the writer does this; tests and benches may too)."""
        assert self._store is not None
        while self._unwritten or self._baseline is not None:
            if self.dropped > self._logged_drops:
                log.warning(
                    "event history: the store fell behind, %d events not written",
                    self.dropped - self._logged_drops,
                )
                self._logged_drops = self.dropped
            batch = list(islice(self._unwritten, BATCH))
            rows = []
            for i, (e, t) in enumerate(batch):
                if i and i % ENCODE_SLICE == 0:
                    await trio.lowlevel.checkpoint()  # a full batch is tens of ms of JSON
                rows.append((e["seq"], t, e["kind"], self.encode(e)))
            # The replay fold moves on only with a written batch: a failed write is retried
            # from the same fold (folding twice would count a batch's changes twice).
            saved = (dict(self._fold), self._fold_changes, self._baseline)
            snapshots = self._fold_batch(batch)
            try:
                await self._store.run(_write, rows, snapshots)
            except Exception as e:  # the database is full or gone: keep them, try later
                self._fold, self._fold_changes, self._baseline = saved
                log.error("event history: cannot write %d events: %s", len(rows), e)
                return
            if batch:
                last = batch[-1][0]["seq"]
                while self._unwritten and self._unwritten[0][0]["seq"] <= last:
                    self._unwritten.popleft()
                self.written_seq = max(self.written_seq, last)
            self._written.unpark_all()

    def _fold_batch(self, batch: list[tuple[Event, float]]) -> list[tuple[int, float, Rows]]:
        """Fold the batch's state events; the snapshots to write with it."""
        snapshots: list[tuple[int, float, Rows]] = []
        for event, t in batch:
            self._take_baseline(event["seq"] - 1, snapshots)
            if sql.fold(self._fold, event):
                self._fold_changes += 1
                if self._fold_changes >= SNAPSHOT_EVERY:
                    snapshots.append((event["seq"], t, dict(self._fold)))
                    self._fold_changes = 0
        self._take_baseline(batch[-1][0]["seq"] if batch else self.seq, snapshots)
        return snapshots

    def _take_baseline(self, upto: int, snapshots: list[tuple[int, float, Rows]]) -> None:
        if self._baseline is not None and self._baseline[0] <= upto:
            seq, t, rows = self._baseline
            self._baseline = None
            self._fold = dict(rows)
            self._fold_changes = 0
            snapshots.append((seq, t, dict(rows)))

    async def written(self, seq: int) -> None:
        """Wait until every event up to `seq` is in the table."""
        while self.written_seq < seq:
            await self._written.park()

    # --- history reads ---------------------------------------------------------------------
    def _tail(self, after: int, upto: int | None = None) -> list[Event]:
        """The events in memory after `after` (up to `upto`), in order."""
        found = {e["seq"]: e for e in _after(reversed(self._recent), after)}
        unwritten = (e for e, _ in reversed(self._unwritten))
        found.update((e["seq"], e) for e in _after(unwritten, after))
        return [found[s] for s in sorted(found) if upto is None or s <= upto]

    async def page(self, since_seq: int, limit: int) -> tuple[int, list[tuple[int, str]]]:
        """(the seq now, the first `limit` events after `since_seq`: (seq, JSON text))."""
        seq = self.seq
        rows: list[tuple[int, str]] = []
        if self._store is not None and since_seq < self.written_seq:
            rows = await self._store.run(sql.page, since_seq, limit)
        if len(rows) < limit:
            last = rows[-1][0] if rows else since_seq
            rows += [(e["seq"], self.encode(e)) for e in self._tail(last)[: limit - len(rows)]]
        return seq, rows

    async def agents_at(self, seq: int) -> tuple[int, str | None, list[dict[str, Any]]]:
        """(seq, its time, the status rows of the agents at that seq), for replay."""
        seq = max(0, min(seq, self.seq))
        written = self.written_seq
        rows: Rows = {}
        at: float | None = None
        if self._store is not None:
            rows, _, at = await self._store.run(sql.agents_at, min(seq, written) if seq else 0)
        when = rfc3339(at)
        if seq > written:
            for event in self._tail(written, seq):
                sql.fold(rows, event)
                when = event["at"]
        return seq, when, [rows[name] for name in sorted(rows)]

    async def vacuum(self, older_than_seconds: float) -> int:
        assert self._store is not None
        removed: int = await self._store.run(sql.vacuum, now() - older_than_seconds)
        return removed


def _plain(event: Event) -> str | None:
    """The event's JSON through orjson (its kind holds no float: the stdlib's text), or None
    when orjson refuses it (the stdlib then decides)."""
    try:
        return orjson.dumps(event).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError
        return None


def _write(
    conn: Any, rows: list[tuple[int, float, str, str]], snapshots: list[tuple[int, float, Rows]]
) -> None:
    sql.insert_many(conn, rows)
    for seq, at, agents in snapshots:
        sql.insert_snapshot(conn, seq, at, agents)


def _after(newest_first: Iterable[Event], after: int, limit: int | None = None) -> list[Event]:
    """The events with a `seq` above `after` (the newest `limit` of them), oldest first, read
    from events newest first: the cost is what is returned, not the whole history kept."""
    out: list[Event] = []
    for e in newest_first:
        if e["seq"] <= after or len(out) == limit:
            break
        out.append(e)
    out.reverse()
    return out

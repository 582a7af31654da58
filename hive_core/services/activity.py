"""Activity: what agents' turns are doing, as reported by their harness (`activity` on an agent
socket) or by `hive-core hook` for an operator's own Claude Code session (host socket).

Rules kept here:
- a request carries at most 64 events (`too_large` past that); each is an object with a known
  `kind` and the fields of that kind (agent.md); a bad event refuses the whole request
  (`bad_request` naming its index) and nothing of it is kept;
- text is cut at 2 KiB (previews, descriptions, tool names at 200 bytes);
- each reporter may send 200 events a second sustained, in bursts of 1,000 (a token bucket on
  trio's clock); past that a request is answered `limit` and dropped: nothing queues;
- every accepted event is published as `agent_activity {agent, activity}`; the last 2,000 per
  reporter stay in memory, as published (with `seq` and `at`), for the agent's page; every
  `turn_end` of a hive agent becomes a row of `turns` (the source of costs) and sets its
  `last_turn_at`; then the budgets are told (`recorded`, services/costs.py).
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

from hive_core.clock import now
from hive_core.services.events import EventChannel
from hive_core.store import agents as agents_sql
from hive_core.store import turns as sql
from hive_core.store.db import Store
from hive_wire import events as ev
from hive_wire.errors import BadRequest, Limit, TooLarge
from hive_wire.names import RESERVED

MAX_EVENTS = 64
PREVIEW = 2048
KEEP = 2000
RATE = 200.0  # events per second, sustained
BURST = 1000.0
SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TURN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
RESULT_KINDS = {"ok", "failed", "prompt_too_long", "rate_limited", "timeout"}
STATES = {"idle", "thinking", "compacting", "rate_limited"}

# kind -> {field: (type, required)}
FIELDS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "turn_start": {"from": (str, False), "message_ids": (list, False)},
    "tool_use": {"tool": (str, True), "subagent": (str, False)},
    "subagent_start": {"id": (str, True), "description": (str, False)},
    "subagent_end": {"id": (str, True), "ok": (bool, True)},
    "text": {"preview": (str, True), "subagent": (str, False)},
    "turn_end": {
        "ok": (bool, True),
        "result_kind": (str, True),
        "duration_ms": (int, True),
        "usage": (dict, True),
        "cost_usd": ((int, float), False),
        "model": (str, False),
        "message_ids": (list, False),
        "turn_id": (str, False),
        "ended_at": ((int, float), False),
    },
    "state": {"state": (str, True)},
}
BIG = 2**53  # counts and ids: what a JSON number holds exactly (and SQLite's INTEGER)
COST_MAX = 1e6  # dollars of one turn
LIMITS = {"duration_ms": float(BIG), "cost_usd": COST_MAX, "ended_at": float(BIG)}  # 0 <= n < limit
MAX_SOURCES = 64  # hook sessions remembered at once (the oldest forgotten first)
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


def _clean(index: int, raw: Any) -> dict[str, Any]:
    """One reported event, checked and trimmed; `BadRequest` naming what is wrong."""
    where = f"events[{index}]"
    if type(raw) is not dict:
        raise BadRequest(f"{where}: expected an object")
    kind = raw.get("kind")
    if kind not in FIELDS:
        raise BadRequest(f"{where}.kind: expected one of {', '.join(FIELDS)}")
    out: dict[str, Any] = {"kind": kind}
    for name, (types, required) in FIELDS[kind].items():
        value: Any = raw.get(name)
        if value is None:
            if required:
                raise BadRequest(f"{where}.{name}: required field missing")
            continue
        if type(value) is bool and types is not bool or not isinstance(value, types):
            raise BadRequest(f"{where}.{name}: wrong type")
        if name in LIMITS and not 0 <= cast(float, value) < LIMITS[name]:
            raise BadRequest(f"{where}.{name}: expected 0 to below {LIMITS[name]:g}")
        if isinstance(value, str):
            value = value[: 200 if name in ("tool", "id", "model", "from") else PREVIEW]
        out[name] = value
    if kind == "turn_end":
        if out["result_kind"] not in RESULT_KINDS:
            raise BadRequest(f"{where}.result_kind: expected one of {', '.join(RESULT_KINDS)}")
        usage = out["usage"]
        out["usage"] = {k: usage[k] for k in USAGE_KEYS if type(usage.get(k)) is int}
        if not all(0 <= v < BIG for v in out["usage"].values()):
            raise BadRequest(f"{where}.usage: token counts are 0 to {BIG - 1}")
    if kind == "turn_end" and "turn_id" in out and not TURN_ID.fullmatch(out["turn_id"]):
        raise BadRequest(f"{where}.turn_id: expected 1 to 64 letters, digits, '-' or '_'")
    if kind == "state" and out["state"] not in STATES:
        raise BadRequest(f"{where}.state: expected one of {', '.join(sorted(STATES))}")
    for key in ("message_ids",):
        if key in out:
            ids = out[key]
            if len(ids) > 32 or not all(type(i) is int and 0 < i < BIG for i in ids):
                raise BadRequest(f"{where}.{key}: expected at most 32 integers")
    return out


class _Bucket:
    def __init__(self) -> None:
        self.tokens = BURST
        self.at = trio.current_time()

    def take(self, n: int) -> bool:
        t = trio.current_time()
        self.tokens = min(BURST, self.tokens + (t - self.at) * RATE)
        self.at = t
        if self.tokens < n:
            return False
        self.tokens -= n
        return True


class Activity:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        is_agent: Any,
        recorded: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.is_agent = is_agent
        self.recorded = recorded  # told of each agent whose turns were recorded (budgets)
        self.recent: dict[str, deque[dict[str, Any]]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._sessions: OrderedDict[str, None] = OrderedDict()  # hook sources, oldest first

    def source(self, caller: str, source: str | None) -> str:
        """Who the events are from: the agent of the socket, or the hook's label (host)."""
        if caller != "operator":
            return caller
        if source is None or not SOURCE.fullmatch(source):
            raise BadRequest("source: required on the host socket: 1 to 64 of [A-Za-z0-9._-]")
        if source in RESERVED or self.is_agent(source):
            raise BadRequest(f"source: {source!r} is an agent's or a reserved name")
        # Sessions come and go: remember the newest few, and share one rate among them all.
        self._sessions[source] = None
        self._sessions.move_to_end(source)
        while len(self._sessions) > MAX_SOURCES:
            old, _ = self._sessions.popitem(last=False)
            self.recent.pop(old, None)
        return source

    async def report(self, who: str, raw_events: list[Any]) -> int:
        if len(raw_events) > MAX_EVENTS:
            raise TooLarge(f"events: at most {MAX_EVENTS} per request")
        cleaned = [_clean(i, e) for i, e in enumerate(raw_events)]
        pool = "hook sessions" if who in self._sessions else who
        bucket = self._buckets.get(pool) or self._buckets.setdefault(pool, _Bucket())
        # A turn's end is its cost: never refused for the rate (it is one event a turn).
        if not bucket.take(sum(e["kind"] != "turn_end" for e in cleaned)):
            raise Limit(f"activity: more than {RATE:.0f} events a second; dropped")
        keep = self.recent.get(who) or self.recent.setdefault(who, deque(maxlen=KEEP))
        at = now()
        ends: list[tuple[dict[str, Any], sql.TurnRow | None]] = []
        for event in cleaned:
            if event["kind"] == "turn_end":  # published once recorded (a repeat is not news)
                ends.append((event, _turn_row(who, event, at) if self.is_agent(who) else None))
            else:
                keep.append(self.events.publish(ev.AgentActivity(agent=who, activity=event)))
        rows = [row for _, row in ends if row is not None]
        added = iter(await self.store.run(_record_turns, rows, who) if rows else [])
        for event, row in ends:
            if row is None or next(added):
                keep.append(self.events.publish(ev.AgentActivity(agent=who, activity=event)))
        if rows and self.recorded is not None:
            await self.recorded(who)
        return len(cleaned)

    def history(self, who: str, limit: int = KEEP) -> list[dict[str, Any]]:
        events = list(self.recent.get(who, ()))
        return events[-limit:]

    def forget(self, who: str) -> None:
        self.recent.pop(who, None)
        self._buckets.pop(who, None)

    async def vacuum(self, older_than_seconds: float) -> int:
        removed: int = await self.store.run(sql.vacuum, now() - older_than_seconds)
        return removed


def _record_turns(conn: Any, rows: list[sql.TurnRow], who: str) -> list[bool]:
    added = sql.insert_many(conn, rows)
    if any(added):
        agents_sql.touch_turn(conn, who, max(r.ended_at for r in rows))
    return added


def _turn_row(who: str, event: dict[str, Any], at: float) -> sql.TurnRow:
    """The `turns` row of a checked `turn_end`: it ended at its `ended_at` (a report kept by
    the harness while the daemon was away arrives late), never later than now."""
    usage = event["usage"]
    return sql.TurnRow(
        agent=who,
        ended_at=min(float(event.get("ended_at", at)), at),
        ok=event["ok"],
        result_kind=event["result_kind"],
        duration_ms=event["duration_ms"],
        model=event.get("model"),
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        cache_read_tokens=usage.get("cache_read_tokens", 0),
        cache_creation_tokens=usage.get("cache_creation_tokens", 0),
        cost_usd=float(event.get("cost_usd") or 0.0),
        context_tokens=usage.get("input_tokens", 0)
        + usage.get("cache_read_tokens", 0)
        + usage.get("cache_creation_tokens", 0),
        woken_by=event.get("message_ids") or [],
        turn_id=event.get("turn_id"),
    )

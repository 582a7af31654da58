"""SQL of the `turns` table: one row per finished agent turn (from `turn_end` activity).

Rules kept here:
- a row is written once and never updated (a `turn_id` seen before for the agent is skipped,
  its per-day sums too); `woken_by` is the JSON list of the message ids the
  turn was woken by; `thread` the first message of the first one's `in_reply_to` chain (the
  thread the turn is charged to); the per-day rollup (`turn_days`) is written with it;
- the vacuum deletes rows older than the retention (90 days by default), never newer ones.
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

from hive_core.store import costs


class TurnRow(NamedTuple):
    agent: str
    ended_at: float
    ok: bool
    result_kind: str
    duration_ms: int
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float
    context_tokens: int | None
    woken_by: list[int]
    turn_id: str | None = None  # the harness's id: a second report of it is not a second turn


def insert_many(conn: sqlite3.Connection, rows: list[TurnRow]) -> list[bool]:
    """The rows, each charged to its thread (`costs.thread_of` its first waking message) and
    summed into the per-day rollup in the same transaction; for each, whether it was added (not
    a `turn_id` of its agent recorded before)."""
    out: list[bool] = []
    for r in rows:
        thread = costs.thread_of(conn, r.woken_by[0]) if r.woken_by else None
        added = conn.execute(
            "INSERT INTO turns (agent, ended_at, ok, result_kind, duration_ms, model, "
            "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd, "
            "context_tokens, woken_by, thread, turn_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*r[:12], json.dumps(r.woken_by) if r.woken_by else None, thread, r.turn_id),
        ).rowcount
        out.append(bool(added))
        if not added:  # this turn_id was recorded already
            continue
        costs.add_to_days(
            conn,
            r.agent,
            r.ended_at,
            costs.Sums(
                1,
                r.input_tokens,
                r.output_tokens,
                r.cache_read_tokens,
                r.cache_creation_tokens,
                r.cost_usd,
            ),
        )
    return out


def vacuum(conn: sqlite3.Connection, older_than: float) -> int:
    removed = conn.execute("DELETE FROM turns WHERE ended_at < ?", (older_than,)).rowcount
    costs.vacuum_days(conn, older_than)
    return removed

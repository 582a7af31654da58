"""SQL of the `turns` table: one row per finished agent turn (from `turn_end` activity).

Rules kept here:
- a row is written once and never updated; `woken_by` is the JSON list of the message ids the
  turn was woken by (the thread a turn is charged to);
- the vacuum deletes rows older than the retention (90 days by default), never newer ones.
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple


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


def insert_many(conn: sqlite3.Connection, rows: list[TurnRow]) -> None:
    conn.executemany(
        "INSERT INTO turns (agent, ended_at, ok, result_kind, duration_ms, model, input_tokens, "
        "output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd, context_tokens, "
        "woken_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r[:12], json.dumps(r.woken_by) if r.woken_by else None) for r in rows],
    )


def vacuum(conn: sqlite3.Connection, older_than: float) -> int:
    return conn.execute("DELETE FROM turns WHERE ended_at < ?", (older_than,)).rowcount

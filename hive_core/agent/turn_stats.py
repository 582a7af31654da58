"""Turn stats: one row per claude run in `<state dir>/hyperhive-turn-stats.sqlite`, table
`turn_stats` (agent.md lists the columns).

Rules kept here:
- best effort: `record` never raises; a failed write is logged and the row is lost, the turn
  loop goes on;
- SQLite runs in a worker thread (`trio.to_thread`), never on the trio thread;
- `started_at`/`ended_at` are unix seconds (REAL): the daemon's vacuum sweeps by `started_at`
  (`store/agent_files.py`);
- the file is opened per write: a turn is minutes apart, and nothing stays open that a vacuum
  or an operator's `sqlite3` would wait on.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import trio

log = logging.getLogger("hive_core.agent.turn_stats")

FILE = "hyperhive-turn-stats.sqlite"
RESULT_KINDS = ("ok", "failed", "prompt_too_long", "rate_limited", "timeout")

SCHEMA = """
CREATE TABLE IF NOT EXISTS turn_stats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    duration_ms INTEGER NOT NULL,
    model TEXT,
    wake_from TEXT,
    result_kind TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    tool_call_count INTEGER NOT NULL DEFAULT 0,
    tool_call_breakdown_json TEXT NOT NULL DEFAULT '{}',
    open_loose_ends INTEGER,
    pending_reminders INTEGER,
    note TEXT
);
CREATE INDEX IF NOT EXISTS turn_stats_started_at ON turn_stats (started_at);
"""


@attrs.frozen(kw_only=True)
class TurnRow:
    started_at: float
    ended_at: float
    duration_ms: int
    model: str | None = None
    wake_from: str | None = None
    result_kind: str = attrs.field(validator=attrs.validators.in_(RESULT_KINDS))
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float | None = None
    tool_calls: dict[str, int] = attrs.Factory(dict)
    open_loose_ends: int | None = None
    pending_reminders: int | None = None
    note: str | None = None

    def columns(self) -> dict[str, Any]:
        cols = attrs.asdict(self, recurse=False)
        calls = cols.pop("tool_calls")
        cols["tool_call_count"] = sum(calls.values())
        cols["tool_call_breakdown_json"] = json.dumps(calls, sort_keys=True)
        return cols


class TurnStats:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.failures = 0

    def write(self, row: TurnRow) -> None:
        """Blocking insert (raises); `record` is the loop's best-effort form."""
        cols = row.columns()
        conn = sqlite3.connect(self.path, timeout=5)
        try:
            conn.executescript(SCHEMA)
            with conn:
                conn.execute(
                    f"INSERT INTO turn_stats ({', '.join(cols)}) "
                    f"VALUES ({', '.join('?' for _ in cols)})",
                    tuple(cols.values()),
                )
        finally:
            conn.close()

    async def record(self, row: TurnRow) -> bool:
        try:
            await trio.to_thread.run_sync(self.write, row)
            return True
        except (sqlite3.Error, OSError) as e:
            self.failures += 1
            log.warning("turn stats write failed path=%s error=%s", self.path, e)
            return False


def rows(path: Path) -> list[dict[str, Any]]:
    """Every row, oldest first (blocking; for readers and tests)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM turn_stats ORDER BY id")]
    finally:
        conn.close()

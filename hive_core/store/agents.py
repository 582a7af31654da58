"""SQL of the `agents` table: the registry of agents the daemon manages."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple


class AgentRow(NamedTuple):
    name: str
    created_at: float
    command: list[str] | None
    paused: bool
    status_text: str | None
    status_set_at: float | None
    last_turn_at: float | None
    want_running: bool


_COLUMNS = (
    "name, created_at, command, paused, status_text, status_set_at, last_turn_at, want_running"
)


def _row(r: tuple[Any, ...]) -> AgentRow:
    return AgentRow(
        r[0], r[1], json.loads(r[2]) if r[2] else None, bool(r[3]), r[4], r[5], r[6], bool(r[7])
    )


def insert(conn: sqlite3.Connection, name: str, command: list[str] | None, now: float) -> bool:
    """Register an agent; False if one of that name exists."""
    cur = conn.execute(
        "INSERT INTO agents (name, created_at, command) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO NOTHING",
        (name, now, json.dumps(command) if command is not None else None),
    )
    return cur.rowcount > 0


def delete(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0


def all_rows(conn: sqlite3.Connection) -> list[AgentRow]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM agents ORDER BY name")]


def get(conn: sqlite3.Connection, name: str) -> AgentRow | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE name = ?", (name,)).fetchone()
    return None if r is None else _row(r)


def set_status(conn: sqlite3.Connection, name: str, text: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE agents SET status_text = ?, status_set_at = ? WHERE name = ?", (text, now, name)
    )
    return cur.rowcount > 0


def touch_turn(conn: sqlite3.Connection, name: str, now: float) -> None:
    conn.execute("UPDATE agents SET last_turn_at = ? WHERE name = ?", (now, name))


def set_wanted(conn: sqlite3.Connection, name: str, wanted: bool) -> None:
    conn.execute("UPDATE agents SET want_running = ? WHERE name = ?", (int(wanted), name))

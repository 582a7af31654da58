"""SQL of the `reminders` table. Status: `pending` (waits for `due_at`), `delivered`, `parked`
(gave up after too many failed deliveries; the operator may retry)."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple


class ReminderRow(NamedTuple):
    id: int
    agent: str
    message: str
    file_path: str | None
    created_at: float
    due_at: float
    status: str
    attempts: int
    last_error: str | None
    delivered_at: float | None


_COLUMNS = (
    "id, agent, message, file_path, created_at, due_at, status, attempts, last_error, delivered_at"
)


def count_pending(conn: sqlite3.Connection, agent: str) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM reminders WHERE agent = ? AND status = 'pending'", (agent,)
        ).fetchone()[0]
    )


def pending_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(
        conn.execute(
            "SELECT agent, count(*) FROM reminders WHERE status = 'pending' GROUP BY agent"
        )
    )


def insert(
    conn: sqlite3.Connection,
    agent: str,
    message: str,
    file_path: str | None,
    now: float,
    due_at: float,
) -> ReminderRow:
    r = conn.execute(
        "INSERT INTO reminders (agent, message, file_path, created_at, due_at) "
        f"VALUES (?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (agent, message, file_path, now, due_at),
    ).fetchone()
    return ReminderRow(*r)


def get(conn: sqlite3.Connection, rid: int) -> ReminderRow | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM reminders WHERE id = ?", (rid,)).fetchone()
    return None if r is None else ReminderRow(*r)


def due(conn: sqlite3.Connection, now: float, limit: int = 100) -> list[ReminderRow]:
    return [
        ReminderRow(*r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM reminders WHERE status = 'pending' AND due_at <= ? "
            "ORDER BY due_at, id LIMIT ?",
            (now, limit),
        )
    ]


def next_due(conn: sqlite3.Connection) -> float | None:
    due: float | None = conn.execute(
        "SELECT min(due_at) FROM reminders WHERE status = 'pending'"
    ).fetchone()[0]
    return due


def mark_delivered(conn: sqlite3.Connection, rid: int, now: float) -> None:
    conn.execute(
        "UPDATE reminders SET status = 'delivered', delivered_at = ?, attempts = attempts + 1 "
        "WHERE id = ?",
        (now, rid),
    )


def mark_failed(
    conn: sqlite3.Connection, rid: int, error: str, retry_at: float, max_attempts: int
) -> ReminderRow:
    r = conn.execute(
        "UPDATE reminders SET attempts = attempts + 1, last_error = ?, due_at = ?, "
        "status = CASE WHEN attempts + 1 >= ? THEN 'parked' ELSE 'pending' END "
        f"WHERE id = ? RETURNING {_COLUMNS}",
        (error, retry_at, max_attempts, rid),
    ).fetchone()
    return ReminderRow(*r)


def retry(conn: sqlite3.Connection, rid: int, now: float) -> ReminderRow | None:
    r = conn.execute(
        "UPDATE reminders SET status = 'pending', attempts = 0, due_at = ? "
        f"WHERE id = ? AND status IN ('parked', 'pending') RETURNING {_COLUMNS}",
        (now, rid),
    ).fetchone()
    return None if r is None else ReminderRow(*r)


def delete_open(conn: sqlite3.Connection, rid: int) -> bool:
    return (
        conn.execute(
            "DELETE FROM reminders WHERE id = ? AND status IN ('pending', 'parked')", (rid,)
        ).rowcount
        > 0
    )


def open_rows(conn: sqlite3.Connection, agent: str | None = None) -> list[ReminderRow]:
    sql = f"SELECT {_COLUMNS} FROM reminders WHERE status IN ('pending', 'parked')"
    args: tuple[str, ...] = ()
    if agent is not None:
        sql += " AND agent = ?"
        args = (agent,)
    return [ReminderRow(*r) for r in conn.execute(sql + " ORDER BY due_at, id", args)]


def vacuum(conn: sqlite3.Connection, delivered_before: float) -> int:
    return conn.execute(
        "DELETE FROM reminders WHERE status = 'delivered' AND delivered_at < ?",
        (delivered_before,),
    ).rowcount

"""SQL of the `events` table (the dashboard's event history) and of `event_snapshots` (the
agents as they were at a `seq`, for replay).

Rules kept here:
- an event row is written once, never updated: `seq` (the channel's), `at` (epoch seconds, for
  the retention), `kind`, and `data`, the event's JSON as the stream sends it, so a page of
  history is the stored text joined, never decoded and encoded again;
- a snapshot row holds the status rows of every agent as the fold of `container_state_changed`
  (full rows) and `container_removed` events up to its `seq`; the agents at any `seq` are the
  latest snapshot at or before it plus the state events after it (a partial index keeps those
  few rows apart from the traffic);
- the vacuum deletes events older than the retention and the snapshots no retained event needs
  (it keeps the last snapshot at or before the oldest retained event).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

STATE_KINDS = ("container_state_changed", "container_removed")
# Written out (not bound) so that the planner can use the partial index `events_agents`.
_KINDS_SQL = "('container_state_changed', 'container_removed')"


def max_seq(conn: sqlite3.Connection) -> int:
    (seq,) = conn.execute("SELECT MAX(seq) FROM events").fetchone()
    (snap,) = conn.execute("SELECT MAX(seq) FROM event_snapshots").fetchone()
    return max(int(seq or 0), int(snap or 0))


def insert_many(conn: sqlite3.Connection, rows: Iterable[tuple[int, float, str, str]]) -> None:
    """(seq, at, kind, data) rows; a seq written already is left as it is."""
    conn.executemany("INSERT OR IGNORE INTO events (seq, at, kind, data) VALUES (?, ?, ?, ?)", rows)


def page(conn: sqlite3.Connection, since_seq: int, limit: int) -> list[tuple[int, str]]:
    """The first `limit` events after `since_seq`: (seq, JSON text), in order."""
    return conn.execute(
        "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (since_seq, limit)
    ).fetchall()


def oldest_seq(conn: sqlite3.Connection) -> int | None:
    (seq,) = conn.execute("SELECT MIN(seq) FROM events").fetchone()
    return None if seq is None else int(seq)


def insert_snapshot(
    conn: sqlite3.Connection, seq: int, at: float, agents: dict[str, dict[str, Any]]
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO event_snapshots (seq, at, agents) VALUES (?, ?, ?)",
        (seq, at, json.dumps(agents, separators=(",", ":"))),
    )


def latest_snapshot(
    conn: sqlite3.Connection, at_or_before: int | None = None
) -> tuple[int, dict[str, dict[str, Any]]] | None:
    """The last snapshot (at or before a seq): (seq, {name: status row})."""
    if at_or_before is None:
        row = conn.execute(
            "SELECT seq, agents FROM event_snapshots ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT seq, agents FROM event_snapshots WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
            (at_or_before,),
        ).fetchone()
    return None if row is None else (int(row[0]), json.loads(row[1]))


def state_events(conn: sqlite3.Connection, after: int, upto: int) -> list[dict[str, Any]]:
    """The `container_state_changed`/`container_removed` events in (after, upto], in order."""
    rows = conn.execute(
        "SELECT data FROM events INDEXED BY events_agents "
        f"WHERE kind IN {_KINDS_SQL} AND seq > ? AND seq <= ? ORDER BY seq",
        (after, upto),
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def at_of(conn: sqlite3.Connection, seq: int) -> float | None:
    """The time of the last event at or before `seq`."""
    row = conn.execute(
        "SELECT at FROM events WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (seq,)
    ).fetchone()
    return None if row is None else float(row[0])


def agents_at(
    conn: sqlite3.Connection, seq: int
) -> tuple[dict[str, dict[str, Any]], int, float | None]:
    """The agents at `seq`: ({name: status row}, the seq folded up to, the time at `seq`)."""
    snap = latest_snapshot(conn, seq)
    base, agents = (0, {}) if snap is None else snap
    for event in state_events(conn, base, seq):
        fold(agents, event)
    return agents, seq, at_of(conn, seq)


def fold(agents: dict[str, dict[str, Any]], event: dict[str, Any]) -> bool:
    """Apply one event to {name: status row}; True if it was a state event."""
    kind = event.get("kind")
    if kind == "container_state_changed":
        agents[event["agent"]] = event["row"]
        return True
    if kind == "container_removed":
        agents.pop(event["agent"], None)
        return True
    return False


def vacuum(conn: sqlite3.Connection, before: float) -> int:
    """Delete events older than `before`, and the snapshots no retained event needs."""
    removed = conn.execute("DELETE FROM events WHERE at < ?", (before,)).rowcount
    oldest = oldest_seq(conn)
    if oldest is not None:
        keep = latest_snapshot(conn, oldest)
        if keep is not None:
            conn.execute("DELETE FROM event_snapshots WHERE seq < ?", (keep[0],))
    return int(removed)

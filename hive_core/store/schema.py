"""The schema and its migrations.

Rules kept here:
- the schema version is `PRAGMA user_version`; migration N takes a database at version N-1 to N;
- each migration runs in one transaction with the version bump, and is idempotent (it can run
  again on a database that already has its changes: `IF NOT EXISTS`, column checks);
- migrations only ever add; a column is never renamed or retyped in place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils


def _v1_broker_and_agents(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db.table("agents").create(
        {
            "name": str,
            "created_at": float,
            "command": str,
            "paused": int,
            "status_text": str,
            "status_set_at": float,
            "last_turn_at": float,
        },
        pk="name",
        not_null={"created_at", "paused"},
        defaults={"paused": 0},
        if_not_exists=True,
    )
    # AUTOINCREMENT: an id is never reused, even after vacuum deleted the newest rows.
    conn.execute(
        """CREATE TABLE IF NOT EXISTS messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            recipient TEXT NOT NULL,
            sender TEXT NOT NULL,
            body TEXT NOT NULL,
            in_reply_to INTEGER,
            sent_at REAL NOT NULL,
            delivered_at REAL,
            acked_at REAL,
            deliveries INTEGER NOT NULL DEFAULT 0,
            redelivered INTEGER NOT NULL DEFAULT 0,
            dead_at REAL
        )"""
    )
    # The inbox (undelivered) and in-flight rows are small partial indexes, so pops and acks
    # never scan the acked history.
    conn.execute(
        "CREATE INDEX IF NOT EXISTS messages_inbox ON messages(recipient, id) "
        "WHERE delivered_at IS NULL AND acked_at IS NULL AND dead_at IS NULL"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS messages_inflight ON messages(recipient, id) "
        "WHERE delivered_at IS NOT NULL AND acked_at IS NULL AND dead_at IS NULL"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS messages_recipient ON messages(recipient, id)")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS messages_acked ON messages(acked_at) WHERE acked_at IS NOT NULL"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS messages_dead ON messages(id) WHERE dead_at IS NOT NULL"
    )


def _v2_queues(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent TEXT NOT NULL,
            kind TEXT NOT NULL,
            commit_ref TEXT NOT NULL DEFAULT '',
            fetched_sha TEXT,
            description TEXT,
            requested_by TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            requested_at REAL NOT NULL,
            resolved_at REAL,
            note TEXT
        )"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS approvals_pending ON approvals(id) WHERE status = 'pending'"
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS questions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            asker TEXT NOT NULL,
            target TEXT,
            question TEXT NOT NULL,
            options TEXT,
            multi INTEGER NOT NULL DEFAULT 0,
            asked_at REAL NOT NULL,
            deadline REAL,
            answer TEXT,
            answerer TEXT,
            answered_at REAL
        )"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS questions_open ON questions(deadline) WHERE answer IS NULL"
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS reminders (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent TEXT NOT NULL,
            message TEXT NOT NULL,
            file_path TEXT,
            created_at REAL NOT NULL,
            due_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            delivered_at REAL
        )"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS reminders_due ON reminders(due_at) WHERE status = 'pending'"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS reminders_agent ON reminders(agent, status)")


def _v3_wanted_running(conn: sqlite3.Connection) -> None:
    agents = sqlite_utils.Database(conn)["agents"]
    if "want_running" not in agents.columns_dict:
        conn.execute("ALTER TABLE agents ADD COLUMN want_running INTEGER NOT NULL DEFAULT 1")


def _v4_events_and_turns(conn: sqlite3.Connection) -> None:
    # The dashboard's event history: `seq` continues across restarts (dashboard.md).
    conn.execute(
        """CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS events_at ON events(at)")
    # One row per finished turn (agent.md, `turn_end`): the source of costs.
    conn.execute(
        """CREATE TABLE IF NOT EXISTS turns (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent TEXT NOT NULL,
            ended_at REAL NOT NULL,
            ok INTEGER NOT NULL,
            result_kind TEXT NOT NULL,
            duration_ms INTEGER NOT NULL,
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            context_tokens INTEGER,
            woken_by TEXT
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS turns_agent ON turns(agent, ended_at)")
    conn.execute("CREATE INDEX IF NOT EXISTS turns_ended ON turns(ended_at)")


def _v5_event_snapshots(conn: sqlite3.Connection) -> None:
    # Replay (dashboard.md): the agents as they were at a seq, folded from the state events;
    # a snapshot every so often keeps `state_at` short on a long history.
    conn.execute(
        """CREATE TABLE IF NOT EXISTS event_snapshots (
            seq INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            agents TEXT NOT NULL
        )"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS events_agents ON events(seq) "
        "WHERE kind IN ('container_state_changed', 'container_removed')"
    )


def _v6_costs(conn: sqlite3.Connection) -> None:
    # Costs (agent.md): the thread each turn is charged to, a per-agent-per-day rollup (windows
    # read it instead of the whole history), and the budget state (store/costs.py).
    from hive_core.store import costs

    turns = sqlite_utils.Database(conn)["turns"]
    if "thread" not in turns.columns_dict:
        conn.execute("ALTER TABLE turns ADD COLUMN thread INTEGER")
    # Covering `by_thread` (group by thread, sum cost, list agents) without a lookup per turn.
    conn.execute(
        "CREATE INDEX IF NOT EXISTS turns_thread_cost ON turns(thread, cost_usd, agent, "
        "ended_at) WHERE thread IS NOT NULL"
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS turn_days (
            agent TEXT NOT NULL,
            day INTEGER NOT NULL,
            turns INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_creation_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            PRIMARY KEY (agent, day)
        ) WITHOUT ROWID"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS turn_days_day ON turn_days(day)")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS budget_warnings (
            agent TEXT NOT NULL,
            period TEXT NOT NULL,
            PRIMARY KEY (agent, period)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS budget_stops (
            agent TEXT PRIMARY KEY,
            period TEXT NOT NULL,
            kind TEXT NOT NULL,
            ends_at REAL NOT NULL,
            approval_id INTEGER,
            reason TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS budget_raises (
            approval_id INTEGER NOT NULL,
            unit TEXT NOT NULL,
            agent TEXT NOT NULL,
            period TEXT NOT NULL,
            amount REAL NOT NULL,
            granted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (approval_id, unit)
        )"""
    )
    # Turns written before this migration: their thread and the rollup, from what is there.
    for tid, woken in conn.execute(
        "SELECT id, json_extract(woken_by, '$[0]') FROM turns "
        "WHERE thread IS NULL AND woken_by IS NOT NULL"
    ).fetchall():
        if woken is not None:
            conn.execute(
                "UPDATE turns SET thread = ? WHERE id = ?", (costs.thread_of(conn, int(woken)), tid)
            )
    costs.rebuild_days(conn)


def _v7_budget_stop_keeps_the_operators_pause(conn: sqlite3.Connection) -> None:
    # Whether the operator had paused the agent already when its budget stopped it: the end of
    # the stop then leaves it paused.
    columns = {r[1] for r in conn.execute("PRAGMA table_info(budget_stops)")}
    if "was_paused" not in columns:
        conn.execute("ALTER TABLE budget_stops ADD COLUMN was_paused INTEGER NOT NULL DEFAULT 0")


def _v8_turn_ids(conn: sqlite3.Connection) -> None:
    # The harness's own id of a turn (`turn_end` `turn_id`): a report sent again (its answer was
    # lost) is recorded once.
    columns = {r[1] for r in conn.execute("PRAGMA table_info(turns)")}
    if "turn_id" not in columns:
        conn.execute("ALTER TABLE turns ADD COLUMN turn_id TEXT")
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS turns_turn_id ON turns(agent, turn_id) "
        "WHERE turn_id IS NOT NULL"
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_broker_and_agents,
    _v2_queues,
    _v3_wanted_running,
    _v4_events_and_turns,
    _v5_event_snapshots,
    _v6_costs,
    _v7_budget_stop_keeps_the_operators_pause,
    _v8_turn_ids,
]

LATEST = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = LATEST) -> int:
    """Bring the database to `target`; returns the version it started at."""
    start = version(conn)
    if start > LATEST:
        raise RuntimeError(
            f"database schema version {start} is newer than this hive-core ({LATEST})"
        )
    for number in range(start + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return start

"""SQL of the `messages` table: the broker's inbox, leases, acks and dead letters.

A row is, by its columns:
- *undelivered* (in the inbox): `delivered_at IS NULL AND acked_at IS NULL AND dead_at IS NULL`;
- *in flight* (leased): `delivered_at IS NOT NULL AND acked_at IS NULL AND dead_at IS NULL`;
- *acked*: `acked_at IS NOT NULL` (final; vacuum deletes it after the retention);
- *dead*: `dead_at IS NOT NULL` (set aside after too many deliveries).
Every function takes the connection first and runs inside the store's transaction. Statements on
the hot path name their partial index (`INDEXED BY`): left to itself the planner picks the
recipient index and walks a recipient's whole acked history on every pop. The hot-path jobs are
`light` (store.db): a batch of them runs its SQL in the trio thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from hive_core.store.db import check_room, light

UNDELIVERED = "delivered_at IS NULL AND acked_at IS NULL AND dead_at IS NULL"
INFLIGHT = "delivered_at IS NOT NULL AND acked_at IS NULL AND dead_at IS NULL"


class Row(NamedTuple):
    id: int
    sender: str
    body: str
    sent_at: float
    redelivered: bool
    in_reply_to: int | None


class DeadRow(NamedTuple):
    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    deliveries: int
    dead_at: float
    in_reply_to: int | None


@light
def insert(
    conn: sqlite3.Connection,
    recipients: Iterable[str],
    sender: str,
    body: str,
    now: float,
    in_reply_to: int | None = None,
    soft_cap: bool = True,
) -> list[int]:
    """One row per recipient; refused at the database's soft cap unless `soft_cap` is False
    (the daemon's own small notes written while draining, e.g. a dead letter's)."""
    if soft_cap:
        check_room(conn)
    cur = conn.cursor()
    ids = []
    for recipient in recipients:
        cur.execute(
            "INSERT INTO messages (recipient, sender, body, in_reply_to, sent_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (recipient, sender, body, in_reply_to, now),
        )
        ids.append(int(cur.lastrowid or 0))
    return ids


@light
def pop(conn: sqlite3.Connection, recipient: str, limit: int, now: float) -> list[Row]:
    """Lease up to `limit` undelivered rows of `recipient`, oldest first."""
    rows = conn.execute(
        "UPDATE messages SET delivered_at = ?, deliveries = deliveries + 1 "
        "WHERE id IN (SELECT id FROM messages INDEXED BY messages_inbox "
        f"WHERE recipient = ? AND {UNDELIVERED} ORDER BY id LIMIT ?) "
        "RETURNING id, sender, body, sent_at, redelivered, in_reply_to",
        (now, recipient, limit),
    ).fetchall()
    rows.sort()
    return [Row(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]


@light
def ack(conn: sqlite3.Connection, recipient: str, ids: list[int] | None, now: float) -> list[int]:
    """Ack the recipient's in-flight rows (all, or those of `ids`); the ids acked."""
    if ids is None:
        rows = conn.execute(
            "UPDATE messages SET acked_at = ? WHERE id IN (SELECT id FROM messages "
            f"INDEXED BY messages_inflight WHERE recipient = ? AND {INFLIGHT}) RETURNING id",
            (now, recipient),
        ).fetchall()
    else:
        rows = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"UPDATE messages SET acked_at = ? WHERE recipient = ? AND {INFLIGHT} "
                f"AND id IN ({marks}) RETURNING id",
                (now, recipient, *chunk),
            ).fetchall()
    return sorted(r[0] for r in rows)


def requeue(
    conn: sqlite3.Connection,
    recipient: str | None,
    now: float,
    max_deliveries: int,
    leased_before: float | None = None,
) -> tuple[dict[str, list[int]], list[DeadRow]]:
    """Put in-flight rows back in the inbox, flagged `redelivered`; rows already delivered
    `max_deliveries` times become dead instead. `recipient=None` means every recipient;
    `leased_before` limits it to leases older than that (lease expiry).
    Returns {recipient: requeued ids} and the rows that died."""
    inner = INFLIGHT
    args: list[object] = []
    if recipient is not None:
        inner += " AND recipient = ?"
        args.append(recipient)
    if leased_before is not None:
        inner += " AND delivered_at < ?"
        args.append(leased_before)
    # Through the small in-flight index, never the recipient's whole history.
    where = f"id IN (SELECT id FROM messages INDEXED BY messages_inflight WHERE {inner})"
    dead = conn.execute(
        f"UPDATE messages SET dead_at = ? WHERE {where} AND deliveries >= ? "
        "RETURNING id, sender, recipient, body, sent_at, deliveries, dead_at, in_reply_to",
        (now, *args, max_deliveries),
    ).fetchall()
    back = conn.execute(
        f"UPDATE messages SET delivered_at = NULL, redelivered = 1 WHERE {where} "
        "RETURNING recipient, id",
        args,
    ).fetchall()
    requeued: dict[str, list[int]] = {}
    for rcpt, mid in back:
        requeued.setdefault(rcpt, []).append(mid)
    return requeued, sorted(DeadRow(*r) for r in dead)


@light
def unpop(conn: sqlite3.Connection, recipient: str, ids: list[int], popped_at: float) -> int:
    """Undo a pop whose answer never reached its client: the rows go back to the inbox as they
    were (this delivery not counted; an ack made by the same pop undone)."""
    marks = ",".join("?" * len(ids))
    return conn.execute(
        "UPDATE messages SET delivered_at = NULL, acked_at = NULL, deliveries = deliveries - 1 "
        f"WHERE recipient = ? AND id IN ({marks}) AND delivered_at = ? AND dead_at IS NULL "
        "AND (acked_at IS NULL OR acked_at = ?)",
        (recipient, *ids, popped_at, popped_at),
    ).rowcount


def unread(conn: sqlite3.Connection, recipient: str) -> int:
    return int(
        conn.execute(
            f"SELECT count(*) FROM messages INDEXED BY messages_inbox "
            f"WHERE recipient = ? AND {UNDELIVERED}",
            (recipient,),
        ).fetchone()[0]
    )


def pending_total(conn: sqlite3.Connection) -> int:
    return int(conn.execute(f"SELECT count(*) FROM messages WHERE {UNDELIVERED}").fetchone()[0])


def recent(conn: sqlite3.Connection, recipient: str, limit: int) -> list[Row]:
    """The recipient's last delivered rows, newest first."""
    rows = conn.execute(
        "SELECT id, sender, body, sent_at, redelivered, in_reply_to FROM messages "
        "WHERE recipient = ? AND delivered_at IS NOT NULL ORDER BY id DESC LIMIT ?",
        (recipient, limit),
    ).fetchall()
    return [Row(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]


def peek(conn: sqlite3.Connection, recipient: str, limit: int) -> list[Row]:
    """The recipient's newest `limit` undelivered rows, oldest first, left in the inbox."""
    rows = conn.execute(
        "SELECT id, sender, body, sent_at, redelivered, in_reply_to FROM messages "
        f"INDEXED BY messages_inbox WHERE recipient = ? AND {UNDELIVERED} "
        "ORDER BY id DESC LIMIT ?",
        (recipient, limit),
    ).fetchall()
    return [Row(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in reversed(rows)]


def dead_letters(conn: sqlite3.Connection, limit: int = 1000) -> list[DeadRow]:
    rows = conn.execute(
        "SELECT id, sender, recipient, body, sent_at, deliveries, dead_at, in_reply_to "
        "FROM messages WHERE dead_at IS NOT NULL ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [DeadRow(*r) for r in rows]


def revive_dead(conn: sqlite3.Connection, msg_id: int) -> str | None:
    """Put a dead row back in its inbox with a fresh delivery count; its recipient, or None."""
    row = conn.execute(
        "UPDATE messages SET dead_at = NULL, delivered_at = NULL, deliveries = 0, "
        "redelivered = 1 WHERE id = ? AND dead_at IS NOT NULL RETURNING recipient",
        (msg_id,),
    ).fetchone()
    return None if row is None else str(row[0])


def drop_dead(conn: sqlite3.Connection, msg_id: int) -> bool:
    cur = conn.execute("DELETE FROM messages WHERE id = ? AND dead_at IS NOT NULL", (msg_id,))
    return cur.rowcount > 0


def expired_lease_recipients(conn: sqlite3.Connection, leased_before: float) -> list[str]:
    rows = conn.execute(
        f"SELECT DISTINCT recipient FROM messages WHERE {INFLIGHT} AND delivered_at < ?",
        (leased_before,),
    ).fetchall()
    return [r[0] for r in rows]


def vacuum(conn: sqlite3.Connection, acked_before: float) -> int:
    """Delete rows acked before the cutoff; never an unacked row."""
    cur = conn.execute(
        "DELETE FROM messages WHERE acked_at IS NOT NULL AND acked_at < ?", (acked_before,)
    )
    return cur.rowcount


def purge_recipient(conn: sqlite3.Connection, recipient: str) -> int:
    """Delete every row addressed to `recipient` (queued, in flight, dead, acked): its agent was
    destroyed with `purge`, and a later agent of that name must start from an empty inbox."""
    return conn.execute("DELETE FROM messages WHERE recipient = ?", (recipient,)).rowcount

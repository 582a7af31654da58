"""SQL of the `approvals` table: the operator's gate."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple


class ApprovalRow(NamedTuple):
    id: int
    agent: str
    kind: str
    commit_ref: str
    fetched_sha: str | None
    requested_at: float
    status: str
    resolved_at: float | None
    note: str | None
    description: str | None
    requested_by: str


_COLUMNS = (
    "id, agent, kind, commit_ref, fetched_sha, requested_at, status, resolved_at, note, "
    "description, requested_by"
)


def insert(
    conn: sqlite3.Connection,
    agent: str,
    kind: str,
    commit_ref: str,
    fetched_sha: str | None,
    description: str | None,
    requested_by: str,
    now: float,
) -> ApprovalRow:
    row = conn.execute(
        "INSERT INTO approvals (agent, kind, commit_ref, fetched_sha, description, requested_by, "
        f"requested_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (agent, kind, commit_ref, fetched_sha, description, requested_by, now),
    ).fetchone()
    return ApprovalRow(*row)


def get(conn: sqlite3.Connection, approval_id: int) -> ApprovalRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return None if row is None else ApprovalRow(*row)


def listing(conn: sqlite3.Connection, resolved_limit: int = 200) -> list[ApprovalRow]:
    """Pending rows (oldest first), then the latest resolutions (newest last)."""
    pending = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending' ORDER BY id"
    ).fetchall()
    resolved = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE status != 'pending' "
        "ORDER BY resolved_at DESC, id DESC LIMIT ?",
        (resolved_limit,),
    ).fetchall()
    return [ApprovalRow(*r) for r in pending] + [ApprovalRow(*r) for r in reversed(resolved)]


def pending_for(conn: sqlite3.Connection, agent: str | None) -> list[ApprovalRow]:
    sql = f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending'"
    args: tuple[str, ...] = ()
    if agent is not None:
        sql += " AND (agent = ? OR requested_by = ?)"
        args = (agent, agent)
    return [ApprovalRow(*r) for r in conn.execute(sql + " ORDER BY id", args)]


def claim(conn: sqlite3.Connection, approval_id: int) -> ApprovalRow | None:
    """The pending row, or None if it is not pending (the caller tells not-found from conflict)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE id = ? AND status = 'pending'", (approval_id,)
    ).fetchone()
    return None if row is None else ApprovalRow(*row)


def resolve(
    conn: sqlite3.Connection,
    approval_id: int,
    status: str,
    note: str | None,
    now: float,
    only_pending: bool = True,
) -> ApprovalRow | None:
    where = "id = ? AND status = 'pending'" if only_pending else "id = ?"
    row = conn.execute(
        f"UPDATE approvals SET status = ?, note = ?, resolved_at = ? WHERE {where} "
        f"RETURNING {_COLUMNS}",
        (status, note, now, approval_id),
    ).fetchone()
    return None if row is None else ApprovalRow(*row)


def vacuum(conn: sqlite3.Connection, resolved_before: float) -> int:
    return conn.execute(
        "DELETE FROM approvals WHERE status != 'pending' AND resolved_at < ?", (resolved_before,)
    ).rowcount

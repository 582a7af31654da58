"""SQL of the `questions` table: ask and answer, between agents and the operator.

`target IS NULL` means the question is addressed to the operator.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple


class QuestionRow(NamedTuple):
    id: int
    asker: str
    target: str | None
    question: str
    options: list[str] | None
    multi: bool
    asked_at: float
    deadline: float | None
    answer: str | None
    answerer: str | None
    answered_at: float | None


_COLUMNS = (
    "id, asker, target, question, options, multi, asked_at, deadline, answer, answerer, answered_at"
)


def _row(r: tuple[Any, ...]) -> QuestionRow:
    return QuestionRow(
        r[0],
        r[1],
        r[2],
        r[3],
        json.loads(r[4]) if r[4] is not None else None,
        bool(r[5]),
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
    )


def insert(
    conn: sqlite3.Connection,
    asker: str,
    target: str | None,
    question: str,
    options: list[str] | None,
    multi: bool,
    now: float,
    deadline: float | None,
) -> QuestionRow:
    r = conn.execute(
        "INSERT INTO questions (asker, target, question, options, multi, asked_at, deadline) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (
            asker,
            target,
            question,
            json.dumps(options) if options is not None else None,
            int(multi),
            now,
            deadline,
        ),
    ).fetchone()
    return _row(r)


def get(conn: sqlite3.Connection, qid: int) -> QuestionRow | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM questions WHERE id = ?", (qid,)).fetchone()
    return None if r is None else _row(r)


def answer(
    conn: sqlite3.Connection, qid: int, text: str, answerer: str, now: float
) -> QuestionRow | None:
    """Answer an open question; None if it is not open."""
    r = conn.execute(
        "UPDATE questions SET answer = ?, answerer = ?, answered_at = ? "
        f"WHERE id = ? AND answer IS NULL RETURNING {_COLUMNS}",
        (text, answerer, now, qid),
    ).fetchone()
    return None if r is None else _row(r)


def open_for_operator(conn: sqlite3.Connection) -> list[QuestionRow]:
    return [
        _row(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM questions WHERE answer IS NULL AND target IS NULL ORDER BY id"
        )
    ]


def open_involving(conn: sqlite3.Connection, agent: str | None) -> list[QuestionRow]:
    """Open questions asked by or addressed to `agent` (every open one for None)."""
    if agent is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM questions WHERE answer IS NULL ORDER BY id")
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM questions WHERE answer IS NULL "
            "AND (asker = ? OR target = ?) ORDER BY id",
            (agent, agent),
        )
    return [_row(r) for r in rows]


def next_deadline(conn: sqlite3.Connection) -> float | None:
    r = conn.execute(
        "SELECT min(deadline) FROM questions WHERE answer IS NULL AND deadline IS NOT NULL"
    ).fetchone()
    deadline: float | None = r[0]
    return deadline


def expired(conn: sqlite3.Connection, now: float) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM questions WHERE answer IS NULL AND deadline IS NOT NULL "
            "AND deadline <= ? ORDER BY id",
            (now,),
        )
    ]


def vacuum(conn: sqlite3.Connection, answered_before: float) -> int:
    return conn.execute(
        "DELETE FROM questions WHERE answer IS NOT NULL AND answered_at < ?", (answered_before,)
    ).rowcount

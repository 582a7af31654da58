"""SQL of costs and budgets: the per-agent-per-day rollup of `turns`, the thread a turn is charged
to, and the budget state (warnings given, stops, raises granted).

Rules kept here:
- `turn_days` holds, per agent and UTC day (`day` = whole days since the epoch), the sums of
  that day's turns; it is written in the same transaction as the turns it sums, so a window
  (`since`, the last 24 h / 7 d / 30 d) is read as the raw turns of its first, partial day plus
  the rollup of every later day: never a scan of the whole history;
- a turn's `thread` is the first message of the `in_reply_to` chain of the first message it was
  woken by (a parent the vacuum removed ends the chain at its id), resolved once when the turn
  is written;
- `budget_warnings` says which periods of an agent were warned about (once each);
  `budget_stops` which agent is paused by its budget, for which period and approval;
  `budget_raises` each `raise_budget` approval's amount, counted once granted.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

DAY = 86400
COUNTERS = (
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "cost_usd",
)
CHAIN_MAX = 10_000  # a longer in_reply_to chain is cut there (a loop cannot exist, ids grow)


class Sums(NamedTuple):
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, other: Sums) -> Sums:
        return Sums(
            self.turns + other.turns,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.cost_usd + other.cost_usd,
        )

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_creation_tokens
        )


class ThreadRow(NamedTuple):
    thread: int
    agents: list[str]
    turns: int
    cost_usd: float
    first_body: str


class Stop(NamedTuple):
    agent: str
    period: str  # the period key (`day 2026-09-07`)
    kind: str  # day | month
    ends_at: float
    approval_id: int | None
    reason: str
    was_paused: bool = False  # paused by the operator already: stays paused when the stop ends


# --- writing -------------------------------------------------------------------------------
def thread_of(conn: sqlite3.Connection, message_id: int) -> int:
    row = conn.execute(
        "WITH RECURSIVE chain(id, parent, depth) AS ("
        " SELECT id, in_reply_to, 0 FROM messages WHERE id = ?"
        " UNION ALL SELECT m.id, m.in_reply_to, c.depth + 1 FROM messages m"
        " JOIN chain c ON m.id = c.parent WHERE c.depth < ?)"
        " SELECT coalesce(parent, id) FROM chain ORDER BY depth DESC LIMIT 1",
        (message_id, CHAIN_MAX),
    ).fetchone()
    return message_id if row is None else int(row[0])


def add_to_days(conn: sqlite3.Connection, agent: str, ended_at: float, sums: Sums) -> None:
    conn.execute(
        "INSERT INTO turn_days (agent, day, turns, input_tokens, output_tokens, "
        "cache_read_tokens, cache_creation_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (agent, day) DO UPDATE SET turns = turns + excluded.turns, "
        "input_tokens = input_tokens + excluded.input_tokens, "
        "output_tokens = output_tokens + excluded.output_tokens, "
        "cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens, "
        "cache_creation_tokens = cache_creation_tokens + excluded.cache_creation_tokens, "
        "cost_usd = cost_usd + excluded.cost_usd",
        (agent, int(ended_at // DAY), *sums),
    )


def rebuild_days(conn: sqlite3.Connection, from_day: int | None = None) -> None:
    """The rollup recomputed from `turns` (all of it, or from `from_day` on)."""
    lower = -1 if from_day is None else from_day
    conn.execute("DELETE FROM turn_days WHERE day >= ?", (lower,))
    conn.execute(
        "INSERT INTO turn_days (agent, day, turns, input_tokens, output_tokens, "
        "cache_read_tokens, cache_creation_tokens, cost_usd) "
        "SELECT agent, CAST(ended_at / 86400 AS INTEGER) AS d, count(*), sum(input_tokens), "
        "sum(output_tokens), sum(cache_read_tokens), sum(cache_creation_tokens), sum(cost_usd) "
        "FROM turns WHERE ended_at >= ? GROUP BY agent, d",
        (max(lower, 0) * DAY,),
    )


def vacuum_days(conn: sqlite3.Connection, older_than: float) -> None:
    """After turns older than `older_than` were deleted: days wholly before it go, the day it
    falls in is summed again from what is left of it."""
    cut = int(older_than // DAY)
    conn.execute("DELETE FROM turn_days WHERE day < ?", (cut,))
    conn.execute("DELETE FROM turn_days WHERE day = ?", (cut,))
    conn.execute(
        "INSERT INTO turn_days (agent, day, turns, input_tokens, output_tokens, "
        "cache_read_tokens, cache_creation_tokens, cost_usd) "
        "SELECT agent, ?, count(*), sum(input_tokens), sum(output_tokens), "
        "sum(cache_read_tokens), sum(cache_creation_tokens), sum(cost_usd) FROM turns "
        "WHERE ended_at >= ? AND ended_at < ? GROUP BY agent",
        (cut, cut * DAY, (cut + 1) * DAY),
    )


# --- reading -------------------------------------------------------------------------------
_SUM = (
    "count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
    "sum(cache_creation_tokens), sum(cost_usd)"
)
_SUM_DAYS = (
    "sum(turns), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
    "sum(cache_creation_tokens), sum(cost_usd)"
)


def _collect(out: dict[str, Sums], rows: list[tuple[object, ...]]) -> None:
    for agent, *nums in rows:
        s = Sums(*(n or 0 for n in nums))  # type: ignore[arg-type]
        out[str(agent)] = out.get(str(agent), Sums()).plus(s)


def _only(agent: str | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if agent is None else (" AND agent = ?", (agent,))


def since(
    conn: sqlite3.Connection, start: float | None, agent: str | None = None
) -> dict[str, Sums]:
    """Per agent, the sums of turns ended at or after `start` (None: every turn kept)."""
    where, args = _only(agent)
    out: dict[str, Sums] = {}
    if start is None:
        _collect(
            out,
            conn.execute(
                f"SELECT agent, {_SUM_DAYS} FROM turn_days WHERE 1{where} GROUP BY agent", args
            ).fetchall(),
        )
        return out
    first = int(start // DAY)
    if start > first * DAY:  # a partial first day: its raw turns
        _collect(
            out,
            conn.execute(
                f"SELECT agent, {_SUM} FROM turns WHERE ended_at >= ? AND ended_at < ?{where} "
                "GROUP BY agent",
                (start, (first + 1) * DAY, *args),
            ).fetchall(),
        )
        first += 1
    _collect(
        out,
        conn.execute(
            f"SELECT agent, {_SUM_DAYS} FROM turn_days WHERE day >= ?{where} GROUP BY agent",
            (first, *args),
        ).fetchall(),
    )
    return out


def last_context(conn: sqlite3.Connection, agents: list[str]) -> dict[str, int]:
    """Each agent's last turn's prompt size."""
    out = {}
    for agent in agents:
        row = conn.execute(
            "SELECT context_tokens FROM turns WHERE agent = ? ORDER BY ended_at DESC LIMIT 1",
            (agent,),
        ).fetchone()
        if row is not None and row[0] is not None:
            out[agent] = int(row[0])
    return out


def threads(
    conn: sqlite3.Connection, start: float | None, agent: str | None, limit: int
) -> list[ThreadRow]:
    """The most expensive threads (of `agent`'s turns, or every agent's), since `start`."""
    where, args = _only(agent)
    after = "" if start is None else " AND ended_at >= ?"
    rows = conn.execute(
        "SELECT thread, count(*), sum(cost_usd), group_concat(DISTINCT agent) FROM turns "
        f"WHERE thread IS NOT NULL{after}{where} GROUP BY thread "
        "ORDER BY sum(cost_usd) DESC, thread LIMIT ?",
        (*(() if start is None else (start,)), *args, limit),
    ).fetchall()
    out = []
    for thread, turns, cost, agents in rows:
        body = conn.execute("SELECT body FROM messages WHERE id = ?", (thread,)).fetchone()
        out.append(
            ThreadRow(
                int(thread),
                sorted(str(agents).split(",")),
                int(turns),
                float(cost or 0),
                "" if body is None else str(body[0]),
            )
        )
    return out


# --- budget state --------------------------------------------------------------------------
def warn_once(conn: sqlite3.Connection, agent: str, period: str) -> bool:
    """True the first time `agent` is warned about `period` (and from then on, False)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO budget_warnings (agent, period) VALUES (?, ?)", (agent, period)
    )
    return cur.rowcount > 0


def stop_get(conn: sqlite3.Connection, agent: str) -> Stop | None:
    row = conn.execute(
        "SELECT agent, period, kind, ends_at, approval_id, reason, was_paused FROM budget_stops "
        "WHERE agent = ?",
        (agent,),
    ).fetchone()
    return None if row is None else _stop(row)


def stops(conn: sqlite3.Connection) -> list[Stop]:
    rows = conn.execute(
        "SELECT agent, period, kind, ends_at, approval_id, reason, was_paused FROM budget_stops "
        "ORDER BY ends_at, agent"
    ).fetchall()
    return [_stop(r) for r in rows]


def _stop(r: tuple[Any, ...]) -> Stop:
    return Stop(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))


def stop_put(conn: sqlite3.Connection, stop: Stop) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO budget_stops (agent, period, kind, ends_at, approval_id, "
        "reason, was_paused) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*stop[:6], int(stop.was_paused)),
    )


def stop_clear(conn: sqlite3.Connection, agent: str, period: str | None = None) -> bool:
    """Forget `agent`'s stop (only if it is for `period`, when given); True if one went."""
    if period is None:
        cur = conn.execute("DELETE FROM budget_stops WHERE agent = ?", (agent,))
    else:
        cur = conn.execute(
            "DELETE FROM budget_stops WHERE agent = ? AND period = ?", (agent, period)
        )
    return cur.rowcount > 0


def raise_put(
    conn: sqlite3.Connection, approval_id: int, agent: str, period: str, unit: str, amount: float
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO budget_raises (approval_id, unit, agent, period, amount, "
        "granted) VALUES (?, ?, ?, ?, ?, 0)",
        (approval_id, unit, agent, period, amount),
    )


def raise_grant(conn: sqlite3.Connection, approval_id: int) -> list[tuple[str, str, float]]:
    """Count the raises of approval `approval_id`: [(period, unit, amount)]."""
    rows = conn.execute(
        "UPDATE budget_raises SET granted = 1 WHERE approval_id = ? RETURNING period, unit, amount",
        (approval_id,),
    ).fetchall()
    return [(str(p), str(u), float(a)) for p, u, a in rows]


def raises(conn: sqlite3.Connection, periods: list[str]) -> dict[str, dict[tuple[str, str], float]]:
    """The granted raises in `periods`: {agent: {(period, unit): amount}}."""
    marks = ",".join("?" * len(periods))
    rows = conn.execute(
        f"SELECT agent, period, unit, sum(amount) FROM budget_raises WHERE granted = 1 "
        f"AND period IN ({marks}) GROUP BY agent, period, unit",
        periods,
    ).fetchall()
    out: dict[str, dict[tuple[str, str], float]] = {}
    for agent, p, u, a in rows:
        out.setdefault(str(agent), {})[(str(p), str(u))] = float(a)
    return out


def forget_agent(conn: sqlite3.Connection, agent: str) -> None:
    for table in ("budget_warnings", "budget_stops", "budget_raises"):
        conn.execute(f"DELETE FROM {table} WHERE agent = ?", (agent,))


def vacuum_budget(conn: sqlite3.Connection, keep: list[str]) -> None:
    """Warnings and raises of periods other than `keep` (the current ones) are history."""
    marks = ",".join("?" * len(keep))
    conn.execute(f"DELETE FROM budget_warnings WHERE period NOT IN ({marks})", keep)
    conn.execute(f"DELETE FROM budget_raises WHERE period NOT IN ({marks})", keep)

"""Budgets without I/O: the `[budget]` table (daemon config and `agent.toml`), the periods, and
what a set of limits says about what was spent (agent.md "Costs and budgets").

Rules kept here:
- keys `usd_per_day`, `usd_per_month` (numbers > 0) and `tokens_per_day` (an integer > 0); any
  other key, or another type, is refused with a sentence naming it;
- an agent's table overrides the daemon's default key by key;
- periods are UTC: a day starts at midnight, a month on its first day at midnight; a period is
  named by its kind and its start (`day 2026-09-07`, `month 2026-09`);
- tokens counted against `tokens_per_day` are all four kinds (input, output, cache read, cache
  creation): what the model processed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

KEYS = ("usd_per_day", "usd_per_month", "tokens_per_day")
DAY = 86400
WARN_AT = 0.8


def check(table: Any, where: str) -> dict[str, float]:
    """A `[budget]` table, checked; raises ValueError naming the bad key."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table (usd_per_day, usd_per_month, tokens_per_day)")
    out: dict[str, float] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise ValueError(f"{where}: unknown key {key!r} (expected {', '.join(KEYS)})")
        if key == "tokens_per_day":
            ok = type(value) is int and value > 0
        else:
            ok = type(value) in (int, float) and value > 0 and value != float("inf")
        if not ok:
            kind = "a whole number" if key == "tokens_per_day" else "a number"
            raise ValueError(f"{where}: {key}: must be {kind} above 0")
        out[key] = value
    return out


def merged(default: dict[str, float], agent: dict[str, float] | None) -> dict[str, float]:
    return {**default, **(agent or {})}


class Period(NamedTuple):
    kind: str  # "day" | "month"
    start: float  # unix seconds, UTC
    end: float

    @property
    def key(self) -> str:
        when = dt.datetime.fromtimestamp(self.start, dt.UTC)
        return f"day {when:%Y-%m-%d}" if self.kind == "day" else f"month {when:%Y-%m}"


def day(at: float) -> Period:
    start = at // DAY * DAY
    return Period("day", start, start + DAY)


def month(at: float) -> Period:
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    first = dt.datetime(when.year, when.month, 1, tzinfo=dt.UTC)
    following = dt.datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=dt.UTC)
    return Period("month", first.timestamp(), following.timestamp())


def period(kind: str, at: float) -> Period:
    return day(at) if kind == "day" else month(at)


class Spent(NamedTuple):
    usd: float
    tokens: int


class Check(NamedTuple):
    """One limit against what its period spent. `limit` includes the raises granted."""

    period: Period
    unit: str  # "usd" | "tokens"
    limit: float
    spent: float

    @property
    def fraction(self) -> float:
        return self.spent / self.limit if self.limit > 0 else 0.0


def checks(
    limits: dict[str, float],
    raises: dict[tuple[str, str], float],
    today: Spent,
    this_month: Spent,
    at: float,
) -> list[Check]:
    """Every configured limit against its period, the fullest first. `raises` maps
    (period key, unit) to the amount granted on top of the limit."""
    out = []
    for key, (p, unit, spent) in {
        "usd_per_day": (day(at), "usd", today.usd),
        "tokens_per_day": (day(at), "tokens", today.tokens),
        "usd_per_month": (month(at), "usd", this_month.usd),
    }.items():
        if key in limits:
            limit = limits[key] + raises.get((p.key, unit), 0.0)
            out.append(Check(p, unit, limit, float(spent)))
    out.sort(key=lambda c: -c.fraction)
    return out


def shown(
    checks_: list[Check], today: Spent, this_month: Spent, paused: bool
) -> dict[str, Any] | None:
    """The status row's and `costs`'s `budget` object: the fullest period, its dollar and token
    limits (those of that period kind), what it spent, and whether the agent is paused by it."""
    if not checks_:
        return None
    kind = checks_[0].period.kind
    same = [c for c in checks_ if c.period.kind == kind]
    usd = next((c for c in same if c.unit == "usd"), None)
    tokens = next((c for c in same if c.unit == "tokens"), None)
    spent = today if kind == "day" else this_month
    return {
        "period": kind,
        "limit_usd": usd.limit if usd else None,
        "limit_tokens": int(tokens.limit) if tokens else None,
        "spent_usd": spent.usd,
        "spent_tokens": spent.tokens,
        "paused": paused,
    }


def money(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4f}"


def amount(c: Check) -> str:
    return money(c.spent) if c.unit == "usd" else f"{int(c.spent):,} tokens"


def limit_text(c: Check) -> str:
    return money(c.limit) if c.unit == "usd" else f"{int(c.limit):,} tokens"

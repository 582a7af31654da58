"""Costs and budgets (agent.md "Costs and budgets"): what each agent and each thread cost, and a
budget per agent that warns, pauses and asks.

Rules kept here:
- every figure comes from the `turns` table and its per-day rollup (store/costs.py); money is
  what the harness reported (`cost_usd`, the CLI's `total_cost_usd`);
- an agent's limits are its `agent.toml` `[budget]` over the daemon config's `[budget]`, key by
  key; periods are UTC days and months (hive_core/budget.py);
- after each recorded turn of an agent its limits are checked: at 80 % of one, a
  `budget_warning` helper event to the manager and a `budget_warning` dashboard event, once per
  period; at 100 %, the agent is paused (its running turn finishes: the harness looks at the
  marker before the next one), a `raise_budget` approval is filed saying what was spent on what,
  and the stop is recorded (it survives a daemon restart);
- approving raises each exceeded limit of that period by its amount (the limit doubles) and
  resumes the agent; denying keeps it paused until its period rolls over; at the rollover the
  daemon resumes it and withdraws a raise still pending (the `rollover` task sleeps until the
  next end of a stopped period, woken early when a stop is added: no polling);
- nothing is lost while paused: messages wait in the inbox as for any pause.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import trio

from hive_core import budget
from hive_core.clock import now, rfc3339
from hive_core.services.broker import MANAGER, Broker
from hive_core.services.events import EventChannel
from hive_core.store import costs as sql
from hive_core.store.approvals import ApprovalRow
from hive_core.store.db import Store
from hive_wire import events as ev
from hive_wire.errors import BadRequest, NotFound, WireError
from hive_wire.names import check_agent_name

if TYPE_CHECKING:
    from hive_core.services.agents import Agents
    from hive_core.services.approvals import Approvals
    from hive_core.services.lifecycle import Lifecycle

log = logging.getLogger(__name__)

KIND = "raise_budget"
REQUESTER = "system"
THREADS_MAX = 100  # threads in a `by_thread` answer
BODY_MAX = 200  # characters of a thread's first body
WINDOWS = {"last_24h": 1, "last_7d": 7, "last_30d": 30}


def parse_time(text: str) -> float:
    """An RFC 3339 time (`2026-09-07T12:00:00Z`) as unix seconds; BadRequest otherwise."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise BadRequest("since: expected an RFC 3339 time with its offset (2026-09-07T12:00:00Z)")
    return when.timestamp()


def _usage(s: sql.Sums) -> dict[str, Any]:
    return {
        "turns": s.turns,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "cache_read_tokens": s.cache_read_tokens,
        "cache_creation_tokens": s.cache_creation_tokens,
        "cost_usd": round(s.cost_usd, 6),
    }


def _state(conn: Any, at: float, agent: str | None = None) -> dict[str, Any]:
    """One read of what budgets need, for every agent (or one)."""
    day, month = budget.day(at), budget.month(at)
    return {
        "today": sql.since(conn, day.start, agent),
        "month": sql.since(conn, month.start, agent),
        "raises": sql.raises(conn, [day.key, month.key]),
        "stops": {s.agent: s for s in sql.stops(conn) if agent is None or s.agent == agent},
    }


def _report(
    conn: Any, agent: str | None, start: float | None, at: float, by_thread: bool
) -> dict[str, Any]:
    out = _state(conn, at, agent)
    out["totals"] = sql.since(conn, start, agent)
    for key, days in WINDOWS.items():
        out[key] = sql.since(conn, at - days * budget.DAY, agent)
    out["threads"] = sql.threads(conn, start, agent, THREADS_MAX) if by_thread else None
    return out


def _row_state(conn: Any, at: float, names: list[str]) -> dict[str, Any]:
    out = _state(conn, at)
    out["context"] = sql.last_context(conn, names)
    return out


class Costs:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        broker: Broker,
        agents: Agents,
        approvals: Approvals,
        lifecycle: Lifecycle,
        default: dict[str, float],
    ) -> None:
        self.store = store
        self.events = events
        self.broker = broker
        self.agents = agents
        self.approvals = approvals
        self.lifecycle = lifecycle
        self.default = default
        self._wake = trio.Event()
        self._checking: dict[str, trio.Lock] = {}
        self.rollovers = 0  # stops ended by a rollover (tests wait on it)

    # --- reading ----------------------------------------------------------------------------
    async def limits(self, name: str) -> dict[str, float]:
        return budget.merged(self.default, await self.agents.budget(name))

    async def _budget(self, name: str, state: dict[str, Any], at: float) -> dict[str, Any] | None:
        limits = await self.limits(name) if self.agents.is_agent(name) else {}
        if not limits:
            return None
        today, month, checks = _checks(name, limits, state, at)
        stopped = name in state["stops"] and self.lifecycle.paused(name)
        return budget.shown(
            checks,
            budget.Spent(today.cost_usd, today.tokens),
            budget.Spent(month.cost_usd, month.tokens),
            stopped,
        )

    async def report(self, agent: str | None, since: str | None, by_thread: bool) -> dict[str, Any]:
        """The `costs` answer's fields: `agents` (and `threads` with `by_thread`)."""
        start = None if since is None else parse_time(since)
        if agent is not None:
            check_agent_name(agent)
        at = now()
        data = await self.store.run(_report, agent, start, at, by_thread)
        names = set(data["totals"])
        if agent is None:
            names |= self.agents.names
        elif self.agents.is_agent(agent):
            names.add(agent)
        elif agent not in names:
            raise NotFound(f'agent "{agent}" is not managed by this hive and has no turns')
        rows = []
        for name in sorted(names):
            totals = _usage(data["totals"].get(name, sql.Sums()))
            rows.append(
                {
                    "agent": name,
                    **{k: v for k, v in totals.items()},
                    **{key: _usage(data[key].get(name, sql.Sums())) for key in WINDOWS},
                    "budget": await self._budget(name, data, at),
                }
            )
        out: dict[str, Any] = {"agents": rows}
        if by_thread:
            out["threads"] = [
                {
                    "thread": t.thread,
                    "agents": t.agents,
                    "turns": t.turns,
                    "cost_usd": round(t.cost_usd, 6),
                    "first_body": t.first_body[:BODY_MAX],
                }
                for t in data["threads"]
            ]
        return out

    async def row_keys(self, only: str | None = None) -> dict[str, dict[str, Any]]:
        """The status rows' cost keys per agent: `cost_usd` (today, UTC), `context_tokens` (the
        last turn's prompt), `budget` and `paused_reason` (when paused by its budget)."""
        names = self.agents.sorted_names() if only is None else [only]
        at = now()
        state = await self.store.run(_row_state, at, names)
        out = {}
        for name in names:
            stop = state["stops"].get(name)
            today = state["today"].get(name)
            out[name] = {
                "cost_usd": round(today.cost_usd, 6) if today else None,
                "context_tokens": state["context"].get(name),
                "budget": await self._budget(name, state, at),
                "paused_reason": stop.reason if stop and self.lifecycle.paused(name) else None,
            }
        return out

    async def keys_of(self, name: str) -> dict[str, Any]:
        """`row_keys` of one agent (what the lifecycle adds to the rows it publishes)."""
        return (await self.row_keys(name)).get(name, {})

    # --- after a turn ---------------------------------------------------------------------------
    async def recorded(self, name: str) -> None:
        """A turn of `name` was recorded: check its budget (never fails the report)."""
        try:
            await self.check(name)
            await self.lifecycle.changed(name)
        except WireError as e:
            log.warning("budget check failed name=%s error=%s", name, e.message)

    async def check(self, name: str) -> None:
        """Warn at 80 %, stop at 100 %: one check of an agent at a time (two would file two
        stops)."""
        lock = self._checking.get(name) or self._checking.setdefault(name, trio.Lock())
        async with lock:
            await self._check(name)

    async def _check(self, name: str) -> None:
        limits = await self.limits(name)
        if not limits or not self.agents.is_agent(name):
            return
        at = now()
        state = await self.store.run(_state, at, name)
        today, month, checks = _checks(name, limits, state, at)
        over = [c for c in checks if c.fraction >= 1]
        if over:
            if name not in state["stops"]:
                await self._stop(name, over, today, month, at)
            return
        for c in checks:
            if c.fraction >= budget.WARN_AT and await self.store.run(
                sql.warn_once, name, c.period.key
            ):
                await self._warn(name, c, today if c.period.kind == "day" else month)

    async def _warn(
        self,
        name: str,
        c: budget.Check,
        spent: sql.Sums,
        paused: bool = False,
        approval: int | None = None,
    ) -> None:
        limit_usd = c.limit if c.unit == "usd" else None
        limit_tokens = int(c.limit) if c.unit == "tokens" else None
        self.events.publish(
            ev.BudgetWarning(
                agent=name,
                period=c.period.kind,
                spent_usd=round(spent.cost_usd, 6),
                limit_usd=limit_usd,
                spent_tokens=spent.tokens,
                limit_tokens=limit_tokens,
                paused=paused,
            )
        )
        await self.broker.notify(
            MANAGER,
            "budget_warning",
            agent=name,
            period=c.period.kind,
            spent_usd=round(spent.cost_usd, 6),
            limit_usd=limit_usd,
            spent_tokens=spent.tokens,
            limit_tokens=limit_tokens,
            paused=paused,
            approval=approval,
        )

    async def _stop(
        self, name: str, over: list[budget.Check], today: sql.Sums, month: sql.Sums, at: float
    ) -> None:
        # The stop lasts as long as the longest exceeded period (a day inside a spent month).
        longest = max(over, key=lambda c: c.period.end)
        description = await self._description(name, over, longest, at)
        row = await self.approvals.request(KIND, name, REQUESTER, description=description)
        for c in over:
            await self.store.run(sql.raise_put, row.id, name, c.period.key, c.unit, c.limit)
        reason = (
            f"budget: {budget.amount(longest)} of {budget.limit_text(longest)} per "
            f"{longest.period.kind} spent; approval {row.id} asks for more"
        )
        await self.store.run(
            sql.stop_put,
            sql.Stop(
                name,
                longest.period.key,
                longest.period.kind,
                longest.period.end,
                row.id,
                reason,
                was_paused=self.lifecycle.paused(name),
            ),
        )
        await self.store.run(sql.warn_once, name, longest.period.key)
        self._wake.set()
        log.info("budget stop name=%s period=%s approval=%d", name, longest.period.key, row.id)
        await self.lifecycle.set_paused(name, True)
        await self._warn(
            name,
            longest,
            today if longest.period.kind == "day" else month,
            paused=True,
            approval=row.id,
        )

    async def _description(
        self, name: str, over: list[budget.Check], longest: budget.Check, at: float
    ) -> str:
        spent = "; ".join(
            f"{budget.amount(c)} of {budget.limit_text(c)} per {c.period.kind} "
            f"({c.period.key.split()[1]})"
            for c in over
        )
        top = await self.store.run(sql.threads, longest.period.start, name, 3)
        lines = [f"{name} spent {spent}, and is paused."]
        if top:
            lines.append("Most of it went to:")
            for t in top:
                body = " ".join(t.first_body.split())[:80] or "(message gone)"
                lines.append(
                    f"- thread {t.thread} ({t.turns} turns, {budget.money(t.cost_usd)}): {body}"
                )
        raised = ", ".join(
            f"{c.unit} per {c.period.kind} to {budget.limit_text(c)} + {budget.limit_text(c)}"
            for c in over
        )
        lines.append(
            f"Approving raises {raised} for this period and resumes {name}; denying "
            f"keeps {name} paused until {rfc3339(longest.period.end)}."
        )
        return "\n".join(lines)

    # --- approvals --------------------------------------------------------------------------
    async def grant(self, row: ApprovalRow) -> dict[str, str]:
        """The `raise_budget` approval's action: count its raises, resume the agent."""
        await self.store.run(sql.raise_grant, row.id)
        stop = await self.store.run(sql.stop_get, row.agent)
        if stop is not None and stop.approval_id == row.id:
            await self.store.run(sql.stop_clear, row.agent, stop.period)
            if self.agents.is_agent(row.agent):
                if not stop.was_paused:  # the operator's own pause stays
                    await self.lifecycle.set_paused(row.agent, False)
                await self.check(row.agent)  # still over (a long turn): a new stop, at once
                await self.lifecycle.changed(row.agent)
        return {}

    async def refused(self, row: ApprovalRow) -> None:
        """The `raise_budget` approval was denied: the agent stays paused until its period
        rolls over; the status row says so."""
        stop = await self.store.run(sql.stop_get, row.agent)
        if stop is not None and stop.approval_id == row.id:
            reason = (
                f"{stop.reason.split(';')[0]}; the raise was denied: paused until "
                f"{rfc3339(stop.ends_at)}"
            )
            await self.store.run(sql.stop_put, stop._replace(reason=reason))
            if self.agents.is_agent(row.agent):
                await self.lifecycle.changed(row.agent)

    # --- the rollover task ------------------------------------------------------------------
    async def rollover(self) -> None:
        """Resume each agent whose stopped period has ended; sleep until the next such end (or
        the next UTC midnight, when the warnings and raises of past periods are dropped)."""
        while True:
            self._wake = trio.Event()
            at = now()
            ahead = [budget.day(at).end]
            try:
                await self.store.run(sql.vacuum_budget, [budget.day(at).key, budget.month(at).key])
                stops = await self.store.run(sql.stops)
                for stop in stops:
                    if stop.ends_at <= at:
                        await self._rolled(stop)
                ahead += [s.ends_at for s in stops if s.ends_at > at]
            except Exception:
                log.exception("budget rollover failed")
                ahead.append(at + 60)  # try again in a minute
            with trio.move_on_after(max(min(ahead) - now(), 0)):
                await self._wake.wait()

    async def _rolled(self, stop: sql.Stop) -> None:
        await self.store.run(sql.stop_clear, stop.agent, stop.period)
        if stop.approval_id is not None:
            try:
                await self.approvals.cancel(stop.approval_id, REQUESTER)
            except WireError:
                pass  # resolved meanwhile
        self.rollovers += 1
        if not self.agents.is_agent(stop.agent):
            return
        log.info("budget period over name=%s period=%s", stop.agent, stop.period)
        if not stop.was_paused:  # the operator's own pause stays
            await self.lifecycle.set_paused(stop.agent, False)
        await self.check(stop.agent)
        await self.lifecycle.changed(stop.agent)


def _checks(
    name: str, limits: dict[str, float], state: dict[str, Any], at: float
) -> tuple[sql.Sums, sql.Sums, list[budget.Check]]:
    """`name`'s spending today and this month (from a `_state` read), and its budget checks."""
    today = state["today"].get(name, sql.Sums())
    month = state["month"].get(name, sql.Sums())
    checks = budget.checks(
        limits,
        state["raises"].get(name, {}),
        budget.Spent(today.cost_usd, today.tokens),
        budget.Spent(month.cost_usd, month.tokens),
        at,
    )
    return today, month, checks

"""Costs and budgets through the sockets (agent.md "Costs and budgets"): turns of known cost are
reported on an agent socket as its harness would (`activity` `turn_end`), then `costs`, the
status rows, the manager's inbox, the approvals and the dashboard events are read back."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from hive_core import budget
from hive_core.app import Hive
from hive_core.clock import now, rfc3339
from hive_core.config_repos.agent_toml import parse_config
from hive_wire.client import Connection
from hive_wire.errors import BadRequest
from tests.helpers import agent_sock, ok, refused, send, spawn_idle


@pytest.fixture
def budget_limits() -> dict[str, Any]:
    """The daemon's `[budget]` (tests parametrize it)."""
    return {}


@pytest.fixture
def hive_config(budget_limits: dict[str, Any]) -> dict[str, Any]:
    return {"budget": budget_limits} if budget_limits else {}


DAY_1 = pytest.mark.parametrize("budget_limits", [{"usd_per_day": 1.0}])


def turn_end(
    cost: float,
    ids: list[int] | None = None,
    inp: int = 1000,
    out: int = 100,
    cache_read: int = 0,
    cache_creation: int = 0,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "turn_end",
        "ok": True,
        "result_kind": "ok",
        "duration_ms": 1500,
        "usage": {
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": cache_read,
            "cache_creation_tokens": cache_creation,
        },
        "cost_usd": cost,
        "model": "claude-sonnet-4-5",
    }
    if ids:
        event["message_ids"] = ids
    return event


async def turn(
    hive: Hive, name: str, cost: float, ids: list[int] | None = None, **usage: int
) -> None:
    answer = await ok(
        agent_sock(hive, name), {"cmd": "activity", "events": [turn_end(cost, ids, **usage)]}
    )
    assert answer["accepted"] == 1


async def costs(hive: Hive, **fields: Any) -> dict[str, Any]:
    answer = await ok(str(hive.paths.host_socket), {"cmd": "costs", **fields})
    return answer


def by_agent(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["agent"]: a for a in answer["agents"]}


async def status_row(hive: Hive, name: str) -> dict[str, Any]:
    rows = (await ok(str(hive.paths.host_socket), {"cmd": "agent_status"}))["agent_statuses"]
    return next(r for r in rows if r["name"] == name)


async def manager_events(hive: Hive) -> list[dict[str, Any]]:
    """The helper events waiting in the manager's inbox (popped and acked)."""
    manager = str(hive.paths.manager_socket)
    got = (await ok(manager, {"cmd": "recv", "max": 32}))["messages"]
    await ok(manager, {"cmd": "ack_turn"})
    return [json.loads(m["body"]) for m in got]


async def sleep_past(at: float) -> None:
    """Let the (autojumping) clock run until wall time `at` has passed."""
    await trio.sleep(at - now() + 1)


# --- sums -------------------------------------------------------------------------------------
async def test_sums_per_agent_all_kept_and_windows(hive: Hive, autojump_clock: Any) -> None:
    await spawn_idle(hive, "alice", "bob")
    await turn(hive, "alice", 0.10, inp=1000, out=100, cache_read=500, cache_creation=50)
    await turn(hive, "alice", 0.10, inp=1000, out=100, cache_read=500, cache_creation=50)
    await turn(hive, "bob", 0.05, inp=10, out=1)
    await trio.sleep(3 * 86400)
    await turn(hive, "alice", 0.20, inp=2000, out=200)
    answer = await costs(hive)
    assert list(answer) == ["version", "ok", "agents"]
    rows = by_agent(answer)
    alice = rows["alice"]
    assert list(alice) == [
        "agent",
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_creation_tokens",
        "cost_usd",
        "last_24h",
        "last_7d",
        "last_30d",
    ]  # no budget configured: no `budget`
    assert (
        alice["turns"],
        alice["input_tokens"],
        alice["output_tokens"],
        alice["cache_read_tokens"],
        alice["cache_creation_tokens"],
    ) == (3, 4000, 400, 1000, 100)
    assert alice["cost_usd"] == pytest.approx(0.40)
    assert alice["last_24h"] == {
        "turns": 1,
        "input_tokens": 2000,
        "output_tokens": 200,
        "cache_read_tokens": 0,
        "cache_creation_tokens": 0,
        "cost_usd": pytest.approx(0.20),
    }
    assert alice["last_7d"]["turns"] == alice["last_30d"]["turns"] == 3
    assert rows["bob"]["last_24h"]["turns"] == 0 and rows["bob"]["last_7d"]["turns"] == 1
    assert rows["bob"]["cost_usd"] == pytest.approx(0.05)
    # since: only what ended after it
    recent = by_agent(await costs(hive, since=rfc3339(now() - 3600)))
    assert recent["alice"]["turns"] == 1 and recent["bob"]["turns"] == 0
    only = await costs(hive, agent="bob")
    assert [a["agent"] for a in only["agents"]] == ["bob"]
    host = str(hive.paths.host_socket)
    assert await refused(host, {"cmd": "costs", "agent": "nobody"}, "not_found")
    assert await refused(host, {"cmd": "costs", "since": "yesterday"}, "bad_request")
    assert await refused(host, {"cmd": "costs", "since": "2026-09-07T12:00:00"}, "bad_request")
    # the agent sockets do not serve it
    assert await refused(agent_sock(hive, "alice"), {"cmd": "costs"}, "unknown_command")


async def test_windows_across_midnight_read_raw_turns_of_the_first_day(
    hive: Hive, autojump_clock: Any
) -> None:
    """A window that starts within a day sums that day's turns from the raw rows and the later
    days from the rollup: turns either side of midnight land where they belong."""
    await spawn_idle(hive, "alice")
    midnight = budget.day(now()).end
    await sleep_past(midnight - 120)
    await turn(hive, "alice", 0.01)  # a minute before midnight
    await sleep_past(midnight + 60)
    await turn(hive, "alice", 0.02)  # a minute after
    assert by_agent(await costs(hive))["alice"]["last_24h"]["cost_usd"] == pytest.approx(0.03)
    before = by_agent(await costs(hive, since=rfc3339(midnight - 150)))["alice"]
    assert (before["turns"], before["cost_usd"]) == (2, pytest.approx(0.03))
    after = by_agent(await costs(hive, since=rfc3339(midnight + 30)))["alice"]
    assert (after["turns"], after["cost_usd"]) == (1, pytest.approx(0.02))
    # the rollover wakes the budget task; without a budget nothing is paused
    assert (await status_row(hive, "alice"))["paused"] is False


async def test_threads_follow_the_in_reply_to_chain(hive: Hive) -> None:
    await spawn_idle(hive, "alice", "bob")
    host = str(hive.paths.host_socket)
    plan = await send(host, "alice", "plan the release")
    notes = (
        await ok(
            agent_sock(hive, "alice"),
            {"cmd": "send", "to": "bob", "body": "write the notes", "in_reply_to": plan},
        )
    )["id"]
    done = (
        await ok(
            agent_sock(hive, "bob"),
            {"cmd": "send", "to": "alice", "body": "notes written", "in_reply_to": notes},
        )
    )["id"]
    other = await send(host, "bob", "something unrelated")
    await turn(hive, "alice", 0.30, [plan])
    await turn(hive, "bob", 0.20, [notes])
    await turn(hive, "alice", 0.10, [done])
    await turn(hive, "bob", 0.50, [other])
    await turn(hive, "alice", 0.05)  # woken by nothing the daemon knows: no thread
    answer = await costs(hive, by_thread=True)
    assert list(answer) == ["version", "ok", "agents", "threads"]
    assert answer["threads"] == [
        {
            "thread": plan,
            "agents": ["alice", "bob"],
            "turns": 3,
            "cost_usd": pytest.approx(0.6),
            "first_body": "plan the release",
        },
        {
            "thread": other,
            "agents": ["bob"],
            "turns": 1,
            "cost_usd": pytest.approx(0.5),
            "first_body": "something unrelated",
        },
    ]
    mine = await costs(hive, by_thread=True, agent="bob")
    assert [(t["thread"], t["turns"]) for t in mine["threads"]] == [(other, 1), (plan, 1)]
    assert "threads" not in await costs(hive)


# --- budgets ----------------------------------------------------------------------------------
@DAY_1
async def test_warning_at_80_percent_once_per_period(hive: Hive) -> None:
    await spawn_idle(hive, "alice")
    async with await Connection.open(str(hive.paths.host_socket)) as feed:
        await feed.send({"cmd": "subscribe_events"})
        assert (await feed.read())["ok"]
        await turn(hive, "alice", 0.50)
        assert await manager_events(hive) == []
        await turn(hive, "alice", 0.35)
        (warning,) = await manager_events(hive)
        assert warning == {
            "event": "budget_warning",
            "agent": "alice",
            "period": "day",
            "spent_usd": pytest.approx(0.85),
            "limit_usd": 1.0,
            "spent_tokens": 2200,
            "paused": False,
        }
        with trio.fail_after(10):
            while (event := (await feed.read())["event"])["kind"] != "budget_warning":
                pass
        assert (event["agent"], event["spent_usd"], event["limit_usd"], event["paused"]) == (
            "alice",
            pytest.approx(0.85),
            1.0,
            False,
        )
        # the dashboard's row event carries the cost keys
        with trio.fail_after(10):
            while not (
                (e := (await feed.read())["event"])["kind"] == "container_state_changed"
                and "budget" in e["row"]
            ):
                pass
        assert e["row"]["budget"]["spent_usd"] == pytest.approx(0.85)
    await turn(hive, "alice", 0.05)
    assert await manager_events(hive) == []  # once per period
    row = await status_row(hive, "alice")
    assert row["cost_usd"] == pytest.approx(0.90)
    assert row["context_tokens"] == 1000
    assert row["budget"] == {
        "period": "day",
        "limit_usd": 1.0,
        "spent_usd": pytest.approx(0.9),
        "spent_tokens": 3300,
        "paused": False,
    }
    assert row["paused"] is False and "paused_reason" not in row
    assert list(row)[-3:] == ["cost_usd", "context_tokens", "budget"]


async def _over_budget(hive: Hive) -> tuple[int, int]:
    """alice's turn on "big job" spends $1.20 of her $1 a day: (approval id, waiting msg id)."""
    await spawn_idle(hive, "alice")
    host = str(hive.paths.host_socket)
    job = await send(host, "alice", "big job")
    popped = (await ok(agent_sock(hive, "alice"), {"cmd": "recv"}))["messages"]
    assert [m["id"] for m in popped] == [job]
    await ok(agent_sock(hive, "alice"), {"cmd": "ack_turn", "ids": [job]})
    await turn(hive, "alice", 1.20, [job])
    (approval,) = [
        a for a in (await ok(host, {"cmd": "pending"}))["approvals"] if a["status"] == "pending"
    ]
    assert (approval["kind"], approval["agent"]) == ("raise_budget", "alice")
    assert "$1.20 of $1.00 per day" in approval["description"]
    assert f"thread {job} (1 turns, $1.20): big job" in approval["description"]
    (stop,) = await manager_events(hive)
    assert stop == {
        "event": "budget_warning",
        "agent": "alice",
        "period": "day",
        "spent_usd": pytest.approx(1.2),
        "limit_usd": 1.0,
        "spent_tokens": 1100,
        "paused": True,
        "approval": approval["id"],
    }
    row = await status_row(hive, "alice")
    assert row["paused"] is True
    assert row["paused_reason"].startswith("budget: $1.20 of $1.00 per day spent")
    assert row["budget"]["paused"] is True
    # nothing is lost while paused: the next message waits in the inbox
    waiting = await send(host, "alice", "next job")
    assert (await ok(agent_sock(hive, "alice"), {"cmd": "status"}))["unread"] == 1
    return approval["id"], waiting


@DAY_1
async def test_approving_raises_the_budget_and_resumes(hive: Hive) -> None:
    approval, waiting = await _over_budget(hive)
    host = str(hive.paths.host_socket)
    await ok(host, {"cmd": "approve", "id": approval})
    row = await status_row(hive, "alice")
    assert row["paused"] is False and "paused_reason" not in row
    assert row["budget"]["limit_usd"] == 2.0 and row["budget"]["paused"] is False
    assert by_agent(await costs(hive))["alice"]["budget"]["limit_usd"] == 2.0
    (resolved,) = await manager_events(hive)
    assert (resolved["event"], resolved["status"]) == ("approval_resolved", "approved")
    # the waiting message runs
    got = (await ok(agent_sock(hive, "alice"), {"cmd": "recv"}))["messages"]
    assert [(m["id"], m["body"]) for m in got] == [(waiting, "next job")]
    # within the raised budget: no new stop; past it, a new one
    await turn(hive, "alice", 0.10, [waiting])
    assert (await status_row(hive, "alice"))["paused"] is False
    await turn(hive, "alice", 0.75)
    assert (await status_row(hive, "alice"))["paused"] is True


@DAY_1
async def test_denying_holds_until_the_period_rolls_over(hive: Hive, autojump_clock: Any) -> None:
    approval, waiting = await _over_budget(hive)
    host = str(hive.paths.host_socket)
    await ok(host, {"cmd": "deny", "id": approval, "note": "not today"})
    row = await status_row(hive, "alice")
    assert row["paused"] is True and "denied" in row["paused_reason"]
    midnight = budget.day(now()).end
    assert rfc3339(midnight) in row["paused_reason"]
    await manager_events(hive)
    await trio.sleep(3600)  # an hour later: still held
    assert (await status_row(hive, "alice"))["paused"] is True
    await sleep_past(midnight)
    assert hive.costs.rollovers == 1
    row = await status_row(hive, "alice")
    assert row["paused"] is False and "paused_reason" not in row
    assert row["budget"]["spent_usd"] == 0 and "cost_usd" not in row  # a new day
    got = (await ok(agent_sock(hive, "alice"), {"cmd": "recv"}))["messages"]
    assert [m["id"] for m in got] == [waiting]


@DAY_1
async def test_a_rollover_resumes_and_withdraws_the_pending_raise(
    hive: Hive, autojump_clock: Any
) -> None:
    approval, _ = await _over_budget(hive)
    await sleep_past(budget.day(now()).end)
    assert hive.costs.rollovers == 1
    assert (await status_row(hive, "alice"))["paused"] is False
    (row,) = [
        a
        for a in (await ok(str(hive.paths.host_socket), {"cmd": "pending"}))["approvals"]
        if a["id"] == approval
    ]
    assert row["status"] == "cancelled"
    # approving it now is a conflict and runs nothing
    assert await refused(
        str(hive.paths.host_socket), {"cmd": "approve", "id": approval}, "conflict"
    )


@pytest.mark.parametrize("budget_limits", [{"tokens_per_day": 10_000}])
async def test_a_token_budget_counts_every_kind_of_token(hive: Hive) -> None:
    await spawn_idle(hive, "alice")
    await turn(hive, "alice", 0.0, inp=2000, out=500, cache_read=5000, cache_creation=1000)
    (warning,) = await manager_events(hive)
    assert (warning["spent_tokens"], warning["limit_tokens"]) == (8500, 10_000)
    await turn(hive, "alice", 0.0, inp=2000)
    row = await status_row(hive, "alice")
    assert row["paused"] is True
    assert row["budget"] == {
        "period": "day",
        "limit_tokens": 10_000,
        "spent_usd": 0.0,
        "spent_tokens": 10_600,
        "paused": True,
    }
    assert "10,600 tokens of 10,000 tokens per day" in row["paused_reason"]


@pytest.mark.parametrize("budget_limits", [{"usd_per_day": 5.0, "usd_per_month": 2.0}])
async def test_the_fullest_period_is_shown_and_a_month_stop_lasts_the_month(hive: Hive) -> None:
    await spawn_idle(hive, "alice")
    await turn(hive, "alice", 2.5)
    row = await status_row(hive, "alice")
    assert row["budget"]["period"] == "month" and row["budget"]["limit_usd"] == 2.0
    assert row["paused"] is True and "per month" in row["paused_reason"]
    (stop,) = await hive.store.run(
        lambda conn: conn.execute("SELECT ends_at FROM budget_stops").fetchall()
    )
    assert stop[0] == budget.month(now()).end


# --- the rules without the daemon ---------------------------------------------------------------
def test_budget_tables_are_checked() -> None:
    assert budget.check({"usd_per_day": 2, "tokens_per_day": 5}, "b") == {
        "usd_per_day": 2,
        "tokens_per_day": 5,
    }
    for bad in (
        {"usd": 1},
        {"usd_per_day": 0},
        {"usd_per_day": "1"},
        {"tokens_per_day": 1.5},
        {"usd_per_month": True},
        [],
    ):
        with pytest.raises(ValueError):
            budget.check(bad, "b")
    assert parse_config(b'command = ["x"]\n[budget]\nusd_per_day = 3\n', "t")["budget"] == {
        "usd_per_day": 3
    }
    with pytest.raises(BadRequest, match="tokens_per_day"):
        parse_config(b'command = ["x"]\n[budget]\ntokens_per_day = -1\n', "t")
    assert budget.merged({"usd_per_day": 1, "tokens_per_day": 9}, {"usd_per_day": 4}) == {
        "usd_per_day": 4,
        "tokens_per_day": 9,
    }


def test_periods_are_utc_days_and_months() -> None:
    at = 1_788_000_000.0  # 2026-08-29T10:40:00Z
    assert budget.day(at).key == "day 2026-08-29"
    assert rfc3339(budget.day(at).end) == "2026-08-30T00:00:00Z"
    assert budget.month(at).key == "month 2026-08"
    assert rfc3339(budget.month(at).end) == "2026-09-01T00:00:00Z"
    december = budget.month(1_797_000_000.0)  # 2026-12-11
    assert (rfc3339(december.start), rfc3339(december.end)) == (
        "2026-12-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    )


def test_the_daemon_config_budget_is_checked(tmp_path: Any) -> None:
    from hive_core import config

    toml = tmp_path / "c.toml"
    toml.write_text("[budget]\nusd_per_day = 3.5\n")
    assert config.load(str(toml), "/tmp/s", "/tmp/r").budget == {"usd_per_day": 3.5}
    toml.write_text("[budget]\nusd_per_week = 3\n")
    with pytest.raises(ValueError, match="usd_per_week"):
        config.load(str(toml), "/tmp/s", "/tmp/r")


@DAY_1
@pytest.mark.parametrize("operator_paused", [False, True])
async def test_the_end_of_a_budget_stop_keeps_the_operators_own_pause(
    hive: Hive, operator_paused: bool
) -> None:
    """Approving the raise resumes alice, unless the operator had paused her before her budget
    ran out: that pause is the operator's, and stays."""
    host = str(hive.paths.host_socket)
    await spawn_idle(hive, "alice")
    if operator_paused:
        await ok(host, {"cmd": "set_paused", "name": "alice", "paused": True})
    await turn(hive, "alice", 1.20)
    (approval,) = [
        a for a in (await ok(host, {"cmd": "pending"}))["approvals"] if a["status"] == "pending"
    ]
    assert (await status_row(hive, "alice"))["paused"] is True
    await ok(host, {"cmd": "approve", "id": approval["id"]})
    assert (await status_row(hive, "alice"))["paused"] is operator_paused


async def test_rows_the_lifecycle_publishes_carry_the_cost_keys(hive: Hive) -> None:
    """A status change that is not a turn (here `set_status`, then a stop) publishes the row
    with its cost keys too, so the dashboard never shows a row without them."""
    await spawn_idle(hive, "alice")
    await turn(hive, "alice", 0.25)
    async with await Connection.open(str(hive.paths.host_socket)) as feed:
        await feed.call({"cmd": "subscribe_events"})
        await ok(agent_sock(hive, "alice"), {"cmd": "set_status", "text": "reading"})
        await ok(str(hive.paths.host_socket), {"cmd": "stop", "name": "alice"})
        rows: list[dict[str, Any]] = []
        with trio.fail_after(10):
            while not rows or rows[-1]["running"]:
                if (e := (await feed.read())["event"])["kind"] == "container_state_changed":
                    rows.append(e["row"])
    assert rows[0]["status_text"] == "reading" and len(rows) >= 2
    assert all(r["cost_usd"] == pytest.approx(0.25) for r in rows), rows
    assert all(r["context_tokens"] == 1000 for r in rows), rows


async def test_a_turn_end_sent_twice_with_its_turn_id_counts_once(hive: Hive) -> None:
    """A harness that sends a `turn_end` again (the answer to the first was lost) with the same
    `turn_id` has one turn recorded: costs and the per-day sums count it once. Another id, or
    none, is another turn."""
    await spawn_idle(hive, "alice")
    sock = agent_sock(hive, "alice")
    once = {**turn_end(0.40), "turn_id": "t-1"}
    for events in ([once], [once], [{**turn_end(0.10), "turn_id": "t-2"}], [turn_end(0.01)]):
        assert (await ok(sock, {"cmd": "activity", "events": events}))["accepted"] == 1
    (alice,) = (await costs(hive))["agents"]
    assert alice["turns"] == 3 and alice["cost_usd"] == pytest.approx(0.51)
    assert alice["last_24h"]["turns"] == 3  # the per-day sums
    assert alice["last_24h"]["cost_usd"] == pytest.approx(0.51)
    bad = {**turn_end(0.1), "turn_id": "no spaces/here"}
    assert await refused(sock, {"cmd": "activity", "events": [bad]}) == "bad_request"


async def test_a_late_turn_end_is_charged_when_it_ended(hive: Hive) -> None:
    """A `turn_end` kept by its harness while the daemon was away arrives late: it is charged at
    its `ended_at` (never later than now), so it lands in the day it was spent; a repeated one
    is not shown again on the live stream either."""
    await spawn_idle(hive, "alice")
    sock = agent_sock(hive, "alice")
    old = {**turn_end(0.30), "turn_id": "old", "ended_at": now() - 3 * 86400}
    future = {**turn_end(0.02), "turn_id": "future", "ended_at": now() + 86400}
    async with await Connection.open(str(hive.paths.host_socket)) as feed:
        await feed.call({"cmd": "subscribe_events"})
        for events in ([old], [old], [future]):
            assert (await ok(sock, {"cmd": "activity", "events": events}))["accepted"] == 1
        seen = []
        with trio.fail_after(10):
            while len(seen) < 2:
                e = (await feed.read())["event"]
                if e["kind"] == "agent_activity" and e["activity"]["kind"] == "turn_end":
                    seen.append(e["activity"]["turn_id"])
        assert seen == ["old", "future"]  # the repeat of `old` was not published
    (alice,) = (await costs(hive))["agents"]
    assert alice["turns"] == 2 and alice["cost_usd"] == pytest.approx(0.32)
    assert alice["last_24h"]["cost_usd"] == pytest.approx(0.02)  # `future` is charged now
    assert alice["last_7d"]["cost_usd"] == pytest.approx(0.32)

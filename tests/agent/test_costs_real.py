"""Costs end to end with the real Claude Code CLI against the fake Messages API: the cost the CLI
computes from the fake's usage (`total_cost_usd`), reported by the harness as `turn_end`, is what
`costs` answers; a budget it exceeds pauses the harness until the raise is approved, and the
message that waited runs then; `turn_start`/`turn_end` carry the ids that woke the turn, so
`costs {by_thread}` charges the turn to its thread."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from hive_core.agent.loop import Harness
from hive_wire.client import Connection

from . import fake_api as fake
from .conftest import Agent, ok, wait_completed, wait_for

FIRST = fake.cost_usd(1200, 30)


@pytest.fixture
def hive_config() -> dict[str, Any]:
    # A day's budget a little under the first turn's cost.
    return {"budget": {"usd_per_day": round(FIRST * 0.9, 6)}}


async def test_the_harness_reported_cost_is_what_costs_answers_and_a_budget_holds(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    async with await Connection.open(agent.host) as feed:
        await feed.send({"cmd": "subscribe_events"})
        assert (await feed.read())["ok"]
        fake_api.add(fake.text("done", input_tokens=1200, output_tokens=30))
        await ok(agent.host, {"cmd": "send", "to": "alice", "body": "first job"})
        with trio.fail_after(60):
            await wait_completed(running, 1)
            # the turn's report reaches the daemon, which pauses alice
            while not (
                (e := (await feed.read())["event"])["kind"] == "budget_warning" and e["paused"]
            ):
                pass
    (row,) = (await ok(agent.host, {"cmd": "costs", "agent": "alice"}))["agents"]
    assert (row["turns"], row["input_tokens"], row["output_tokens"]) == (1, 1200, 30)
    assert row["cost_usd"] == pytest.approx(FIRST)
    assert row["budget"]["paused"] is True
    # paused: the next message waits, no turn starts
    fake_api.add(fake.text("second done"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "second job"})
    checks = running.pause_checks
    with trio.fail_after(60):
        await wait_for(running, lambda: running.pause_checks >= checks + 3)
    assert running.completed == 1
    (approval,) = [
        a
        for a in (await ok(agent.host, {"cmd": "pending"}))["approvals"]
        if a["kind"] == "raise_budget" and a["status"] == "pending"
    ]
    await ok(agent.host, {"cmd": "approve", "id": approval["id"]})
    with trio.fail_after(60):
        await wait_completed(running, 2)
    (row,) = (await ok(agent.host, {"cmd": "costs", "agent": "alice"}))["agents"]
    assert row["turns"] == 2 and row["cost_usd"] == pytest.approx(FIRST + fake.cost_usd(1000, 10))


async def one_turn(feed: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `turn_start` and `turn_end` of alice's next turn, read off the dashboard feed."""
    start = None
    while True:
        e = (await feed.read())["event"]
        if e["kind"] == "agent_activity" and e["activity"]["kind"] == "turn_start":
            start = e["activity"]
        if e["kind"] == "agent_activity" and e["activity"]["kind"] == "turn_end":
            assert start is not None
            return start, e["activity"]


@pytest.mark.parametrize("hive_config", [{}])
async def test_a_real_turn_is_charged_to_its_thread(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    async with await Connection.open(agent.host) as feed:
        await feed.send({"cmd": "subscribe_events"})
        assert (await feed.read())["ok"]
        fake_api.add(fake.text("on it", input_tokens=1200, output_tokens=30))
        first = await ok(agent.host, {"cmd": "send", "to": "alice", "body": "start a thread"})
        with trio.fail_after(60):
            start, end = await one_turn(feed)
        assert start["message_ids"] == end["message_ids"] == [first["id"]]
        # a reply in the same thread wakes the second turn
        fake_api.add(fake.text("done", input_tokens=1000, output_tokens=10))
        second = await ok(
            agent.host,
            {"cmd": "send", "to": "alice", "body": "and more", "in_reply_to": first["id"]},
        )
        with trio.fail_after(60):
            start, end = await one_turn(feed)
        assert start["message_ids"] == end["message_ids"] == [second["id"]]
    answer = await ok(agent.host, {"cmd": "costs", "by_thread": True})
    (thread,) = answer["threads"]
    assert thread["thread"] == first["id"] and thread["turns"] == 2
    assert thread["agents"] == ["alice"] and thread["first_body"] == "start a thread"
    assert thread["cost_usd"] == pytest.approx(FIRST + fake.cost_usd(1000, 10))

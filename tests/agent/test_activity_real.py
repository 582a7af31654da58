"""What the daemon learns of a real Claude Code turn (agent.md, "Activity"): the harness's
`activity` reports reach `subscribe_events` as `agent_activity`, with the tools' names as Claude
Code gives them, and a `Task` sub-agent's own calls attributed to it."""

from __future__ import annotations

from typing import Any

import trio

from hive_wire.client import Connection

from . import fake_api as fake
from .conftest import Agent, ok, wait_completed

TASK = {"description": "Find the flaky test", "prompt": "Look through tests/", "subagent_type": "general-purpose"}  # fmt: skip


async def test_a_turn_reports_its_tools_and_its_sub_agent(
    agent: Agent, fake_api: fake.FakeAPI
) -> None:
    fake_api.add(
        fake.tool("mcp__hive__set_status", {"text": "looking"}),
        fake.tool("Task", TASK),
        fake.tool("Glob", {"pattern": "*"}),  # the sub-agent's own call
        fake.text("nothing flaky here"),  # the sub-agent's answer
        fake.text("done"),
    )
    seen: list[dict[str, Any]] = []
    h = agent.harness()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            async with await Connection.open(agent.host) as feed:
                await feed.call({"cmd": "subscribe_events"})
                await nursery.start(h.run)
                await ok(agent.host, {"cmd": "send", "to": agent.name, "body": "find it"})
                while not seen or seen[-1]["kind"] != "turn_end":
                    event = (await feed.read())["event"]
                    if event["kind"] == "agent_activity" and event["agent"] == agent.name:
                        seen.append(event["activity"])
            await wait_completed(h, 1)
            h.stop()
    kinds = [a["kind"] for a in seen if a["kind"] != "state"]  # states: idle, thinking, ...
    assert kinds[0] == "turn_start" and kinds[-1] == "turn_end" and seen[-1]["ok"] is True
    tools = [(a["tool"], a.get("subagent")) for a in seen if a["kind"] == "tool_use"]
    (start,) = [a for a in seen if a["kind"] == "subagent_start"]
    assert start["description"] == "Find the flaky test"
    assert ("mcp__hive__set_status", None) in tools and ("Task", None) in tools
    assert ("Glob", start["id"]) in tools  # attributed to the sub-agent, not to the agent
    (end,) = [a for a in seen if a["kind"] == "subagent_end"]
    assert end["id"] == start["id"] and end["ok"] is True
    assert seen[-1]["usage"]["input_tokens"] > 0 and seen[-1]["cost_usd"] > 0

"""The turn loop end to end: the real Claude Code CLI against the fake Messages API, the
harness run in the test's trio loop over the agent socket of a real daemon (`hive`)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.agent import bus as busmod
from hive_core.agent import turn_stats
from hive_core.agent.loop import REDELIVERED, Harness

from . import fake_api as fake
from .conftest import STAND_IN, Agent, ok, wait_completed, wait_for
from .test_process import wait_gone


def user_text(request: dict[str, Any]) -> str:
    """Every text block of the user messages of one API request."""
    out = []
    for msg in request["messages"]:
        if msg["role"] != "user":
            continue
        content = msg["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out += [b.get("text", "") for b in content if b.get("type") == "text"]
    return "\n".join(out)


async def inflight(agent: Agent) -> int:
    """How many of alice's messages are popped and unacked (requeueing them: call last)."""
    return int((await ok(agent.socket, {"cmd": "requeue_inflight"}))["requeued"])


async def test_a_message_wakes_a_turn_that_is_acked(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    fake_api.add(fake.text("hello operator", input_tokens=1200, output_tokens=30))
    sent = await ok(agent.host, {"cmd": "send", "to": "alice", "body": "ping from the test"})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    # the wake prompt reached the model
    (request,) = [r for r in fake_api.model_requests() if not fake.is_compaction(r)]
    prompt = user_text(request)
    assert f"--- message {sent['id']} from: operator" in prompt
    assert "ping from the test" in prompt and REDELIVERED not in prompt
    assert "mcp__hive__recv" in prompt
    # acked: nothing of alice's is in flight
    assert await inflight(agent) == 0
    # the turn-stats row holds the fake API's usage and the cost the CLI computed from it
    (row,) = turn_stats.rows(agent.state / turn_stats.FILE)
    assert row["result_kind"] == "ok" and row["wake_from"] == "operator"
    assert (row["input_tokens"], row["output_tokens"]) == (1200, 30)
    assert row["cost_usd"] == pytest.approx(fake.cost_usd(1200, 30))
    assert row["model"] == "claude-sonnet-4-5"
    assert row["duration_ms"] > 0 and row["ended_at"] >= row["started_at"]
    assert row["open_loose_ends"] == 0 and row["pending_reminders"] == 0
    # the event history: the turn's start, claude's lines, its end
    await running.bus.flushed()
    events = busmod.history(agent.state / "hyperhive-events.sqlite")
    kinds = [e["kind"] for e in events]
    assert kinds.index("turn_start") < kinds.index("turn_end")
    start = next(e for e in events if e["kind"] == "turn_start")
    assert (start["from"], start["body"], start["unread"]) == ("operator", "ping from the test", 0)
    streams = [e for e in events if e["kind"] == "stream"]
    assert [s["type"] for s in streams] == ["system", "assistant", "result"]
    assert streams[-1]["result"] == "hello operator"
    assert next(e for e in events if e["kind"] == "turn_end")["ok"] is True
    usage = next(e for e in events if e["kind"] == "token_usage_changed")["usage"]
    assert usage["input_tokens"] == 1200 and usage["cost_usd"] == pytest.approx(
        fake.cost_usd(1200, 30)
    )
    states = [e["state"] for e in events if e["kind"] == "turn_state_changed"]
    assert states == ["idle", "thinking", "idle"]


async def test_a_failed_turn_is_not_acked_and_comes_back_flagged(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    fake_api.add(fake.bad_request(), fake.text("second time lucky"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "try me"})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    rows = turn_stats.rows(agent.state / turn_stats.FILE)
    assert [r["result_kind"] for r in rows] == ["failed"]
    assert "refuses this request" in rows[0]["note"]
    # not acked: still in flight; requeued (as the lease or a restart would), it comes back
    assert await inflight(agent) == 1
    with trio.fail_after(60):
        await wait_completed(running, 2)
    second = user_text(fake_api.model_requests()[-1])
    assert REDELIVERED in second and "try me" in second
    assert [r["result_kind"] for r in turn_stats.rows(agent.state / turn_stats.FILE)] == [
        "failed",
        "ok",
    ]
    assert await inflight(agent) == 0


async def test_prompt_too_long_compacts_once_and_retries(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    fake_api.add(fake.text("first answer"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "one"})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    fake_api.add(fake.prompt_too_long(), fake.text("answer after /compact"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "two"})
    with trio.fail_after(60):
        await wait_completed(running, 2)
    assert fake_api.compactions == 1
    rows = turn_stats.rows(agent.state / turn_stats.FILE)
    assert [(r["result_kind"], r["note"]) for r in rows] == [
        ("ok", None),
        ("prompt_too_long", rows[1]["note"]),
        ("ok", "/compact: ok"),
        ("ok", None),
    ]
    assert rows[1]["note"].startswith("Prompt is too long")
    assert rows[2]["cost_usd"] == pytest.approx(fake.cost_usd(500, 20))  # the compaction's
    assert await inflight(agent) == 0
    await running.bus.flushed()
    states = [
        e["state"]
        for e in busmod.history(agent.state / "hyperhive-events.sqlite")
        if e["kind"] == "turn_state_changed"
    ]
    assert "compacting" in states


async def test_prompt_too_long_twice_leaves_the_message_unacked(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    fake_api.add(fake.text("first answer"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "one"})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    # every request is too long (after a compaction the CLI itself compacts and retries once)
    fake_api.add(*[fake.prompt_too_long() for _ in range(6)])
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "too big"})
    with trio.fail_after(60):
        await wait_completed(running, 2)
    rows = turn_stats.rows(agent.state / turn_stats.FILE)
    assert [(r["result_kind"], r["note"]) for r in rows][2] == ("ok", "/compact: ok")
    assert [r["result_kind"] for r in rows] == ["ok", "prompt_too_long", "ok", "prompt_too_long"]
    assert await inflight(agent) == 1  # left for the dead-letter path


async def test_rate_limited_waits_and_tries_again(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    # the CLI retries once (CLAUDE_CODE_MAX_RETRIES=1): two 429s exhaust it
    fake_api.add(fake.rate_limit(), fake.rate_limit(), fake.text("after the wait"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "busy?"})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    rows = turn_stats.rows(agent.state / turn_stats.FILE)
    assert [r["result_kind"] for r in rows] == ["rate_limited", "ok"]
    assert await inflight(agent) == 0
    await running.bus.flushed()
    states = [
        e["state"]
        for e in busmod.history(agent.state / "hyperhive-events.sqlite")
        if e["kind"] == "turn_state_changed"
    ]
    assert "rate_limited" in states and states[-1] == "idle"


async def test_pause_holds_turns(agent: Agent, running: Harness, fake_api: fake.FakeAPI) -> None:
    await ok(agent.host, {"cmd": "set_paused", "name": "alice", "paused": True})
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "wait for it"})
    # the harness looks at the marker again and again; the message stays unread
    with trio.fail_after(30):
        checks = running.pause_checks
        await wait_for(running, lambda: running.pause_checks >= checks + 3)
    assert (await ok(agent.socket, {"cmd": "status"}))["unread"] == 1
    assert running.completed == 0 and fake_api.model_requests() == []
    fake_api.add(fake.text("resumed"))
    await ok(agent.host, {"cmd": "set_paused", "name": "alice", "paused": False})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    assert "wait for it" in user_text(fake_api.model_requests()[-1])
    assert await inflight(agent) == 0


async def test_lifecycle_kicks_start_no_turn(
    agent: Agent, running: Harness, fake_api: fake.FakeAPI
) -> None:
    await ok(agent.host, {"cmd": "restart", "name": "alice"})
    with trio.fail_after(30):
        await wait_for(running, lambda: running.kicks >= 1)
    assert fake_api.model_requests() == [] and running.turns == 0
    assert await inflight(agent) == 0  # acked
    fake_api.add(fake.text("ok"))
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": "real work"})
    with trio.fail_after(60):
        await wait_completed(running, 1)
    prompt = user_text(fake_api.model_requests()[-1])
    assert "Since your last turn:" in prompt and "restarted: your harness may resume" in prompt
    assert "real work" in prompt


async def test_a_turn_over_the_timeout_is_killed_and_not_acked(
    agent: Agent, tmp_path: Path
) -> None:
    child = tmp_path / "child.pid"
    h = agent.harness(
        claude_command=[sys.executable, str(STAND_IN), "hang", str(child)], turn_timeout=1.5
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(h.run)
        await ok(agent.host, {"cmd": "send", "to": "alice", "body": "never answered"})
        with trio.fail_after(30):
            await wait_completed(h, 1)
            await wait_gone(int(child.read_text()))  # claude's whole group was killed
        h.stop()
    (row,) = turn_stats.rows(agent.state / turn_stats.FILE)
    assert row["result_kind"] == "timeout" and row["model"] == "stand-in-model"
    assert 1500 <= row["duration_ms"] < 30_000
    assert await inflight(agent) == 1


async def test_messages_the_turn_pops_with_the_recv_tool_are_acked(
    agent: Agent, fake_api: fake.FakeAPI
) -> None:
    release = threading.Event()
    fake_api.add(fake.hold(release, fake.tool("mcp__hive__recv", {"max": 5})), fake.text("done"))
    h = agent.harness()  # the real `hive-core mcp`
    async with trio.open_nursery() as nursery:
        await nursery.start(h.run)
        with trio.fail_after(60):
            await ok(agent.host, {"cmd": "send", "to": "alice", "body": "first"})
            await trio.to_thread.run_sync(fake_api.wait_requests, 1)
            # claude is mid-turn: a second message comes, and the turn pops it with `recv`
            await ok(agent.host, {"cmd": "send", "to": "alice", "body": "second"})
            release.set()
            await wait_completed(h, 1)
        h.stop()
    requests = fake_api.model_requests()
    tools = [t["name"] for t in requests[0].get("tools", [])]
    assert "mcp__hive__recv" in tools  # present from the turn's first request
    results = [
        b
        for m in requests[-1]["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert "second" in json.dumps(results)
    (row,) = turn_stats.rows(agent.state / turn_stats.FILE)
    assert row["result_kind"] == "ok" and row["tool_call_count"] == 1
    assert json.loads(row["tool_call_breakdown_json"]) == {"mcp__hive__recv": 1}
    assert await inflight(agent) == 0  # both acked: the woken-by one and the popped one

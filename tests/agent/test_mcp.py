"""`hive-core mcp` through the MCP SDK's own client over stdio, against a real daemon: the tool
lists (names, schemas from the verb table), calls, text formats, errors, reconnecting; and one
turn of the real Claude Code CLI whose `send` tool call reaches another agent."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from hive_core.agent import loop
from hive_core.agent.tools import AGENT_TOOLS, EMPTY, MANAGER_TOOLS, REDELIVERED
from hive_wire.verbs import VERBS
from tests.helpers import SLEEPER, Daemon, spawn_idle

from . import fake_api as fake
from .conftest import Agent, ok, wait_completed
from .conftest import call as raw_call

MCP = [sys.executable, "-m", "hive_core.agent.mcp"]


@asynccontextmanager
async def session(socket: str, **env: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=MCP[0], args=MCP[1:], env={"HIVE_AGENT_SOCKET": socket, **env}
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        with trio.fail_after(30):
            await s.initialize()
        yield s


async def call(s: ClientSession, name: str, args: dict[str, Any] | None = None) -> Any:
    with trio.fail_after(30):
        return await s.call_tool(name, args or {})


def text(result: Any) -> str:
    (block,) = result.content
    return str(block.text)


async def tool_list(s: ClientSession) -> dict[str, Any]:
    with trio.fail_after(30):
        return {t.name: t for t in (await s.list_tools()).tools}


@pytest.fixture
async def pair(hive: Any) -> tuple[str, str, str]:
    """alice's and bob's sockets (sleepers: the test plays them), and the host socket."""
    await spawn_idle(hive, "alice", "bob")
    return (
        str(hive.paths.agent_socket("alice")),
        str(hive.paths.agent_socket("bob")),
        str(hive.paths.host_socket),
    )


# --- the tool lists ------------------------------------------------------------------------------
def test_the_harness_allows_every_tool() -> None:
    assert loop.AGENT_TOOLS == AGENT_TOOLS and loop.MANAGER_TOOLS == MANAGER_TOOLS


async def test_agent_tools_and_their_schemas_follow_the_verb_table(
    pair: tuple[str, str, str],
) -> None:
    alice, _, _ = pair
    async with session(alice) as s:
        listed = await tool_list(s)
    assert list(listed) == list(AGENT_TOOLS)
    for name, t in listed.items():
        assert t.description, name
        if name == "get_agent_meta":
            continue
        request = VERBS[name].request
        fields = {f.name: f for f in attrs.fields(request)}
        schema = t.input_schema
        assert set(schema["properties"]) == set(fields), name
        required = {n for n, f in fields.items() if f.default is attrs.NOTHING}
        assert set(schema.get("required", [])) == required, name
    send = listed["send"].input_schema
    assert send["properties"]["to"]["type"] == "string"
    assert send["properties"]["in_reply_to"]["type"] == "integer"
    assert send["required"] == ["to", "body"]
    recv = listed["recv"].input_schema["properties"]
    assert (recv["max"]["default"], recv["wait_seconds"]["default"]) == (1, 0)
    ask = listed["ask"].input_schema["properties"]
    assert ask["options"] == {**ask["options"], "type": "array", "items": {"type": "string"}}
    assert ask["multi"]["type"] == "boolean"
    assert listed["whoami"].description == VERBS["whoami"].summary


async def test_manager_tools_only_on_the_manager_socket(
    hive: Any, pair: tuple[str, str, str]
) -> None:
    alice, _, _ = pair
    async with session(str(hive.paths.manager_socket)) as s:
        listed = await tool_list(s)
        got = await call(s, "list_agents")
        assert not got.is_error and text(got) == "alice\nbob"
        assert got.structured_content == {"agents": ["alice", "bob"]}
        killed = await call(s, "kill", {"name": "bob"})
        assert not killed.is_error and text(killed) == "killed bob"
    # `get_logs` appears once the daemon serves `logs` on the manager socket
    served = [t for t in MANAGER_TOOLS if t != "get_logs" or "manager" in VERBS["logs"].sockets]
    assert list(listed) == list(AGENT_TOOLS) + served
    # the manager names one agent: no scopes
    for name in ("kill", "start", "restart", "rebuild"):
        assert listed[name].input_schema["properties"].keys() == {"name"}
        assert listed[name].input_schema["required"] == ["name"]
    async with session(alice) as s:
        assert not set(await tool_list(s)) & set(MANAGER_TOOLS)
        refused = await call(s, "kill", {"name": "bob"})
        assert refused.is_error and text(refused) == "no such tool: kill"


# --- calls ---------------------------------------------------------------------------------------
async def test_send_reaches_another_agents_inbox(pair: tuple[str, str, str]) -> None:
    alice, bob, _ = pair
    async with session(alice) as s:
        sent = await call(s, "send", {"to": "bob", "body": "hello bob"})
    assert not sent.is_error
    msg_id = sent.structured_content["id"]
    assert text(sent) == f"sent (message id {msg_id})"
    got = await ok(bob, {"cmd": "recv", "max": 5})
    ((m),) = got["messages"]
    assert (m["id"], m["from"], m["body"]) == (msg_id, "alice", "hello bob")


async def test_recv_texts_and_no_ack(pair: tuple[str, str, str]) -> None:
    alice, bob, _ = pair
    async with session(alice) as s:
        empty = await call(s, "recv")
        assert text(empty) == EMPTY and empty.structured_content == {"messages": []}
        await ok(bob, {"cmd": "send", "to": "alice", "body": "one"})
        one = await call(s, "recv", {"max": 5})
        assert text(one) == "from: bob\n\none"
        ((m),) = one.structured_content["messages"]
        assert m["body"] == "one" and m["redelivered"] is False
        await ok(bob, {"cmd": "send", "to": "alice", "body": "two"})
        await ok(bob, {"cmd": "send", "to": "alice", "body": "three"})
        several = await call(s, "recv", {"max": 5})
        assert text(several) == "popped 2 message(s)\n\nfrom: bob\n\ntwo\n---\nfrom: bob\n\nthree"
        # nothing was acked: the harness does that with the turn
        assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 3
        again = await call(s, "recv", {"max": 1})
        assert text(again) == f"{REDELIVERED}\nfrom: bob\n\none"
        assert again.structured_content["messages"][0]["redelivered"] is True


async def test_recv_long_polls(pair: tuple[str, str, str]) -> None:
    alice, bob, _ = pair
    async with session(alice) as s:
        got: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def wait() -> None:
                got.append(await call(s, "recv", {"max": 1, "wait_seconds": 20}))

            nursery.start_soon(wait)
            await ok(bob, {"cmd": "send", "to": "alice", "body": "late"})
    assert text(got[0]) == "from: bob\n\nlate"


async def test_other_agent_tools(pair: tuple[str, str, str]) -> None:
    alice, _, _ = pair
    async with session(alice) as s:
        me = await call(s, "whoami")
        assert me.structured_content == {"name": "alice", "role": "agent"}
        assert text(me) == "you are alice (role: agent)"
        assert text(await call(s, "set_status", {"text": "busy"})) == "status set"
        asked = await call(s, "ask", {"question": "ok?", "options": ["yes", "no"]})
        qid = asked.structured_content["id"]
        reminded = await call(s, "remind", {"message": "later", "delay_seconds": 3600})
        rid = reminded.structured_content["id"]
        loose = await call(s, "get_loose_ends")
        kinds = {(r["kind"], r["id"]) for r in loose.structured_content["loose_ends"]}
        assert {("question", qid), ("reminder", rid)} <= kinds
        assert f"- question {qid} (alice" in text(loose)
        cancelled = await call(s, "cancel_loose_end", {"kind": "reminder", "id": rid})
        assert not cancelled.is_error and text(cancelled) == f"cancelled reminder {rid}"
        meta = await call(s, "get_agent_meta")
        assert meta.structured_content == {"name": "alice", "role": "agent"}
        other = await call(s, "get_agent_meta", {"name": "bob"})
        assert other.is_error and "only the manager" in text(other)


async def test_get_agent_meta_on_the_manager_socket(hive: Any, pair: tuple[str, str, str]) -> None:
    async with session(str(hive.paths.manager_socket)) as s:
        meta = await call(s, "get_agent_meta", {"name": "alice"})
        assert not meta.is_error
        assert meta.structured_content["status"]["name"] == "alice"
        assert meta.structured_content["status"]["running"] is True
        missing = await call(s, "get_agent_meta", {"name": "nobody"})
        assert missing.is_error and missing.structured_content["code"] == "not_found"


# --- errors --------------------------------------------------------------------------------------
async def test_a_refusal_is_a_tool_error_with_the_daemons_sentence(
    pair: tuple[str, str, str],
) -> None:
    alice, _, _ = pair
    direct = await raw_call(alice, {"cmd": "send", "to": "nobody", "body": "x"})
    assert direct["ok"] is False
    async with session(alice) as s:
        refused = await call(s, "send", {"to": "nobody", "body": "x"})
        assert refused.is_error and text(refused) == direct["error"]
        assert refused.structured_content == {"error": direct["error"], "code": direct["code"]}
        wrong = await call(s, "recv", {"max": "three"})
        assert wrong.is_error and "max" in text(wrong)
        # the connection is still good
        assert not (await call(s, "whoami")).is_error


async def test_a_dead_socket_is_a_fast_error_naming_it(dirs: Path) -> None:
    path = str(dirs / "nothing.sock")
    async with session(path) as s:
        assert list(await tool_list(s)) == list(AGENT_TOOLS)
        start = trio.current_time()
        got = await call(s, "send", {"to": "bob", "body": "x"})
        assert trio.current_time() - start < 2.0
    assert got.is_error
    assert text(got).startswith(f"the hive is not reachable at {path}")


async def test_a_socket_that_never_answers_times_out(dirs: Path) -> None:
    path = str(dirs / "mute.sock")
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await listener.bind(path)
    listener.listen(16)  # accepted by the kernel, never read, never answered
    try:
        async with session(path, HIVE_MCP_CALL_TIMEOUT="1") as s:
            start = trio.current_time()
            got = await call(s, "whoami")
            assert trio.current_time() - start < 10
    finally:
        listener.close()
    assert got.is_error and "did not answer within 1s" in text(got)


def test_reconnects_after_a_daemon_restart(daemon: Daemon) -> None:
    daemon.start()
    from hive_wire.blocking import call_sync

    call_sync(daemon.host, {"cmd": "spawn", "name": "alice", "command": SLEEPER})
    socket = str(daemon.base / "run" / "agents" / "alice" / "mcp.sock")

    async def main() -> None:
        async with session(socket) as s:
            assert not (await call(s, "whoami")).is_error
            await trio.to_thread.run_sync(daemon.stop)
            down = await call(s, "whoami")
            assert down.is_error and "not reachable" in text(down)
            await trio.to_thread.run_sync(daemon.start)
            up = await call(s, "whoami")
            assert not up.is_error, text(up)
            assert not (await call(s, "whoami")).is_error  # kept again

    trio.run(main)


# --- the real Claude Code ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["http", "stdio"])
async def test_a_claude_turn_sends_with_the_hive_tool(
    hive: Any, agent: Agent, fake_api: fake.FakeAPI, mode: str
) -> None:
    await ok(agent.host, {"cmd": "spawn", "name": "bob", "command": SLEEPER})
    bob = str(hive.paths.agent_socket("bob"))
    fake_api.add(
        fake.tool("mcp__hive__send", {"to": "bob", "body": "hi bob, from claude"}),
        fake.text("sent it"),
    )
    h = agent.harness(mcp=mode)
    assert h.opts.mcp_command == MCP  # the real server
    async with trio.open_nursery() as nursery:
        await nursery.start(h.run)
        with trio.fail_after(90):
            await ok(agent.host, {"cmd": "send", "to": "alice", "body": "greet bob"})
            await wait_completed(h, 1)
        h.stop()
    got = await ok(bob, {"cmd": "recv", "max": 5})
    assert [(m["from"], m["body"]) for m in got["messages"]] == [("alice", "hi bob, from claude")]
    requests = fake_api.model_requests()
    assert "mcp__hive__send" in [t["name"] for t in requests[0].get("tools", [])]
    results = [
        b
        for m in requests[-1]["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    # Claude Code 2.1.197 gives the model the structured result (as JSON) when there is one,
    # not the text content
    ((result),) = results
    assert json.loads(result["content"]) == {"id": got["messages"][0]["id"]}
    assert (await ok(agent.socket, {"cmd": "requeue_inflight"}))["requeued"] == 0
    config = agent.state / loop.MCP_CONFIG
    assert os.stat(config).st_mode & 0o777 == 0o600
    server = json.loads(config.read_text())["mcpServers"]["hive"]
    if mode == "http":
        assert h.endpoint is not None and server == h.endpoint.server_config()
        assert server["url"].startswith("http://127.0.0.1:")
    else:
        assert h.endpoint is None and server["command"] == MCP[0]

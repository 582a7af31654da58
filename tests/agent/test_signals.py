"""The harness as a process: `python -m hive_core.agent.loop` killed with -9 mid-turn (nothing
is lost), stopped with SIGTERM (the running turn finishes within the grace, or is killed after
it), and run by the daemon as an agent's command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

import trio

from hive_core.agent import turn_stats
from hive_core.agent.loop import PID_FILE, REDELIVERED
from hive_wire.client import Connection

from . import fake_api as fake
from .conftest import MODEL, Agent, ok, wait_completed
from .test_loop import inflight, user_text
from .test_process import wait_gone


async def start_harness(
    agent: Agent, claude_bin: str, env: dict[str, str], *extra: str
) -> trio.Process:
    return await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "hive_core.agent.loop",
            "--socket",
            agent.socket,
            "--state-dir",
            str(agent.state),
            "--claude-command",
            claude_bin,
            "--model",
            MODEL,
            *extra,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
    )


async def mid_turn(agent: Agent, fake_api: fake.FakeAPI, body: str) -> None:
    """Send `body` and return once claude's request for it is held by the fake API."""
    await ok(agent.host, {"cmd": "send", "to": "alice", "body": body})
    await trio.to_thread.run_sync(fake_api.wait_requests, 1)


async def test_kill_9_mid_turn_loses_nothing(
    agent: Agent, claude_bin: str, claude_env: dict[str, str], fake_api: fake.FakeAPI
) -> None:
    release = threading.Event()
    fake_api.add(fake.hold(release, "never read"), fake.text("handled after the restart"))
    proc = await start_harness(agent, claude_bin, claude_env)
    try:
        with trio.fail_after(60):
            await mid_turn(agent, fake_api, "survive this")
        orphan = int((agent.state / PID_FILE).read_text().split()[0])
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # a new harness: kills the claude the dead one left, requeues, handles the message again
    h = agent.harness()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(60):
            await nursery.start(h.run)
            await wait_gone(orphan)
            release.set()
            await wait_completed(h, 1)
        h.stop()
    prompt = user_text(fake_api.model_requests()[-1])
    assert REDELIVERED in prompt and "survive this" in prompt
    assert await inflight(agent) == 0


async def test_sigterm_lets_the_running_turn_finish(
    agent: Agent, claude_bin: str, claude_env: dict[str, str], fake_api: fake.FakeAPI
) -> None:
    release = threading.Event()
    fake_api.add(fake.hold(release, "finished in the grace"))
    proc = await start_harness(agent, claude_bin, claude_env, "--stop-grace", "60")
    try:
        with trio.fail_after(60):
            await mid_turn(agent, fake_api, "finish me")
            proc.send_signal(signal.SIGTERM)
            release.set()
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [r["result_kind"] for r in turn_stats.rows(agent.state / turn_stats.FILE)] == ["ok"]
    assert await inflight(agent) == 0  # acked before it exited


async def test_sigterm_kills_a_turn_that_outlasts_the_grace(
    agent: Agent, claude_bin: str, claude_env: dict[str, str], fake_api: fake.FakeAPI
) -> None:
    release = threading.Event()  # never set: the fake lets it go when it stops
    fake_api.add(fake.hold(release))
    proc = await start_harness(agent, claude_bin, claude_env, "--stop-grace", "0.5")
    try:
        with trio.fail_after(60):
            await mid_turn(agent, fake_api, "too slow")
            claude_pid = int((agent.state / PID_FILE).read_text().split()[0])
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
            await wait_gone(claude_pid)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [r["result_kind"] for r in turn_stats.rows(agent.state / turn_stats.FILE)] == ["failed"]
    assert await inflight(agent) == 1  # not acked: it comes back


async def test_sigterm_while_idle_exits_at_once(
    agent: Agent, claude_bin: str, claude_env: dict[str, str]
) -> None:
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "hive_core.agent.loop",
            "--socket",
            agent.socket,
            "--state-dir",
            str(agent.state),
            "--claude-command",
            claude_bin,
        ],
        env=claude_env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        with trio.fail_after(30):
            seen = b""
            while b"harness ready" not in seen:  # its log line, once it waits for messages
                chunk = await proc.stderr.receive_some(4096)
                assert chunk, seen
                seen += chunk
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def events_until(
    host: str, predicate: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> dict[str, Any]:
    async with await Connection.open(host) as conn:
        await conn.call({"cmd": "subscribe_events"})
        task_status.started()
        while True:
            event = (await conn.read())["event"]
            if predicate(event):
                return event


async def test_the_daemon_runs_the_harness_as_an_agent(
    hive: Any, claude_bin: str, claude_env: dict[str, str], fake_api: fake.FakeAPI
) -> None:
    host = str(hive.paths.host_socket)
    fake_api.add(fake.text("hello from a spawned harness"))
    pass_env = [
        f"{k}={claude_env[k]}"
        for k in (
            "HOME",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_API_KEY",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            "CLAUDE_CODE_MAX_RETRIES",
        )
    ]
    if "PYTHONPATH" in os.environ:
        pass_env.append(f"PYTHONPATH={os.environ['PYTHONPATH']}")
    command = [
        "env",
        *pass_env,
        sys.executable,
        "-m",
        "hive_core.agent.loop",
        "--claude-command",
        claude_bin,
        "--model",
        MODEL,
    ]
    await ok(host, {"cmd": "spawn", "name": "bob", "command": command})
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            acked = trio.Event()

            async def watch(task_status: trio.TaskStatus[None]) -> None:
                await events_until(
                    host,
                    lambda e: e["kind"] == "acked" and e.get("to") == "bob",
                    task_status=task_status,
                )
                acked.set()

            await nursery.start(watch)
            sent = await ok(host, {"cmd": "send", "to": "bob", "body": "are you there"})
            await acked.wait()
    state = hive.paths.agent_state("bob")
    (row,) = turn_stats.rows(state / turn_stats.FILE)
    assert row["result_kind"] == "ok" and row["wake_from"] == "operator"
    assert "are you there" in user_text(fake_api.model_requests()[-1])
    assert sent["id"] > 0

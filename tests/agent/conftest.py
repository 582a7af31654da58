"""Fixtures of the agent-harness tests: the real Claude Code CLI, the fake Messages API, a HOME
per test, and a harness run in the test's trio loop against an agent of the `hive` fixture.

- `claude_bin`: the pinned CLI (`tests/agent/install-claude-code.sh` installs it); a test that
  needs it fails, never skips, when it is missing;
- `fake_api`: `fake_api.FakeAPI` on 127.0.0.1, a free port, stopped after the test;
- `claude_env`: the environment claude runs in (the fake API, no nonessential traffic, one
  retry, the per-test HOME);
- `agent`: spawns `alice` (a sleeper process: the test runs the harness itself over her socket)
  and gives `harness_options` for her.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from hive_core.agent.loop import Harness, Options
from hive_wire.client import Connection

from . import fake_api as fake

HERE = Path(__file__).parent
CLAUDE = HERE / "claude-code" / "node_modules" / ".bin" / "claude"
STAND_IN = HERE / "stand_in_claude.py"
MODEL = "claude-sonnet-4-5"  # the fake's prices in fake_api.cost_usd are this model's
SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]


@pytest.fixture(scope="session")
def claude_bin() -> str:
    if not os.access(CLAUDE, os.X_OK):
        pytest.fail(
            f"the pinned Claude Code CLI is not installed at {CLAUDE}: run "
            f"`sh {HERE / 'install-claude-code.sh'}` (needs npm)",
            pytrace=False,
        )
    out = subprocess.run([CLAUDE, "--version"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"{CLAUDE} --version failed: {out.stderr}", pytrace=False)
    return str(CLAUDE)


@pytest.fixture
def fake_api() -> Iterator[fake.FakeAPI]:
    with fake.running() as api:
        yield api


@pytest.fixture
def claude_home() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hch", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def claude_env(fake_api: fake.FakeAPI, claude_home: Path) -> dict[str, str]:
    keep = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "HIVE_"))
    }
    return {
        **keep,
        "HOME": str(claude_home),
        "ANTHROPIC_BASE_URL": fake_api.url,
        "ANTHROPIC_API_KEY": "fake-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }


async def call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The raw envelope of one request on a fresh connection."""
    async with await Connection.open(path) as conn:
        await conn.send(request)
        return await conn.read()


async def ok(path: str, request: dict[str, Any]) -> dict[str, Any]:
    answer = await call(path, request)
    assert answer["ok"], answer
    return answer


@attrs.frozen(kw_only=True)
class Agent:
    name: str
    socket: str
    state: Path
    host: str
    options: Options

    def harness(self, **changes: Any) -> Harness:
        return Harness(attrs.evolve(self.options, **changes))


@pytest.fixture
async def agent(hive: Any, claude_bin: str, claude_env: dict[str, str]) -> Agent:
    host = str(hive.paths.host_socket)
    await ok(host, {"cmd": "spawn", "name": "alice", "command": SLEEPER})
    socket = str(hive.paths.agent_socket("alice"))
    state = Path(hive.paths.agent_state("alice"))
    opts = Options(
        socket=socket,
        state_dir=state,
        claude_command=[claude_bin],
        model=MODEL,
        env=claude_env,
        recv_wait=5,
        pause_poll=0.05,
        rate_limit_wait=0.5,
        turn_timeout=60,
    )
    return Agent(name="alice", socket=socket, state=state, host=host, options=opts)


@pytest.fixture
async def running(agent: Agent) -> AsyncIterator[Harness]:
    """The harness of `alice`, started (its `requeue_inflight` done), stopped after the test."""
    h = agent.harness()
    async with trio.open_nursery() as nursery:
        await nursery.start(h.run)
        yield h
        h.stop()


async def wait_turns(h: Harness, n: int) -> None:
    """Until `h` finished `n` claude runs (a counter the harness bumps; no sleeping)."""
    while h.turns < n:
        await h.progress.park()


async def wait_completed(h: Harness, n: int) -> None:
    """Until `h` finished `n` turns, ack included."""
    while h.completed < n:
        await h.progress.park()


async def wait_for(h: Harness, predicate: Any) -> None:
    """Until `predicate()` holds, looked at each time the harness reports progress."""
    while not predicate():
        await h.progress.park()

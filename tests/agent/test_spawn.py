"""Claude agents as the daemon starts them: the config's `claude_command` reaches the agent's
environment as `HIVE_CLAUDE_COMMAND`; `spawn --claude` makes the harness the agent's command."""

from __future__ import annotations

import sys
from typing import Any

import click
import pytest
import trio
from click.testing import CliRunner

from hive_core.surfaces.cli import agent_side

from .conftest import ok

CLAUDE = "/opt/claude/bin/claude --debug"


@pytest.fixture
def hive_config() -> dict[str, Any]:
    return {"claude_command": CLAUDE}


async def test_claude_command_reaches_the_agents_environment(hive: Any) -> None:
    host = str(hive.paths.host_socket)
    # the agent tells the operator what it was given, over its own socket
    tell = [
        sys.executable,
        "-c",
        "import os; from hive_wire.blocking import call_sync; call_sync("
        "os.environ['HIVE_AGENT_SOCKET'], {'cmd': 'send', 'to': 'operator', "
        "'body': os.environ.get('HIVE_CLAUDE_COMMAND', '(unset)')})",
    ]
    await ok(host, {"cmd": "spawn", "name": "teller", "command": tell})
    with trio.fail_after(30):
        got = await ok(host, {"cmd": "inbox", "max": 1, "wait_seconds": 30})
    assert [(m["from"], m["body"]) for m in got["messages"]] == [("teller", CLAUDE)]


def test_spawn_claude_runs_the_harness() -> None:
    sent: list[dict[str, Any]] = []

    @click.group()
    def main() -> None:
        pass

    @main.command("spawn")
    @click.argument("name")
    @click.argument("command", nargs=-1)
    def spawn(name: str, command: tuple[str, ...]) -> None:
        sent.append({"name": name, "command": list(command)})

    agent_side.register(main)
    runner = CliRunner()
    assert runner.invoke(main, ["spawn", "bob", "--claude"]).exit_code == 0
    assert runner.invoke(main, ["spawn", "eve", "--claude", "--", "--model", "m1"]).exit_code == 0
    assert runner.invoke(main, ["spawn", "sh", "--", "sh", "-c", "true"]).exit_code == 0
    harness = [sys.executable, "-m", "hive_core", "agent", "run"]
    assert sent == [
        {"name": "bob", "command": harness},
        {"name": "eve", "command": [*harness, "--model", "m1"]},
        {"name": "sh", "command": ["sh", "-c", "true"]},
    ]
    assert {"mcp", "hook"} <= set(main.commands)

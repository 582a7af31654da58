"""The turn loop's options: `hive-core agent run`'s command line, `$HIVE_*` variables and the
`[claude]` table of `agent.toml`, in that order of precedence; and the hive tools claude may use.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .tools import AGENT_TOOLS, MANAGER_TOOLS

MCP_MODES = ("http", "stdio")


@attrs.frozen(kw_only=True)
class Options:
    socket: str
    state_dir: Path
    claude_command: list[str]
    model: str | None = None
    rate_limit_wait: float = 300.0
    turn_timeout: float = 3600.0
    stop_grace: float = 8.0  # under the daemon's stop grace (10 s), so our kill comes first
    recv_wait: int = 30
    pause_poll: float = 2.0
    manager: bool = False
    mcp: str = "http"  # http: the harness's own endpoint; stdio: `mcp_command` per turn
    mcp_command: list[str] = attrs.Factory(lambda: [sys.executable, "-m", "hive_core.agent.mcp"])
    env: dict[str, str] | None = None  # claude's base environment (default: ours)

    @property
    def tools(self) -> list[str]:
        names = AGENT_TOOLS + (MANAGER_TOOLS if self.manager else ())
        return [f"mcp__hive__{n}" for n in names]


def options(argv: Sequence[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="hive-core agent run",
        description="Run the agent's turn loop: one claude turn per message from the hive.",
    )
    p.add_argument(
        "--socket",
        default=os.environ.get("HIVE_AGENT_SOCKET", "/run/hive/mcp.sock"),
        help="the agent socket (default $HIVE_AGENT_SOCKET)",
    )
    p.add_argument("--state-dir", default=".", help="the agent's state dir (default: cwd)")
    p.add_argument(
        "--claude-command",
        help="claude command line (shell words; default $HIVE_CLAUDE_COMMAND, else `claude`)",
    )
    p.add_argument("--model", help="claude model (default: agent.toml [claude] model)")
    p.add_argument(
        "--rate-limit-wait", type=float, help="seconds to wait when rate limited (default 300)"
    )
    p.add_argument("--turn-timeout", type=float, help="seconds a turn may take (default 3600)")
    p.add_argument(
        "--stop-grace", type=float, help="seconds a running turn gets on SIGTERM (default 8)"
    )
    p.add_argument(
        "--mcp",
        choices=MCP_MODES,
        help="how claude reaches the hive's tools: http (the harness's own endpoint, started "
        "once) or stdio (`hive-core mcp` started by claude each turn); default http",
    )
    p.add_argument("--config", help="agent.toml whose [claude] table gives defaults")
    a = p.parse_args(argv)
    table: dict[str, Any] = {}
    if a.config:
        with open(a.config, "rb") as f:
            table = tomllib.load(f).get("claude", {})
    cmd = a.claude_command or os.environ.get("HIVE_CLAUDE_COMMAND") or "claude"
    picked = {
        k: v
        for k, v in {
            "model": a.model or table.get("model"),
            "rate_limit_wait": a.rate_limit_wait or table.get("rate_limit_wait"),
            "turn_timeout": a.turn_timeout or table.get("turn_timeout"),
            "stop_grace": a.stop_grace,
            "mcp": a.mcp or table.get("mcp"),
        }.items()
        if v is not None
    }
    if picked.get("mcp", "http") not in MCP_MODES:
        p.error(f"[claude] mcp: expected one of {', '.join(MCP_MODES)}")
    return Options(
        socket=a.socket,
        state_dir=Path(a.state_dir).absolute(),
        claude_command=shlex.split(cmd),
        manager=os.environ.get("HIVE_AGENT_NAME") == "manager",
        **picked,
    )

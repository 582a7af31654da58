"""The agent side's commands: `hive-core mcp` (the hive's MCP tools over stdio), `hive-core hook`
(a Claude Code hook command), `hive-core agent run` (the Claude turn loop) and the `--claude`
flag of `hive-core spawn`.

Rules kept here:
- each command hands its arguments to the agent-side module that owns it (`hive_core.agent.mcp`,
  `.hook`, `.loop`), so `python -m hive_core.agent.X` is the same command without click's
  start-up (`hive-core agent run --mcp stdio` has claude start `python -m hive_core.agent.mcp`
  every turn); `hive-core hook` itself never gets here: the console script
  (`hive_core.entry`) hands it to the hook before click is imported;
- `spawn NAME --claude [-- OPTIONS...]` spawns an agent whose command is this Python running
  `hive-core agent run OPTIONS...`.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import click


def claude_agent_command(options: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The argv of a Claude agent: this Python running `hive-core agent run OPTIONS...`."""
    return [sys.executable, "-m", "hive_core", "agent", "run", *options]


@click.command("mcp")
def mcp() -> None:
    """Serve the hive's tools over MCP (stdio) for the agent of $HIVE_AGENT_SOCKET."""
    from hive_core.agent import mcp as server

    sys.exit(server.main([]))


@click.command("hook", context_settings={"ignore_unknown_options": True})
@click.argument("ignored", nargs=-1, type=click.UNPROCESSED)
def hook(ignored: tuple[str, ...]) -> None:
    """A Claude Code hook: its JSON (stdin) to the host socket.

    Forwarded as `activity`; always exits 0, within 200 ms (docs/agent.md).
    """
    from hive_core.agent import hook as hookmod

    hookmod.main()


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(args: tuple[str, ...]) -> None:
    """Run the agent's Claude turn loop: one turn per message.

    ARGS (docs/agent.md): --socket, --state-dir, --claude-command, --model, --rate-limit-wait,
    --turn-timeout, --stop-grace, --mcp http|stdio, --config.
    """
    from hive_core.agent import loop

    sys.exit(loop.main(list(args)))


def _add_claude_flag(spawn: click.Command) -> None:
    """`spawn NAME --claude [-- OPTIONS...]`: COMMAND becomes the harness's options."""
    spawn.params.append(
        click.Option(
            ["--claude"],
            is_flag=True,
            help="Spawn a Claude Code agent (`hive-core agent run`; COMMAND... are its options, "
            "after `--`). Needs `claude` on PATH, logged in, or the daemon's claude_command.",
        )
    )
    inner = spawn.callback
    assert inner is not None

    @functools.wraps(inner)
    def callback(*, claude: bool = False, **params: Any) -> Any:
        if claude:
            params["command"] = tuple(claude_agent_command(params.get("command") or ()))
        return inner(**params)

    spawn.callback = callback


def register(main: click.Group) -> None:
    main.add_command(mcp)
    main.add_command(hook)
    agent = main.commands.get("agent")
    if isinstance(agent, click.Group):
        agent.add_command(run)
    spawn = main.commands.get("spawn")
    if spawn is not None:
        _add_claude_flag(spawn)

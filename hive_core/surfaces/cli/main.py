"""The `hive-core` command line: the group, and every command registered on it.

`serve` runs the daemon; every other command is a client of a running daemon over the host
socket (`hive-core agent ...` over `$HIVE_AGENT_SOCKET`). The commands live by subject:
`serve.py` (serve, systemd-unit), `agents.py` (status and lifecycle), `messages.py` (send,
inbox, dead letters, events, stats), `approvals.py` (approvals, questions, reminders),
`agent_cmds.py` (`hive-core agent ...`), `agent_side.py` (mcp, hook, `agent run`, `spawn
--claude`), `costs.py`; `common.py` holds what they share (exit codes, `--json`,
the generic path over the verb table).

Rules kept here:
- one group; a module adds its commands with `register(group)`, nothing else is shared;
- client verbs use the blocking client, so a call costs no event loop start-up.
"""

from __future__ import annotations

from typing import Any

import click

from hive_core.surfaces.cli import (
    agent_cmds,
    agent_side,  # mcp, hook, agent run, spawn --claude
    agents,
    approvals,
    messages,
    serve,
)
from hive_core.surfaces.cli import costs as costs_cmds
from hive_core.surfaces.cli.common import usage_envelope


class _Group(click.Group):
    """The top group: a usage error (click's own, while parsing, or a command's) with `--json`
    on the command line is also one error envelope on stdout, as a refusal is."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as e:
            usage_envelope(e)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            usage_envelope(e)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hive-core")
def main() -> None:
    """hive-core: the host daemon of an agent swarm, and its client."""


for _module in (serve, agents, messages, approvals, agent_cmds, costs_cmds):
    _module.register(main)
agent_side.register(main)  # after agent_cmds and agents: it adds to `agent` and `spawn`

agent = agent_cmds.agent  # the `hive-core agent` group, for modules that add agent-side commands

"""Agents: `list`, `status`, `spawn`, the lifecycle verbs, `destroy`, tombstones, pause, logs.

Rules kept here:
- `status` shows what an operator must act on: a process that died is `crashed (exit code N)`
  (the row's `failed` and `exit_status`), never `stopped`; a line for the manager says whether
  its process runs and how many messages wait for it;
- `spawn`, `start` and `restart` wait up to `--settle` seconds for each new process to stay up
  (the daemon answers at once when they exit in that time): a command that dies at start is
  exit 1, with its exit status;
- `--all` is sent as the verb's scope (`{"agents": true}`): which agents that covers, and that
  one agent's failure does not stop the others, is the daemon's rule;
- `kill` of an agent that is not running succeeds, as `stop` of one does.
"""

from __future__ import annotations

from typing import Any

import click

from hive_core.surfaces.cli.common import (
    call_verb,
    default_socket,
    json_option,
    out,
    socket_option,
    table,
    verb_command,
)

LIFECYCLE = [
    (
        "start",
        "Start agent NAME (or --all).\n\nA process that exits within --settle seconds makes "
        "the command fail (exit 1) with its exit status.",
    ),
    ("stop", "Stop agent NAME (or --all) gracefully."),
    (
        "restart",
        "Restart agent NAME (or --all).\n\nA process that exits within --settle seconds makes "
        "the command fail (exit 1) with its exit status.",
    ),
    (
        "kill",
        "Kill agent NAME (or --all) at once; its in-flight messages are requeued.\n\n"
        "An agent that is not running is left as it is (exit 0).",
    ),
    ("rebuild", "Re-apply the applied config of agent NAME (or --all) and restart it."),
]
SETTLING = {"start", "restart"}  # the verbs that take `--settle`, as `spawn`


def state(row: dict[str, Any]) -> str:
    """One word or two for the STATE column."""
    if row.get("transient"):
        return str(row["transient"])
    if row["running"]:
        return "running"
    if row.get("failed"):
        exit_status = row.get("exit_status")
        return f"crashed ({exit_status})" if exit_status else "failed"
    return "stopped"


def _status_human(a: dict[str, Any]) -> None:
    rows = [
        [r["name"], state(r), "paused" if r["paused"] else "", r.get("status_text") or ""]
        for r in a["agent_statuses"]
    ]
    table(rows, ["NAME", "STATE", "PAUSED", "STATUS"], "no agents")
    m = a.get("manager")
    if m is not None:
        if m["running"]:
            proc = "running"
        elif m.get("exit_status"):
            proc = f"crashed ({m['exit_status']})"
        else:
            proc = "no process"
        click.echo(f"manager: {proc}, {m['unread']} unread")


def register(main: click.Group) -> None:
    @verb_command(
        main,
        "list",
        "list",
        lambda a: click.echo("\n".join(a["agents"]) if a["agents"] else "no agents"),
    )
    def list_() -> None:
        """List the agents."""

    @verb_command(main, "status", "agent_status", _status_human)
    def status() -> dict[str, Any]:
        """Show one status row per agent, and the manager's queue."""
        return {"with_manager": True}

    @verb_command(main, "spawn", "spawn", "spawned {name}")
    @click.argument("name")
    @click.argument("command", nargs=-1)
    @click.option(
        "--settle",
        default=0.5,
        show_default=True,
        type=click.FloatRange(0, 10),
        help="Seconds the new process must stay up for the spawn to succeed.",
    )
    def spawn(name: str, command: tuple[str, ...], settle: float) -> dict[str, Any]:
        """Spawn agent NAME (process backend: run COMMAND..., default the echo agent).

        Put `--` before a COMMAND that has options of its own:

        \b
            hive-core spawn worker -- sh -c 'exec my-agent'

        A COMMAND that exits within --settle seconds makes the spawn fail (exit 1) with its
        exit status; the agent stays, stopped, for `logs` and `start`.
        """
        return {"name": name, "command": list(command) or None, "settle_seconds": settle or None}

    for verb, doc in LIFECYCLE:
        _lifecycle(main, verb, doc)

    @verb_command(main, "destroy", "destroy", "destroyed {name}")
    @click.argument("name")
    @click.option(
        "--purge",
        is_flag=True,
        help="Also delete its state dir and its queued messages (no tombstone).",
    )
    def destroy(name: str, purge: bool) -> dict[str, Any]:
        """Stop and remove agent NAME (kept as a tombstone unless --purge).

        Without --purge its state dir and queued messages stay as a tombstone: spawning NAME
        again restores both. With --purge both are deleted.
        """
        return {"name": name, "purge": purge}

    @verb_command(
        main,
        "tombstones",
        "tombstones",
        lambda a: table(
            [[t["name"], t["destroyed_at"]] for t in a["tombstones"]],
            ["NAME", "DESTROYED"],
            "no tombstones",
        ),
    )
    def tombstones() -> None:
        """List destroyed agents' state dirs (spawning the name restores one)."""

    @verb_command(main, "purge-tombstone", "purge_tombstone", "purged {name}")
    @click.argument("name")
    def purge_tombstone(name: str) -> dict[str, Any]:
        """Delete the tombstone of NAME (its state dir and queued messages) for good."""
        return {"name": name}

    @verb_command(main, "pause", "set_paused", "paused {name}")
    @click.argument("name")
    def pause(name: str) -> dict[str, Any]:
        """Mark agent NAME paused: its harness starts no turn until `resume`."""
        return {"name": name, "paused": True}

    @verb_command(main, "resume", "set_paused", "resumed {name}")
    @click.argument("name")
    def resume(name: str) -> dict[str, Any]:
        """Remove the pause mark of agent NAME (what waited is delivered)."""
        return {"name": name, "paused": False}

    @verb_command(
        main, "logs", "logs", lambda a: click.echo("\n".join(a["lines"]), nl=bool(a["lines"]))
    )
    @click.argument("name")
    @click.option(
        "--lines",
        "-n",
        default=100,
        type=click.IntRange(0, 10000),
        show_default=True,
        help="How many of the last lines.",
    )
    def logs(name: str, lines: int) -> dict[str, Any]:
        """Print the last lines of agent NAME's log."""
        return {"name": name, "lines": lines}


def _lifecycle(main: click.Group, verb: str, doc: str) -> None:
    settles = verb in SETTLING

    def command(
        name: str | None, every: bool, socket_path: str | None, as_json: bool, settle: float = 0
    ) -> None:
        if bool(name) == every:
            raise click.UsageError("give NAME or --all (not both)")
        fields: dict[str, Any] = {"scope": {"agents": True} if every else {"agent_names": [name]}}
        if settle:
            fields["settle_seconds"] = settle
        answer = call_verb(socket_path or default_socket(), verb, **fields)
        out(as_json, answer, lambda a: click.echo(f"{verb}: {'all agents' if every else name}"))

    if settles:
        command = click.option(
            "--settle",
            default=0.5,
            show_default=True,
            type=click.FloatRange(0, 10),
            help="Seconds each process started must stay up for the command to succeed.",
        )(command)
    command = json_option(socket_option(command))
    command = click.option("--all", "every", is_flag=True, help="Every agent.")(command)
    command = click.argument("name", required=False)(command)
    main.command(verb, help=doc)(command)

"""`hive-core agent ...`: the agent-side verbs over `$HIVE_AGENT_SOCKET`, for shell agents and
harnesses, and `agent echo` (the bundled example agent).

Rules kept here:
- the socket is `$HIVE_AGENT_SOCKET` only (unset: exit 2): the daemon knows the caller by the
  socket, so no command takes a name;
- a usage error speaks of the command's options (`--in`, `--at`), never of wire fields.
"""

from __future__ import annotations

from typing import Any

import click

from hive_core.surfaces.cli.common import agent_socket, messages, table, unreachable, verb_command


@click.group()
def agent() -> None:
    """Agent-side verbs over $HIVE_AGENT_SOCKET (for shell agents and harnesses)."""


@verb_command(agent, "send", "send", lambda a: click.echo(a.get("ids") or a.get("id")), agent=True)
@click.argument("to")
@click.argument("text")
@click.option("--in-reply-to", type=int, default=None)
def agent_send(to: str, text: str, in_reply_to: int | None) -> dict[str, Any]:
    """Send TEXT to TO."""
    return {"to": to, "body": text, "in_reply_to": in_reply_to}


@verb_command(agent, "recv", "recv", messages, agent=True)
@click.option("--max", "max_", default=1, type=click.IntRange(0, 32), show_default=True)
@click.option("--wait", "wait", default=0, type=click.IntRange(0, 180))
def agent_recv(max_: int, wait: int) -> dict[str, Any]:
    """Pop up to --max messages (leased until `ack`)."""
    return {"max": max_, "wait_seconds": wait}


@verb_command(agent, "ack", "ack_turn", "acked {acked}", agent=True)
@click.argument("ids", nargs=-1, type=int)
def agent_ack(ids: tuple[int, ...]) -> dict[str, Any]:
    """Ack the turn: the given message IDS, or every message in flight."""
    return {"ids": list(ids) or None}


@verb_command(agent, "requeue", "requeue_inflight", "requeued {requeued}", agent=True)
def agent_requeue() -> None:
    """Put every message popped but not acked back in the inbox (call once at boot)."""


@verb_command(agent, "status", "status", "unread {unread}", agent=True)
def agent_status() -> None:
    """How many messages wait in the inbox."""


@verb_command(agent, "whoami", "whoami", "{name} ({role})", agent=True)
def agent_whoami() -> None:
    """The name and role this socket speaks for."""


@verb_command(agent, "ask", "ask", "question {id}", agent=True)
@click.argument("question")
@click.option("--to", default=None, help="An agent or `manager` (default: the operator).")
@click.option("--option", "options", multiple=True, help="A possible answer (repeatable).")
@click.option("--multi", is_flag=True, help="Several options may be chosen.")
@click.option("--ttl", type=click.IntRange(1), default=None, help="Seconds before it expires.")
def agent_ask(
    question: str, to: str | None, options: tuple[str, ...], multi: bool, ttl: int | None
) -> dict[str, Any]:
    """Ask QUESTION; the answer arrives in the inbox as `question_answered`."""
    return {
        "question": question,
        "multi": multi,
        "to": to or None,
        "options": list(options) or None,
        "ttl_seconds": ttl,
    }


@verb_command(agent, "answer", "answer", "answered {id}", agent=True)
@click.argument("question_id", type=int)
@click.argument("text")
def agent_answer(question_id: int, text: str) -> dict[str, Any]:
    """Answer question ID (addressed to this agent)."""
    return {"id": question_id, "answer": text}


@verb_command(agent, "remind", "remind", "reminder {id}", agent=True)
@click.argument("message")
@click.option("--in", "delay", type=click.IntRange(0), default=None, help="Seconds from now.")
@click.option("--at", "at", type=click.IntRange(0), default=None, help="A unix timestamp.")
@click.option("--file", "file_path", default=None, help="A file in the state dir to point at.")
def agent_remind(
    message: str, delay: int | None, at: int | None, file_path: str | None
) -> dict[str, Any]:
    """Have MESSAGE delivered back later (--in SECONDS or --at TIME)."""
    if (delay is None) == (at is None):
        raise click.UsageError("give exactly one of --in SECONDS and --at UNIX_TIME")
    return {
        "message": message,
        "delay_seconds": delay,
        "at_unix_timestamp": at,
        "file_path": file_path,
    }


@verb_command(
    agent,
    "loose-ends",
    "get_loose_ends",
    lambda a: table(
        [
            [e["kind"], str(e["id"]), e["agent"], e["status"], e["summary"][:60]]
            for e in a["loose_ends"]
        ],
        ["KIND", "ID", "AGENT", "STATUS", "SUMMARY"],
        "no loose ends",
    ),
    agent=True,
)
def agent_loose_ends() -> None:
    """What is still open for this agent (the whole hive for the manager)."""


@agent.command("echo")
@click.option("--wait", default=30, type=click.IntRange(1, 180), show_default=True)
def agent_echo(wait: int) -> None:
    """Run the bundled example agent: answer every message with `echo: <body>`.

    While the agent is paused (the daemon's `paused` marker in its working directory) it
    answers nothing; what arrived meanwhile is answered on `resume`.
    """
    from hive_core.agent.echo import run

    path = agent_socket()
    try:
        run(path, wait)
    except OSError as e:
        unreachable(path, e)
    except (EOFError, KeyboardInterrupt):
        pass


def register(main: click.Group) -> None:
    main.add_command(agent)

"""Messages: `send`, `inbox`, `dead-letters`, `events`, `stats`.

Rules kept here:
- `inbox` pops the operator's messages and they are acknowledged once printed (the daemon acks
  them after writing the answer);
- `dead-letters` lists, or acts on one letter: `--requeue` and `--drop` together are a usage
  error (exit 2);
- `events` prints JSON lines whatever `--json` says; without `--follow` it stops at the seq the
  daemon had when it subscribed; Ctrl-C ends `--follow` with exit 130 and nothing on stderr.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterable
from typing import Any

import click

from hive_core.surfaces.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    call_verb,
    default_socket,
    die,
    json_option,
    messages,
    out,
    socket_option,
    table,
    unreachable,
    verb_command,
)
from hive_wire.blocking import check_answer, request_obj
from hive_wire.codec import LineBuffer, encode_line
from hive_wire.errors import WireError


def _stream(path: str, request: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """A feed verb over a blocking socket: the ack, then every answer until the daemon closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        unreachable(path, e)
    with sock:
        sock.sendall(encode_line(request_obj(request)))
        buf = LineBuffer(1 << 30)
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for line in buf.feed(data):
                try:
                    yield check_answer(json.loads(line))
                except WireError as e:
                    die(EXIT_REFUSED, f"{e} [{e.code}]", e.code)
            if buf.overflow is not None:
                die(EXIT_REFUSED, str(buf.overflow))


def _inbox_human(a: dict[str, Any]) -> None:
    if not a["messages"]:
        click.echo("no messages")
    messages(a)


def _dead_human(a: dict[str, Any]) -> None:
    rows = [
        [str(m["id"]), m["from"], m["to"], str(m["deliveries"]), m["dead_at"], m["body"][:60]]
        for m in a["messages"]
    ]
    table(rows, ["ID", "FROM", "TO", "DELIVERIES", "DEAD SINCE", "BODY"], "no dead letters")


def register(main: click.Group) -> None:
    @verb_command(main, "send", "send", lambda a: click.echo(f"sent {a.get('ids') or a.get('id')}"))
    @click.argument("to")
    @click.argument("text")
    def send(to: str, text: str) -> dict[str, Any]:
        """Send TEXT to TO (an agent, `manager` or `*`) as the operator."""
        return {"to": to, "body": text}

    @verb_command(main, "inbox", "inbox", _inbox_human)
    @click.option(
        "--wait",
        "wait",
        default=0,
        type=click.IntRange(0, 180),
        help="Seconds to wait for the first message.",
    )
    @click.option("--max", "max_", default=32, type=click.IntRange(0, 32), show_default=True)
    def inbox(wait: int, max_: int) -> dict[str, Any]:
        """Read (and so acknowledge) the operator's messages."""
        return {"max": max_, "wait_seconds": wait}

    @main.command("dead-letters")
    @click.option("--requeue", "requeue", type=int, help="Put dead letter ID back in its inbox.")
    @click.option("--drop", "drop", type=int, help="Delete dead letter ID.")
    @socket_option
    @json_option
    def dead_letters(
        requeue: int | None, drop: int | None, socket_path: str | None, as_json: bool
    ) -> None:
        """List the messages set aside after too many deliveries (or requeue/drop one)."""
        if requeue is not None and drop is not None:
            raise click.UsageError("give --requeue ID or --drop ID, not both")
        path = socket_path or default_socket()
        if requeue is not None:
            out(
                as_json,
                call_verb(path, "requeue_dead", id=requeue),
                lambda a: click.echo(f"requeued {requeue}"),
            )
        elif drop is not None:
            out(
                as_json,
                call_verb(path, "drop_dead", id=drop),
                lambda a: click.echo(f"dropped {drop}"),
            )
        else:
            out(as_json, call_verb(path, "dead_letters"), _dead_human)

    @main.command()
    @click.option("--follow", "-f", is_flag=True, help="Keep printing events as they happen.")
    @click.option(
        "--since",
        "since",
        type=click.IntRange(0),
        default=None,
        help="Replay the recent history after this seq first.",
    )
    @click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Accepted for symmetry: events are JSON lines either way.",
    )
    @socket_option
    def events(follow: bool, since: int | None, as_json: bool, socket_path: str | None) -> None:
        """Print the dashboard event channel as JSON lines (Ctrl-C ends --follow)."""
        req: dict[str, Any] = {
            "cmd": "subscribe_events",
            "since_seq": 0 if since is None else since,
        }
        if follow and since is None:
            req.pop("since_seq")
        try:
            _print_events(socket_path or default_socket(), req, follow, since)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `hive-core events | head`
            sys.stderr.close()
            sys.exit(0)

    @verb_command(
        main, "stats", "stats", lambda a: click.echo("\n".join(f"{k}: {v}" for k, v in a.items()))
    )
    def stats() -> None:
        """Store counters: transactions, operations, agents, pending messages."""


def _print_events(path: str, req: dict[str, Any], follow: bool, since: int | None) -> None:
    feed = iter(_stream(path, req))
    ack = next(feed, None)
    if ack is None:
        return
    upto = ack["seq"]
    if not follow and upto <= (since or 0):
        return
    for answer in feed:
        event = answer["event"]
        click.echo(json.dumps(event, ensure_ascii=False), nl=True)
        sys.stdout.flush()
        if not follow and event["seq"] >= upto:
            return

"""The `hive-core` command line.

`serve` runs the daemon; every other verb is a client of a running daemon over the host socket
(`hive-core agent ...` over `$HIVE_AGENT_SOCKET`). Human output is a compact table; `--json`
prints the raw answer. Exit codes: 0 success, 1 the daemon said no (its error on stderr), 2 usage
error, 3 the daemon is not reachable (not running, or permission denied: the message says which).

Client verbs use the blocking client so that a call costs no event loop start-up.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click

from hive_wire.blocking import call_sync, check_answer, request_obj
from hive_wire.codec import LineBuffer, encode_line
from hive_wire.errors import RemoteVersionError, WireError

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3


def _default_socket() -> str:
    from hive_core.config import host_socket_path

    return host_socket_path()


def _die(code: int, message: str) -> NoReturn:
    click.echo(f"hive-core: {message}", err=True)
    sys.exit(code)


def _unreachable(path: str, err: OSError) -> NoReturn:
    if isinstance(err, PermissionError):
        why = "permission denied (run as root or as a member of the hive-admin group)"
    elif isinstance(err, FileNotFoundError | ConnectionRefusedError):
        why = "the daemon is not running (start it with `hive-core serve`)"
    else:
        why = str(err)
    _die(EXIT_UNREACHABLE, f"cannot reach {path}: {why}")


def _call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return call_sync(path, request)
    except (WireError, RemoteVersionError) as e:
        code = getattr(e, "code", "version")
        _die(EXIT_REFUSED, f"{e} [{code}]")
    except OSError as e:
        _unreachable(path, e)
    except EOFError as e:
        _die(EXIT_UNREACHABLE, f"{path}: {e}")


def _stream(path: str, request: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """A feed verb over a blocking socket: the ack, then every answer until the daemon closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        _unreachable(path, e)
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
                    _die(EXIT_REFUSED, f"{e} [{e.code}]")
            if buf.overflow is not None:
                _die(EXIT_REFUSED, str(buf.overflow))


def _table(rows: list[list[str]], header: list[str]) -> None:
    if not rows:
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _out(as_json: bool, answer: dict[str, Any], human: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        click.echo(json.dumps({"version": 1, "ok": True, **answer}, ensure_ascii=False))
    else:
        human(answer)


def _messages(answer: dict[str, Any]) -> None:
    for m in answer["messages"]:
        flag = " (redelivered)" if m.get("redelivered") else ""
        click.echo(f"[{m['id']}] {m['from']}{flag}: {m['body']}")


socket_option = click.option(
    "--socket", "socket_path", default=None, envvar="HIVE_HOST_SOCKET",
    help="The host socket (default: <run dir>/host.sock).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the raw answer.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hive-core")
def main() -> None:
    """hive-core: the host daemon of an agent swarm, and its client."""


@main.command()
@click.option("--state-dir", envvar="HIVE_STATE_DIR", help="State directory (database, agents).")
@click.option("--run-dir", envvar="HIVE_RUN_DIR", help="Run directory (sockets).")
@click.option("--config", "config_file", envvar="HIVE_CONFIG", help="TOML configuration file.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-json", is_flag=True, help="Log JSON lines instead of key=value.")
def serve(state_dir: str | None, run_dir: str | None, config_file: str | None, log_level: str,
          log_json: bool) -> None:
    """Run the daemon in the foreground (until SIGTERM or SIGINT)."""
    import trio

    from hive_core import config as config_mod
    from hive_core import logs
    from hive_core.daemon import run

    logs.setup(log_level, log_json)
    try:
        cfg = config_mod.load(config_file, state_dir, run_dir)
    except (OSError, ValueError, TypeError) as e:
        _die(2, f"configuration: {e}")
    try:
        trio.run(run, cfg)
    except* (OSError, WireError) as group:
        _die(1, f"cannot start: {_first_leaf(group)}")


def _first_leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


@main.command("systemd-unit")
@click.option("--executable", default=None,
              help="The hive-core to run (default: this installation's).")
@click.option("--state-dir", default="/var/lib/hyperhive", show_default=True,
              help="State directory the unit passes to serve.")
@click.option("--run-dir", default="/run/hyperhive", show_default=True,
              help="Run directory the unit passes to serve.")
@click.option("--config", "config_file", default=None, help="TOML config file for serve.")
@click.option("--group", default="hive-admin", show_default=True,
              help="Admin group of the host socket (another one needs --config with admin_group).")
@click.option("--watchdog-sec", default=30, show_default=True, type=click.IntRange(1),
              help="WatchdogSec= of the unit.")
def systemd_unit(executable: str | None, state_dir: str, run_dir: str, config_file: str | None,
                 group: str, watchdog_sec: int) -> None:
    """Print the systemd unit of `hive-core serve` (for hosts without Nix)."""
    from hive_core.surfaces.cli.systemd_unit import default_executable, render

    try:
        click.echo(render(executable or default_executable(), state_dir, run_dir, config_file,
                          group, watchdog_sec), nl=False)
    except ValueError as e:
        _die(2, str(e))


@main.command("list")
@socket_option
@json_option
def list_(socket_path: str | None, as_json: bool) -> None:
    """List the agents."""
    answer = _call(socket_path or _default_socket(), {"cmd": "list"})
    _out(as_json, answer, lambda a: [click.echo(n) for n in a["agents"]])


@main.command()
@socket_option
@json_option
def status(socket_path: str | None, as_json: bool) -> None:
    """Show one status row per agent."""
    answer = _call(socket_path or _default_socket(), {"cmd": "agent_status"})

    def human(a: dict[str, Any]) -> None:
        rows = [[r["name"], "running" if r["running"] else "stopped",
                 "paused" if r["paused"] else "", r.get("transient", ""),
                 r.get("status_text", "")] for r in a["agent_statuses"]]
        _table(rows, ["NAME", "STATE", "PAUSED", "TRANSIENT", "STATUS"])

    _out(as_json, answer, human)


@main.command()
@click.argument("name")
@click.argument("command", nargs=-1)
@socket_option
@json_option
def spawn(name: str, command: tuple[str, ...], socket_path: str | None, as_json: bool) -> None:
    """Spawn agent NAME (process backend: run COMMAND..., default the echo agent)."""
    req: dict[str, Any] = {"cmd": "spawn", "name": name}
    if command:
        req["command"] = list(command)
    answer = _call(socket_path or _default_socket(), req)
    _out(as_json, answer, lambda a: click.echo(f"spawned {name}"))


@main.command()
@click.argument("to")
@click.argument("text")
@socket_option
@json_option
def send(to: str, text: str, socket_path: str | None, as_json: bool) -> None:
    """Send TEXT to TO (an agent, `manager` or `*`) as the operator."""
    answer = _call(socket_path or _default_socket(), {"cmd": "send", "to": to, "body": text})
    _out(as_json, answer, lambda a: click.echo(f"sent {a.get('ids') or a.get('id')}"))


@main.command()
@click.option("--wait", "wait", default=0, type=click.IntRange(0, 180),
              help="Seconds to wait for the first message.")
@click.option("--max", "max_", default=32, type=click.IntRange(0, 32), show_default=True)
@socket_option
@json_option
def inbox(wait: int, max_: int, socket_path: str | None, as_json: bool) -> None:
    """Read (and so acknowledge) the operator's messages."""
    answer = _call(socket_path or _default_socket(),
                   {"cmd": "inbox", "max": max_, "wait_seconds": wait})
    _out(as_json, answer, _messages)


@main.command("dead-letters")
@click.option("--requeue", "requeue", type=int, help="Put dead letter ID back in its inbox.")
@click.option("--drop", "drop", type=int, help="Delete dead letter ID.")
@socket_option
@json_option
def dead_letters(requeue: int | None, drop: int | None, socket_path: str | None,
                 as_json: bool) -> None:
    """List the messages set aside after too many deliveries (or requeue/drop one)."""
    path = socket_path or _default_socket()
    if requeue is not None:
        _out(as_json, _call(path, {"cmd": "requeue_dead", "id": requeue}),
             lambda a: click.echo(f"requeued {requeue}"))
        return
    if drop is not None:
        _out(as_json, _call(path, {"cmd": "drop_dead", "id": drop}),
             lambda a: click.echo(f"dropped {drop}"))
        return

    def human(a: dict[str, Any]) -> None:
        rows = [[str(m["id"]), m["from"], m["to"], str(m["deliveries"]), m["dead_at"],
                 m["body"][:60]] for m in a["messages"]]
        _table(rows, ["ID", "FROM", "TO", "DELIVERIES", "DEAD SINCE", "BODY"])

    _out(as_json, _call(path, {"cmd": "dead_letters"}), human)


@main.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they happen.")
@click.option("--since", "since", type=click.IntRange(0), default=None,
              help="Replay the recent history after this seq first.")
@socket_option
def events(follow: bool, since: int | None, socket_path: str | None) -> None:
    """Print the dashboard event channel as JSON lines."""
    req: dict[str, Any] = {"cmd": "subscribe_events", "since_seq": 0 if since is None else since}
    if follow and since is None:
        req.pop("since_seq")
    feed = iter(_stream(socket_path or _default_socket(), req))
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


@main.command()
@socket_option
@json_option
def stats(socket_path: str | None, as_json: bool) -> None:
    """Store counters: transactions, operations, agents, pending messages."""
    answer = _call(socket_path or _default_socket(), {"cmd": "stats"})
    _out(as_json, answer, lambda a: [click.echo(f"{k}: {v}") for k, v in a.items()])


# --- lifecycle ---------------------------------------------------------------------------------
def _lifecycle_command(verb: str, doc: str) -> None:
    @main.command(verb, help=doc)
    @click.argument("name", required=False)
    @click.option("--all", "every", is_flag=True, help="Every agent.")
    @socket_option
    @json_option
    def command(name: str | None, every: bool, socket_path: str | None, as_json: bool) -> None:
        if bool(name) == every:
            raise click.UsageError("give NAME or --all (not both)")
        path = socket_path or _default_socket()
        if verb in ("start", "stop"):
            scope = {"agents": True} if every else {"agent_names": [name]}
            answer = _call(path, {"cmd": verb, "scope": scope})
            names = ["all agents"] if every else [name]
        elif every:  # one request per agent; one that fails does not stop the others
            rows = _call(path, {"cmd": "agent_status"})["agent_statuses"]
            names = [r["name"] for r in rows if verb != "kill" or r["running"]]
            failed = []
            for n in names:
                try:
                    call_sync(path, {"cmd": verb, "name": n})
                except WireError as e:
                    click.echo(f"hive-core: {n}: {e} [{e.code}]", err=True)
                    failed.append(n)
                except OSError as e:
                    _unreachable(path, e)
            names = [n for n in names if n not in failed]
            if failed:
                click.echo(f"{verb}: {', '.join(names) or 'none'}")
                sys.exit(EXIT_REFUSED)
            answer = {}
        else:
            answer = _call(path, {"cmd": verb, "name": name})
            names = [name]
        _out(as_json, answer, lambda a: click.echo(f"{verb}: {', '.join(map(str, names))}"))


for _verb, _doc in [
    ("start", "Start agent NAME (or --all)."),
    ("stop", "Stop agent NAME (or --all) gracefully."),
    ("restart", "Restart agent NAME (or --all)."),
    ("kill", "Kill agent NAME (or --all) at once; its in-flight messages are requeued."),
    ("rebuild", "Re-apply the applied config of agent NAME (or --all) and restart it."),
]:
    _lifecycle_command(_verb, _doc)


@main.command()
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete its state dir (no tombstone).")
@socket_option
@json_option
def destroy(name: str, purge: bool, socket_path: str | None, as_json: bool) -> None:
    """Stop and remove agent NAME; its state dir stays as a tombstone unless --purge."""
    answer = _call(socket_path or _default_socket(), {"cmd": "destroy", "name": name,
                                                      "purge": purge})
    _out(as_json, answer, lambda a: click.echo(f"destroyed {name}"))


@main.command()
@socket_option
@json_option
def tombstones(socket_path: str | None, as_json: bool) -> None:
    """List destroyed agents' state dirs (spawning the name restores one)."""
    answer = _call(socket_path or _default_socket(), {"cmd": "tombstones"})
    _out(as_json, answer, lambda a: _table(
        [[t["name"], t["destroyed_at"]] for t in a["tombstones"]], ["NAME", "DESTROYED"]))


@main.command("purge-tombstone")
@click.argument("name")
@socket_option
@json_option
def purge_tombstone(name: str, socket_path: str | None, as_json: bool) -> None:
    """Delete the tombstone of NAME for good."""
    answer = _call(socket_path or _default_socket(), {"cmd": "purge_tombstone", "name": name})
    _out(as_json, answer, lambda a: click.echo(f"purged {name}"))


@main.command()
@click.argument("name")
@socket_option
@json_option
def pause(name: str, socket_path: str | None, as_json: bool) -> None:
    """Mark agent NAME paused (its harness should not start turns)."""
    answer = _call(socket_path or _default_socket(),
                   {"cmd": "set_paused", "name": name, "paused": True})
    _out(as_json, answer, lambda a: click.echo(f"paused {name}"))


@main.command()
@click.argument("name")
@socket_option
@json_option
def resume(name: str, socket_path: str | None, as_json: bool) -> None:
    """Remove the pause mark of agent NAME."""
    answer = _call(socket_path or _default_socket(),
                   {"cmd": "set_paused", "name": name, "paused": False})
    _out(as_json, answer, lambda a: click.echo(f"resumed {name}"))


@main.command()
@click.argument("name")
@click.option("--lines", "-n", default=100, type=click.IntRange(0, 10000), show_default=True,
              help="How many of the last lines.")
@socket_option
@json_option
def logs(name: str, lines: int, socket_path: str | None, as_json: bool) -> None:
    """Print the last lines of agent NAME's log."""
    answer = _call(socket_path or _default_socket(), {"cmd": "logs", "name": name,
                                                      "lines": lines})
    _out(as_json, answer, lambda a: [click.echo(line) for line in a["lines"]])


# --- approvals, questions, reminders ---------------------------------------------------------
@main.command("request-spawn")
@click.argument("name")
@click.option("--description", default=None, help="Why (shown to the approver).")
@socket_option
@json_option
def request_spawn(name: str, description: str | None, socket_path: str | None,
                  as_json: bool) -> None:
    """Queue a spawn of NAME for approval."""
    req: dict[str, Any] = {"cmd": "request_spawn", "name": name}
    if description:
        req["description"] = description
    answer = _call(socket_path or _default_socket(), req)
    _out(as_json, answer, lambda a: click.echo(f"approval {a['id']} queued"))


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Include resolved approvals.")
@socket_option
@json_option
def pending(show_all: bool, socket_path: str | None, as_json: bool) -> None:
    """List the approvals waiting for the operator."""
    answer = _call(socket_path or _default_socket(), {"cmd": "pending"})

    def human(a: dict[str, Any]) -> None:
        shown = [r for r in a["approvals"] if show_all or r["status"] == "pending"]
        rows = [[str(r["id"]), r["kind"], r["agent"], r["status"], r["requested_at"],
                 r.get("note") or r.get("description") or ""] for r in shown]
        _table(rows, ["ID", "KIND", "AGENT", "STATUS", "REQUESTED", "NOTE"])
        for r in shown:  # a config change: its commit subject and diffstat
            if r["kind"] == "apply_commit" and r["status"] == "pending":
                d = _call(socket_path or _default_socket(), {"cmd": "diff", "id": r["id"]})
                click.echo(f"\n#{r['id']} {r['agent']}: {d['subject']}\n{d['stat']}")

    _out(as_json, answer, human)


@main.command("diff")
@click.argument("approval_id", type=int)
@socket_option
@json_option
def diff_(approval_id: int, socket_path: str | None, as_json: bool) -> None:
    """Print an apply_commit approval's diff against the deployed config."""
    answer = _call(socket_path or _default_socket(), {"cmd": "diff", "id": approval_id})
    _out(as_json, answer, lambda a: click.echo(f"{a['subject']}\n\n{a['stat']}\n\n{a['diff']}"))


@main.command()
@click.argument("approval_id", type=int)
@socket_option
@json_option
def approve(approval_id: int, socket_path: str | None, as_json: bool) -> None:
    """Approve approval ID (runs its action now)."""
    answer = _call(socket_path or _default_socket(), {"cmd": "approve", "id": approval_id})
    _out(as_json, answer, lambda a: click.echo(f"approved {approval_id}"))


@main.command()
@click.argument("approval_id", type=int)
@click.option("--note", default=None, help="The reason, told to the requester.")
@socket_option
@json_option
def deny(approval_id: int, note: str | None, socket_path: str | None, as_json: bool) -> None:
    """Deny approval ID."""
    req: dict[str, Any] = {"cmd": "deny", "id": approval_id}
    if note is not None:
        req["note"] = note
    answer = _call(socket_path or _default_socket(), req)
    _out(as_json, answer, lambda a: click.echo(f"denied {approval_id}"))


@main.command()
@socket_option
@json_option
def questions(socket_path: str | None, as_json: bool) -> None:
    """List the open questions addressed to the operator."""
    answer = _call(socket_path or _default_socket(), {"cmd": "questions"})

    def human(a: dict[str, Any]) -> None:
        rows = [[str(q["id"]), q["asker"], q["question"][:60],
                 "/".join(q.get("options") or []), q.get("deadline", "")]
                for q in a["questions"]]
        _table(rows, ["ID", "ASKER", "QUESTION", "OPTIONS", "DEADLINE"])

    _out(as_json, answer, human)


@main.command()
@click.argument("question_id", type=int)
@click.argument("text")
@socket_option
@json_option
def answer(question_id: int, text: str, socket_path: str | None, as_json: bool) -> None:
    """Answer question ID with TEXT."""
    reply = _call(socket_path or _default_socket(),
                  {"cmd": "answer", "id": question_id, "answer": text})
    _out(as_json, reply, lambda a: click.echo(f"answered {question_id}"))


@main.command("cancel-question")
@click.argument("question_id", type=int)
@socket_option
@json_option
def cancel_question(question_id: int, socket_path: str | None, as_json: bool) -> None:
    """Cancel question ID (the asker is told)."""
    reply = _call(socket_path or _default_socket(), {"cmd": "cancel_question", "id": question_id})
    _out(as_json, reply, lambda a: click.echo(f"cancelled {question_id}"))


@main.command()
@socket_option
@json_option
def reminders(socket_path: str | None, as_json: bool) -> None:
    """List pending and parked reminders."""
    answer = _call(socket_path or _default_socket(), {"cmd": "reminders"})

    def human(a: dict[str, Any]) -> None:
        rows = [[str(r["id"]), r["agent"], r["status"], r["due_at"], str(r["attempts"]),
                 r.get("last_error") or r["message"][:60]] for r in a["reminders"]]
        _table(rows, ["ID", "AGENT", "STATUS", "DUE", "ATTEMPTS", "MESSAGE / ERROR"])

    _out(as_json, answer, human)


@main.command("retry-reminder")
@click.argument("reminder_id", type=int)
@socket_option
@json_option
def retry_reminder(reminder_id: int, socket_path: str | None, as_json: bool) -> None:
    """Put reminder ID back to pending, due now, with its attempts reset."""
    reply = _call(socket_path or _default_socket(), {"cmd": "retry_reminder", "id": reminder_id})
    _out(as_json, reply, lambda a: click.echo(f"retrying {reminder_id}"))


# --- the agent side -----------------------------------------------------------------------
def _agent_socket() -> str:
    path = os.environ.get("HIVE_AGENT_SOCKET")
    if not path:
        _die(2, "HIVE_AGENT_SOCKET is not set (the daemon sets it for the agents it starts)")
    return path


@main.group()
def agent() -> None:
    """Agent-side verbs over $HIVE_AGENT_SOCKET (for shell agents and harnesses)."""


@agent.command("send")
@click.argument("to")
@click.argument("text")
@click.option("--in-reply-to", type=int, default=None)
@json_option
def agent_send(to: str, text: str, in_reply_to: int | None, as_json: bool) -> None:
    """Send TEXT to TO."""
    req: dict[str, Any] = {"cmd": "send", "to": to, "body": text}
    if in_reply_to is not None:
        req["in_reply_to"] = in_reply_to
    _out(as_json, _call(_agent_socket(), req), lambda a: click.echo(a.get("ids") or a.get("id")))


@agent.command("recv")
@click.option("--max", "max_", default=1, type=click.IntRange(0, 32), show_default=True)
@click.option("--wait", "wait", default=0, type=click.IntRange(0, 180))
@json_option
def agent_recv(max_: int, wait: int, as_json: bool) -> None:
    """Pop up to --max messages (leased until `ack`)."""
    answer = _call(_agent_socket(), {"cmd": "recv", "max": max_, "wait_seconds": wait})
    _out(as_json, answer, _messages)


@agent.command("ack")
@click.argument("ids", nargs=-1, type=int)
@json_option
def agent_ack(ids: tuple[int, ...], as_json: bool) -> None:
    """Ack the turn: the given message IDS, or every message in flight."""
    req: dict[str, Any] = {"cmd": "ack_turn"}
    if ids:
        req["ids"] = list(ids)
    _out(as_json, _call(_agent_socket(), req), lambda a: click.echo(f"acked {a['acked']}"))


@agent.command("requeue")
@json_option
def agent_requeue(as_json: bool) -> None:
    """Put every message popped but not acked back in the inbox (call once at boot)."""
    _out(as_json, _call(_agent_socket(), {"cmd": "requeue_inflight"}),
         lambda a: click.echo(f"requeued {a['requeued']}"))


@agent.command("status")
@json_option
def agent_status(as_json: bool) -> None:
    """How many messages wait in the inbox."""
    _out(as_json, _call(_agent_socket(), {"cmd": "status"}),
         lambda a: click.echo(f"unread {a['unread']}"))


@agent.command("whoami")
@json_option
def agent_whoami(as_json: bool) -> None:
    """The name and role this socket speaks for."""
    _out(as_json, _call(_agent_socket(), {"cmd": "whoami"}),
         lambda a: click.echo(f"{a['name']} ({a['role']})"))


@agent.command("ask")
@click.argument("question")
@click.option("--to", default=None, help="An agent or `manager` (default: the operator).")
@click.option("--option", "options", multiple=True, help="A possible answer (repeatable).")
@click.option("--multi", is_flag=True, help="Several options may be chosen.")
@click.option("--ttl", type=click.IntRange(1), default=None, help="Seconds before it expires.")
@json_option
def agent_ask(question: str, to: str | None, options: tuple[str, ...], multi: bool,
              ttl: int | None, as_json: bool) -> None:
    """Ask QUESTION; the answer arrives in the inbox as `question_answered`."""
    req: dict[str, Any] = {"cmd": "ask", "question": question, "multi": multi}
    if to:
        req["to"] = to
    if options:
        req["options"] = list(options)
    if ttl is not None:
        req["ttl_seconds"] = ttl
    _out(as_json, _call(_agent_socket(), req), lambda a: click.echo(f"question {a['id']}"))


@agent.command("answer")
@click.argument("question_id", type=int)
@click.argument("text")
@json_option
def agent_answer(question_id: int, text: str, as_json: bool) -> None:
    """Answer question ID (addressed to this agent)."""
    _out(as_json, _call(_agent_socket(), {"cmd": "answer", "id": question_id, "answer": text}),
         lambda a: click.echo(f"answered {question_id}"))


@agent.command("remind")
@click.argument("message")
@click.option("--in", "delay", type=click.IntRange(0), default=None, help="Seconds from now.")
@click.option("--at", "at", type=click.IntRange(0), default=None, help="A unix timestamp.")
@click.option("--file", "file_path", default=None, help="A file in the state dir to point at.")
@json_option
def agent_remind(message: str, delay: int | None, at: int | None, file_path: str | None,
                 as_json: bool) -> None:
    """Have MESSAGE delivered back (from `reminder`) later."""
    req: dict[str, Any] = {"cmd": "remind", "message": message}
    if delay is not None:
        req["delay_seconds"] = delay
    if at is not None:
        req["at_unix_timestamp"] = at
    if file_path is not None:
        req["file_path"] = file_path
    _out(as_json, _call(_agent_socket(), req), lambda a: click.echo(f"reminder {a['id']}"))


@agent.command("loose-ends")
@json_option
def agent_loose_ends(as_json: bool) -> None:
    """What is still open for this agent (the whole hive for the manager)."""
    answer = _call(_agent_socket(), {"cmd": "get_loose_ends"})

    def human(a: dict[str, Any]) -> None:
        rows = [[e["kind"], str(e["id"]), e["agent"], e["status"], e["summary"][:60]]
                for e in a["loose_ends"]]
        _table(rows, ["KIND", "ID", "AGENT", "STATUS", "SUMMARY"])

    _out(as_json, answer, human)


@agent.command("echo")
@click.option("--wait", default=30, type=click.IntRange(1, 180), show_default=True)
def agent_echo(wait: int) -> None:
    """Run the bundled example agent: answer every message with `echo: <body>`."""
    from hive_core.agent.echo import run

    path = _agent_socket()
    try:
        run(path, wait)
    except OSError as e:
        _unreachable(path, e)
    except (EOFError, KeyboardInterrupt):
        pass

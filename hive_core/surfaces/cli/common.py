"""What every `hive-core` client command shares: reaching a socket, saying why not, printing an
answer, and the one generic path from a command to a verb of `hive_wire.verbs.VERBS`.

Rules kept here:
- exit codes: 0 success, 1 the daemon said no (its sentence and code on stderr), 2 usage error,
  3 the daemon is not reachable (the message says which: not running, permission denied, not a
  socket); an interrupted feed exits 130, quietly;
- with `--json`, every answer is one envelope on stdout, an error too
  (`{"version":1,"ok":false,"code":...,"error":...}`; `code` is `unreachable` when the socket
  could not be reached, `usage` for a usage error, click's own included); the exit code is the
  same as without `--json`;
- an empty listing says so in one line (`no agents`), never prints nothing;
- no raw `[Errno N]` text reaches a user: an `OSError` is reworded from its `strerror`;
- a command sends exactly the verb it names; the rules about targets (`--all`, scopes) live in
  the daemon's services, never here.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import stat
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from hive_wire.blocking import call_sync
from hive_wire.errors import RemoteVersionError, WireError
from hive_wire.verbs import VERBS

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

Human = Callable[[dict[str, Any]], None]


def default_socket() -> str:
    from hive_core.config import host_socket_path

    return host_socket_path()


def _json_wanted() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.params.get("as_json"))


def die(code: int, message: str, wire_code: str | None = None) -> NoReturn:
    """Exit with `code`, saying `message` on stderr (and, with `--json`, an error envelope on
    stdout)."""
    if _json_wanted():
        click.echo(
            json.dumps(
                {"version": 1, "ok": False, "code": wire_code or "usage", "error": message},
                ensure_ascii=False,
            )
        )
    click.echo(f"hive-core: {message}", err=True)
    sys.exit(code)


def usage_envelope(err: click.UsageError) -> None:
    """With `--json` among the arguments (before a `--`), a usage error's envelope on stdout;
    click then says it on stderr with the usage, and exits 2."""
    args = sys.argv[1:]
    if "--json" in (args[: args.index("--")] if "--" in args else args):
        envelope = {"version": 1, "ok": False, "code": "usage", "error": err.format_message()}
        click.echo(json.dumps(envelope, ensure_ascii=False))


def why_unreachable(path: str, err: OSError) -> str:
    """One sentence on why `path` could not be reached."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        return "it is a directory, not the daemon's socket (give the path of host.sock)"
    if st is not None and not stat.S_ISSOCK(st.st_mode):
        return "it is not a socket (give the path of the daemon's host.sock)"
    if isinstance(err, PermissionError):
        from hive_core.surfaces.sockets.peer import admin_gid

        group = "hive-admin"
        hint = (
            f"run as root or as a member of the {group} group"
            if admin_gid(group) is not None
            else "run as the user that runs the daemon, or as root"
        )
        return f"permission denied ({hint})"
    if isinstance(err, FileNotFoundError | ConnectionRefusedError):
        return "the daemon is not running (start it with `hive-core serve`)"
    if err.errno == errno.EAGAIN:
        return "the daemon is too busy to accept a connection (its listen queue stayed full)"
    return (err.strerror or str(err)).lower()


def unreachable(path: str, err: OSError) -> NoReturn:
    die(EXIT_UNREACHABLE, f"cannot reach {path}: {why_unreachable(path, err)}", "unreachable")


def call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """One request; the daemon's refusal (exit 1) or an unreachable socket (exit 3) ends the
    command."""
    try:
        return call_sync(path, request)
    except (WireError, RemoteVersionError) as e:
        code = getattr(e, "code", "version")
        die(EXIT_REFUSED, f"{e} [{code}]", code)
    except OSError as e:
        unreachable(path, e)
    except EOFError as e:
        die(EXIT_UNREACHABLE, f"{path}: {e}", "unreachable")


def call_verb(path: str, verb: str, **fields: Any) -> dict[str, Any]:
    """`verb` of the verb table with `fields` (None fields are left out)."""
    assert verb in VERBS, verb
    return call(path, {"cmd": verb, **{k: v for k, v in fields.items() if v is not None}})


def table(rows: list[list[str]], header: list[str], empty: str) -> None:
    if not rows:
        click.echo(empty)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def out(as_json: bool, answer: dict[str, Any], human: Human) -> None:
    if as_json:
        click.echo(json.dumps({"version": 1, "ok": True, **answer}, ensure_ascii=False))
    else:
        human(answer)


def messages(answer: dict[str, Any]) -> None:
    for m in answer["messages"]:
        flag = " (redelivered)" if m.get("redelivered") else ""
        click.echo(f"[{m['id']}] {m['from']}{flag}: {m['body']}")


socket_option = click.option(
    "--socket",
    "socket_path",
    default=None,
    envvar="HIVE_HOST_SOCKET",
    help="The host socket (default: <run dir>/host.sock).",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the raw answer (errors too) as one JSON envelope.",
)


def agent_socket() -> str:
    path = os.environ.get("HIVE_AGENT_SOCKET")
    if not path:
        die(
            EXIT_USAGE, "HIVE_AGENT_SOCKET is not set (the daemon sets it for the agents it starts)"
        )
    return path


def verb_command(
    group: click.Group, name: str, verb: str, done: str | Human, agent: bool = False
) -> Callable[[Callable[..., Any]], click.Command]:
    """The generic path: a command `name` whose function returns the request fields of `verb`
    (from its arguments); the answer is printed with `done` (a format string over the fields and
    the answer, or a function of the answer), or as JSON with `--json`. Help is the function's
    docstring. `agent`: over `$HIVE_AGENT_SOCKET` instead of the host socket."""

    def deco(fn: Callable[..., Any]) -> click.Command:
        @functools.wraps(fn)
        def command(as_json: bool, socket_path: str | None = None, **params: Any) -> None:
            fields = fn(**params) or {}
            path = agent_socket() if agent else socket_path or default_socket()
            answer = call_verb(path, verb, **fields)

            def human(a: dict[str, Any]) -> None:
                if callable(done):
                    done(a)
                else:
                    click.echo(done.format_map({**fields, **a}))

            out(as_json, answer, human)

        command = json_option(command)
        if not agent:
            command = socket_option(command)
        return group.command(name)(command)

    return deco

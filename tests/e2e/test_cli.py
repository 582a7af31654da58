"""The `hive-core` command line end to end: the installed console script as a subprocess against
a real daemon subprocess (operations.md, "The CLI" and "Daemon behaviour").

Covered here: the first-five-minutes sequence, exit codes (0 / 1 refused / 2 usage /
3 unreachable: not running or permission denied), help text and docs for every command, SIGTERM
(exit 0, sockets removed, no orphan agent), restart, a stale socket left by kill -9, a second
daemon on the same run dir, the agent-side verbs over `$HIVE_AGENT_SOCKET`, and `events`.

Every wait is a bounded poll of a condition or a subprocess timeout, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hive_core.surfaces.cli.main import main
from hive_wire.blocking import BlockingConnection, call_sync
from hive_wire.errors import LineTooLong, NotFound
from tests.helpers import SLEEPER, Daemon
from tests.procs import agent_pids, alive

REPO = Path(__file__).resolve().parents[2]
HIVE_CORE = str(Path(sys.executable).parent / "hive-core")
TIMEOUT = 30.0  # every subprocess and every poll is bounded by this
NOBODY = 65534


# --- helpers ----------------------------------------------------------------------------------
def client_env(host: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a client: no stray HIVE_* from the caller, the host socket given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_")}
    if host is not None:
        env["HIVE_HOST_SOCKET"] = host
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str], prefix: tuple[str, ...] = (), timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, HIVE_CORE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(*args: str, env: dict[str, str]) -> str:
    """Run a client verb that must succeed; its stdout."""
    r = cli(*args, env=env)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def wait_for(cond: Callable[[], object], what: str, timeout: float = TIMEOUT) -> object:
    """Poll `cond` until it returns something truthy (bounded; for subprocess readiness)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill_agents(run_dir: Path) -> None:
    """SIGKILL every agent process of `run_dir` (orphans a kill -9 of the daemon leaves),
    scanning again until none is left (a child forked before the kill shows its agent
    environment only once it has exec'd)."""

    def none_left() -> bool:
        pids = agent_pids(run_dir)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids

    wait_for(none_left, "orphan agents to die")


def answers(path: str, request: dict[str, object]) -> bool:
    try:
        call_sync(path, request, timeout=5)
    except (OSError, EOFError):
        return False
    return True


def agent_socket(daemon: Daemon, name: str) -> str:
    return str(daemon.base / "run" / "agents" / name / "mcp.sock")


def is_socket(path: str | Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


@pytest.fixture
def running(daemon: Daemon) -> Iterator[Daemon]:
    """The conftest daemon, started; every agent process it leaves behind is killed after."""
    daemon.env = client_env()
    daemon.start()
    try:
        yield daemon
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        kill_agents(daemon.base / "run")


@pytest.fixture
def env(running: Daemon) -> dict[str, str]:
    return client_env(running.host)


# --- the first five minutes -------------------------------------------------------------------
def test_blocking_connection_serves_many_requests(running: Daemon) -> None:
    """One blocking connection: requests in order, an error answer raised as its code, and the
    connection still usable after it; the daemon closing it is EOFError."""
    call_sync(running.host, {"cmd": "spawn", "name": "bee", "command": SLEEPER})
    sock = str(running.base / "run" / "agents" / "bee" / "mcp.sock")
    with BlockingConnection(sock, timeout=10) as conn:
        ids = [conn.call({"cmd": "send", "to": "bee", "body": f"m{i}"})["id"] for i in range(3)]
        with pytest.raises(NotFound):
            conn.call({"cmd": "send", "to": "nobody", "body": "x"})
        got = conn.call({"cmd": "recv", "max": 10})
        assert [(m["id"], m["body"]) for m in got["messages"]] == [
            (i, f"m{n}") for n, i in enumerate(ids)
        ]
        assert conn.call({"cmd": "ack_turn", "ids": ids}) == {"acked": 3, "ignored": 0}
        conn.sock.sendall(b"x" * (1 << 20) + b"x\n")  # over the line limit: answered, closed
        assert conn.read()["code"] == "line_too_long"
        with pytest.raises(EOFError):
            conn.read()


def test_blocking_connection_after_a_timeout_and_an_early_answer(running: Daemon) -> None:
    """A timed-out call closes the connection (its late answer can never pass for the next
    call's); a request the daemon refuses before reading it all (over the line limit) gives
    that refusal, not a broken pipe."""
    call_sync(running.host, {"cmd": "spawn", "name": "bee", "command": SLEEPER})
    sock = str(running.base / "run" / "agents" / "bee" / "mcp.sock")
    conn = BlockingConnection(sock, timeout=0.3)
    with pytest.raises(TimeoutError):
        conn.call({"cmd": "recv", "wait_seconds": 5})
    with pytest.raises(OSError):
        conn.call({"cmd": "whoami"})
    with BlockingConnection(sock, timeout=10) as conn, pytest.raises(LineTooLong):
        conn.call({"cmd": "send", "to": "bee", "body": "x" * (3 << 20)})


def test_first_five_minutes(dirs: Path) -> None:
    d = Daemon(dirs, command=[HIVE_CORE])  # the installed script, as a user starts it
    d.env = client_env()
    d.start()
    try:
        env = client_env(d.host)
        assert ok("spawn", "alice", env=env).strip() == "spawned alice"
        assert ok("send", "alice", "hello", env=env).startswith("sent ")
        out = ok("inbox", "--wait", "5", env=env)
        assert re.search(r"^\[\d+\] alice: echo: hello$", out, re.M), out
        out = ok("status", env=env)
        assert re.search(r"^alice\s+running\b", out, re.M), out
        listed = json.loads(ok("list", "--json", env=env))
        assert listed == {"version": 1, "ok": True, "agents": ["alice"]}
        assert d.stop() == 0
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        kill_agents(dirs / "run")


def test_every_read_verb_json_envelope(env: dict[str, str]) -> None:
    for verb in ("list", "status", "stats", "dead-letters", "inbox"):
        answer = json.loads(ok(verb, "--json", env=env))
        assert answer["version"] == 1 and answer["ok"] is True, (verb, answer)
        ok(verb, env=env)  # the human form works too


# --- exit codes -------------------------------------------------------------------------------
def test_exit_1_when_the_daemon_refuses(env: dict[str, str]) -> None:
    r = cli("send", "ghost", "x", env=env)
    assert r.returncode == 1, r
    assert "ghost" in r.stderr and "[not_found]" in r.stderr, r.stderr
    assert r.stdout == ""
    r = cli("spawn", "../evil", env=env)
    assert r.returncode == 1, r
    assert "[bad_request]" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("send",),
        ("send", "alice"),
        ("inbox", "--wait", "-1"),
        ("inbox", "--max", "x"),
        ("no-such-verb",),
        ("list", "--no-such-option"),
        ("agent", "recv", "--max", "33"),
    ],
)
def test_exit_2_on_usage_errors(args: tuple[str, ...], env: dict[str, str]) -> None:
    r = cli(*args, env=env)
    assert r.returncode == 2, r
    assert "Usage:" in r.stderr or "Error:" in r.stderr, r.stderr


def test_exit_2_agent_verb_without_agent_socket(dirs: Path) -> None:
    r = cli("agent", "whoami", env=client_env())
    assert r.returncode == 2, r
    assert "HIVE_AGENT_SOCKET" in r.stderr


@pytest.mark.parametrize("args", [("list",), ("status",), ("send", "alice", "x"), ("events",)])
def test_exit_3_when_no_daemon_runs(args: tuple[str, ...], dirs: Path) -> None:
    path = str(dirs / "run" / "host.sock")
    r = cli(*args, env=client_env(path))
    assert r.returncode == 3, r
    assert path in r.stderr and "not running" in r.stderr, r.stderr


def test_exit_3_on_a_stale_socket_file(dirs: Path) -> None:
    path = str(dirs / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)  # bound, never listening: what a killed daemon leaves behind
    r = cli("list", env=client_env(path))
    assert r.returncode == 3, r
    assert "not running" in r.stderr, r.stderr
    r = cli("agent", "whoami", env=client_env(HIVE_AGENT_SOCKET=path))
    assert r.returncode == 3, r
    assert "not running" in r.stderr, r.stderr


def _as_nobody() -> tuple[str, ...] | None:
    if shutil.which("setpriv"):
        return ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    if shutil.which("runuser"):
        return ("runuser", "-u", "nobody", "--")
    return None


def test_exit_3_permission_denied(running: Daemon, dirs: Path) -> None:
    if os.geteuid() == 0:
        prefix = _as_nobody()
        if prefix is None:
            pytest.skip(
                "running as root and neither setpriv nor runuser is available to drop "
                "to an unprivileged user"
            )
        # Only the socket's own mode (0660, root's group) may stand in the way, not the temp dir.
        os.chmod(dirs, 0o755)
        r = cli("list", env=client_env(running.host), prefix=prefix)
    else:
        mode = os.stat(running.host).st_mode
        os.chmod(running.host, 0)
        try:
            r = cli("list", env=client_env(running.host))
        finally:
            os.chmod(running.host, stat.S_IMODE(mode))
    assert r.returncode == 3, r
    assert "permission denied" in r.stderr and running.host in r.stderr, r.stderr
    assert "not running" not in r.stderr
    ok("list", env=client_env(running.host))  # the daemon keeps serving


# --- help and docs -----------------------------------------------------------------------------
def _commands(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


def test_every_command_has_help() -> None:
    runner = CliRunner()
    seen = 0
    for path, cmd in _commands(main):
        text = (cmd.help or cmd.short_help or "").strip()
        assert text, f"`hive-core {' '.join(path)}` has no help text"
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and text.splitlines()[0] in result.output
        seen += 1
    assert seen > 10


def test_every_command_is_documented() -> None:
    docs = [REPO / "README.md"]
    if (REPO / "docs").is_dir():
        docs += sorted(p for p in (REPO / "docs").rglob("*") if p.suffix in (".md", ".rst"))
    text = "\n".join(p.read_text() for p in docs)
    missing = [
        name
        for name in sorted(main.commands)
        if not re.search(rf"hive-core\s+{re.escape(name)}\b|`{re.escape(name)}[`\s]", text)
    ]
    assert not missing, f"commands not in README.md or docs/: {missing}"


# --- signals, restart, stale sockets, a second daemon ------------------------------------------
def _spawn_echo(daemon: Daemon, env: dict[str, str]) -> int:
    """Spawn alice (the echo agent), check she answers, return her pid."""
    assert ok("spawn", "alice", env=env).strip() == "spawned alice"
    ok("send", "alice", "hello", env=env)
    assert "alice: echo: hello" in ok("inbox", "--wait", "10", env=env)
    pids = wait_for(lambda: agent_pids(daemon.base / "run", "alice"), "alice's process")
    assert isinstance(pids, list) and len(pids) == 1, pids
    return pids[0]


def test_sigterm_exits_0_removes_sockets_leaves_no_orphan(
    running: Daemon, env: dict[str, str]
) -> None:
    pid = _spawn_echo(running, env)
    run = running.base / "run"
    for sock in (
        run / "host.sock",
        run / "manager" / "mcp.sock",
        run / "agents" / "alice" / "mcp.sock",
    ):
        assert is_socket(sock), sock
    # alice is now parked in a long-poll recv: an in-flight request the stop must cancel
    assert running.stop() == 0
    for sock in (
        run / "host.sock",
        run / "manager" / "mcp.sock",
        run / "agents" / "alice" / "mcp.sock",
    ):
        assert not sock.exists(), f"{sock} left behind"
    assert not alive(pid), f"agent alice (pid {pid}) outlived the daemon"
    assert agent_pids(run) == []
    log = running.log.read_text()
    assert "Traceback" not in log, log


def test_sigterm_without_agents_removes_sockets(running: Daemon) -> None:
    # Nothing to stop: the daemon's shutdown has no agent process to wait for.
    run = running.base / "run"
    assert is_socket(run / "host.sock") and is_socket(run / "manager" / "mcp.sock")
    assert running.stop() == 0
    left = sorted(str(p) for p in run.rglob("*.sock"))
    assert left == [], f"socket files left behind after SIGTERM: {left}"


def test_restart_brings_agents_back(running: Daemon, env: dict[str, str]) -> None:
    old = _spawn_echo(running, env)
    assert running.stop() == 0
    running.start()
    sock = agent_socket(running, "alice")
    wait_for(lambda: answers(sock, {"cmd": "whoami"}), "alice's socket after restart")
    assert ok("list", env=env).split() == ["alice"]
    assert re.search(r"^alice\s+running\b", ok("status", env=env), re.M)
    ok("send", "alice", "again", env=env)
    assert "alice: echo: again" in ok("inbox", "--wait", "10", env=env)
    new = agent_pids(running.base / "run", "alice")
    assert len(new) == 1 and new[0] != old, (old, new)


def test_stale_socket_after_kill9_is_reclaimed(running: Daemon, env: dict[str, str]) -> None:
    _spawn_echo(running, env)
    running.kill9()
    assert is_socket(running.host), "kill -9 should leave the socket file behind"
    r = cli("list", env=env)
    assert r.returncode == 3 and "not running" in r.stderr, r
    kill_agents(running.base / "run")
    running.start()
    sock = agent_socket(running, "alice")
    wait_for(lambda: answers(sock, {"cmd": "whoami"}), "alice's socket after restart")
    assert ok("list", env=env).split() == ["alice"]
    ok("send", "alice", "after-crash", env=env)
    assert "alice: echo: after-crash" in ok("inbox", "--wait", "10", env=env)


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("state", "another hive-core daemon is using"),  # same state dir: the lock refuses it
        ("state2", "served by a running daemon"),  # another state dir, same run dir: the socket
    ],
)
def test_second_daemon_on_the_same_run_dir_is_refused(
    running: Daemon, env: dict[str, str], state: str, said: str
) -> None:
    base = running.base
    r = subprocess.run(
        [HIVE_CORE, "serve", "--state-dir", str(base / state), "--run-dir", str(base / "run")],
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert r.returncode != 0, r
    assert said in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, f"a crash, not a clear message:\n{r.stderr}"
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr
    # the first one keeps serving, its sockets untouched
    assert running.proc is not None and running.proc.poll() is None
    assert is_socket(running.host) and is_socket(base / "run" / "manager" / "mcp.sock")
    assert json.loads(ok("list", "--json", env=env))["ok"] is True
    assert running.stop() == 0


# --- the agent side ----------------------------------------------------------------------------
def test_agent_verbs(running: Daemon, env: dict[str, str]) -> None:
    ok("spawn", "bob", "--", *SLEEPER, env=env)
    agent = client_env(HIVE_AGENT_SOCKET=agent_socket(running, "bob"))

    assert ok("agent", "whoami", env=agent).strip() == "bob (agent)"
    me = json.loads(ok("agent", "whoami", "--json", env=agent))
    assert me == {"version": 1, "ok": True, "name": "bob", "role": "agent"}
    assert ok("agent", "status", env=agent).strip() == "unread 0"

    first = int(json.loads(ok("send", "bob", "one", "--json", env=env))["id"])
    second = int(json.loads(ok("send", "bob", "two", "--json", env=env))["id"])
    assert ok("agent", "status", env=agent).strip() == "unread 2"

    got = json.loads(ok("agent", "recv", "--json", env=agent))["messages"]
    assert [(m["id"], m["from"], m["body"], m["redelivered"]) for m in got] == [
        (first, "operator", "one", False)
    ]
    assert ok("agent", "requeue", env=agent).strip() == "requeued 1"
    assert ok("agent", "requeue", env=agent).strip() == "requeued 0"  # idempotent

    out = ok("agent", "recv", "--max", "5", env=agent)
    assert out.splitlines() == [
        f"[{first}] operator (redelivered): one",
        f"[{second}] operator: two",
    ]
    assert ok("agent", "ack", str(first), env=agent).strip() == "acked 1"
    acked = json.loads(ok("agent", "ack", "--json", env=agent))
    assert acked["acked"] == 1
    assert ok("agent", "status", env=agent).strip() == "unread 0"
    assert ok("agent", "recv", "--wait", "1", env=agent) == ""  # nothing left, nothing redelivered

    sent = ok("agent", "send", "operator", "hi from bob", env=agent).strip()
    assert sent.isdigit()
    mine = json.loads(ok("inbox", "--wait", "5", "--json", env=env))["messages"]
    assert [(m["id"], m["from"], m["body"]) for m in mine] == [(int(sent), "bob", "hi from bob")]

    r = cli("agent", "send", "ghost", "x", env=agent)
    assert r.returncode == 1 and "[not_found]" in r.stderr, r
    r = cli("agent", "whoami", env=client_env(HIVE_AGENT_SOCKET=str(running.base / "nope.sock")))
    assert r.returncode == 3 and "not running" in r.stderr, r


# --- events ------------------------------------------------------------------------------------
def test_events_prints_json_lines(running: Daemon, env: dict[str, str]) -> None:
    ok("spawn", "bob", "--", *SLEEPER, env=env)
    mid = int(json.loads(ok("send", "bob", "ping", "--json", env=env))["id"])
    lines = ok("events", env=env).splitlines()
    events = [json.loads(line) for line in lines]
    assert events, "no events"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {"seq", "kind", "at"} <= set(events[0])
    kinds = [e["kind"] for e in events]
    assert "container_state_changed" in kinds
    sent = [e for e in events if e["kind"] == "sent"]
    assert sent and sent[-1]["id"] == mid and sent[-1]["to"] == "bob"
    assert sent[-1]["from"] == "operator" and sent[-1]["preview"] == "ping"


class Follower:
    """`hive-core events --follow` as a subprocess, its lines read by a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [HIVE_CORE, "events", "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def until_sent(self, env: dict[str, str], to: str) -> dict[str, Any]:
        """Send to `to` until the follower prints one of those `sent` events (its subscription
        starts once it has connected, which no output tells before then)."""
        deadline = time.monotonic() + TIMEOUT
        bodies: set[str] = set()
        while True:
            assert time.monotonic() < deadline, "events --follow printed no `sent` event"
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            body = f"live-{len(bodies)}"
            ok("send", to, body, env=env)
            bodies.add(body)
            try:
                event: dict[str, Any] = json.loads(self.lines.get(timeout=1.0))
            except queue.Empty:
                continue
            assert {"seq", "kind", "at"} <= set(event)
            if event["kind"] == "sent" and event["preview"] in bodies:
                return event

    def close(self) -> str:
        """Stop it (if it still runs) and read its stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return err


def test_events_follow_sees_new_events(running: Daemon, env: dict[str, str]) -> None:
    ok("spawn", "bob", "--", *SLEEPER, env=env)
    follower = Follower(env)
    try:
        assert follower.until_sent(env, "bob")["to"] == "bob"
    finally:
        follower.close()


def test_a_manager_left_by_kill9_is_reaped_on_restart(daemon: Daemon, dirs: Path) -> None:
    """The manager's own process (`manager_command`) is reaped like an agent's: after a kill -9
    of the daemon and a restart, one manager runs, not two."""
    config = dirs / "hive.toml"
    config.write_text(f"manager_command = {json.dumps(SLEEPER)}\n")
    daemon.env = client_env(HIVE_CONFIG=str(config))
    daemon.start()
    try:
        run = daemon.base / "run"
        (old,) = wait_for(lambda: agent_pids(run, "manager"), "the manager process")
        daemon.kill9()
        assert alive(old)
        daemon.start()
        wait_for(lambda: not alive(old), "the old manager to be reaped")
        (new,) = wait_for(lambda: agent_pids(run, "manager"), "the new manager process")
        assert new != old
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        kill_agents(daemon.base / "run")


def test_an_agent_that_cannot_be_reopened_is_reaped_and_not_started(
    running: Daemon, env: dict[str, str]
) -> None:
    """After a kill -9, an agent whose applied repo cannot be put back on main (a build cut
    short, a lock left behind) is not served: its old process is reaped all the same, and
    `start` refuses it rather than run a second, unserved copy."""
    ok("spawn", "alice", "--", *SLEEPER, env=env)
    (old,) = wait_for(lambda: agent_pids(running.base / "run", "alice"), "alice's process")
    running.kill9()
    assert alive(old)
    applied = running.base / "state" / "applied" / "alice"
    subprocess.run(["git", "-C", str(applied), "checkout", "-q", "--detach", "HEAD"], check=True)
    (applied / ".git" / "index.lock").touch()
    running.start()
    wait_for(lambda: not alive(old), "the orphan to be reaped")
    r = cli("start", "alice", env=env)
    assert r.returncode == 1 and "was not reopened at start-up" in r.stderr, r
    assert agent_pids(running.base / "run", "alice") == []


def test_agents_left_by_kill9_are_reaped_on_restart(running: Daemon, env: dict[str, str]) -> None:
    old = _spawn_echo(running, env)
    running.kill9()
    assert alive(old), "the agent outlives a kill -9 of its daemon (its own session)"
    running.start()
    wait_for(lambda: not alive(old), "the orphan to be reaped by the new daemon")
    sock = agent_socket(running, "alice")
    wait_for(lambda: answers(sock, {"cmd": "whoami"}), "alice's socket after restart")
    pids = agent_pids(running.base / "run", "alice")
    assert len(pids) == 1 and pids[0] != old, pids
    ok("send", "alice", "once", env=env)
    assert "alice: echo: once" in ok("inbox", "--wait", "10", env=env)


def test_kill_all_kills_every_running_agent_past_a_stopped_one(
    running: Daemon, env: dict[str, str]
) -> None:
    """`kill --all` with the first agent stopped: the others are killed all the same."""
    for name in ("alice", "bob", "carol"):
        ok("spawn", name, "--", *SLEEPER, env=env)
    ok("stop", "alice", env=env)
    assert ok("kill", "--all", env=env).strip() == "kill: all agents"
    rows = json.loads(ok("status", "--json", env=env))
    assert {r["name"]: r["running"] for r in rows["agent_statuses"]} == {
        "alice": False,
        "bob": False,
        "carol": False,
    }

# ruff: noqa: F811 - the fixtures `env` and `running` come from test_cli
"""What a new operator ran into (issue 12), each through the installed `hive-core` as a
subprocess against a real daemon subprocess where it is a CLI matter, in-process otherwise.

Every wait is the daemon's own (a long-poll, a settle woken by the exit report) or a bounded
poll of a condition; none is a fixed sleep.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from hive_core import config as config_mod
from hive_core import logs
from hive_core.app import Hive
from hive_core.surfaces.cli.systemd_unit import render
from hive_wire.blocking import call_sync
from hive_wire.client import Connection
from tests.e2e.test_cli import HIVE_CORE, REPO, Follower, cli, client_env, env, ok, running  # noqa: F401 - fixtures
from tests.helpers import SLEEPER, Daemon, agent_sock, call, make_config, spawn_idle

SH_EXIT_3 = ["sh", "-c", "exit 3"]


# --- bugs --------------------------------------------------------------------------------------
def test_a_command_that_exits_at_once_fails_the_spawn_and_shows_crashed(
    env: dict[str, str],
) -> None:
    r = cli("spawn", "crasher", "--", *SH_EXIT_3, env=env)
    assert r.returncode == 1, r
    assert "exit code 3" in r.stderr and "logs crasher" in r.stderr, r.stderr
    out = ok("status", env=env)
    assert re.search(r"^crasher\s+crashed \(exit code 3\)", out, re.M), out
    (row,) = json.loads(ok("status", "--json", env=env))["agent_statuses"]
    assert row["failed"] is True and row["exit_status"] == "exit code 3"
    ok("stop", "crasher", env=env)  # stopped on purpose: no longer a crash
    assert re.search(r"^crasher\s+stopped", ok("status", env=env), re.M)


@pytest.mark.parametrize("verb", ["start", "restart"])
def test_start_and_restart_settle_like_spawn(verb: str, env: dict[str, str]) -> None:
    """`start`/`restart` of an agent whose command dies at once fail (exit 1) with its exit
    status, as `spawn` does; with `--all`, only that agent is named and the others run."""
    assert cli("spawn", "crasher", "--settle", "0", "--", *SH_EXIT_3, env=env).returncode == 0
    ok("spawn", "bee", "--", *SLEEPER, env=env)
    r = cli(verb, "crasher", env=env)
    assert r.returncode == 1, r
    assert 'agent "crasher"' in r.stderr and "exit code 3" in r.stderr, r.stderr
    r = cli(verb, "--all", "--settle", "0.3", env=env)
    assert r.returncode == 1 and "crasher" in r.stderr and "bee" not in r.stderr, r
    rows = {
        row["name"]: row for row in json.loads(ok("status", "--json", env=env))["agent_statuses"]
    }
    assert rows["bee"]["running"] is True and rows["crasher"]["running"] is False
    assert ok(verb, "bee", env=env).strip() == f"{verb}: bee"


def test_destroy_purge_deletes_the_queued_messages_plain_destroy_keeps_them(
    running: Daemon, env: dict[str, str]
) -> None:
    sock = str(running.base / "run" / "agents" / "zed" / "mcp.sock")
    for purge in (False, True):
        ok("spawn", "zed", "--", *SLEEPER, env=env)
        ok("send", "zed", "task for the OLD zed", env=env)
        ok("destroy", "zed", *(["--purge"] if purge else []), env=env)
        ok("spawn", "zed", "--", *SLEEPER, env=env)
        got = call_sync(sock, {"cmd": "recv", "max": 32})["messages"]
        bodies = [m["body"] for m in got if m["from"] == "operator"]
        assert bodies == ([] if purge else ["task for the OLD zed"]), (purge, got)
        call_sync(sock, {"cmd": "ack_turn"})
        ok("destroy", "zed", "--purge", env=env)
    assert "no tombstones" in ok("tombstones", env=env)


def test_status_shows_the_managers_queue_without_a_manager_process(env: dict[str, str]) -> None:
    assert ok("status", env=env).splitlines() == ["no agents", "manager: no process, 0 unread"]
    for i in range(3):
        ok("send", "manager", f"note {i}", env=env)
    assert "manager: no process, 3 unread" in ok("status", env=env)
    manager = json.loads(ok("status", "--json", env=env))["manager"]
    assert manager == {"running": False, "unread": 3}


def test_systemd_unit_refuses_an_executable_its_sandbox_hides(env: dict[str, str]) -> None:
    for exe, directive in [
        ("/root/hive/.venv/bin/hive-core", "ProtectHome=yes"),
        ("/home/ann/hive/.venv/bin/hive-core", "ProtectHome=yes"),
        ("/tmp/hive/.venv/bin/hive-core", "PrivateTmp=yes"),
    ]:
        r = cli("systemd-unit", "--executable", exe, env=env)
        assert r.returncode == 2 and r.stdout == "", r
        assert directive in r.stderr and "203/EXEC" in r.stderr and "/opt/" in r.stderr, r.stderr
        with pytest.raises(ValueError, match="hides"):
            render(exe)
    assert "ExecStart=/opt/hive-core/bin/hive-core serve" in render("/opt/hive-core/bin/hive-core")


def test_systemd_unit_refuses_a_config_file_its_sandbox_hides(env: dict[str, str]) -> None:
    exe = "/opt/hive-core/bin/hive-core"
    for config, directive in [
        ("/tmp/hive.toml", "PrivateTmp=yes"),
        ("/root/hive.toml", "ProtectHome=yes"),
        ("/home/ann/hive.toml", "ProtectHome=yes"),
    ]:
        r = cli("systemd-unit", "--executable", exe, "--config", config, env=env)
        assert r.returncode == 2 and r.stdout == "", r
        assert config in r.stderr and directive in r.stderr and "/etc/" in r.stderr, r.stderr
    assert "--config /etc/hive-core/config.toml" in render(exe, config="/etc/hive-core/config.toml")


def test_pause_stops_the_echo_agent_and_resume_delivers_what_waited(env: dict[str, str]) -> None:
    ok("spawn", "alice", env=env)
    ok("send", "alice", "before", env=env)
    assert "alice: echo: before" in ok("inbox", "--wait", "10", env=env)
    ok("pause", "alice", env=env)
    ok("send", "alice", "while paused", env=env)
    # A bounded wait for an answer that must not come (alice is parked in her long-poll).
    assert ok("inbox", "--wait", "2", env=env).strip() == "no messages"
    ok("resume", "alice", env=env)
    assert "alice: echo: while paused" in ok("inbox", "--wait", "10", env=env)


def test_a_client_connects_during_a_burst_of_1000_connections(running: Daemon) -> None:
    host = running.host
    burst: list[socket.socket] = []
    started = threading.Event()

    def open_many() -> None:
        for i in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(host)  # EAGAIN for some is the burst's own business
            burst.append(s)
            if i == 100:
                started.set()

    opener = threading.Thread(target=open_many)
    opener.start()
    try:
        started.wait(30)
        for _ in range(20):  # blocking client with a timeout: EAGAIN is retried, not raised
            assert call_sync(host, {"cmd": "list"}, timeout=10) == {"agents": []}

        async def trio_client() -> None:
            async with await Connection.open(host) as conn:
                assert await conn.call({"cmd": "list"}) == {"agents": []}

        trio.run(trio_client)
        assert ok("list", env=client_env(host)).strip() == "no agents"
    finally:
        opener.join(60)
        for s in burst:
            s.close()


# --- rough edges: the CLI -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("spawn", "--json"), "Missing argument 'NAME'"),  # click's parser
        (("list", "--json", "--bogus"), "No such option"),
        (("start", "--json"), "give NAME or --all"),  # the command's own
        (("agent", "recv", "--json", "--max", "x"), "is not a valid integer"),  # a subgroup's
    ],
)
def test_usage_errors_with_json_are_an_envelope_too(
    args: tuple[str, ...], says: str, env: dict[str, str]
) -> None:
    r = cli(*args, env={**env, "HIVE_AGENT_SOCKET": "/nonexistent"})
    assert r.returncode == 2, r
    answer = json.loads(r.stdout)
    assert answer["ok"] is False and answer["code"] == "usage" and says in answer["error"], r
    assert "Usage:" in r.stderr  # and the usage on stderr as ever


def test_json_errors_are_an_envelope_on_stdout(env: dict[str, str], tmp_path: Path) -> None:
    r = cli("send", "ghost", "x", "--json", env=env)
    assert r.returncode == 1, r
    answer = json.loads(r.stdout)
    assert answer["ok"] is False and answer["code"] == "not_found" and "ghost" in answer["error"]
    r = cli("list", "--json", env=client_env(str(tmp_path / "none.sock")))
    assert r.returncode == 3 and json.loads(r.stdout)["code"] == "unreachable", r


def test_events_json_and_ctrl_c_on_follow(env: dict[str, str]) -> None:
    ok("spawn", "bob", "--", *SLEEPER, env=env)
    assert all(json.loads(line)["seq"] for line in ok("events", "--json", env=env).splitlines())
    follower = Follower(env)
    try:
        follower.until_sent(env, "bob")
        follower.proc.send_signal(signal.SIGINT)
        follower.proc.wait(timeout=30)
    finally:
        err = follower.close()
    assert follower.proc.returncode == 130, (follower.proc.returncode, err)
    assert err == "", err


@pytest.mark.parametrize(
    "verb, empty",
    [
        ("status", "no agents"),
        ("pending", "no pending approvals"),
        ("questions", "no open questions"),
        ("tombstones", "no tombstones"),
        ("dead-letters", "no dead letters"),
        ("reminders", "no reminders"),
        ("list", "no agents"),
        ("inbox", "no messages"),
    ],
)
def test_empty_listings_say_so(verb: str, empty: str, env: dict[str, str]) -> None:
    assert ok(verb, env=env).splitlines()[0] == empty


def test_spawn_help_and_docs_show_the_double_dash(env: dict[str, str]) -> None:
    assert "spawn worker -- sh -c" in ok("spawn", "--help", env=env)
    assert "spawn NAME -- " in (REPO / "docs" / "cli.md").read_text()
    ok("spawn", "worker", "--", "sh", "-c", "exec sleep 3600", env=env)


def test_usage_errors(env: dict[str, str]) -> None:
    r = cli("dead-letters", "--requeue", "1", "--drop", "2", env=env)
    assert r.returncode == 2 and "not both" in r.stderr, r
    agent = client_env(HIVE_AGENT_SOCKET="/nonexistent/mcp.sock")
    r = cli("agent", "remind", "later", env=agent)
    assert r.returncode == 2 and "--in" in r.stderr and "--at" in r.stderr, r
    assert "delay_seconds" not in r.stderr and "at_unix_timestamp" not in r.stderr


def test_cancelling_a_question_twice_says_so(running: Daemon, env: dict[str, str]) -> None:
    ok("spawn", "bob", "--", *SLEEPER, env=env)
    agent = client_env(HIVE_AGENT_SOCKET=str(running.base / "run" / "agents" / "bob" / "mcp.sock"))
    qid = ok("agent", "ask", "ready?", env=agent).split()[-1]
    assert ok("cancel-question", qid, env=env).strip() == f"cancelled {qid}"
    r = cli("cancel-question", qid, env=env)
    assert r.returncode == 1 and "already cancelled (by operator)" in r.stderr, r
    qid = ok("agent", "ask", "and now?", env=agent).split()[-1]
    ok("answer", qid, "yes", env=env)
    r = cli("cancel-question", qid, env=env)
    assert r.returncode == 1 and "already answered (by operator)" in r.stderr, r


def test_kill_of_a_stopped_agent_succeeds_like_stop(env: dict[str, str]) -> None:
    ok("spawn", "bob", "--", *SLEEPER, env=env)
    ok("stop", "bob", env=env)
    for _ in range(2):
        assert ok("kill", "bob", env=env).strip() == "kill: bob"
        assert ok("stop", "bob", env=env).strip() == "stop: bob"
    assert ok("kill", "--all", env=env).strip() == "kill: all agents"


def test_socket_paths_that_are_not_sockets(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    for path, why in [(tmp_path, "is a directory"), (plain, "is not a socket")]:
        r = cli("list", "--socket", str(path), env=client_env())
        assert r.returncode == 3 and why in r.stderr, r
        assert "not running" not in r.stderr and "[Errno" not in r.stderr, r


def test_permission_denied_names_no_group_that_does_not_exist(running: Daemon) -> None:
    if os.geteuid() == 0:
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        os.chmod(running.base, 0o755)
        r = cli("list", env=client_env(running.host), prefix=prefix)
    else:
        os.chmod(running.host, 0)
        r = cli("list", env=client_env(running.host))
        os.chmod(running.host, 0o660)
    assert r.returncode == 3 and "permission denied" in r.stderr, r
    import grp

    try:
        grp.getgrnam("hive-admin")
    except KeyError:
        assert "hive-admin" not in r.stderr, r.stderr
    assert "[Errno" not in r.stderr


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "hive.toml"
    bad.write_text('backend = "process"\nmax_deliveries = = 3\n')
    r = cli(
        "serve",
        "--config",
        str(bad),
        "--state-dir",
        str(tmp_path / "s"),
        "--run-dir",
        str(tmp_path / "r"),
        env=client_env(),
    )
    assert r.returncode == 2, r
    assert str(bad) in r.stderr and "line 2" in r.stderr, r.stderr


# --- logs ---------------------------------------------------------------------------------------
def _record(msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("hive_core.x", logging.WARNING, __file__, 1, msg, args, None)


def test_log_lines_have_a_time_unless_journald_stamps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = logs.LogfmtFormatter(stamp=True).format(_record("agent crashed name=%s", "a"))
    assert re.match(r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warning ", line), line
    with open(tmp_path / "err", "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.to_journald(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not logs.to_journald(f)


def test_log_json_puts_fields_as_keys() -> None:
    out = json.loads(
        logs.JsonFormatter(stamp=False).format(
            _record("agent crashed name=%s code=%d note=%s", "alice", 3, "exit code 3")
        )
    )
    assert out == {
        "level": "warning",
        "logger": "hive_core.x",
        "msg": "agent crashed",
        "name": "alice",
        "code": 3,
        "note": "exit code 3",
    }
    plain = json.loads(logs.JsonFormatter(stamp=False).format(_record("stopping")))
    assert plain["msg"] == "stopping"


def test_the_daemon_log_through_the_cli(running: Daemon) -> None:
    text = running.log.read_text()
    assert re.search(r"^time=\S+Z level=info logger=hive_core.daemon msg=ready ", text, re.M), text


# --- docs ---------------------------------------------------------------------------------------
def test_docs_config_lists_every_key() -> None:
    text = (REPO / "docs" / "config.md").read_text()
    missing = [
        a.name
        for a in attrs.fields(config_mod.Config)
        if f"`{a.name}`" not in text and f"`[{a.name}]`" not in text
    ]
    assert not missing, f"keys missing from docs/config.md: {missing}"


def test_readme_first_five_minutes_shows_the_id_it_prints(env: dict[str, str]) -> None:
    ok("spawn", "alice", env=env)
    ok("send", "alice", "hello", env=env)
    got = ok("inbox", "--wait", "10", env=env).strip()
    readme = (REPO / "README.md").read_text()
    assert f"# {got}" in readme, (got, re.findall(r"inbox --wait 5 .*", readme))


def test_no_license_table_in_pyproject() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "license" not in project  # the table setuptools warns about
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]


# --- the services (in-process) -------------------------------------------------------------------
async def test_a_planted_paused_symlink_does_not_make_pause_fail(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    marker = hive.paths.agent_state("alice") / "paused"
    target = hive.paths.state / "victim"
    os.symlink(target, marker)
    for paused in (True, True, False, False):
        answer = await call(host, {"cmd": "set_paused", "name": "alice", "paused": paused})
        assert answer["ok"] is True, answer
        assert marker.exists() is paused and not marker.is_symlink()
    assert not target.exists()
    os.mkdir(marker)
    answer = await call(host, {"cmd": "set_paused", "name": "alice", "paused": True})
    assert answer["ok"] is False and answer["code"] == "forbidden", answer


async def test_inboxes_drain_at_the_database_cap(dirs: Path) -> None:
    from hive_core.daemon import serve

    cfg = make_config(dirs)
    host = str(dirs / "run" / "host.sock")
    async with trio.open_nursery() as nursery:
        h: Hive = await nursery.start(serve, cfg)
        await spawn_idle(h, "alice")
        h.shutdown()
    conn = sqlite3.connect(cfg.state_dir / "hive.sqlite")
    pages, page_size = (
        conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size")
    )
    conn.close()
    capped = attrs.evolve(cfg, database_max_bytes=(pages + 20) * page_size)
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve, capped)
        sent = 0
        while True:
            answer = await call(host, {"cmd": "send", "to": "alice", "body": "x" * 3000})
            if not answer["ok"]:
                assert answer["code"] == "unavailable" and "full" in answer["error"], answer
                break
            sent += 1
        assert sent > 0
        sock = agent_sock(h, "alice")
        drained = 0
        while drained < sent:  # pops and acks at the cap: every one works
            got = await call(sock, {"cmd": "recv", "max": 32})
            assert got["ok"], got
            ids = [m["id"] for m in got["messages"]]
            assert (await call(sock, {"cmd": "ack_turn", "ids": ids}))["acked"] == len(ids)
            drained += len(ids)
        h.shutdown()


async def test_a_manager_crash_is_reported_to_the_operator(dirs: Path) -> None:
    from hive_core.daemon import serve

    cfg = make_config(dirs, manager_command=["sh", "-c", "exit 7"])
    host = str(dirs / "run" / "host.sock")
    async with trio.open_nursery() as nursery:
        h: Hive = await nursery.start(serve, cfg)
        got = await call(host, {"cmd": "inbox", "wait_seconds": 30})
        (note,) = [json.loads(m["body"]) for m in got["messages"]]
        assert note == {"event": "container_crash", "agent": "manager", "note": "exit code 7"}
        status = await call(host, {"cmd": "agent_status", "with_manager": True})
        assert status["manager"] == {"running": False, "unread": 0, "exit_status": "exit code 7"}
        h.shutdown()


async def test_a_spawn_that_stays_up_settles_without_error(hive: Hive, host: str) -> None:
    with trio.fail_after(30):
        answer = await call(
            host, {"cmd": "spawn", "name": "bee", "command": SLEEPER, "settle_seconds": 0.2}
        )
    assert answer["ok"] is True, answer
    answer = await call(
        host, {"cmd": "spawn", "name": "bad", "command": SH_EXIT_3, "settle_seconds": 5}
    )
    assert answer["ok"] is False and "exit code 3" in answer["error"], answer


def test_agent_toml_lifecycle_restart_is_checked() -> None:
    from hive_core.config_repos.agent_toml import parse_config
    from hive_wire.errors import BadRequest

    base = b'command = ["true"]\n'
    assert parse_config(base + b'[lifecycle]\nrestart = "on-crash"\n', "a")["restart"] == (
        "on-crash"
    )
    assert "restart" not in parse_config(base, "a")
    for bad in (
        b'[lifecycle]\nrestart = "always"\n',
        b"[lifecycle]\nretry = 1\n",
        b'lifecycle = "on-crash"\n',
    ):
        with pytest.raises(BadRequest, match="lifecycle"):
            parse_config(base + bad, "a")


async def test_an_agents_own_restart_setting_wins_over_the_default(hive: Hive) -> None:
    crashes = hive.lifecycle.crashes
    assert crashes.policy is not None and crashes.policy.enabled is False  # the default: off
    settings: dict[str, str | None] = {"a": "on-crash", "b": "never", "c": None}

    async def own(name: str) -> str | None:
        return settings[name]

    hive.agents.restart_setting = own  # type: ignore[method-assign]
    assert [await crashes._restarts(n) for n in "abc"] == [True, False, False]

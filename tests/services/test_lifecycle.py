"""The lifecycle through the host and manager sockets, with real child processes."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.app import Hive
from hive_core.daemon import serve
from hive_wire.client import Connection
from tests.helpers import SLEEPER, make_config, ok, refused, spawn_idle
from tests.procs import agent_pids


async def row(host: str, name: str) -> dict[str, Any]:
    rows = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"]
    return next(r for r in rows if r["name"] == name)


async def system_events(manager: str) -> list[dict[str, Any]]:
    got = await ok(manager, {"cmd": "recv", "max": 32})
    await ok(manager, {"cmd": "ack_turn"})
    return [json.loads(m["body"]) for m in got["messages"] if m["from"] == "system"]


def agent_pid(hive: Hive, name: str) -> int:
    (pid,) = agent_pids(hive.paths.run, name)
    return pid


async def test_spawn_stop_start_kill_destroy_purge(hive: Hive, host: str, manager: str) -> None:
    await spawn_idle(hive, "alice")
    assert (await row(host, "alice"))["running"] is True
    await ok(host, {"cmd": "stop", "scope": {"agent_names": ["alice"]}, "graceful": True})
    r = await row(host, "alice")
    assert r["running"] is False and "transient" not in r
    assert await system_events(manager) == []  # a stop is not a crash
    await ok(host, {"cmd": "start", "scope": {"agent_names": ["alice"]}})
    assert (await row(host, "alice"))["running"] is True
    kicked = await ok(str(hive.paths.agent_socket("alice")), {"cmd": "recv"})
    assert kicked["messages"][0]["from"] == "system"

    with trio.fail_after(10):  # the exit is reported at once, not at the next scan
        os.kill(agent_pid(hive, "alice"), signal.SIGKILL)
        got = await ok(manager, {"cmd": "recv", "wait_seconds": 10})
    assert json.loads(got["messages"][0]["body"])["event"] == "container_crash"
    assert json.loads(got["messages"][0]["body"])["agent"] == "alice"
    await ok(manager, {"cmd": "ack_turn"})
    # The in-flight kick was requeued for the next boot.
    again = await ok(str(hive.paths.agent_socket("alice")), {"cmd": "recv"})
    assert again["messages"][0]["redelivered"] is True

    await ok(host, {"cmd": "destroy", "name": "alice"})
    assert (await ok(host, {"cmd": "list"}))["agents"] == []
    assert [t["name"] for t in (await ok(host, {"cmd": "tombstones"}))["tombstones"]] == ["alice"]
    assert not hive.paths.agent_socket("alice").exists()
    assert hive.paths.agent_state("alice").is_dir()
    assert [e["event"] for e in await system_events(manager)] == ["destroyed"]
    await ok(host, {"cmd": "purge_tombstone", "name": "alice"})
    assert (await ok(host, {"cmd": "tombstones"}))["tombstones"] == []
    assert not hive.paths.agent_dir("alice").exists()
    await refused(host, {"cmd": "purge_tombstone", "name": "alice"}, "not_found")


async def test_tombstone_is_restored_by_spawning_again(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "bob")
    (hive.paths.agent_state("bob") / "memory.txt").write_text("kept")
    await ok(host, {"cmd": "destroy", "name": "bob"})
    assert [e["event"] for e in await system_events(str(hive.paths.manager_socket))] == [
        "destroyed"
    ]
    await spawn_idle(hive, "bob")
    assert (hive.paths.agent_state("bob") / "memory.txt").read_text() == "kept"
    await ok(host, {"cmd": "destroy", "name": "bob", "purge": True})
    assert not hive.paths.agent_dir("bob").exists()
    assert (await ok(host, {"cmd": "tombstones"}))["tombstones"] == []


async def test_symlinked_tombstone_is_never_followed(hive: Hive, host: str, dirs: Path) -> None:
    outside = dirs / "precious"
    outside.mkdir()
    (outside / "data").write_text("do not delete")
    os.symlink(outside, hive.paths.state / "agents" / "evil")
    assert (await ok(host, {"cmd": "tombstones"}))["tombstones"] == []
    await refused(host, {"cmd": "purge_tombstone", "name": "evil"}, "forbidden")
    assert (outside / "data").read_text() == "do not delete"


async def test_scopes_names_and_bad_input(hive: Hive, host: str, manager: str) -> None:
    await spawn_idle(hive, "a1", "a2")
    await refused(host, {"cmd": "start", "scope": {}}, "bad_request")
    await refused(host, {"cmd": "stop", "scope": {"agent_names": []}}, "bad_request")
    await refused(host, {"cmd": "start"}, "bad_request")
    await refused(host, {"cmd": "stop", "scope": {"agent_names": ["ghost"]}}, "not_found")
    for bad in ["..", "a/b", "alice\n", "-x", "x" * 64, "manager", "*"]:
        await refused(host, {"cmd": "restart", "name": bad}, "bad_request")
        await refused(host, {"cmd": "destroy", "name": bad}, "bad_request")
        await refused(host, {"cmd": "purge_tombstone", "name": bad}, "bad_request")
    await refused(manager, {"cmd": "restart", "name": "manager"}, "bad_request")
    await refused(manager, {"cmd": "destroy", "name": "a1"}, "unknown_command")
    await ok(host, {"cmd": "stop", "scope": {"agents": True}, "graceful": False})
    rows = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"]
    assert [r["running"] for r in rows] == [False, False]
    await ok(manager, {"cmd": "start", "name": "a1"})
    assert (await row(host, "a1"))["running"] is True
    await ok(manager, {"cmd": "rebuild", "name": "a1"})
    assert [e["event"] for e in await system_events(manager)] == ["rebuilt"]


async def test_pause_marker_is_idempotent_and_works_stopped(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "p1")
    await ok(host, {"cmd": "stop", "scope": {"agent_names": ["p1"]}})
    for _ in range(2):
        await ok(host, {"cmd": "set_paused", "name": "p1", "paused": True})
        assert (await row(host, "p1"))["paused"] is True
    assert (hive.paths.agent_state("p1") / "paused").exists()
    await ok(host, {"cmd": "set_paused", "name": "p1", "paused": False})
    await ok(host, {"cmd": "set_paused", "name": "p1", "paused": False})
    assert (await row(host, "p1"))["paused"] is False


async def test_status_feed_rows_in_order_and_stalled_reader(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "s1")
    stalled = await Connection.open(host)  # subscribes, then never reads
    await stalled.send({"cmd": "subscribe_agent_status"})
    async with await Connection.open(host) as feed:
        assert await feed.call({"cmd": "subscribe_agent_status"}) == {}
        with trio.fail_after(20):
            for _ in range(30):  # far more than fits a socket buffer for the stalled one
                await ok(host, {"cmd": "set_paused", "name": "s1", "paused": True})
                await ok(host, {"cmd": "set_paused", "name": "s1", "paused": False})
            await ok(host, {"cmd": "restart", "name": "s1"})
            seen: list[dict[str, Any]] = []
            restarted = False
            while not (restarted and seen[-1].get("transient") is None):
                answer = await feed.read()
                assert list(answer) == ["version", "ok", "agent_statuses"]
                (r,) = answer["agent_statuses"]
                seen.append(r)
                restarted = restarted or r.get("transient") == "restarting"
    assert [r["paused"] for r in seen[:60]] == [True, False] * 30
    assert seen[-1]["running"] is True
    transients = [r.get("transient") for r in seen if r.get("transient")]
    assert transients and set(transients) == {"restarting"}
    await stalled.aclose()


async def test_logs_of_a_process_agent(hive: Hive, host: str) -> None:
    # The child logs two lines, then tells the operator it did (so the test waits on an event).
    script = (
        f"echo line-one; echo line-two; {sys.executable} -m hive_core agent send "
        "operator logged; exec sleep 3600"
    )
    await ok(host, {"cmd": "spawn", "name": "talker", "command": ["/bin/sh", "-c", script]})
    got = await ok(host, {"cmd": "inbox", "wait_seconds": 30})
    assert [m["body"] for m in got["messages"]] == ["logged"]
    lines = (await ok(host, {"cmd": "logs", "name": "talker", "lines": 5}))["lines"]
    assert lines[:2] == ["line-one", "line-two"]
    assert (await ok(host, {"cmd": "logs", "name": "talker", "lines": 1}))["lines"] == lines[-1:]
    await refused(host, {"cmd": "logs", "name": "ghost"}, "not_found")
    await refused(host, {"cmd": "logs", "name": "talker", "lines": -1}, "bad_request")


async def test_stopped_agent_stays_stopped_across_restart(dirs: Path) -> None:
    from hive_core.daemon import serve
    from tests.helpers import make_config

    cfg = make_config(dirs)
    async with trio.open_nursery() as nursery:
        h: Hive = await nursery.start(serve, cfg)
        host = str(h.paths.host_socket)
        await ok(host, {"cmd": "spawn", "name": "up", "command": SLEEPER})
        await ok(host, {"cmd": "spawn", "name": "down", "command": SLEEPER})
        await ok(host, {"cmd": "stop", "scope": {"agent_names": ["down"]}})
        h.shutdown()
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve, cfg)
        rows = (await ok(str(h.paths.host_socket), {"cmd": "agent_status"}))["agent_statuses"]
        assert {r["name"]: r["running"] for r in rows} == {"down": False, "up": True}
        h.shutdown()


class TestRestartPolicy:
    # Real time (the children are real processes: a mock clock would jump while they exit),
    # with a back-off short enough to take a fraction of a second.
    @pytest.fixture
    def hive_config(self) -> dict[str, Any]:
        return {
            "restart_on_crash": True,
            "restart_max_crashes": 3,
            "restart_window": 600,
            "restart_backoff": 0.01,
            "restart_backoff_max": 60,
        }

    async def test_backs_off_then_gives_up(self, hive: Hive, host: str, manager: str) -> None:
        # An agent that dies at once, every time it is started.
        await ok(host, {"cmd": "spawn", "name": "flaky", "command": ["/bin/false"]})
        notes: list[str] = []
        with trio.fail_after(30):
            while not any("gave up" in n for n in notes):
                got = await ok(manager, {"cmd": "recv", "wait_seconds": 30, "max": 32})
                await ok(manager, {"cmd": "ack_turn"})
                bodies = [json.loads(m["body"]) for m in got["messages"]]
                notes += [b["note"] for b in bodies if b["event"] == "container_crash"]
        assert [n.split("; ")[1] for n in notes] == [
            "restarting in 0.01 s",
            "restarting in 0.02 s",
            "restarting in 0.04 s",
            "gave up restarting after 4 crashes in 600 s",
        ]
        assert (await row(host, "flaky"))["running"] is False


class TestCrashWatcher:
    # Real time (real children) and a fast scan; the crash policy is on, so a stop taken for a
    # crash would also show as a restart.
    @pytest.fixture
    def hive_config(self) -> dict[str, Any]:
        return {"crash_scan": 0.02, "restart_on_crash": True, "restart_backoff": 0.01}

    async def test_a_stop_or_a_kill_is_never_a_crash_at_a_later_scan(
        self, hive: Hive, host: str, manager: str
    ) -> None:
        await spawn_idle(hive, "alice", "bob")
        with trio.fail_after(10):
            await hive.lifecycle.crashes.scanned(2)  # the watcher has seen both running
        assert hive.lifecycle.crashes.seen_running == {"alice", "bob"}
        await ok(host, {"cmd": "stop", "scope": {"agent_names": ["alice"]}, "graceful": True})
        await ok(host, {"cmd": "kill", "name": "bob"})
        with trio.fail_after(10):
            await hive.lifecycle.crashes.scanned(5)  # scans after them: none may call a crash
        assert [e["event"] for e in await system_events(manager)] == ["killed"]
        assert [((await row(host, n))["running"]) for n in ("alice", "bob")] == [False, False]


STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)",
]


async def test_nothing_starts_while_the_daemon_stops_its_agents(dirs: Path) -> None:
    """A crash restart that falls due while the daemon waits for a stubborn agent to stop is
    not carried out: when `serve` returns, no agent of it runs."""
    cfg = make_config(dirs, restart_on_crash=True, restart_backoff=0.2, stop_grace=1.0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            hive: Hive = await nursery.start(serve, cfg)
            manager, host = str(hive.paths.manager_socket), str(hive.paths.host_socket)
            for name, command in (("stubborn", STUBBORN), ("crashy", SLEEPER)):
                await ok(host, {"cmd": "spawn", "name": name, "command": command})
            await ok(manager, {"cmd": "recv", "max": 2})  # the two `spawned`
            await ok(manager, {"cmd": "ack_turn"})
            os.kill(agent_pid(hive, "crashy"), signal.SIGKILL)
            got = await ok(manager, {"cmd": "recv", "wait_seconds": 5})  # restarting in 0.2 s
            assert "restarting in 0.2 s" in json.loads(got["messages"][0]["body"])["note"]
            hive.shutdown()
    assert agent_pids(dirs / "run") == []

"""Start-up and shutdown as operations.md says: sd_notify, modes, path rules, planted symlinks."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from hive_core.app import Hive
from hive_core.daemon import serve
from hive_wire.errors import Forbidden
from tests.helpers import SLEEPER, Daemon, call, make_config, spawn_idle
from tests.procs import agent_pids


def test_ready_status_and_watchdog_reach_systemd(dirs: Path) -> None:
    notify = dirs / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(str(notify))
        sd.settimeout(20)
        d = Daemon(dirs, {"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "2000000"})
        d.start()
        try:
            seen: list[str] = []
            while not any(f.startswith("WATCHDOG=1") for f in seen):
                seen += sd.recv(4096).decode().split("\n")
            assert "READY=1" in seen
            assert any(f.startswith("STATUS=0 agents, 0 messages pending") for f in seen)
            assert d.stop() == 0
            while "STOPPING=1" not in seen:  # the datagrams are queued; recv times out if absent
                seen += sd.recv(4096).decode().split("\n")
        finally:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()


def test_run_dir_too_long_is_a_clear_startup_error(dirs: Path) -> None:
    long_run = dirs / ("r" * 60)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hive_core",
            "serve",
            "--state-dir",
            str(dirs / "s"),
            "--run-dir",
            str(long_run),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "too long" in proc.stderr and "107" in proc.stderr
    assert not long_run.exists()


async def test_socket_and_dir_modes(hive: Hive, host: str) -> None:
    assert stat.S_IMODE(os.stat(hive.paths.run).st_mode) == 0o751
    assert stat.S_IMODE(os.stat(host).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(hive.paths.manager_socket).st_mode) == 0o660
    answer = await call(host, {"cmd": "spawn", "name": "alice", "command": SLEEPER})
    assert answer["ok"]
    assert stat.S_IMODE(os.stat(hive.paths.agent_socket("alice")).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(hive.paths.agent_run_dir("alice")).st_mode) == 0o750


@pytest.mark.parametrize("where", ["state", "run"])
async def test_planted_symlink_is_never_followed(
    hive: Hive, host: str, dirs: Path, where: str
) -> None:
    outside = dirs / "outside"
    outside.mkdir()
    root = hive.paths.state if where == "state" else hive.paths.run
    os.symlink(outside, root / "agents" / "mallory")
    answer = await call(host, {"cmd": "spawn", "name": "mallory", "command": SLEEPER})
    assert answer["ok"] is False and answer["code"] == "forbidden"
    assert list(outside.iterdir()) == []
    assert (await call(host, {"cmd": "list"}))["agents"] == []
    assert os.path.islink(root / "agents" / "mallory")  # left as found, not followed


async def test_spawn_that_cannot_start_leaves_nothing(hive: Hive, host: str) -> None:
    answer = await call(
        host, {"cmd": "spawn", "name": "ghost", "command": ["/nonexistent/agent-binary"]}
    )
    assert answer["ok"] is False and answer["code"] == "unavailable"
    assert (await call(host, {"cmd": "list"}))["agents"] == []
    assert not hive.paths.agent_dir("ghost").exists()
    assert not hive.paths.agent_socket("ghost").exists()
    assert not hive.paths.agent_run_dir("ghost").exists()
    again = await call(host, {"cmd": "spawn", "name": "ghost", "command": SLEEPER})
    assert again["ok"], again


async def test_a_start_that_fails_late_stops_the_agents_it_started(dirs: Path) -> None:
    """Start-up fails after the agents were started (here: a directory where the host socket
    goes, the last thing bound): they are stopped, not left running without a daemon."""
    cfg = make_config(dirs)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            hive: Hive = await nursery.start(serve, cfg)
            await spawn_idle(hive, "alice")
            hive.shutdown()
        (dirs / "run" / "host.sock").mkdir()
        with pytest.raises(BaseExceptionGroup) as failed:
            async with trio.open_nursery() as nursery:
                await nursery.start(serve, cfg)
        assert failed.group_contains(Forbidden, match="not a socket")
    assert agent_pids(dirs / "run", "alice") == []

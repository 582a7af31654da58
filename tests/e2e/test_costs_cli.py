"""`hive-core costs` end to end: the installed console script against a daemon subprocess, with
turns of known cost reported on an agent socket as its harness would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hive_wire.blocking import call_sync
from tests.helpers import SLEEPER, Daemon

HIVE_CORE = str(Path(sys.executable).parent / "hive-core")


@pytest.fixture
def running(daemon: Daemon) -> Iterator[Daemon]:
    daemon.env = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_")}
    daemon.start()
    yield daemon
    assert daemon.stop() == 0  # SIGTERM: its agents are stopped with it


def cli(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "HIVE_HOST_SOCKET": d.host}
    return subprocess.run(
        [HIVE_CORE, "costs", *args], env=env, capture_output=True, text=True, timeout=30
    )


def report(d: Daemon, name: str, cost: float, ids: list[int]) -> None:
    sock = str(d.base / "run" / "agents" / name / "mcp.sock")
    call_sync(
        sock,
        {
            "cmd": "activity",
            "events": [
                {
                    "kind": "turn_end",
                    "ok": True,
                    "result_kind": "ok",
                    "duration_ms": 10,
                    "usage": {
                        "input_tokens": 1234,
                        "output_tokens": 56,
                        "cache_read_tokens": 7890,
                        "cache_creation_tokens": 12,
                    },
                    "cost_usd": cost,
                    "message_ids": ids,
                }
            ],
        },
    )


def test_costs_table_json_and_threads(running: Daemon) -> None:
    for name in ("alice", "bob"):
        call_sync(running.host, {"cmd": "spawn", "name": name, "command": SLEEPER})
    first = call_sync(running.host, {"cmd": "send", "to": "alice", "body": "audit the logs"})["id"]
    report(running, "alice", 0.42, [first])
    report(running, "alice", 0.0042, [first])
    done = cli(running)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["AGENT", "TURNS", "INPUT", "OUTPUT"]
    alice = next(line for line in lines if line.startswith("alice"))
    assert alice.split()[:7] == ["alice", "2", "2,468", "112", "15,780", "24", "$0.42"]
    assert next(line for line in lines if line.startswith("bob")).split()[1] == "0"
    as_json = json.loads(cli(running, "--json", "--agent", "alice").stdout)
    assert as_json["ok"] is True and [a["agent"] for a in as_json["agents"]] == ["alice"]
    assert as_json["agents"][0]["cost_usd"] == pytest.approx(0.4242)
    threads = cli(running, "--by-thread")
    assert threads.returncode == 0
    assert "THREAD" in threads.stdout and "audit the logs" in threads.stdout
    assert f"{first}" in threads.stdout.split("THREAD", 1)[1]
    since = json.loads(cli(running, "--json", "--since", "2999-01-01T00:00:00Z").stdout)
    assert all(a["turns"] == 0 for a in since["agents"])
    bad = cli(running, "--since", "soon")
    assert bad.returncode == 1 and "since" in bad.stderr
    nobody = cli(running, "--agent", "nobody")
    assert nobody.returncode == 1 and "not_found" in nobody.stderr

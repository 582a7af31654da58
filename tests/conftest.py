"""Shared fixtures: a real daemon on short temporary directories, talked to over its sockets.

- `dirs`: a short temporary directory (unix socket paths are limited to 107 bytes, and pytest's
  `tmp_path` can be long) with `state/` and `run/` inside;
- `hive`: `serve()` started in the test's nursery with `nursery.start` (so it is ready), shut
  down cleanly at the end of the test;
- `host`, `manager`, `agent_sock`: socket paths;
- `start_daemon` (sync): the installed `hive-core serve` as a subprocess, for kill -9 and signal
  tests; waits for the host socket to answer, never sleeps a fixed time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core import config as config_mod
from hive_core.app import Hive
from hive_core.daemon import serve
from hive_wire.client import Connection


@pytest.fixture
def dirs() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hc", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def make_config(base: Path, **overrides: Any) -> config_mod.Config:
    return config_mod.load(None, str(base / "state"), str(base / "run"), **overrides)


@pytest.fixture
def hive_config(dirs: Path) -> dict[str, Any]:
    """Overrides for the `hive` fixture's config (tests may update it before using `hive`)."""
    return {}


@pytest.fixture
async def hive(
    dirs: Path, hive_config: dict[str, Any], request: pytest.FixtureRequest
) -> AsyncIterator[Hive]:
    # Under an autojumping clock the store and blocking work run inline (config `inline_io`);
    # every other test runs the store thread and its group commit, as production does.
    inline = "autojump_clock" in request.fixturenames
    cfg = make_config(dirs, **{"inline_io": inline, **hive_config})
    async with trio.open_nursery() as nursery:
        h: Hive = await nursery.start(serve, cfg)
        try:
            yield h
        finally:
            h.shutdown()


@pytest.fixture
def host(hive: Hive) -> str:
    return str(hive.paths.host_socket)


@pytest.fixture
def manager(hive: Hive) -> str:
    return str(hive.paths.manager_socket)


def agent_sock(hive: Hive, name: str) -> str:
    return str(hive.paths.agent_socket(name))


async def call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The raw envelope of one request on a fresh connection."""
    async with await Connection.open(path) as conn:
        await conn.send(request)
        return await conn.read()


async def spawn_idle(hive: Hive, *names: str) -> None:
    """Spawn agents whose process just sleeps (the test plays the agent over its socket), and
    consume the manager's `spawned` helper events, so tests start from an empty manager inbox."""
    manager = str(hive.paths.manager_socket)
    for name in names:
        answer = await call(str(hive.paths.host_socket),
                            {"cmd": "spawn", "name": name, "command": SLEEPER})
        assert answer["ok"], answer
        got = await call(manager, {"cmd": "recv"})
        assert [json.loads(m["body"]) for m in got["messages"]] == [
            {"event": "spawned", "agent": name}], got
        assert (await call(manager, {"cmd": "ack_turn"}))["acked"] == 1


SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]


# --- the daemon as a subprocess ------------------------------------------------------------
class Daemon:
    def __init__(self, base: Path, extra_env: dict[str, str] | None = None) -> None:
        self.base = base
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "daemon.log"

    @property
    def host(self) -> str:
        return str(self.base / "run" / "host.sock")

    def start(self, timeout: float = 20.0) -> None:
        from hive_wire.blocking import call_sync

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hive_core", "serve", "--state-dir",
                 str(self.base / "state"), "--run-dir", str(self.base / "run")],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
        deadline = time.monotonic() + timeout
        while True:  # readiness: the host socket answers (polled, bounded; not a fixed sleep)
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()}")
            try:
                call_sync(self.host, {"cmd": "list"}, timeout=5)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def daemon(dirs: Path) -> Iterator[Daemon]:
    d = Daemon(dirs)
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()

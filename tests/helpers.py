"""What the tests share, written once: one client (`call`, `ok`, `refused`, `send`), one daemon
runner as a subprocess that waits for `READY=1` (`Daemon`), and the in-process helpers
(`make_config`, `agent_sock`, `spawn_idle`). Fixtures are in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hive_core import config as config_mod
from hive_core.app import Hive
from hive_wire.client import Connection


def make_config(base: Path, **overrides: Any) -> config_mod.Config:
    return config_mod.load(None, str(base / "state"), str(base / "run"), **overrides)


async def ok(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The answer of a request that must succeed."""
    answer = await call(path, request)
    assert answer["ok"] is True, answer
    return answer


async def refused(path: str, request: dict[str, Any], code: str | None = None) -> str:
    """The code of a request that must be refused, in the error envelope's exact shape."""
    answer = await call(path, request)
    assert answer["ok"] is False, (request, answer)
    assert list(answer) == ["version", "ok", "error", "code"], answer
    assert answer["error"], answer
    if code is not None:
        assert answer["code"] == code, (request, answer)
    return str(answer["code"])


async def send(path: str, to: str, body: str) -> int:
    return int((await ok(path, {"cmd": "send", "to": to, "body": body}))["id"])


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
        answer = await call(
            str(hive.paths.host_socket), {"cmd": "spawn", "name": name, "command": SLEEPER}
        )
        assert answer["ok"], answer
        got = await call(manager, {"cmd": "recv"})
        assert [json.loads(m["body"]) for m in got["messages"]] == [
            {"event": "spawned", "agent": name}
        ], got
        assert (await call(manager, {"cmd": "ack_turn"}))["acked"] == 1


SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]


# --- the daemon as a subprocess ------------------------------------------------------------
class Daemon:
    """`hive-core serve` as a subprocess: `python -m hive_core` by default, or `command` (the
    installed console script, as a user runs it)."""

    def __init__(
        self,
        base: Path,
        extra_env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.base = base
        self.command = command or [sys.executable, "-m", "hive_core"]
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "daemon.log"

    @property
    def host(self) -> str:
        return str(self.base / "run" / "host.sock")

    def start(self, timeout: float = 20.0) -> None:
        """Start `hive-core serve` and return once it said `READY=1` (through its own
        NOTIFY_SOCKET; a test that reads the notifications itself passes NOTIFY_SOCKET in
        `extra_env`, and readiness is then the host socket answering)."""
        from hive_wire.blocking import call_sync

        ready: socket.socket | None = None
        env = dict(self.env)
        if "NOTIFY_SOCKET" not in env:
            path = self.base / "ready.sock"
            path.unlink(missing_ok=True)
            ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            ready.bind(str(path))
            ready.settimeout(0.2)
            env["NOTIFY_SOCKET"] = str(path)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--state-dir",
                    str(self.base / "state"),
                    "--run-dir",
                    str(self.base / "run"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited: {self.log.read_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no READY=1 within {timeout} s: {self.log.read_text()}")
                if ready is not None:
                    try:
                        if b"READY=1" in ready.recv(4096).split(b"\n"):
                            return
                    except TimeoutError:
                        pass  # only to look at the process again
                    continue
                try:
                    call_sync(self.host, {"cmd": "list"}, timeout=5)
                    return
                except OSError:
                    time.sleep(0.02)
        finally:
            if ready is not None:
                ready.close()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

"""One Claude turn, end to end: the real Claude Code CLI (tests/agent/claude-code) against the
fake Messages API (tests/agent/fake_api.py), the harness (`hive_core.agent.loop.Harness`) run in
this process over the agent socket of a real daemon (a subprocess).

Each turn: a message from the operator to the agent (`a-stdio`, `a-http`); the fake API asks for `mcp__hive__send` to bob,
then answers text. Measured per turn:
- wake: the message sent (host socket) -> the fake API got the turn's first model request (the
  CLI started, its MCP server `hive` connected and listed, the prompt built);
- turn: the message sent -> the turn ended and was acked (the harness's count of turns).
For each `--mcp` mode (`stdio`: `hive-core mcp` started by claude per turn; `http`: the
harness's own endpoint), `--turns` turns after one warm-up turn.

    sh tests/agent/install-claude-code.sh
    .venv/bin/python bench/turn.py [--turns 30] [--mcp stdio --mcp http]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

# bench/ itself off the path: its mcp.py would shadow the SDK the harness imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header  # noqa: E402
from hive_core.agent.loop import Harness, Options  # noqa: E402
from hive_wire.blocking import call_sync  # noqa: E402
from tests.agent import fake_api as fake  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = ROOT / "tests" / "agent" / "claude-code" / "node_modules" / ".bin" / "claude"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def figures(xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return f"p50 {pct(ms, 50):7.1f} ms  p99 {pct(ms, 99):7.1f} ms  max {max(ms):7.1f} ms"


def claude_env(api: fake.FakeAPI, home: Path) -> dict[str, str]:
    keep = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "HIVE_"))
    }
    return {
        **keep,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": api.url,
        "ANTHROPIC_API_KEY": "fake-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }


async def turns(
    mode: str, n: int, host: str, name: str, socket: str, bob: str, state: Path, home: Path
) -> tuple[list[float], list[float]]:
    wake: list[float] = []
    whole: list[float] = []
    with fake.running() as api:
        opts = Options(
            socket=socket,
            state_dir=state,
            claude_command=[str(CLAUDE)],
            model="claude-sonnet-4-5",
            env=claude_env(api, home),
            recv_wait=5,
            turn_timeout=120,
        )
        if "mcp" in {a.name for a in attrs.fields(Options)}:
            opts = attrs.evolve(opts, mcp=mode)  # type: ignore[misc]
        elif mode != "stdio":
            raise SystemExit(f"this harness has no --mcp {mode}")
        h = Harness(opts)
        async with trio.open_nursery() as nursery:
            await nursery.start(h.run)
            for i in range(n + 1):
                api.add(
                    fake.tool("mcp__hive__send", {"to": "bob", "body": f"turn {i}"}),
                    fake.text("sent"),
                )
                before = len(api.arrivals)
                done = h.completed
                t0 = time.monotonic()
                call_sync(host, {"cmd": "send", "to": name, "body": f"job {i}"})
                with trio.fail_after(120):
                    while h.completed == done:
                        await h.progress.park()
                t2 = time.monotonic()
                if i == 0:
                    continue  # warm-up (first session, first imports)
                wake.append(api.arrivals[before] - t0)
                whole.append(t2 - t0)
                assert h.turns == h.completed == i + 1, "a turn failed"
            h.stop()
    got = call_sync(bob, {"cmd": "recv", "max": 100, "wait_seconds": 0})
    assert len(got["messages"]) == n + 1, f"bob got {len(got['messages'])} of {n + 1}"
    call_sync(bob, {"cmd": "ack_turn", "ids": [m["id"] for m in got["messages"]]})
    return wake, whole


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--mcp", action="append", choices=["stdio", "http"])
    args = ap.parse_args()
    modes = args.mcp or ["stdio", "http"]
    if not os.access(CLAUDE, os.X_OK):
        raise SystemExit(f"no Claude Code at {CLAUDE}: sh tests/agent/install-claude-code.sh")
    header("turn.py")
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    base = Path(tempfile.mkdtemp(prefix="hbt", dir="/tmp"))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hive_core", "serve", "--state-dir", str(base / "s"),
         "--run-dir", str(base / "r")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    host = str(base / "r" / "host.sock")
    try:
        deadline = time.monotonic() + 30
        while True:  # readiness: the host socket answers
            try:
                call_sync(host, {"cmd": "list"}, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        results: dict[str, Any] = {}
        for mode in modes:
            name = f"a-{mode}"
            call_sync(host, {"cmd": "spawn", "name": name, "command": SLEEPER})
            if "bob" not in call_sync(host, {"cmd": "list"})["agents"]:
                call_sync(host, {"cmd": "spawn", "name": "bob", "command": SLEEPER})
            socket = str(base / "r" / "agents" / name / "mcp.sock")
            bob = str(base / "r" / "agents" / "bob" / "mcp.sock")
            state = base / "s" / "agents" / name / "state"
            home = base / f"home-{mode}"
            home.mkdir()
            results[mode] = trio.run(turns, mode, args.turns, host, name, socket, bob, state, home)
        for mode, (wake, whole) in results.items():
            print(f"--mcp {mode:5s} sent -> first model request: {figures(wake)}  (n={len(wake)})")
            print(
                f"--mcp {mode:5s} sent -> turn acked:          {figures(whole)}  (n={len(whole)})"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

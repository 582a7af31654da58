"""The agent side's wake-up (quality.md): a message sent -> the claude command started.

A real daemon (a subprocess) and the harness (`hive_core.agent.loop.Harness`, in this process,
over its agent socket, its MCP endpoint up once); the claude command is a stand-in shell line
that writes the time it started and answers one OK `result` line, so only the harness's own
path is measured: long-poll wake-up, the wake prompt, the config file, the process start.

    .venv/bin/python bench/wake.py [--messages 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

# bench/ itself off the path: its mcp.py would shadow the SDK the harness imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, mark  # noqa: E402
from bench.turn import SLEEPER, figures, pct  # noqa: E402
from hive_core.agent.loop import Harness, Options  # noqa: E402
from hive_wire.blocking import call_sync  # noqa: E402
from tests.helpers import Daemon  # noqa: E402

RESULT = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1,
          "result": "ok", "session_id": "wake", "total_cost_usd": 0.0, "usage": {}}  # fmt: skip


async def wakes(n: int, host: str, socket: str, state: Path, stamps: Path) -> list[float]:
    line = json.dumps(RESULT)
    claude = ["sh", "-c", f"date +%s.%N >> {stamps}; cat > /dev/null; echo '{line}'", "claude"]
    opts = Options(socket=socket, state_dir=state, claude_command=claude, recv_wait=30)
    h = Harness(opts)
    sent: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(h.run)
        for i in range(n + 1):
            done = h.completed
            sent.append(time.time())
            call_sync(host, {"cmd": "send", "to": "w", "body": f"job {i}"})
            with trio.fail_after(60):
                while h.completed == done:
                    await h.progress.park()
        h.stop()
    started = [float(x) for x in stamps.read_text().split()]
    assert len(started) == n + 1, f"{len(started)} starts for {n + 1} messages"
    return [b - a for a, b in zip(sent, started, strict=True)][1:]  # the first: warm-up


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200)
    args = ap.parse_args()
    header("wake.py")
    os.environ["HIVE_DASHBOARD"] = "off"
    base = Path(tempfile.mkdtemp(prefix="hbw", dir="/tmp"))
    daemon = Daemon(base)
    try:
        daemon.start()
        call_sync(daemon.host, {"cmd": "spawn", "name": "w", "command": SLEEPER})
        socket = str(base / "run" / "agents" / "w" / "mcp.sock")
        state = base / "state" / "agents" / "w" / "state"
        lat = trio.run(wakes, args.messages, daemon.host, socket, state, base / "stamps")
        p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
        print(f"sent -> claude command started: {figures(lat)}  (n={len(lat)})")
        print(f"target p50 <= 50 ms [{mark(p50 <= 50)}], p99 <= 200 ms [{mark(p99 <= 200)}]")
        return 0 if p50 <= 50 and p99 <= 200 else 1
    finally:
        if daemon.proc is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

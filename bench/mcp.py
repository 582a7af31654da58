"""`hive-core mcp`: start-up (process start -> `initialize` answered, and -> `tools/list`
answered) and the latency of a `send` tool call with the server up, against a real daemon.
The client speaks raw JSON-RPC lines over the server's pipes (as Claude Code does), so its own
cost is near nothing; the same `send` straight on the agent socket is the baseline.

    .venv/bin/python bench/mcp.py [--starts 20] [--calls 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, mark  # noqa: E402
from hive_wire.blocking import BlockingConnection, call_sync  # noqa: E402

SERVER = [sys.executable, "-m", "hive_core.agent.mcp"]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def figures(xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return f"p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms (n={len(ms)})"


class Server:
    def __init__(self, socket: str) -> None:
        env = {**os.environ, "HIVE_AGENT_SOCKET": socket}
        self.proc = subprocess.Popen(
            SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        self.next_id = 1

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.next_id += 1
        return self.raw(msg)

    def raw(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the server closed its stdout")
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") == msg["id"]:
                return answer

    def notify(self, method: str) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    header("mcp.py")
    base = Path(tempfile.mkdtemp(prefix="hbm", dir="/tmp"))
    daemon = subprocess.Popen(
        [*SERVER[:2], "hive_core", "serve", "--state-dir", str(base / "s"), "--run-dir",
         str(base / "r")],
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
        for name in ("alice", "bob"):
            call_sync(host, {"cmd": "spawn", "name": name, "command": SLEEPER})
        alice = str(base / "r" / "agents" / "alice" / "mcp.sock")
        bob = str(base / "r" / "agents" / "bob" / "mcp.sock")

        for code in ("pass", "import trio", "import mcp.server.lowlevel"):
            imp = []
            for _ in range(5):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True)
                imp.append(time.perf_counter() - t)
            print(f"baseline: python -c {code!r}, whole process: {figures(imp)}")

        init, listed = [], []
        for _ in range(args.starts):
            t = time.perf_counter()
            s = Server(alice)
            got = s.raw(INIT)
            init.append(time.perf_counter() - t)
            assert "result" in got, got
            s.notify("notifications/initialized")
            tools = s.request("tools/list")
            listed.append(time.perf_counter() - t)
            assert len(tools["result"]["tools"]) == 10, tools
            s.close()
        print(f"start-up, process start -> initialize answered: {figures(init)}")
        print(f"start-up, process start -> tools/list answered: {figures(listed)}")

        s = Server(alice)
        s.raw(INIT)
        s.notify("notifications/initialized")
        s.request("tools/list")
        call = {"name": "send", "arguments": {"to": "bob", "body": "bench"}}
        for _ in range(20):  # warm-up
            s.request("tools/call", call)
        lat = []
        for _ in range(args.calls):
            t = time.perf_counter()
            got = s.request("tools/call", call)
            lat.append(time.perf_counter() - t)
            assert got["result"]["isError"] is False, got
        s.close()
        direct = []
        with BlockingConnection(alice) as conn:
            for _ in range(args.calls):
                t = time.perf_counter()
                conn.call({"cmd": "send", "to": "bob", "body": "bench"})
                direct.append(time.perf_counter() - t)
        p50 = pct(lat, 50) * 1000
        print(
            f"send through hive-core mcp (tools/call): {figures(lat)}  "
            f"(target p50 <= 10 ms: {mark(p50 <= 10)})"
        )
        print(f"send straight on the agent socket (baseline): {figures(direct)}")
        print(f"mcp overhead per call, p50: {p50 - pct(direct, 50) * 1000:.2f} ms")
        print(f"bob's unread: {call_sync(bob, {'cmd': 'status'})['unread']}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

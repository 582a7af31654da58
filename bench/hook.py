"""`hive-core hook`: the wall time of the whole hook process (start to exit), as Claude Code pays
it on every tool call, with the daemon up (the event is forwarded and answered), down (no
socket) and mute (a socket that accepts and never answers); for `python -m
hive_core.agent.hook` (the documented hook command) and the `hive-core hook` console script.

    .venv/bin/python bench/hook.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, mark  # noqa: E402
from hive_wire.blocking import call_sync  # noqa: E402

MODULE = [sys.executable, "-m", "hive_core.agent.hook"]
SCRIPT = [str(Path(sys.executable).parent / "hive-core"), "hook"]
HOOK_JSON = json.dumps(
    {
        "session_id": "5e1f0c2a-9b7d-4c1e-8f3a-0d2b6c4e8a11",
        "transcript_path": "/tmp/t.jsonl",
        "cwd": "/tmp",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_use_id": "toolu_01",
    }
).encode()


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def runs(cmd: list[str], sock: str, n: int) -> list[float]:
    env = {**os.environ, "HIVE_HOST_SOCKET": sock}
    out = []
    for _ in range(n):
        t = time.perf_counter()
        done = subprocess.run(cmd, input=HOOK_JSON, env=env, capture_output=True)
        out.append(time.perf_counter() - t)
        assert done.returncode == 0 and not done.stdout and not done.stderr, done
    return out


def report(label: str, xs: list[float], mute: bool = False) -> None:
    """Targets: p50 <= 100 ms and p99 <= 200 ms (daemon up or down); a mute daemon only
    bounds the hook by its promise, exit within 200 ms (p99)."""
    p50, p99 = pct(xs, 50) * 1000, pct(xs, 99) * 1000
    ok = p99 <= 200 and (mute or p50 <= 100)
    target = "p99 <= 200" if mute else "p50 <= 100, p99 <= 200"
    print(
        f"{label:44s} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {max(xs) * 1000:6.1f} ms  "
        f"(n={len(xs)}; target {target}: {mark(ok)})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    header("hook.py")
    base = Path(tempfile.mkdtemp(prefix="hbh", dir="/tmp"))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hive_core", "serve", "--state-dir", str(base / "s"),
         "--run-dir", str(base / "r")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    host = str(base / "r" / "host.sock")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(base / "mute.sock"))
    mute.listen(4096)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                call_sync(host, {"cmd": "list"}, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        base_py = []
        for _ in range(args.runs // 4):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            base_py.append(time.perf_counter() - t)
        print(
            f"{'baseline: python -c pass':44s} p50 {pct(base_py, 50) * 1000:6.1f} ms  "
            f"p99 {pct(base_py, 99) * 1000:6.1f} ms"
        )
        for label, cmd in (("python -m hive_core.agent.hook", MODULE), ("hive-core hook", SCRIPT)):
            report(f"{label}, daemon up", runs(cmd, host, args.runs))
            report(f"{label}, daemon down", runs(cmd, str(base / "none.sock"), args.runs))
            mute_runs = runs(cmd, str(base / "mute.sock"), max(args.runs // 4, 10))
            report(f"{label}, daemon mute", mute_runs, mute=True)
            while True:  # empty the mute socket's backlog between commands
                mute.settimeout(0)
                try:
                    mute.accept()[0].close()
                except BlockingIOError:
                    break
        stats = call_sync(host, {"cmd": "stats"})
        print(f"daemon still serving: {stats['agents']} agents")
    finally:
        mute.close()
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

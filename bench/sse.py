"""The dashboard's stream under load (spec/quality.md): 100 SSE subscribers at 1,000 events/s,
every event delivered, p99 latency publish → received ≤ 50 ms, and a frozen subscriber (it
connects and never reads) beside them changes nothing.

Two processes. The daemon (`--serve`, started by this script): `serve()` with the dashboard on
127.0.0.1:0, and a publisher task that, once told to go, publishes `agent_activity` events
straight into the daemon's `EventChannel` (in-process: what every service does) at the rate,
ten every 10 ms, each carrying its publish time (`time.time()`) in its preview. This script: the
subscribers, each a raw TCP connection reading `/dashboard/stream` (frames found by their
`id:` line; the payload's time read without decoding the JSON), recording received − published
for every event. Both clocks are this machine's wall clock.

Run: `.venv/bin/python bench/sse.py [--subscribers 100] [--rate 1000] [--seconds 5]`
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import header, mark  # noqa: E402

FRAME = re.compile(rb"id: (\d+)\ndata: [^\n]*?\"preview\":\"(\d+) ([0-9.]+)\"")
LAGGED = b'"kind":"lagged"'


# --- the daemon side -------------------------------------------------------------------------
async def serve_and_publish(base: Path, rate: int, seconds: float) -> None:
    from hive_core import config as config_mod
    from hive_core.daemon import serve
    from hive_wire import events as ev

    cfg = config_mod.load(
        None, str(base / "state"), str(base / "run"), dashboard_listen="127.0.0.1:0"
    )
    async with trio.open_nursery() as nursery:
        hive = await nursery.start(serve, cfg)
        print(json.dumps({"url": hive.dashboard_url}), flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        await stdin.receive_some()  # "go": every subscriber is connected
        per_tick, tick = rate // 100, 0.01
        n = 0
        start = trio.current_time()
        total = int(rate * seconds)
        while n < total:
            for _ in range(min(per_tick, total - n)):
                hive.events.publish(
                    ev.AgentActivity(
                        agent="bench",
                        activity={"kind": "text", "preview": f"{n} {time.time():.6f}"},
                    )
                )
                n += 1
            await trio.sleep_until(start + (n // per_tick) * tick)
        print(
            json.dumps(
                {"published": n, "first_seq": hive.events.seq - n + 1, "last_seq": hive.events.seq}
            ),
            flush=True,
        )
        await stdin.receive_some()  # "stop"
        hive.shutdown()


# --- the subscribers ---------------------------------------------------------------------------
class Sub:
    total: int | None = None  # events published, once the daemon said so
    finished = 0  # subscribers that have them all (or lagged)
    all_in = trio.Event()

    def __init__(self, count: int) -> None:
        self.count = count
        self.seqs: list[int] = []
        self.latencies: list[float] = []
        self.lagged = 0
        self.done = False

    def check(self) -> None:
        if not self.done and Sub.total is not None and (self.lagged or len(self.seqs) >= Sub.total):
            self.done = True
            Sub.finished += 1
            if Sub.finished == self.count:
                Sub.all_in.set()


async def subscriber(
    port: int,
    sub: Sub,
    connected: trio.Semaphore,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET /dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        buf = b""
        while b": hello" not in buf:
            buf += await stream.receive_some(65536)
        task_status.started()
        buf = buf[buf.index(b": hello") :]
        while True:
            data = await stream.receive_some(262144)
            if not data:
                return
            now = time.time()
            buf += data
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            done, buf = buf[: cut + 2], buf[cut + 2 :]
            for m in FRAME.finditer(done):
                sub.seqs.append(int(m[1]))
                sub.latencies.append(now - float(m[3]))
            sub.lagged += done.count(LAGGED)
            sub.check()


async def frozen(
    port: int, task_status: trio.TaskStatus[trio.SocketStream] = trio.TASK_STATUS_IGNORED
) -> None:
    """Connects, asks for the stream, and never reads a byte."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        f"GET /dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    )
    task_status.started(stream)
    await trio.sleep_forever()


def daemon_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def main(args: argparse.Namespace) -> int:
    header("sse.py")
    base = Path(tempfile.mkdtemp(prefix="hs", dir="/tmp"))
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            *(
                ["-m", "cProfile", "-o", os.environ["SSE_PROFILE"]]
                if os.environ.get("SSE_PROFILE")
                else []
            ),
            __file__,
            "--serve",
            str(base),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines = b""

    async def line() -> dict:
        nonlocal lines
        while b"\n" not in lines:
            lines += await proc.stdout.receive_some()  # type: ignore[union-attr]
        first, lines = lines.split(b"\n", 1)
        return json.loads(first)

    subs = [Sub(args.subscribers) for _ in range(args.subscribers)]
    try:
        url = (await line())["url"]
        port = int(url.rstrip("/").rpartition(":")[2])
        async with trio.open_nursery() as nursery:
            if args.frozen:
                await nursery.start(frozen, port)
            for sub in subs:
                await nursery.start(subscriber, port, sub, trio.Semaphore(1))
            began = time.perf_counter()
            cpu0, dcpu0 = time.process_time(), daemon_cpu(proc.pid)
            await proc.stdin.send_all(b"go\n")
            done = await line()
            total = done["published"]
            Sub.total = total
            for sub in subs:
                sub.check()
            with trio.move_on_after(30):  # the last events still on their way
                await Sub.all_in.wait()
            took = time.perf_counter() - began
            cpu, dcpu = time.process_time() - cpu0, daemon_cpu(proc.pid) - dcpu0
            await proc.stdin.send_all(b"stop\n")
            nursery.cancel_scope.cancel()
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)
    expected = list(range(done["first_seq"], done["last_seq"] + 1))
    complete = sum(1 for s in subs if s.seqs == expected)
    lagged = sum(s.lagged for s in subs)
    latencies = [x for s in subs for x in s.latencies]
    p50, p99, worst = (pct(latencies, 50) * 1000, pct(latencies, 99) * 1000, max(latencies) * 1000)
    every = complete == len(subs) and lagged == 0
    fast = p99 <= 50
    print(
        f"{len(subs)} subscribers{' + 1 frozen' if args.frozen else ''}, {total} events "
        f"published at {args.rate}/s in {args.seconds:g} s (in-process publish), "
        f"{took:.1f} s until the last arrived; CPU: daemon {dcpu:.1f} s, subscribers "
        f"{cpu:.1f} s"
    )
    print(
        f"every event delivered to every subscriber: {complete}/{len(subs)} complete, "
        f"{lagged} lagged ({mark(every)})"
    )
    print(
        f"publish → received: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms "
        f"(target p99 ≤ 50 ms: {mark(fast)})"
    )
    return 0 if every and fast else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--no-frozen", dest="frozen", action="store_false")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        trio.run(serve_and_publish, Path(a.serve), a.rate, a.seconds)
    else:
        sys.exit(trio.run(main, a))

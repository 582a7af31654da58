"""Activity at scale (quality.md): 50 agents each reporting 20 events a second through their own
sockets, a `subscribe_events` client on the host socket counting what reaches the stream.

Prints events sent, events seen on the stream (every one must arrive), the daemon's CPU in % of a
core over the reporting window (target <= 50 %), and the same daemon's CPU idle with the 50
agents connected, as the same-run reference.

    .venv/bin/python bench/activity.py [--agents 50] [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker as B  # noqa: E402  (bench/broker.py: its daemon helper and CPU meter)
import trio  # noqa: E402
from common import header, mark  # noqa: E402  (bench/common.py)

from hive_wire.client import Connection  # noqa: E402

BATCH = 4  # events a request: a harness batches what a turn produced since its last send


async def reporter(daemon: B.Daemon, name: str, rate: int, seconds: float, sent: list[int]) -> None:
    events = [{"kind": "tool_use", "tool": "Bash"}] * BATCH
    interval = BATCH / rate
    async with await Connection.open(daemon.socket(name)) as conn:
        start = trio.current_time()
        n = 0
        while trio.current_time() - start < seconds:
            await conn.call({"cmd": "activity", "events": events})
            sent[0] += BATCH
            n += 1
            await trio.sleep_until(start + n * interval)


class Seen:
    def __init__(self) -> None:
        self.count = 0
        self.expected: int | None = None  # set once every reporter is done
        self.all_in = trio.Event()

    def check(self) -> None:
        if self.expected is not None and self.count >= self.expected:
            self.all_in.set()


async def watcher(daemon: B.Daemon, seen: Seen, ready: trio.Event) -> None:
    async with await Connection.open(daemon.host) as conn:
        await conn.call({"cmd": "subscribe_events"})
        ready.set()
        while True:
            answer = await conn.read()
            if answer.get("event", {}).get("kind") == "agent_activity":
                seen.count += 1
                seen.check()


async def run(args: argparse.Namespace, daemon: B.Daemon) -> bool:
    names = [f"a{i:02d}" for i in range(args.agents)]
    await B.spawn(daemon, names)
    idle = B.Cpu(daemon)
    with idle:
        await trio.sleep(2)
    sent, seen = [0], Seen()
    busy = B.Cpu(daemon)
    async with trio.open_nursery() as nursery:
        ready = trio.Event()
        nursery.start_soon(watcher, daemon, seen, ready)
        await ready.wait()
        with busy:
            async with trio.open_nursery() as reporters:
                for name in names:
                    reporters.start_soon(reporter, daemon, name, args.rate, args.seconds, sent)
        seen.expected = sent[0]
        seen.check()
        with trio.move_on_after(10):  # the stream drains what is in flight
            await seen.all_in.wait()
        nursery.cancel_scope.cancel()
    cpu = busy.pct()[0]
    all_seen = seen.count == sent[0]
    print(
        f"agents {args.agents} x {args.rate} events/s for {args.seconds:g} s: sent {sent[0]}, "
        f"on the stream {seen.count} [{mark(all_seen)}]"
    )
    print(
        f"daemon cpu: {cpu:.1f}% of a core while reporting [{mark(cpu <= 50)}] "
        f"(idle with the same agents: {idle.pct()[0]:.1f}%)"
    )
    return all_seen and cpu <= 50


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--rate", type=int, default=20, help="events a second per agent")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    header("activity.py")
    os.environ["HIVE_DASHBOARD"] = "off"  # the daemon's own dashboard is not measured here
    with tempfile.TemporaryDirectory(prefix="hb", dir="/tmp") as tmp:
        daemon = B.Daemon(Path(tmp))
        daemon.start()
        try:
            return 0 if trio.run(run, args, daemon) else 1
        finally:
            daemon.stop()


if __name__ == "__main__":
    sys.exit(main())

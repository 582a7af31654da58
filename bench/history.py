"""Event history at scale (spec/quality.md): with 1,000,000 events in the `events` table, a page
of 500 from `/dashboard/history` takes ≤ 50 ms, and the agents at any past seq
(`/dashboard/state_at`, replay) ≤ 200 ms.

The daemon runs in this process (`serve()`, the dashboard on 127.0.0.1:0, the store thread and
the event writer as in production); the events are published through its `EventChannel` (the
writer persists them in batches, with its replay snapshots): mostly `sent` and `agent_activity`,
one in a hundred a `container_state_changed` of one of 200 agents (a full status row), a few
`container_removed`. Then timed over real TCP with httpx: pages at random `since_seq`, and
`state_at` at random seqs, each wall time from request to the parsed answer.

Run: `.venv/bin/python bench/history.py [--events 1000000] [--requests 200]`
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, mark  # noqa: E402
from hive_core import config as config_mod  # noqa: E402
from hive_core.daemon import serve  # noqa: E402
from hive_wire import events as ev  # noqa: E402
from hive_wire.responses import AgentStatusRow  # noqa: E402

AGENTS = [f"agent-{i:03d}" for i in range(200)]


def row(name: str, rng: random.Random) -> AgentStatusRow:
    running = rng.random() < 0.9
    return AgentStatusRow(
        name=name,
        running=running,
        failed=not running,
        needs_update=False,
        needs_login=False,
        deployed_sha=f"{rng.getrandbits(48):012x}",
        pending_reminders=rng.randrange(3),
        paused=False,
        status_text="working on the broker lease change",
    )


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def fill(hive: object, n: int, rng: random.Random) -> float:
    """Publish `n` events through the channel; seconds until all are in the table."""
    channel = hive.events  # type: ignore[attr-defined]
    start = time.perf_counter()
    alive: set[str] = set()
    batch = 5000
    for base in range(0, n, batch):
        for i in range(base, min(n, base + batch)):
            r = rng.random()
            if r < 0.01 or not alive:
                name = rng.choice(AGENTS)
                alive.add(name)
                channel.publish(ev.ContainerStateChanged(agent=name, row=row(name, rng)))
            elif r < 0.011:
                name = rng.choice(sorted(alive))
                alive.discard(name)
                channel.publish(ev.ContainerRemoved(agent=name))
            elif r < 0.5:
                a, b = rng.sample(AGENTS, 2)
                channel.publish(ev.Sent(id=i, from_=a, to=b, preview="status? " * 10, size=80))
            else:
                channel.publish(
                    ev.AgentActivity(
                        agent=rng.choice(AGENTS),
                        activity={"kind": "tool_use", "tool": rng.choice(["Bash", "Read", "Edit"])},
                    )
                )
        await channel.written(channel.seq)  # the writer keeps up (nothing dropped)
        if base % 100_000 == 0:
            print(
                f"  {base + batch:>9} events written, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return time.perf_counter() - start


async def timed(client: httpx.AsyncClient, url: str, params: dict[str, int]) -> tuple[float, dict]:
    start = time.perf_counter()
    r = await client.get(url, params=params)
    body = r.json()
    took = time.perf_counter() - start
    assert r.status_code == 200, r.text
    return took, body


async def main(args: argparse.Namespace) -> int:
    header("history.py")
    base = Path(tempfile.mkdtemp(prefix="hb", dir="/tmp"))
    rng = random.Random(args.seed)
    try:
        cfg = config_mod.load(
            None, str(base / "state"), str(base / "run"), dashboard_listen="127.0.0.1:0"
        )
        async with trio.open_nursery() as nursery:
            hive = await nursery.start(serve, cfg)
            print(f"filling {args.events:,} events ...", flush=True)
            took = await fill(hive, args.events, rng)
            size = (base / "state" / "hive.sqlite").stat().st_size
            print(
                f"filled in {took:.0f} s ({args.events / took:,.0f} events/s through the "
                f"writer); hive.sqlite {size / 1e6:.0f} MB",
                flush=True,
            )
            top = hive.events.seq
            async with httpx.AsyncClient(base_url=hive.dashboard_url, timeout=60) as client:
                await timed(client, "/dashboard/history", {"since_seq": 0, "limit": 500})
                pages, states = [], []
                for _ in range(args.requests):
                    since = rng.randrange(0, top - 500)
                    t, body = await timed(
                        client, "/dashboard/history", {"since_seq": since, "limit": 500}
                    )
                    assert [e["seq"] for e in body["events"]] == list(range(since + 1, since + 501))
                    pages.append(t)
                for _ in range(args.requests):
                    t, body = await timed(
                        client, "/dashboard/state_at", {"seq": rng.randrange(1, top + 1)}
                    )
                    states.append(t)
                    assert isinstance(body["agents"], list)
            hive.shutdown()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ms = 1000.0
    page_ok = pct(pages, 99) * ms <= 50
    state_ok = max(states) * ms <= 200
    print(
        f"history page of 500 at random since_seq ({args.requests} requests): "
        f"p50 {pct(pages, 50) * ms:.1f} ms, p99 {pct(pages, 99) * ms:.1f} ms, "
        f"max {max(pages) * ms:.1f} ms (target ≤ 50 ms: {mark(page_ok)})"
    )
    print(
        f"state_at a random seq ({args.requests} requests): p50 {pct(states, 50) * ms:.1f} ms,"
        f" p99 {pct(states, 99) * ms:.1f} ms, max {max(states) * ms:.1f} ms "
        f"(target ≤ 200 ms: {mark(state_ok)})"
    )
    return 0 if page_ok and state_ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    sys.exit(trio.run(main, ap.parse_args()))

#!/usr/bin/env python3
"""Costs benchmark: the `costs` verb over 1,000,000 turn rows (target: at most 200 ms; issue 16).

    .venv/bin/python bench/costs.py [--turns 1000000] [--agents 50] [--days 90] [--runs 20]

A database is built on a short temp dir with the daemon's own migrations: `--turns` turns spread
evenly over the last `--days` days and `--agents` agents (each woken by one of 10,000 root
messages, so `by_thread` has threads to group), the per-day rollup summed from them as the
migration does. Then the daemon is started in this process (`serve`, as the tests do) on that
state dir and `costs` is asked over the host socket `--runs` times each: every agent
(`costs`), one agent (`costs {agent}`), since a time 12 h ago (`costs {since}`), and
`costs {by_thread}` (every kept turn grouped by thread). Figures: median and worst of the round
trip (connect, request, answer), in ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, mark  # noqa: E402
from hive_core import config as config_mod  # noqa: E402
from hive_core.clock import rfc3339  # noqa: E402
from hive_core.daemon import serve  # noqa: E402
from hive_core.paths import Paths  # noqa: E402
from hive_core.store import costs as costs_sql  # noqa: E402
from hive_core.store import schema  # noqa: E402
from hive_wire.client import Connection  # noqa: E402

TARGET_MS = 200.0
ROOTS = 10_000


def build(db: Path, turns: int, agents: int, days: int) -> float:
    start = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    schema.migrate(conn)
    rnd = random.Random(16)
    t_now = time.time()
    names = [f"agent-{i:03d}" for i in range(agents)]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO messages (id, recipient, sender, body, sent_at, acked_at) "
        "VALUES (?, ?, 'operator', ?, ?, ?)",
        [
            (
                i,
                names[i % agents],
                f"task {i}: " + "x" * 60,
                t_now - days * 86400,
                t_now - days * 86400,
            )
            for i in range(1, ROOTS + 1)
        ],
    )
    span = days * 86400
    rows = []
    for i in range(turns):
        thread = rnd.randint(1, ROOTS)
        rows.append(
            (
                names[i % agents],
                t_now - span + span * i / turns,
                1,
                "ok",
                30_000,
                "claude-sonnet-4-5",
                3000,
                400,
                20_000,
                1000,
                0.05,
                24_000,
                f"[{thread}]",
                thread,
            )
        )
        if len(rows) == 100_000:
            conn.executemany(
                "INSERT INTO turns (agent, ended_at, ok, result_kind, duration_ms, model, "
                "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, "
                "cost_usd, context_tokens, woken_by, thread) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            rows = []
    if rows:
        conn.executemany(
            "INSERT INTO turns (agent, ended_at, ok, result_kind, duration_ms, model, "
            "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd, "
            "context_tokens, woken_by, thread) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    costs_sql.rebuild_days(conn)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - start


async def measure(host: str, request: dict[str, object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async with await Connection.open(host) as conn:
            await conn.send(request)
            answer = await conn.read()
        out.append((time.perf_counter() - t0) * 1000)
        assert answer["ok"], answer
    return out


async def main_async(args: argparse.Namespace, base: Path) -> bool:
    os.environ["HIVE_DASHBOARD"] = "off"  # no fixed port: only the sockets are measured
    cfg = config_mod.load(None, str(base / "state"), str(base / "run"))
    ok_all = True
    async with trio.open_nursery() as nursery:
        hive = await nursery.start(serve, cfg)
        host = str(hive.paths.host_socket)
        cases: list[tuple[str, dict[str, object], bool]] = [
            ("costs (every agent)", {"cmd": "costs"}, True),
            ("costs {agent}", {"cmd": "costs", "agent": "agent-007"}, True),
            (
                "costs {since: 12 h ago}",
                {"cmd": "costs", "since": rfc3339(time.time() - 12 * 3600)},
                True,
            ),
            ("costs {by_thread}", {"cmd": "costs", "by_thread": True}, False),
        ]
        for label, request, target in cases:
            times = await measure(host, request, args.runs)
            med, worst = statistics.median(times), max(times)
            verdict = mark(worst <= TARGET_MS) if target else "(no target)"
            ok_all &= worst <= TARGET_MS or not target
            print(f"{label:28s} median {med:7.1f} ms  worst {worst:7.1f} ms  {verdict}", flush=True)
        hive.shutdown()
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    header("costs.py")
    base = Path(tempfile.mkdtemp(prefix="hcb", dir="/tmp"))
    try:
        (base / "state").mkdir()
        paths = Paths(base / "state", base / "run")
        took = build(paths.database, args.turns, args.agents, args.days)
        print(
            f"built {args.turns:,} turns of {args.agents} agents over {args.days} days in "
            f"{took:.1f} s",
            flush=True,
        )
        return 0 if trio.run(main_async, args, base) else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Broker benchmark: durable send + recv + ack cycles and wake latency through the daemon's
sockets, each figure beside a baseline measured in the same run (targets: shared spec
quality.md; results: docs/performance.md).

    .venv/bin/python bench/broker.py [--seconds 5] [--agents 50] [--idle 200] [--samples 500]

Baseline: plain `sqlite3` in this process, on a file in the same temp dir as the daemon's
database, with the daemon's schema and the statements the broker runs per cycle (insert; pop =
UPDATE ... RETURNING that marks delivered; ack by id), WAL, `synchronous=FULL`, one transaction
and so one commit (fsync) per operation. Its pop names the inbox index (`INDEXED BY
messages_inbox`) so that its cost stays flat as acked rows pile up; `--baseline-sql daemon` uses
the daemon's statement as it is, whose plan walks the recipient's whole history instead.

The daemon runs as a subprocess (`python -m hive_core serve`) on short temp dirs; agents are
spawned through the host socket with a sleeping process, and this process plays them over their
sockets `<run>/agents/<name>/mcp.sock`, on persistent connections, with trio.

The machine is shared and its disk speed drifts by several times within a minute, so the
baseline is never measured once up front: each throughput phase alternates `--rounds` slices of
baseline and of daemon load (same length), and the ratio is taken over the sums; the spread of the
per-round ratios is printed too. Wake latency samples alternate with samples of the same durable
work done by plain sqlite3 (insert commit, then pop commit): the floor the disk sets.

Phases:
1. one agent, strictly one request at a time: send (to itself), recv, ack_turn(ids); the p50
   of one request's round trip is printed beside the p50 of one plain commit;
2. `--agents` agents at once, each on its own socket and task, each sequential; the store's
   transactions/operations counters (host verb `stats`) over the phase show the group commit;
3. wake latency: `--idle` other agents each hold a pending `recv` with wait_seconds=180; one
   agent long-polls, another sends to it; the time from just before the send leaves this
   process to the recv answer arriving, p50/p99 over `--samples`.
The CPU the daemon and this process used during the daemon's slices is printed, so a saturated
daemon (or client) shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402
import trio.lowlevel  # noqa: E402
from common import header, mark, rate  # noqa: E402  (bench/common.py)

from hive_core.store import schema  # noqa: E402
from hive_wire.blocking import BlockingConnection, call_sync, check_answer  # noqa: E402
from hive_wire.client import Connection  # noqa: E402

SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]
BODY = "x" * 100  # a short chat message
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --- the baseline -----------------------------------------------------------------------------
# The statements of hive_core/store/messages.py: insert, pop, ack by ids.
UNDELIVERED = "delivered_at IS NULL AND acked_at IS NULL AND dead_at IS NULL"
INFLIGHT = "delivered_at IS NOT NULL AND acked_at IS NULL AND dead_at IS NULL"
SQL_INSERT = (
    "INSERT INTO messages (recipient, sender, body, in_reply_to, sent_at) VALUES (?, ?, ?, ?, ?)"
)
SQL_POP = (
    "UPDATE messages SET delivered_at = ?, deliveries = deliveries + 1 "
    "WHERE id IN (SELECT id FROM messages {hint}WHERE recipient = ? AND "
    f"{UNDELIVERED} ORDER BY id LIMIT ?) "
    "RETURNING id, sender, body, sent_at, redelivered, in_reply_to"
)
SQL_ACK = (
    f"UPDATE messages SET acked_at = ? WHERE recipient = ? AND {INFLIGHT} AND id IN (?) "
    "RETURNING id"
)
# Pinned, the pop reads the inbox index whatever the history. Unpinned (the daemon's statement as
# of 2026-11-24), SQLite's planner picks `messages_recipient` and walks every row the recipient
# ever had, acked ones included, so a pop costs more the longer the history.
POP_HINTS = {"pinned": "INDEXED BY messages_inbox ", "daemon": ""}


class Baseline:
    """Plain sqlite3, one commit per operation, on its own file."""

    def __init__(self, path: Path, hint: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        schema.migrate(self.conn)  # the daemon's table and indexes: the same work per row
        self.pop_sql = SQL_POP.format(hint=POP_HINTS[hint])
        self.cycles = 0
        self.seconds = 0.0
        self.commit_times: list[float] | None = None  # per operation, when set to a list
        for _ in range(50):  # warm-up
            self.cycle()

    def _commit(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        t0 = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        cur = self.conn.execute(sql, args)
        rows = cur.fetchall()
        mid = cur.lastrowid
        self.conn.execute("COMMIT")
        if self.commit_times is not None:
            self.commit_times.append(time.perf_counter() - t0)
        return rows or [(mid,)]

    def send_recv(self) -> int:
        t = time.time()
        ((mid,),) = self._commit(SQL_INSERT, ("alice", "bob", BODY, None, t))
        rows = self._commit(self.pop_sql, (t, "alice", 1))
        assert rows[0][0] == mid, (rows, mid)
        return mid

    def cycle(self) -> None:
        mid = self.send_recv()
        assert self._commit(SQL_ACK, (time.time(), "alice", mid)) == [(mid,)]

    def run(self, seconds: float) -> float:
        """Cycles for about `seconds`; the rate."""
        n, elapsed = rate(self.cycle, seconds)
        self.cycles += n
        self.seconds += elapsed
        return n / elapsed

    def wake_sample(self) -> float:
        """The durable work between a send and a long-poll's answer: insert commit, pop commit."""
        t0 = time.perf_counter()
        mid = self.send_recv()
        t1 = time.perf_counter()
        self._commit(SQL_ACK, (time.time(), "alice", mid))
        return t1 - t0

    def close(self) -> None:
        self.conn.close()


# --- the daemon ---------------------------------------------------------------------------------
class Daemon:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.state = base / "s"
        self.run = base / "r"
        self.host = str(self.run / "host.sock")
        self.log = base / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hive_core",
                    "serve",
                    "--state-dir",
                    str(self.state),
                    "--run-dir",
                    str(self.run),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.base,  # so `-m hive_core` is the installed (or PYTHONPATH) copy
            )
        deadline = time.monotonic() + timeout
        while True:  # ready when the host socket answers (polled, bounded)
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()}")
            try:
                call_sync(self.host, {"cmd": "list"}, timeout=5)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def socket(self, name: str) -> str:
        return str(self.run / "agents" / name / "mcp.sock")

    def cpu(self) -> float:
        """CPU seconds used so far by the daemon (all its threads; not its agents)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Cpu:
    """CPU of the daemon and of this process, summed over the spans it is entered for."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.wall = self.daemon_s = self.client_s = 0.0

    def __enter__(self) -> Cpu:
        self._t, self._d, self._c = time.perf_counter(), self.daemon.cpu(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._t
        self.daemon_s += self.daemon.cpu() - self._d
        self.client_s += time.process_time() - self._c

    def pct(self) -> tuple[float, float]:
        return 100 * self.daemon_s / self.wall, 100 * self.client_s / self.wall

    def __str__(self) -> str:
        d, c = self.pct()
        return f"cpu: daemon {d:.0f}% of a core, bench client {c:.0f}%"


# --- durable cycles through the sockets -----------------------------------------------------------
async def cycle(conn: Connection, me: str, times: list[float] | None = None) -> None:
    """send to oneself, recv, ack_turn(ids); `times` gets each request's round trip."""
    t0 = time.perf_counter()
    sent = await conn.call({"cmd": "send", "to": me, "body": BODY})
    t1 = time.perf_counter()
    got = await conn.call({"cmd": "recv", "max": 1})
    t2 = time.perf_counter()
    msgs = got["messages"]
    if len(msgs) != 1 or msgs[0]["id"] != sent["id"] or msgs[0]["redelivered"]:
        raise AssertionError(f"sent {sent}, received {got}")
    acked = await conn.call({"cmd": "ack_turn", "ids": [sent["id"]]})
    if times is not None:
        times += (t1 - t0, t2 - t1, time.perf_counter() - t2)
    if acked["acked"] != 1:
        raise AssertionError(f"ack of {sent['id']}: {acked}")


class Load:
    """Agents on persistent connections, each running cycles one request at a time."""

    def __init__(self, daemon: Daemon, names: list[str]) -> None:
        self.daemon = daemon
        self.names = names
        self.conns: list[Connection] = []
        self.times: list[float] | None = None  # request round trips, when set to a list

    async def open(self) -> None:
        self.conns = [await Connection.open(self.daemon.socket(n)) for n in self.names]
        for conn, name in zip(self.conns, self.names, strict=True):  # warm-up: every path
            await cycle(conn, name)

    async def run(self, seconds: float) -> float:
        """All agents at once for `seconds`; cycles/s (a cycle that ends late is not counted)."""
        done = 0
        go = trio.Event()
        deadline = 0.0

        async def agent(conn: Connection, name: str) -> None:
            nonlocal done
            await go.wait()
            while True:
                await cycle(conn, name, self.times)
                if time.perf_counter() > deadline:
                    return
                done += 1

        async with trio.open_nursery() as nursery:
            for conn, name in zip(self.conns, self.names, strict=True):
                nursery.start_soon(agent, conn, name)
            await trio.lowlevel.checkpoint()  # every task waits on `go`
            deadline = time.perf_counter() + seconds
            go.set()
        return done / seconds

    async def aclose(self) -> None:
        for conn in self.conns:
            await conn.aclose()


async def interleaved(
    base: Baseline,
    load: Load,
    cpu: Cpu,
    seconds: float,
    rounds: int,
    extra: dict[str, Callable[[float], float]] | None = None,
) -> dict[str, Any]:
    """Alternate baseline and daemon slices; the rates over the sums and per-round ratios.
    `extra` runners (blocking: they hold the loop, as the baseline does) each get a slice per
    round too; their rates come back as `<name>_cycles_per_s`."""
    piece = seconds / rounds
    b_sum = d_sum = 0.0
    sums = dict.fromkeys(extra or {}, 0.0)
    ratios = []
    for r in range(rounds):
        for which in ("base", "daemon") if r % 2 == 0 else ("daemon", "base"):
            if which == "base":
                b = base.run(piece)  # blocks the loop: nothing else is in flight meanwhile
            else:
                with cpu:
                    d = await load.run(piece)
        for name, run in (extra or {}).items():
            sums[name] += run(piece)
        b_sum += b
        d_sum += d
        ratios.append(d / b)
    out = {
        "baseline_cycles_per_s": b_sum / rounds,
        "cycles_per_s": d_sum / rounds,
        "ratio": d_sum / b_sum,
        "round_ratios": ratios,
    }
    for name, total in sums.items():
        out[f"{name}_cycles_per_s"] = total / rounds
        out[f"{name}_ratio"] = total / b_sum
    return out


class BlockingAgent:
    """One agent over `hive_wire.blocking.BlockingConnection`: the same cycle, no event loop
    on the client's side (what a sequential harness without trio would use)."""

    def __init__(self, daemon: Daemon, name: str) -> None:
        self.conn = BlockingConnection(daemon.socket(name), timeout=30)
        self.name = name
        self.cycle()  # warm-up

    def cycle(self) -> None:
        sent = self.conn.call({"cmd": "send", "to": self.name, "body": BODY})
        got = self.conn.call({"cmd": "recv", "max": 1})["messages"]
        if len(got) != 1 or got[0]["id"] != sent["id"]:
            raise AssertionError(f"sent {sent}, received {got}")
        if self.conn.call({"cmd": "ack_turn", "ids": [sent["id"]]})["acked"] != 1:
            raise AssertionError(f"ack of {sent['id']} failed")

    def run(self, seconds: float) -> float:
        n, elapsed = rate(self.cycle, seconds)
        return n / elapsed


class PersistQueue:
    """persist-queue's SQLiteAckQueue (a bench-only dependency) in this process, its own
    defaults (WAL, SQLite's default `synchronous=FULL`, a commit per operation): put, get,
    ack, the cycle of a queue with acks."""

    def __init__(self, path: Path) -> None:
        from persistqueue import SQLiteAckQueue

        self.q = SQLiteAckQueue(str(path), auto_commit=True, multithreading=False)
        for _ in range(50):
            self.cycle()

    def cycle(self) -> None:
        self.q.put(BODY)
        item = self.q.get(raw=True, block=False)
        self.q.ack(id=item["pqid"])

    def run(self, seconds: float) -> float:
        n, elapsed = rate(self.cycle, seconds)
        return n / elapsed


# --- wake latency ----------------------------------------------------------------------------
async def idle_poll(daemon: Daemon, name: str, opened: trio.Semaphore, stray: list[str]) -> None:
    """Hold a long-polling recv open on `name`'s socket until cancelled."""
    async with await Connection.open(daemon.socket(name)) as conn:
        await conn.send({"cmd": "recv", "max": 1, "wait_seconds": 180})
        opened.release()
        while True:
            got = check_answer(await conn.read())
            if got["messages"]:
                stray.append(name)
            await conn.send({"cmd": "recv", "max": 1, "wait_seconds": 180})


async def wake_latency(
    daemon: Daemon,
    base: Baseline,
    cpu: Cpu,
    receiver: str,
    sender: str,
    idle: list[str],
    samples: int,
) -> tuple[list[float], list[float]]:
    """Latencies (s) of send → long-poll answer, and the plain-sqlite floor, interleaved."""
    stray: list[str] = []
    lat: list[float] = []
    floor: list[float] = []
    async with trio.open_nursery() as nursery:
        opened = trio.Semaphore(0)
        for name in idle:
            nursery.start_soon(idle_poll, daemon, name, opened, stray)
        for _ in idle:
            await opened.acquire()
        await trio.sleep(1.0)  # every idle recv read and parked by the daemon

        async with (
            await Connection.open(daemon.socket(receiver)) as rx,
            await Connection.open(daemon.socket(sender)) as tx,
        ):
            for i in range(samples + 20):  # the first 20 are a warm-up
                await rx.send({"cmd": "recv", "max": 1, "wait_seconds": 30})
                await trio.sleep(0.003)  # the daemon parks this recv meanwhile
                with cpu:
                    t0 = time.perf_counter()
                    await tx.send({"cmd": "send", "to": receiver, "body": BODY})
                    got = check_answer(await rx.read())
                    t1 = time.perf_counter()
                    sent = check_answer(await tx.read())
                msgs = got["messages"]
                if len(msgs) != 1 or msgs[0]["id"] != sent["id"]:
                    raise AssertionError(f"sent {sent}, received {got}")
                await rx.call({"cmd": "ack_turn", "ids": [sent["id"]]})
                f = base.wake_sample()
                if i >= 20:
                    lat.append(t1 - t0)
                    floor.append(f)
        if stray:
            raise AssertionError(f"idle agents received messages: {stray[:5]}")
        nursery.cancel_scope.cancel()
    return lat, floor


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, -(-len(s) * p // 100) - 1))]


# --- the run ------------------------------------------------------------------------------------
async def spawn(daemon: Daemon, names: list[str]) -> None:
    async with await Connection.open(daemon.host) as host:
        for name in names:
            await host.call({"cmd": "spawn", "name": name, "command": SLEEPER})


async def stats(daemon: Daemon) -> dict[str, Any]:
    async with await Connection.open(daemon.host) as host:
        return await host.call({"cmd": "stats"})


def spread(ratios: list[float]) -> str:
    return f"rounds {min(ratios):.2f}x..{max(ratios):.2f}x, median {statistics.median(ratios):.2f}x"


async def bench(args: argparse.Namespace, daemon: Daemon, base: Baseline) -> dict[str, Any]:
    res: dict[str, Any] = {}
    work = [f"t{i:03d}" for i in range(max(args.agents, 1))]
    idle = [f"i{i:03d}" for i in range(args.idle)]
    t = time.perf_counter()
    await spawn(daemon, [*work, "wr", "ws", "wb", *idle])
    print(
        f"spawned {len(work) + 3 + len(idle)} agents in {time.perf_counter() - t:.1f} s "
        f"(daemon pid {daemon.proc.pid if daemon.proc else '?'})",
        flush=True,
    )
    await trio.sleep(1.0)  # let the sleeper processes finish starting

    # 1. one agent, strictly sequential ("t000" is also the first of the load phase)
    one = Load(daemon, work[:1])
    await one.open()
    cpu = Cpu(daemon)
    one.times, base.commit_times = [], []
    extra: dict[str, Callable[[float], float]] = {"blocking": BlockingAgent(daemon, "wb").run}
    try:
        extra["persistqueue"] = PersistQueue(daemon.base / "pq").run
    except ImportError:
        print(
            "persist-queue is not installed (pip install persist-queue): no such baseline",
            flush=True,
        )
    r = await interleaved(base, one, cpu, args.seconds, args.rounds, extra)
    r["daemon_cpu_pct"], r["client_cpu_pct"] = cpu.pct()
    r["request_p50_us"] = percentile(one.times, 50) * 1e6
    r["baseline_commit_p50_us"] = percentile(base.commit_times, 50) * 1e6
    base.commit_times = None
    res["one_agent"] = r
    print(
        f"1 agent, sequential:  {r['cycles_per_s']:7.0f} cycles/s vs baseline "
        f"{r['baseline_cycles_per_s']:5.0f} = {r['ratio']:.2f}x (target >= 0.5x: "
        f"{mark(r['ratio'] >= 0.5)}; {spread(r['round_ratios'])}); {cpu}",
        flush=True,
    )
    print(
        f"    one request through the socket: p50 {r['request_p50_us']:.0f} us; one plain "
        f"commit: p50 {r['baseline_commit_p50_us']:.0f} us",
        flush=True,
    )
    print(
        f"    the same agent over a blocking client (no trio in the client): "
        f"{r['blocking_cycles_per_s']:7.0f} cycles/s = {r['blocking_ratio']:.2f}x baseline "
        f"(target >= 0.5x: {mark(r['blocking_ratio'] >= 0.5)})",
        flush=True,
    )
    if "persistqueue_cycles_per_s" in r:
        pq = r["persistqueue_cycles_per_s"]
        print(
            f"    persist-queue SQLiteAckQueue in-process put+get+ack: {pq:7.0f} cycles/s = "
            f"{r['persistqueue_ratio']:.2f}x baseline; the daemon, 1 agent = "
            f"{r['cycles_per_s'] / pq:.2f}x it (blocking client {r['blocking_cycles_per_s'] / pq:.2f}x)",
            flush=True,
        )

    # 2. many agents at once
    load = Load(daemon, work)
    await load.open()
    await one.aclose()
    before = await stats(daemon)
    cpu = Cpu(daemon)
    r = await interleaved(base, load, cpu, args.seconds, args.rounds)
    after = await stats(daemon)
    await load.aclose()
    r["daemon_cpu_pct"], r["client_cpu_pct"] = cpu.pct()
    r["agents"] = len(work)
    r["transactions"] = txns = after["transactions"] - before["transactions"]
    r["operations"] = ops = after["operations"] - before["operations"]
    r["ops_per_transaction"] = ops / max(txns, 1)
    res["many_agents"] = r
    print(
        f"{len(work)} agents at once: {r['cycles_per_s']:7.0f} cycles/s vs baseline "
        f"{r['baseline_cycles_per_s']:5.0f} = {r['ratio']:.2f}x (target >= 2x, aim 5x: "
        f"{mark(r['ratio'] >= 2)}; {spread(r['round_ratios'])}); {cpu}",
        flush=True,
    )
    print(
        f"    store (host verb stats): {txns} transactions for {ops} operations = "
        f"{r['ops_per_transaction']:.1f} operations per transaction during the phase "
        f"(counters now {after['transactions']} and {after['operations']})",
        flush=True,
    )

    # 3. wake latency with idle long-polls open
    cpu = Cpu(daemon)
    before = await stats(daemon)
    lat, floor = await wake_latency(daemon, base, cpu, "wr", "ws", idle, args.samples)
    after = await stats(daemon)
    r = {"samples": len(lat), "idle_polls": len(idle)}
    # send → woken recv → ack_turn per sample (and the warm-up's 20, the idle polls' parking
    # pops, the event history's writes): the send and the waiter's pop share a commit
    samples = len(lat) + 20
    r["transactions_per_sample"] = (after["transactions"] - before["transactions"]) / samples
    for key, values in (("", lat), ("floor_", floor)):
        r[f"{key}p50_ms"] = percentile(values, 50) * 1e3
        r[f"{key}p99_ms"] = percentile(values, 99) * 1e3
        r[f"{key}max_ms"] = max(values) * 1e3
        r[f"{key}mean_ms"] = statistics.fmean(values) * 1e3
    res["wake_latency"] = r
    print(
        f"wake latency ({len(idle)} idle long-polls, {len(lat)} samples): p50 "
        f"{r['p50_ms']:.2f} ms (target <= 1 ms: {mark(r['p50_ms'] <= 1)}), p99 "
        f"{r['p99_ms']:.2f} ms (target <= 5 ms: {mark(r['p99_ms'] <= 5)}), max "
        f"{r['max_ms']:.1f} ms; plain sqlite3 insert+pop commits: p50 {r['floor_p50_ms']:.2f}"
        f" ms, p99 {r['floor_p99_ms']:.2f} ms",
        flush=True,
    )
    print(
        f"    store: {r['transactions_per_sample']:.2f} transactions a sample (send + the woken "
        "recv's pop, then its ack_turn)",
        flush=True,
    )
    return res


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Broker throughput and wake latency against a same-run sqlite3 baseline."
    )
    ap.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="daemon time of each throughput phase (the baseline gets as much)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="alternating baseline/daemon slices per throughput phase",
    )
    ap.add_argument("--agents", type=int, default=50, help="agents at once in the load phase")
    ap.add_argument("--idle", type=int, default=200, help="idle long-polls during the latency")
    ap.add_argument("--samples", type=int, default=500, help="wake latency samples")
    ap.add_argument(
        "--baseline-sql",
        choices=sorted(POP_HINTS),
        default="pinned",
        help="the baseline's pop: pinned to the inbox index (default) or the "
        "daemon's own statement, whose cost grows with the recipient's history",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (database, log)")
    args = ap.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.samples < 1:
        ap.error("--rounds, --seconds and --samples must be positive")

    dir_ = Path(tempfile.mkdtemp(prefix="hb", dir="/tmp"))  # short: socket paths <= 107 bytes
    daemon = Daemon(dir_)
    command, rev = header("broker.py")
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cpus, temp dir {dir_}",
        flush=True,
    )
    base = Baseline(dir_ / "baseline.db", args.baseline_sql)
    try:
        daemon.start()
        try:
            res = trio.run(bench, args, daemon, base)
        finally:
            daemon.stop()
        b = base.cycles / base.seconds
        print(
            f"baseline, plain sqlite3 over all its slices: {b:.0f} cycles/s ({base.cycles} cycles)",
            flush=True,
        )
        res["baseline"] = {"cycles_per_s": b, "sql": args.baseline_sql}
        res["command"] = command
        res["commit"] = rev
        res["date"] = str(dt.date.today())
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    finally:
        base.close()
        daemon.stop()
        if args.keep:
            print(f"kept {dir_}")
        else:
            shutil.rmtree(dir_, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What one agent's strictly sequential cycle could cost through *any* Python socket server on
this machine: the floor under the 1-agent row of bench/broker.py (docs/performance.md).

    .venv/bin/python bench/floor.py [--seconds 1] [--rounds 8] [--pairs 16] [--pair-rounds 6]
        [--skip-one] [--against DIR] [--wake 300]

Three servers, each a child process on a unix socket, each doing for every request line exactly
the durable work of the broker (the statements and schema of bench/broker.py's baseline: insert;
pop = UPDATE ... RETURNING; ack; one commit each, WAL, `synchronous=FULL`) and nothing else:
- `blocking`: a plain blocking accept/readline/sendall loop, `json` and `sqlite3` only;
- `trio`: the same behind trio's `serve_listeners`/`SocketStream` (the daemon's I/O stack);
- `daemon`: hive-core itself (`python -m hive_core serve`, one agent).
This process is the client of each, over a blocking socket (`hive_wire.blocking`'s
`BlockingConnection` for the daemon, the same lines by hand for the others), and runs the plain
sqlite3 baseline itself. Each round runs one slice of every server and of the baseline, in turn;
the ratios are over the sums, so the disk's drift falls on all alike.

Then the CPU per request under concurrent load (quality.md: "daemon CPU per request, 16 agent
pairs"): `--pairs` client processes, each paired with one agent of its own (the daemon) or one
connection (the trio server), each doing send (to itself), recv, ack_turn one request at a time.
Slices of the trio server and of the daemon alternate (`--pair-rounds` of each); each prints the
requests it served per CPU-second of the server process (utime + stime of all its threads, from
/proc/<pid>/stat), and the ratio daemon / trio server over the sums (target >= 0.5).

Then the wake floor (`--wake` samples, 0 for none): a minimal trio server where a long-polling
`recv` parks and a `send` to it inserts and pops in one transaction (the daemon's hand-off),
answering the waiter first; send → the waiter's answer timed over blocking clients, beside the
daemon's own, in slices of 50 in turn (quality.md: p50 <= 1 ms, p99 <= 5 ms).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker as B  # noqa: E402  (bench/broker.py: its baseline, statements and daemon helper)
import trio  # noqa: E402
from common import header, mark  # noqa: E402  (bench/common.py)

from hive_core.store import schema  # noqa: E402
from hive_wire.blocking import BlockingConnection  # noqa: E402


def _database(path: Path) -> tuple[sqlite3.Connection, str]:
    """The daemon's schema in WAL with `synchronous=FULL`, and the pinned pop statement."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    schema.migrate(conn)
    return conn, B.SQL_POP.format(hint=B.POP_HINTS["pinned"])


def _handler(path: Path, group: bool = False):
    """The broker's three statements, one commit each (`group`: no transaction of its own, the
    caller begins and commits around many; then the connection is returned too)."""
    conn, pop = _database(path)

    def commit(sql: str, args: tuple) -> list:
        if not group:
            conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(sql, args)
        rows = cur.fetchall() or [(cur.lastrowid,)]
        if not group:
            conn.execute("COMMIT")
        return rows

    def handle(line: bytes, conn: dict) -> bytes:
        # A connection is the agent it last sent to (each client sends to itself).
        req = json.loads(line)
        if req["cmd"] == "send":
            conn["me"] = req["to"]
            out = {
                "id": commit(B.SQL_INSERT, (req["to"], "me", req["body"], None, time.time()))[0][0]
            }
        elif req["cmd"] == "recv":
            out = {"messages": [list(r) for r in commit(pop, (time.time(), conn["me"], 1))]}
        else:
            out = {"acked": len(commit(B.SQL_ACK, (time.time(), conn["me"], req["ids"][0])))}
        return json.dumps({"ok": True, **out}).encode() + b"\n"

    return (handle, conn) if group else handle


def _serve(sock_path: str, one, *system_tasks) -> None:
    """Serve `one(stream)` for every connection on a unix socket, forever (and the tasks)."""

    async def main() -> None:
        listener = trio.socket.socket(socket.AF_UNIX)
        await listener.bind(sock_path)
        listener.listen()
        async with trio.open_nursery() as nursery:
            for task in system_tasks:
                nursery.start_soon(task)
            await trio.serve_listeners(one, [trio.SocketListener(listener)])

    trio.run(main)


def serve_blocking(sock_path: str, db: Path) -> None:
    handle = _handler(db)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sock_path)
    listener.listen()
    conn, _ = listener.accept()
    with conn, conn.makefile("rb") as lines:
        state: dict = {}
        for line in lines:
            conn.sendall(handle(line, state))


def serve_trio(sock_path: str, db: Path) -> None:
    handle = _handler(db)

    async def one(stream: trio.SocketStream) -> None:
        buf = b""
        state: dict = {}
        while data := await stream.receive_some(65536):
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                await stream.send_all(handle(line, state))

    _serve(sock_path, one)


def serve_trio_group(sock_path: str, db: Path) -> None:
    """The trio server with group commit and no thread: each connection queues its request and
    waits; one task runs everything queued in one transaction (blocking the loop for the
    commit, while the next requests gather in the sockets), then wakes the waiters."""
    handle, db_conn = _handler(db, group=True)
    queued: list[list] = []
    wake = trio.Event()

    async def committer() -> None:
        nonlocal queued, wake
        while True:
            await wake.wait()
            wake = trio.Event()
            batch, queued = queued, []
            db_conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                job[2] = handle(job[0], job[1])
            db_conn.execute("COMMIT")
            for job in batch:
                job[3].set()

    async def one(stream: trio.SocketStream) -> None:
        buf = b""
        state: dict = {}
        while data := await stream.receive_some(65536):
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                job = [line, state, b"", trio.Event()]
                queued.append(job)
                wake.set()
                await job[3].wait()
                await stream.send_all(job[2])

    _serve(sock_path, one, committer)


def serve_trio_wake(sock_path: str, db: Path) -> None:
    """The wake floor: a long-polling `recv` parks; a `send` to a parked recipient inserts and
    pops for it in one transaction (one commit, as the daemon's hand-off), then answers the
    waiter first and the sender second; `ack_turn` is a commit of its own. Nothing else."""
    conn, pop = _database(db)
    parked: dict[str, trio.SocketStream] = {}

    async def one(stream: trio.SocketStream) -> None:
        buf = b""
        while data := await stream.receive_some(65536):
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                if req["cmd"] == "recv":
                    parked[req["me"]] = stream
                    continue
                conn.execute("BEGIN IMMEDIATE")
                if req["cmd"] == "send":
                    waiter = parked.pop(req["to"], None)
                    args = (req["to"], "me", req["body"], None, time.time())
                    mid = conn.execute(B.SQL_INSERT, args).lastrowid
                    rows = (
                        conn.execute(pop, (time.time(), req["to"], 1)).fetchall() if waiter else []
                    )
                    conn.execute("COMMIT")
                    if waiter is not None:
                        got = {"ok": True, "messages": [list(r) for r in rows]}
                        await waiter.send_all(json.dumps(got).encode() + b"\n")
                    await stream.send_all(json.dumps({"ok": True, "id": mid}).encode() + b"\n")
                else:
                    args = (time.time(), req["me"], req["ids"][0])
                    n = len(conn.execute(B.SQL_ACK, args).fetchall())
                    conn.execute("COMMIT")
                    await stream.send_all(json.dumps({"ok": True, "acked": n}).encode() + b"\n")

    _serve(sock_path, one)


def wake_samples(rx: Raw, tx: Raw, n: int, daemon: bool) -> list[float]:
    """Send → long-poll answer latencies (s): `rx` long-polls, `tx` sends to it, `rx` acks."""
    out = []
    for _ in range(n):
        recv = {"cmd": "recv", "max": 1, "wait_seconds": 30} if daemon else {"cmd": "recv"}
        rx.sock.sendall(json.dumps(recv if daemon else {**recv, "me": "rx"}).encode() + b"\n")
        time.sleep(0.003)  # the server parks the recv meanwhile
        t0 = time.perf_counter()
        tx.sock.sendall(json.dumps({"cmd": "send", "to": "rx", "body": B.BODY}).encode() + b"\n")
        got = json.loads(rx.lines.readline())
        t1 = time.perf_counter()
        sent = json.loads(tx.lines.readline())
        mid = sent["id"]
        first = got["messages"][0]
        if (first[0] if isinstance(first, list) else first["id"]) != mid:
            raise AssertionError(f"sent {sent}, received {got}")
        rx.call({"cmd": "ack_turn", "ids": [mid], **({} if daemon else {"me": "rx"})})
        out.append(t1 - t0)
    return out


class Raw:
    """A blocking client speaking the same lines to a minimal server."""

    def __init__(self, path: str) -> None:
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no server at {path}")
            time.sleep(0.01)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.lines = self.sock.makefile("rb")

    def call(self, req: dict) -> dict:
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        return json.loads(self.lines.readline())


def cycles(client, seconds: float, me: str = "me") -> float:
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        mid = client.call({"cmd": "send", "to": me, "body": B.BODY})["id"]
        (got,) = client.call({"cmd": "recv", "max": 1})["messages"]
        if (got[0] if isinstance(got, list) else got["id"]) != mid:
            raise AssertionError(f"sent {mid}, received {got}")
        client.call({"cmd": "ack_turn", "ids": [mid]})
        n += 1
    return n / (time.perf_counter() - start)


def proc_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / B.CLK_TCK


def _pair_client(connect, name: str, ready, go, seconds: float, out) -> None:
    """One client process of the concurrent load: connect, say ready, wait for go, cycle."""
    try:
        client = connect(name)
        cycles(client, 0.05, name)  # warm-up: every path
        ready.send(1)
        go.recv()
        out.send(cycles(client, seconds, name) * seconds)
    finally:
        os._exit(0)


def pairs_slice(connect, names: list[str], server_pid: int, seconds: float) -> tuple[float, float]:
    """`len(names)` client processes at once for `seconds`: (requests served, server CPU s)."""
    pipes = []
    pids = []
    for name in names:
        ready_r, ready_w = mp.Pipe(duplex=False)
        go_r, go_w = mp.Pipe(duplex=False)
        out_r, out_w = mp.Pipe(duplex=False)
        pid = os.fork()
        if pid == 0:
            _pair_client(connect, name, ready_w, go_r, seconds, out_w)
        pids.append(pid)
        pipes.append((ready_r, go_w, out_r))
    for ready_r, _, _ in pipes:
        ready_r.recv()
    cpu0 = proc_cpu(server_pid)
    for _, go_w, _ in pipes:
        go_w.send(1)
    done = sum(out_r.recv() for _, _, out_r in pipes)
    cpu = proc_cpu(server_pid) - cpu0
    for pid in pids:
        os.waitpid(pid, 0)
    return 3 * done, cpu


def pair_phase(
    args: argparse.Namespace,
    daemon,
    tmp: Path,
    pids: dict[str, int],
    names: list[str],
    against=None,
) -> None:
    """The CPU phase: slices of each server in turn (order rotated per round); requests per
    server CPU-second, and the daemon's against each minimal server's (and, with `against`,
    a daemon of another checkout: a same-run A/B)."""
    connect = {
        "trio": lambda _name: Raw(str(tmp / "trio.sock")),
        "group": lambda _name: Raw(str(tmp / "group.sock")),
        "daemon": lambda name: BlockingConnection(daemon.socket(name), timeout=30),
    }
    pid = {**pids, "daemon": daemon.proc.pid}
    if against is not None:
        connect["against"] = lambda name: BlockingConnection(against.socket(name), timeout=30)
        pid["against"] = against.proc.pid
    order = list(connect)
    reqs = dict.fromkeys(connect, 0.0)
    cpu = dict.fromkeys(connect, 0.0)
    ratios: dict[str, list[float]] = {"trio": [], "group": []}
    for r in range(args.pair_rounds):
        per = {}
        for name in order[r % len(order) :] + order[: r % len(order)]:
            n, c = pairs_slice(connect[name], names, pid[name], args.pair_seconds)
            reqs[name] += n
            cpu[name] += c
            per[name] = n / max(c, 1e-9)
        for floor in ratios:
            ratios[floor].append(per["daemon"] / per[floor])
    wall = args.pair_rounds * args.pair_seconds
    label = {
        "trio": "trio server, a commit per request",
        "daemon": "hive-core daemon",
        "group": "trio server, group commit",
        "against": f"daemon of {args.against}",
    }
    for name in connect:
        print(
            f"{args.pairs} pairs, {label[name]:>34}: {reqs[name] / wall:6.0f} requests/s, "
            f"{100 * cpu[name] / wall:3.0f}% of a core, "
            f"{reqs[name] / cpu[name]:6.0f} requests per CPU-second "
            f"({1e6 * cpu[name] / reqs[name]:.0f} us a request)",
            flush=True,
        )
    for floor, rs in ratios.items():
        ratio = (reqs["daemon"] / cpu["daemon"]) / (reqs[floor] / cpu[floor])
        print(
            f"{args.pairs} pairs: daemon / {label[floor]}, requests per CPU-second = "
            f"{ratio:.2f}x (target >= 0.5x: {mark(ratio >= 0.5)}; rounds "
            f"{min(rs):.2f}x..{max(rs):.2f}x, median {statistics.median(rs):.2f}x)",
            flush=True,
        )
    if against is not None:
        ratio = (reqs["daemon"] / cpu["daemon"]) / (reqs["against"] / cpu["against"])
        print(
            f"{args.pairs} pairs: this daemon / the daemon of {args.against}, requests per "
            f"CPU-second = {ratio:.2f}x",
            flush=True,
        )


def wake_phase(args: argparse.Namespace, daemon, tmp: Path) -> None:
    """Wake latency of the daemon beside the wake floor's, in slices of 50 samples in turn."""
    floor = (Raw(str(tmp / "wake.sock")), Raw(str(tmp / "wake.sock")))
    ours = (Raw(daemon.socket("rx")), Raw(daemon.socket("tx")))
    wake_samples(*floor, 20, False)  # warm-up
    wake_samples(*ours, 20, True)
    lat: dict[str, list[float]] = {"floor": [], "daemon": []}
    while len(lat["daemon"]) < args.wake:
        lat["floor"] += wake_samples(*floor, 50, False)
        lat["daemon"] += wake_samples(*ours, 50, True)
    for name, label in (("floor", "trio server, one commit"), ("daemon", "hive-core daemon")):
        got = sorted(lat[name])
        p50, p99 = got[len(got) // 2], got[min(len(got) - 1, int(len(got) * 0.99))]
        print(
            f"wake, {label:>23}: p50 {1e3 * p50:.2f} ms, p99 {1e3 * p99:.2f} ms "
            f"({len(got)} samples, blocking clients)",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each slice")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=16, help="client processes of the CPU phase")
    ap.add_argument("--pair-seconds", type=float, default=2.0, help="length of a CPU slice")
    ap.add_argument("--pair-rounds", type=int, default=6, help="slices of each in the CPU phase")
    ap.add_argument("--skip-one", action="store_true", help="only the CPU phase")
    ap.add_argument(
        "--wake",
        type=int,
        default=300,
        help="wake latency samples of the daemon and of the wake floor (0: none)",
    )
    ap.add_argument(
        "--against",
        metavar="DIR",
        help="the CPU phase also runs the daemon of "
        "another checkout (PYTHONPATH=DIR), e.g. `git archive REV | tar -x -C DIR`",
    )
    args = ap.parse_args()
    header("floor.py")
    tmp = Path(tempfile.mkdtemp(prefix="hf", dir="/tmp"))
    children = []
    daemon = B.Daemon(tmp / "d")
    other = B.Daemon(tmp / "o") if args.against else None
    try:
        for name, fn in (
            ("blocking", serve_blocking),
            ("trio", serve_trio),
            ("group", serve_trio_group),
            ("wake", serve_trio_wake),
        ):
            pid = os.fork()
            if pid == 0:  # the child serves until it is killed
                try:
                    fn(str(tmp / f"{name}.sock"), tmp / f"{name}.db")
                finally:
                    os._exit(0)
            children.append(pid)
        daemon.base.mkdir()
        daemon.start()
        names = [f"p{i:02d}" for i in range(args.pairs)]
        trio.run(B.spawn, daemon, ["me", "rx", "tx", *names])
        if other is not None:
            other.base.mkdir()
            env = dict(os.environ)
            os.environ["PYTHONPATH"] = str(Path(args.against).resolve())
            try:
                other.start()
            finally:
                os.environ.clear()
                os.environ.update(env)
            trio.run(B.spawn, other, names)
        if args.pairs:
            pids = {"trio": children[1], "group": children[2]}
            pair_phase(args, daemon, tmp, pids, names, other)
        if args.wake:
            wake_phase(args, daemon, tmp)
        if args.skip_one:
            return 0
        clients = {
            "blocking": Raw(str(tmp / "blocking.sock")),
            "trio": Raw(str(tmp / "trio.sock")),
            "daemon": BlockingConnection(daemon.socket("me"), timeout=30),
        }
        base = B.Baseline(tmp / "baseline.db", "pinned")
        for client in clients.values():
            cycles(client, 0.2)  # warm-up
        sums = dict.fromkeys(["baseline", *clients], 0.0)
        for _ in range(args.rounds):
            sums["baseline"] += base.run(args.seconds)
            for name, client in clients.items():
                sums[name] += cycles(client, args.seconds)
        print(f"plain sqlite3 baseline: {sums['baseline'] / args.rounds:6.0f} cycles/s")
        for name in clients:
            print(
                f"{name:>8} server, 1 agent: {sums[name] / args.rounds:6.0f} cycles/s = "
                f"{sums[name] / sums['baseline']:.2f}x baseline"
            )
        base.close()
        return 0
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        daemon.stop()
        if other is not None:
            other.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What one agent's strictly sequential cycle could cost through *any* Python socket server on
this machine: the floor under the 1-agent row of bench/broker.py (docs/performance.md).

    .venv/bin/python bench/floor.py [--seconds 1] [--rounds 8]

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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker as B  # noqa: E402  (bench/broker.py: its baseline, statements and daemon helper)
import trio  # noqa: E402

from hive_core.store import schema  # noqa: E402
from hive_wire.blocking import BlockingConnection  # noqa: E402


def _handler(path: Path):  # the broker's three statements, one commit each
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    schema.migrate(conn)
    pop = B.SQL_POP.format(hint=B.POP_HINTS["pinned"])

    def commit(sql: str, args: tuple) -> list:
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(sql, args)
        rows = cur.fetchall() or [(cur.lastrowid,)]
        conn.execute("COMMIT")
        return rows

    def handle(line: bytes) -> bytes:
        req = json.loads(line)
        if req["cmd"] == "send":
            out = {"id": commit(B.SQL_INSERT, (req["to"], "me", req["body"], None, time.time()))[0][0]}
        elif req["cmd"] == "recv":
            out = {"messages": [list(r) for r in commit(pop, (time.time(), "me", 1))]}
        else:
            out = {"acked": len(commit(B.SQL_ACK, (time.time(), "me", req["ids"][0])))}
        return json.dumps({"ok": True, **out}).encode() + b"\n"

    return handle


def serve_blocking(sock_path: str, db: Path) -> None:
    handle = _handler(db)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sock_path)
    listener.listen()
    conn, _ = listener.accept()
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            conn.sendall(handle(line))


def serve_trio(sock_path: str, db: Path) -> None:
    handle = _handler(db)

    async def one(stream: trio.SocketStream) -> None:
        buf = b""
        while data := await stream.receive_some(65536):
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                await stream.send_all(handle(line))

    async def main() -> None:
        listener = trio.socket.socket(socket.AF_UNIX)
        await listener.bind(sock_path)
        listener.listen()
        await trio.serve_listeners(one, [trio.SocketListener(listener)])

    trio.run(main)


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


def cycles(client, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        mid = client.call({"cmd": "send", "to": "me", "body": B.BODY})["id"]
        (got,) = client.call({"cmd": "recv", "max": 1})["messages"]
        if (got[0] if isinstance(got, list) else got["id"]) != mid:
            raise AssertionError(f"sent {mid}, received {got}")
        client.call({"cmd": "ack_turn", "ids": [mid]})
        n += 1
    return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each slice")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hf", dir="/tmp"))
    children = []
    daemon = B.Daemon(tmp / "d")
    try:
        for name, fn in (("blocking", serve_blocking), ("trio", serve_trio)):
            pid = os.fork()
            if pid == 0:  # the child serves until it is killed
                try:
                    fn(str(tmp / f"{name}.sock"), tmp / f"{name}.db")
                finally:
                    os._exit(0)
            children.append(pid)
        daemon.base.mkdir()
        daemon.start()
        trio.run(B.spawn, daemon, ["me"])
        clients = {"blocking": Raw(str(tmp / "blocking.sock")), "trio": Raw(str(tmp / "trio.sock")),
                   "daemon": BlockingConnection(daemon.socket("me"), timeout=30)}
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
            print(f"{name:>8} server, 1 agent: {sums[name] / args.rounds:6.0f} cycles/s = "
                  f"{sums[name] / sums['baseline']:.2f}x baseline")
        base.close()
        return 0
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

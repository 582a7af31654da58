"""Abuse and limits: many idle connections, the connection cap, slow clients, fd leaks."""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from hive_core.app import Hive
from hive_core.daemon import serve
from hive_wire.client import Connection
from tests.helpers import agent_sock, call, make_config, spawn_idle


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def hive_config() -> dict[str, Any]:
    return {"max_connections": 1100, "read_deadline": 30.0}


async def test_1000_idle_connections_and_the_cap(hive: Hive, host: str) -> None:
    before = open_fds()
    idle: list[trio.SocketStream] = []
    try:
        for _ in range(1000):
            idle.append(await trio.open_unix_socket(host))
        with trio.fail_after(10):  # a normal client is served beside them
            assert (await call(host, {"cmd": "list"}))["ok"] is True
        for _ in range(100):
            idle.append(await trio.open_unix_socket(host))
        with trio.fail_after(10):
            refused = await call(host, {"cmd": "list"})
        assert refused["ok"] is False and refused["code"] == "limit"
        assert "too many connections" in refused["error"]
    finally:
        for stream in idle:
            await stream.aclose()
    await trio.testing.wait_all_tasks_blocked()  # the daemon has seen every EOF
    assert (await call(host, {"cmd": "list"}))["ok"] is True
    assert open_fds() <= before + 2  # nothing leaked (the fixture's own sockets aside)


class TestPerAgentCap:
    @pytest.fixture
    def hive_config(self) -> dict[str, Any]:
        return {"max_connections": 20, "max_connections_per_agent": 5}

    async def test_an_agent_cannot_crowd_out_the_others(self, hive: Hive, host: str) -> None:
        """An agent that opens connections without end is refused past its own cap; the
        operator, the manager and the other agents are served all the while."""
        await spawn_idle(hive, "alice", "bob")
        idle: list[trio.SocketStream] = []
        try:
            for _ in range(5):
                idle.append(await trio.open_unix_socket(agent_sock(hive, "alice")))
            refused = await call(agent_sock(hive, "alice"), {"cmd": "whoami"})
            assert refused["ok"] is False and refused["code"] == "limit", refused
            for path in (host, str(hive.paths.manager_socket), agent_sock(hive, "bob")):
                assert (await call(path, {"cmd": "status"} if path != host else {"cmd": "list"}))[
                    "ok"
                ] is True
        finally:
            for stream in idle:
                await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert (await call(agent_sock(hive, "alice"), {"cmd": "whoami"}))["ok"] is True


async def test_one_byte_a_second_is_dropped(
    hive: Hive, host: str, autojump_clock: trio.testing.MockClock
) -> None:
    stream = await trio.open_unix_socket(host)
    start = trio.current_time()
    with trio.fail_after(120):
        try:
            for byte in b'{"cmd":"list"' * 10:
                await stream.send_all(bytes([byte]))
                await trio.sleep(1)
            raise AssertionError("the slow client was never dropped")
        except trio.BrokenResourceError:
            pass  # dropped: the daemon closed with our bytes unread (reset)
    assert 30 <= trio.current_time() - start <= 32
    await stream.aclose()
    # An idle connection between requests is not dropped (agents long-poll).
    async with await Connection.open(host) as conn:
        await trio.sleep(3600)
        assert await conn.call({"cmd": "list"}) == {"agents": []}


async def test_a_pipelining_client_does_not_hold_the_daemon(hive: Hive) -> None:
    """150 requests written at once on one connection (none of which waits for the
    database): a request on another connection is answered while most of them are still
    unanswered, not after all of them."""
    await spawn_idle(hive, "flood", "other")
    flood = await Connection.open(agent_sock(hive, "flood"))
    other = await Connection.open(agent_sock(hive, "other"))
    try:
        assert (await other.call({"cmd": "whoami"}))["name"] == "other"  # served, waiting
        n = 150  # few enough that their answers never fill the socket buffer
        await flood.stream.send_all(b'{"cmd":"whoami"}\n' * n)
        assert (await flood.read())["name"] == "flood"  # the daemon is serving the flood
        assert (await other.call({"cmd": "whoami"}))["name"] == "other"
        answered = 1 + len(flood._lines)  # read already, and written when `other` got its own
        while True:
            try:
                data = os.read(flood.stream.socket.fileno(), 1 << 20)
            except BlockingIOError:
                break
            answered += data.count(b"\n")
        assert answered < n * 2 // 3, answered  # 47 or 63 here (16 a turn); 150 if held
    finally:
        await flood.aclose()
        await other.aclose()


async def test_each_new_line_gets_its_own_read_deadline(
    hive: Hive, host: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A client that always finishes one line and starts the next in the same write (20 s
    apart, the deadline 30 s) makes progress: it is never dropped."""
    request = b'{"cmd":"list"}\n'
    async with await Connection.open(host) as conn:
        await conn.stream.send_all(request[:5])
        for _ in range(6):  # 120 s in all, far past one deadline
            await trio.sleep(20)
            await conn.stream.send_all(request[5:] + request[:5])
            assert (await conn.read())["agents"] == []
        await conn.stream.send_all(request[5:])
        assert (await conn.read())["agents"] == []


async def test_answers_over_the_request_limit_reach_the_trio_client(hive: Hive) -> None:
    """Answers are not held to the 1 MiB request limit: five bodies of 250 KB in one `recv`
    arrive whole through `hive_wire.client.Connection`."""
    await spawn_idle(hive, "alice")
    body = "b" * 250_000
    async with await Connection.open(agent_sock(hive, "alice")) as conn:
        for _ in range(5):
            await conn.call({"cmd": "send", "to": "alice", "body": body})
        got = await conn.call({"cmd": "recv", "max": 5})
        assert [m["body"] for m in got["messages"]] == [body] * 5
        assert (await conn.call({"cmd": "ack_turn"}))["acked"] == 5


async def test_an_answer_cut_off_by_shutdown_puts_its_rows_back(dirs: Path) -> None:
    """A `recv` answer too big for a client that reads nothing is still being written when the
    daemon stops: the rows it popped go back to the inbox (not leased for 30 minutes), first in
    line for the next `recv`."""
    cfg = make_config(dirs)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            hive: Hive = await nursery.start(serve, cfg)
            await spawn_idle(hive, "alice")
            path = agent_sock(hive, "alice")
            for i in range(8):
                await call(path, {"cmd": "send", "to": "alice", "body": f"{i:03d}" + "x" * 250_000})
            sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(path)
            await sock.send(b'{"cmd":"recv","max":8}\n')  # and never read
            await trio.testing.wait_all_tasks_blocked()  # the daemon waits to write the rest
            hive.shutdown()
        sock.close()
    conn = sqlite3.connect(dirs / "state" / "hive.sqlite")
    try:
        rows = conn.execute(
            "SELECT delivered_at IS NULL, redelivered FROM messages "
            "WHERE recipient = 'alice' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [(1, 0)] * 8

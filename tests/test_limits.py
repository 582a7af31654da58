"""Abuse and limits: many idle connections, the connection cap, slow clients, fd leaks."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.testing

from hive_core.daemon import Hive
from hive_wire.client import Connection

from .conftest import agent_sock, call, spawn_idle


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
    assert hive.server.connections == 0
    assert (await call(host, {"cmd": "list"}))["ok"] is True
    assert open_fds() <= before + 2  # nothing leaked (the fixture's own sockets aside)


async def test_one_byte_a_second_is_dropped(hive: Hive, host: str,
                                            autojump_clock: trio.testing.MockClock) -> None:
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

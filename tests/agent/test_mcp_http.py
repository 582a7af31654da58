"""The harness's MCP endpoint (`mcp.HttpEndpoint`): streamable HTTP on the loopback behind a bearer
token, the same tools as `hive-core mcp`, against a real daemon; plain HTTP requests (httpx) so
the refusals are seen as they are."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.testing

from hive_core.agent import mcp as mcpmod
from hive_core.agent.tools import AGENT_TOOLS
from tests.helpers import spawn_idle

from .conftest import ok

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def rpc(method: str, params: dict[str, Any] | None = None, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}}


@pytest.fixture
async def pair(hive: Any) -> tuple[str, str, str]:
    await spawn_idle(hive, "alice", "bob")
    return (
        str(hive.paths.agent_socket("alice")),
        str(hive.paths.agent_socket("bob")),
        str(hive.paths.host_socket),
    )


@pytest.fixture
async def endpoint(pair: tuple[str, str, str]) -> AsyncIterator[mcpmod.HttpEndpoint]:
    ep = mcpmod.HttpEndpoint(pair[0])
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            await nursery.start(ep.run)
        yield ep
        nursery.cancel_scope.cancel()


@pytest.fixture
async def client(endpoint: mcpmod.HttpEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


def auth(ep: mcpmod.HttpEndpoint) -> dict[str, str]:
    return {**ACCEPT, "Authorization": f"Bearer {ep.token}"}


async def test_the_tools_over_http(
    endpoint: mcpmod.HttpEndpoint, client: httpx.AsyncClient, pair: tuple[str, str, str]
) -> None:
    assert endpoint.url is not None
    init = rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    )
    got = await client.post(endpoint.url, json=init, headers=auth(endpoint))
    assert got.status_code == 200, got.text
    assert got.json()["result"]["serverInfo"]["name"] == "hive"
    listed = await client.post(endpoint.url, json=rpc("tools/list"), headers=auth(endpoint))
    assert [t["name"] for t in listed.json()["result"]["tools"]] == list(AGENT_TOOLS)
    sent = await client.post(
        endpoint.url,
        json=rpc("tools/call", {"name": "send", "arguments": {"to": "bob", "body": "over http"}}),
        headers=auth(endpoint),
    )
    result = sent.json()["result"]
    assert result["isError"] is False
    assert result["content"][0]["text"] == f"sent (message id {result['structuredContent']['id']})"
    got_bob = await ok(pair[1], {"cmd": "recv", "max": 5})
    assert [(m["from"], m["body"]) for m in got_bob["messages"]] == [("alice", "over http")]
    # the mcp-config entry Claude Code connects with
    assert endpoint.server_config() == {
        "type": "http",
        "url": endpoint.url,
        "headers": {"Authorization": f"Bearer {endpoint.token}"},
        "timeout": mcpmod.HTTP_TIMEOUT_MS,
    }


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic x", "bearer {token}", "{token}"])
async def test_a_request_without_the_token_is_refused(
    endpoint: mcpmod.HttpEndpoint,
    client: httpx.AsyncClient,
    pair: tuple[str, str, str],
    header: str | None,
) -> None:
    assert endpoint.url is not None
    headers = dict(ACCEPT)
    if header is not None:
        headers["Authorization"] = header.format(token=endpoint.token)
    call = rpc("tools/call", {"name": "send", "arguments": {"to": "bob", "body": "sneaky"}})
    got = await client.post(endpoint.url, json=call, headers=headers)
    assert got.status_code == 401 and got.headers["www-authenticate"].startswith("Bearer")
    # and nothing was sent
    assert (await ok(pair[1], {"cmd": "recv", "max": 5}))["messages"] == []
    # another path with the right token is not found; the token does not leak anywhere
    base = endpoint.url.rsplit("/", 1)[0]
    assert (await client.get(f"{base}/", headers=auth(endpoint))).status_code == 404
    assert endpoint.token not in got.text


async def test_the_endpoint_is_loopback_only(endpoint: mcpmod.HttpEndpoint) -> None:
    assert endpoint.url is not None
    parts = urlsplit(endpoint.url)
    assert parts.hostname == "127.0.0.1" and parts.port and parts.path == "/mcp"
    # not reachable on any other address of this machine
    others = set()
    for _, _, _, _, addr in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
        others.add(addr[0])
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
        others.add(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    others = {a for a in others if not a.startswith("127.") and a != "0.0.0.0"}
    for addr in others:
        with trio.socket.socket() as s, pytest.raises(OSError):
            await s.connect((addr, parts.port))


async def test_a_client_off_the_loopback_is_refused() -> None:
    """The guard itself (behind a bind that could be widened): a non-loopback peer gets 403."""
    reached = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    app = mcpmod.guard("t0ken", inner)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"authorization", b"Bearer t0ken")]
    scope = {"type": "http", "path": "/mcp", "headers": headers, "client": ("10.1.2.3", 4000)}
    await app(scope, receive, send)
    assert sent[0]["status"] == 403 and not reached
    await app({**scope, "client": ("::1", 4000)}, receive, send)
    await app({**scope, "client": ("127.0.0.1", 4000)}, receive, send)
    assert len(reached) == 2


async def test_calls_running_when_the_turn_ends_are_cancelled(
    endpoint: mcpmod.HttpEndpoint, client: httpx.AsyncClient, pair: tuple[str, str, str]
) -> None:
    """A `recv` left long-polling by a finished turn must not pop the next turn's messages."""
    assert endpoint.url is not None
    url = endpoint.url
    answers: list[dict[str, Any]] = []

    async def long_poll() -> None:
        call = rpc("tools/call", {"name": "recv", "arguments": {"wait_seconds": 60}})
        answers.append((await client.post(url, json=call, headers=auth(endpoint))).json())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_poll)
        with trio.fail_after(30):
            while not endpoint.hive._running:  # noqa: SLF001
                await trio.testing.wait_all_tasks_blocked()
            await trio.testing.wait_all_tasks_blocked()  # the recv is waiting on the daemon
            assert endpoint.cancel_calls() == 1
    (answer,) = answers
    assert answer["result"]["isError"] is True
    assert answer["result"]["structuredContent"]["code"] == "cancelled"
    # a message sent now stays unread for the next turn
    await ok(pair[2], {"cmd": "send", "to": "alice", "body": "for the next turn"})
    assert (await ok(pair[0], {"cmd": "status"}))["unread"] == 1
    assert (await ok(pair[0], {"cmd": "requeue_inflight"}))["requeued"] == 0

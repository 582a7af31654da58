"""The dashboard's HTTP surface, through real TCP to the daemon (dashboard.md, "HTTP surface"):
the pages, `/api/state`, `POST /api/VERB` (generated from the verb table, the socket's envelope,
status by code), `/dashboard/history`, `/dashboard/state_at`, `/api/activity`, and the guards
(Host, Origin, Content-Type, body size).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from hive_core.app import Hive
from hive_core.services import api
from hive_core.surfaces.http.app import POST_VERBS
from hive_wire.errors import Unavailable
from hive_wire.verbs import VERBS
from tests.helpers import agent_sock, call, ok, send, spawn_idle

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def hive_config() -> dict[str, Any]:
    return {"dashboard_listen": "127.0.0.1:0", "dashboard_hosts": ["hive.example.org"]}


@pytest.fixture
async def web(hive: Hive) -> AsyncIterator[httpx.AsyncClient]:
    assert hive.dashboard_url and hive.dashboard_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=hive.dashboard_url, timeout=30) as client:
        yield client


def port(hive: Hive) -> int:
    assert hive.dashboard_url
    return int(hive.dashboard_url.rstrip("/").rpartition(":")[2])


async def post(web: httpx.AsyncClient, verb: str, fields: Any = None, **kw: Any) -> httpx.Response:
    return await web.post(f"/api/{verb}", json=fields if fields is not None else {}, **kw)


def envelope(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body: dict[str, Any] = r.json()
    if code is None:
        assert body["ok"] is True and list(body)[:2] == ["version", "ok"], body
    else:
        assert list(body) == ["version", "ok", "error", "code"], body
        assert (body["ok"], body["code"]) == (False, code), body
    return body


# --- pages ---------------------------------------------------------------------------------
async def test_pages_and_static_files(web: httpx.AsyncClient) -> None:
    r = await web.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/static/dashboard.js" in r.text
    r = await web.get("/agents/alice")
    assert r.status_code == 200 and "/static/agent.js" in r.text
    for bad in (
        "/agents/Alice",
        "/agents/-x",
        "/agents/operator",
        "/agents/a%2Fb",
        "/agents/" + "x" * 80,
    ):
        envelope(await web.get(bad), 404, "not_found")
    r = await web.get("/static/dashboard.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert (await web.get("/static/vendor/d3-force.min.js")).status_code == 200
    assert (await web.get("/static/../app.py")).status_code == 404
    assert (await web.get("/static/nothing.js")).status_code == 404
    envelope(await web.get("/nowhere"), 404, "not_found")


# --- /api/state ------------------------------------------------------------------------------
async def test_state_is_the_snapshot_in_the_spec_order(hive: Hive, web: httpx.AsyncClient) -> None:
    empty = (await web.get("/api/state")).json()
    assert list(empty) == [
        "seq",
        "agents",
        "approvals",
        "questions",
        "transients",
        "tombstones",
        "reminders",
        "dead_letters",
        "inbox",
    ]
    assert empty["agents"] == [] and empty["inbox"] == []

    await spawn_idle(hive, "alice", "bob")
    host, manager, alice = (
        str(hive.paths.host_socket),
        str(hive.paths.manager_socket),
        agent_sock(hive, "alice"),
    )
    mid = await send(alice, "operator", "hello operator")
    asked = await ok(alice, {"cmd": "ask", "question": "ship it?", "options": ["yes", "no"]})
    approval = (await ok(manager, {"cmd": "request_spawn", "name": "carol"}))["id"]
    await ok(host, {"cmd": "destroy", "name": "bob"})

    state = (await web.get("/api/state")).json()
    assert state["seq"] == hive.events.seq
    status = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"]
    assert state["agents"] == status and [r["name"] for r in status] == ["alice"]
    assert [(a["id"], a["kind"], a["status"]) for a in state["approvals"]] == [
        (approval, "spawn", "pending")
    ]
    assert [(q["id"], q["question"]) for q in state["questions"]] == [(asked["id"], "ship it?")]
    assert state["tombstones"][0]["name"] == "bob"
    assert [(m["id"], m["from"], m["body"]) for m in state["inbox"]] == [
        (mid, "alice", "hello operator")
    ]
    # peeked, not popped: the inbox verb still has it
    (popped,) = (await ok(host, {"cmd": "inbox"}))["messages"]
    assert popped["id"] == mid
    assert (await web.get("/api/state")).json()["inbox"] == []


async def test_state_seq_is_taken_first(hive: Hive, web: httpx.AsyncClient) -> None:
    """Events published while the snapshot is read have seq > its seq: a client that drops
    `seq <= snapshot.seq` keeps them."""
    await spawn_idle(hive, "alice")
    before = hive.events.seq
    state = (await web.get("/api/state")).json()
    assert before <= state["seq"] <= hive.events.seq


# --- POST /api/VERB --------------------------------------------------------------------------
def test_post_routes_are_the_host_call_verbs() -> None:
    assert set(POST_VERBS) == {
        n for n, v in VERBS.items() if "host" in v.sockets and v.mode == "call"
    }
    assert {"send", "approve", "deny", "answer", "spawn", "destroy", "logs"} <= set(POST_VERBS)
    assert not {"inbox", "subscribe_events", "subscribe_agent_status", "recv"} & set(POST_VERBS)


async def test_post_verbs_answer_the_socket_envelope(hive: Hive, web: httpx.AsyncClient) -> None:
    envelope(await post(web, "spawn", {"name": "alice", "command": ["sleep", "3600"]}), 200)
    sent = envelope(await post(web, "send", {"to": "alice", "body": "hi"}), 200)
    assert list(sent) == ["version", "ok", "id"]
    (msg,) = (await ok(agent_sock(hive, "alice"), {"cmd": "recv"}))["messages"]
    assert (msg["id"], msg["from"], msg["body"]) == (sent["id"], "operator", "hi")
    listed = envelope(await post(web, "list"), 200)
    assert listed == await ok(str(hive.paths.host_socket), {"cmd": "list"})
    # a `cmd` in the body is the URL's verb, whatever it says
    envelope(await post(web, "list", {"cmd": "destroy", "name": "alice"}), 200)
    assert hive.agents.is_agent("alice")


async def test_approve_deny_answer_and_their_errors(hive: Hive, web: httpx.AsyncClient) -> None:
    await spawn_idle(hive, "alice")
    manager, alice = str(hive.paths.manager_socket), agent_sock(hive, "alice")
    first = (await ok(manager, {"cmd": "request_spawn", "name": "carol", "description": "c"}))["id"]
    second = (await ok(manager, {"cmd": "request_spawn", "name": "dave"}))["id"]
    envelope(await post(web, "deny", {"id": second, "note": "not now"}), 200)
    envelope(await post(web, "deny", {"id": second}), 409, "conflict")
    envelope(await post(web, "approve", {"id": 999}), 404, "not_found")
    envelope(await post(web, "approve", {"id": "1"}), 400, "bad_request")
    envelope(await post(web, "approve", {}), 400, "bad_request")
    envelope(await post(web, "approve", {"id": first}), 200)
    assert hive.agents.is_agent("carol")
    qid = (await ok(alice, {"cmd": "ask", "question": "?"}))["id"]
    envelope(await post(web, "answer", {"id": qid, "answer": "yes"}), 200)
    envelope(await post(web, "answer", {"id": qid, "answer": "again"}), 409, "conflict")


async def test_unserved_verbs_are_404(web: httpx.AsyncClient) -> None:
    for verb in (
        "inbox",
        "subscribe_events",
        "subscribe_agent_status",
        "recv",
        "whoami",
        "ack_turn",
        "nope",
        "request_apply_commit",
    ):
        envelope(await post(web, verb), 404, "unknown_command")
    envelope(await web.get("/api/send"), 404, "not_found")  # a GET is no call


async def test_bad_bodies(web: httpx.AsyncClient) -> None:
    for body in (
        b"{",
        b"[1]",
        b'{"to": NaN}',
        b"\xff\xfe",
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b'{"id": 1' + b"0" * 30 + b"}",
    ):
        envelope(await web.post("/api/approve", content=body, headers=JSON), 400, "bad_json")
    envelope(
        await web.post("/api/send", content=b'{"to": "alice", "body": 3}', headers=JSON),
        400,
        "bad_request",
    )
    envelope(await post(web, "send", {"to": "nobody", "body": "x"}), 404, "not_found")
    envelope(await post(web, "send", {"to": "a/b", "body": "x"}), 400, "bad_request")
    envelope(await post(web, "send", {"to": "operator", "body": "x" * 300_000}), 413, "too_large")


async def test_limit_unavailable_and_internal_status(
    hive: Hive, web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [{"kind": "state", "state": "idle"}] * 64
    codes = []
    for _ in range(60):  # over the burst of 1,000 after 16 (more if the clock runs meanwhile)
        r = await post(web, "activity", {"source": "flood", "events": events})
        codes.append(r.status_code)
        if r.status_code != 200:
            break
    assert codes[0] == 200 and codes[-1] == 429
    envelope(r, 429, "limit")

    async def unavailable(*args: Any) -> Any:
        raise Unavailable("the database is full")

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(api.HANDLERS, "stats", unavailable)
    envelope(await post(web, "stats"), 503, "unavailable")
    monkeypatch.setitem(api.HANDLERS, "stats", broken)
    body = envelope(await post(web, "stats"), 500, "internal")
    assert "a bug" not in body["error"]
    monkeypatch.undo()
    envelope(await post(web, "stats"), 200)


async def test_urls_home_is_the_dashboard(hive: Hive, web: httpx.AsyncClient) -> None:
    answer = await ok(str(hive.paths.host_socket), {"cmd": "urls"})
    assert answer["urls"]["home"] == hive.dashboard_url
    assert envelope(await post(web, "urls"), 200)["urls"]["home"] == hive.dashboard_url


# --- guards --------------------------------------------------------------------------------
async def test_host_header_must_be_ours(hive: Hive, web: httpx.AsyncClient) -> None:
    p = port(hive)
    for host in (
        f"localhost:{p}",
        f"127.0.0.1:{p}",
        f"[::1]:{p}",
        f"LOCALHOST:{p}",
        "hive.example.org",
        f"hive.example.org:{p}",
    ):
        r = await web.get("/api/state", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)
    for host in (
        "evil.example",
        f"evil.example:{p}",
        f"127.0.0.1:{p + 1}",
        "localhost",
        f"127.0.0.1.evil.example:{p}",
        "",
    ):
        envelope(await web.get("/api/state", headers={"Host": host}), 403, "forbidden")
        envelope(await post(web, "list", headers={"Host": host}), 403, "forbidden")
    envelope(await web.get("/", headers={"Host": "rebind.example"}), 403, "forbidden")
    envelope(
        await web.get("/dashboard/stream", headers={"Host": "rebind.example"}), 403, "forbidden"
    )


async def test_post_origin_and_content_type(hive: Hive, web: httpx.AsyncClient) -> None:
    p = port(hive)
    envelope(await post(web, "list", headers={"Origin": f"http://127.0.0.1:{p}"}), 200)
    for origin in (
        "http://evil.example",
        f"http://localhost:{p}",
        "null",
        f"https://127.0.0.1:{p}",
    ):
        envelope(await post(web, "list", headers={"Origin": origin}), 403, "forbidden")
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""):
        r = await web.post("/api/list", content=b"{}", headers={"Content-Type": ctype})
        envelope(r, 415, "bad_request")
    r = await web.post(
        "/api/list", content=b"{}", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    envelope(r, 200)


async def raw_post(hive: Hive, headers: str, chunks: list[bytes]) -> bytes:
    """A POST over a raw connection (httpx stops sending when answered early, and leaves its
    body iterator unfinished): the answer's bytes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port(hive))
    async with stream:
        await stream.send_all(
            f"POST /api/send HTTP/1.1\r\nHost: 127.0.0.1:{port(hive)}\r\n"
            f"Content-Type: application/json\r\n{headers}\r\n".encode()
        )
        try:
            for chunk in chunks:
                await stream.send_all(chunk)
        except trio.BrokenResourceError:
            pass  # answered and closed before the end: fine
        answer = b""
        with trio.fail_after(30):
            while b'"}' not in answer:
                data = await stream.receive_some()
                if not data:
                    break
                answer += data
    return answer


async def test_bodies_are_capped(hive: Hive) -> None:
    big = json.dumps({"to": "operator", "body": "x" * (1 << 20)}).encode()
    answer = await raw_post(hive, f"Content-Length: {len(big)}\r\n", [big])
    assert answer.startswith(b"HTTP/1.1 413") and b'"code":"too_large"' in answer, answer
    # A chunked body (no Content-Length) is counted as it comes.
    chunks = [b"10000\r\n" + b"x" * 65536 + b"\r\n"] * 40
    answer = await raw_post(hive, "Transfer-Encoding: chunked\r\n", chunks)
    assert answer.startswith(b"HTTP/1.1 413") and b'"code":"too_large"' in answer, answer


# --- history, state_at, activity -------------------------------------------------------------
async def test_history_pages_forward(hive: Hive, web: httpx.AsyncClient) -> None:
    await spawn_idle(hive, "alice")
    host = str(hive.paths.host_socket)
    ids = [await send(host, "alice", f"m{i}") for i in range(30)]
    everything = (await web.get("/dashboard/history")).json()
    assert list(everything) == ["seq", "events"] and everything["seq"] == hive.events.seq
    seqs = [e["seq"] for e in everything["events"]]
    assert seqs == list(range(1, hive.events.seq + 1))
    assert [
        e["id"] for e in everything["events"] if e["kind"] == "sent" and e["to"] == "alice"
    ] == ids
    # paging: the first M after N; written or not, the same events
    page = (await web.get("/dashboard/history", params={"since_seq": 5, "limit": 7})).json()
    assert [e["seq"] for e in page["events"]] == list(range(6, 13))
    await hive.events.flush()
    assert (await web.get("/dashboard/history", params={"since_seq": 5, "limit": 7})).json()[
        "events"
    ] == page["events"]
    assert (await web.get("/dashboard/history", params={"since_seq": 10**9})).json()["events"] == []
    for bad in ({"since_seq": -1}, {"since_seq": "x"}, {"limit": 0}, {"limit": "1e3"}):
        envelope(await web.get("/dashboard/history", params=bad), 400, "bad_request")


async def test_history_limit_default_and_cap(hive: Hive, web: httpx.AsyncClient) -> None:
    events = [{"kind": "state", "state": "idle"}] * 64
    names = [f"a{n}" for n in range(6)]
    await spawn_idle(hive, *names)
    for n in range(90):  # 5,760 events, from six agents (each has its own rate)
        await ok(agent_sock(hive, names[n // 15]), {"cmd": "activity", "events": events})
    assert len((await web.get("/dashboard/history")).json()["events"]) == 500
    r = await web.get("/dashboard/history", params={"limit": 100_000})
    assert len(r.json()["events"]) == 5000


async def test_state_at_replays_the_agents(hive: Hive, web: httpx.AsyncClient) -> None:
    host = str(hive.paths.host_socket)
    await spawn_idle(hive, "alice", "bob")
    both = hive.events.seq
    await ok(host, {"cmd": "destroy", "name": "bob"})
    after = hive.events.seq
    then = (await web.get("/dashboard/state_at", params={"seq": both})).json()
    assert list(then) == ["seq", "at", "agents"] and then["seq"] == both
    assert [r["name"] for r in then["agents"]] == ["alice", "bob"]
    assert then["at"].endswith("Z")
    now = (await web.get("/dashboard/state_at", params={"seq": after})).json()
    assert [r["name"] for r in now["agents"]] == ["alice"]
    status = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"]
    assert now["agents"] == status
    # the same once written to SQLite
    await hive.events.flush()
    assert (await web.get("/dashboard/state_at", params={"seq": both})).json() == then
    assert (await web.get("/dashboard/state_at", params={"seq": 0})).json()["agents"] == []
    future = (await web.get("/dashboard/state_at", params={"seq": 10**9})).json()
    assert future["seq"] == hive.events.seq
    for bad in ({}, {"seq": "-1"}, {"seq": "x"}):
        envelope(await web.get("/dashboard/state_at", params=bad), 400, "bad_request")


async def test_activity_backfill(hive: Hive, web: httpx.AsyncClient) -> None:
    host = str(hive.paths.host_socket)
    events = [
        {"kind": "turn_start"},
        {"kind": "tool_use", "tool": "Bash"},
        {"kind": "text", "preview": "done"},
    ]
    await ok(host, {"cmd": "activity", "source": "claude-1", "events": events})
    got = (await web.get("/api/activity", params={"agent": "claude-1"})).json()
    assert list(got) == ["seq", "activity"] and got["seq"] == hive.events.seq
    assert [(e["kind"], e["agent"], e["activity"]["kind"]) for e in got["activity"]] == [
        ("agent_activity", "claude-1", k) for k in ("turn_start", "tool_use", "text")
    ]
    assert all(isinstance(e["seq"], int) and e["at"].endswith("Z") for e in got["activity"])
    last = (await web.get("/api/activity", params={"agent": "claude-1", "limit": 1})).json()
    assert [e["activity"]["kind"] for e in last["activity"]] == ["text"]
    assert (await web.get("/api/activity", params={"agent": "nobody"})).json()["activity"] == []
    envelope(await web.get("/api/activity"), 400, "bad_request")
    envelope(
        await web.get("/api/activity", params={"agent": "a", "limit": "0"}), 400, "bad_request"
    )


async def test_answers_are_the_same_as_on_the_socket(hive: Hive, web: httpx.AsyncClient) -> None:
    await spawn_idle(hive, "alice")
    host = str(hive.paths.host_socket)
    for verb, fields in (
        ("agent_status", {}),
        ("pending", {}),
        ("questions", {}),
        ("reminders", {}),
        ("tombstones", {}),
        ("dead_letters", {}),
        ("list", {}),
        ("approve", {"id": 42}),
    ):
        over_http = (await post(web, verb, fields)).json()
        assert over_http == await call(host, {"cmd": verb, **fields}), verb


def test_host_guard_knows_browsers_leave_port_80_out() -> None:
    from hive_core.surfaces.http.guards import Guards

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    on_80, on_7777 = Guards(app, "127.0.0.1"), Guards(app, "127.0.0.1")
    assert on_80.host_allowed("localhost", 80) and on_80.host_allowed("127.0.0.1:80", 80)
    assert not on_7777.host_allowed("localhost", 7777)  # the port must be given there
    assert not on_80.host_allowed("evil.example", 80)
    assert not on_80.host_allowed("localhost:7777", 80)

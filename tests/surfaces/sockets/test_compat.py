"""Compatibility through the real sockets: hyperhive's answer shapes, its request lines byte for
byte, bad lines that never hurt the connection, identity by socket, and names refused on spawn.

The expected shapes are hyperhive's answers from `../shared/hyperhive-fixtures/`, copied here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.app import Hive
from hive_core.surfaces.sockets import TABLES
from hive_wire.client import Connection
from hive_wire.errors import CODES
from tests.helpers import agent_sock, call, spawn_idle
from tests.surfaces.sockets.test_wire import FIXTURES, HYPERHIVE_REQUESTS

TIMEOUT = 20

# hyperhive's answers, byte for byte: one copy, in test_wire.
LIST_JSON = FIXTURES["list.json"]
ERROR_JSON = FIXTURES["error.json"]
AGENT_STATUS_GROUPED_JSON = FIXTURES["agent_status_grouped.json"]


RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def shape(value: Any) -> Any:
    """The JSON type skeleton of a value: keys in order, each list as the set of its items'."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        items: list[Any] = []
        for v in value:
            if shape(v) not in items:
                items.append(shape(v))
        return ["list", items]
    return type(value).__name__


def assert_envelope(answer: dict[str, Any]) -> None:
    """The envelope every socket answers: version 1, ok, then error/code or the results."""
    assert list(answer)[:2] == ["version", "ok"], answer
    assert answer["version"] == 1 and type(answer["ok"]) is bool
    if not answer["ok"]:
        assert list(answer) == ["version", "ok", "error", "code"], answer
        assert answer["code"] in CODES and isinstance(answer["error"], str) and answer["error"]
    assert None not in answer.values()


def assert_error(answer: dict[str, Any], code: str) -> None:
    assert_envelope(answer)
    assert answer["ok"] is False and answer["code"] == code, answer


async def send_line(conn: Connection, line: bytes) -> dict[str, Any]:
    await conn.stream.send_all(line)
    answer = await conn.read()
    assert_envelope(answer)
    return answer


async def still_serves(conn: Connection) -> None:
    answer = await send_line(conn, b'{"cmd":"list"}\n')
    assert answer["ok"] is True and isinstance(answer["agents"], list)


# --- answer shapes ---------------------------------------------------------------------------
async def test_list_has_the_shape_of_list_json(hive: Hive, host: str) -> None:
    fixture = json.loads(LIST_JSON)
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, *fixture["agents"])
        answer = await call(host, {"cmd": "list"})
    assert shape(answer) == shape(fixture)
    assert list(answer) == list(fixture)
    assert answer["version"] == 1 and answer["ok"] is True
    assert sorted(answer["agents"]) == sorted(fixture["agents"])


async def test_list_of_no_agents_is_an_empty_list(host: str) -> None:
    with trio.fail_after(TIMEOUT):
        assert await call(host, {"cmd": "list"}) == {"version": 1, "ok": True, "agents": []}


async def test_error_has_the_shape_of_error_json_plus_code(hive: Hive, host: str) -> None:
    fixture = json.loads(ERROR_JSON)
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        answer = await call(host, {"cmd": "send", "to": "ghost", "body": "hi"})
        from_agent = await call(
            agent_sock(hive, "alice"), {"cmd": "send", "to": "ghost", "body": "hi"}
        )
    for got in (answer, from_agent):
        assert got == {**fixture, "code": "not_found"}
        assert list(got) == [*fixture, "code"]


async def test_agent_status_rows_keep_hyperhive_key_order(
    hive: Hive, host: str, manager: str
) -> None:
    fixture_rows = json.loads(AGENT_STATUS_GROUPED_JSON)["agent_statuses"]
    hyperhive_keys = {k for row in fixture_rows for k in row}
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice", "bob")
        set_status = await call(
            agent_sock(hive, "alice"), {"cmd": "set_status", "text": "reviewing PR #947"}
        )
        assert set_status == {"version": 1, "ok": True}
        await call(host, {"cmd": "send", "to": "alice", "body": "turn"})
        await call(agent_sock(hive, "alice"), {"cmd": "recv"})
        await call(agent_sock(hive, "alice"), {"cmd": "ack_turn"})
        answer = await call(host, {"cmd": "agent_status"})
        from_manager = await call(manager, {"cmd": "agent_status"})
    assert list(answer) == ["version", "ok", "agent_statuses"]
    assert from_manager == answer
    rows = {row["name"]: row for row in answer["agent_statuses"]}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"]["status_text"] == "reviewing PR #947"
    assert "status_text" not in rows["bob"]
    for row in rows.values():
        keys = list(row)
        for ref in fixture_rows:  # the keys both have, in the fixture's order
            assert [k for k in keys if k in ref] == [k for k in ref if k in keys], keys
        # hive-core's additions come after every hyperhive key.
        extra = [i for i, k in enumerate(keys) if k not in hyperhive_keys]
        assert all(i > j for i in extra for j, k in enumerate(keys) if k in hyperhive_keys)
        assert set(keys) - hyperhive_keys <= {"transient", "last_turn_at"}
        for flag in ("running", "failed", "needs_update", "needs_login", "paused"):
            assert type(row[flag]) is bool
        assert type(row["pending_reminders"]) is int
        assert None not in row.values()
        for stamp in ("status_set_at", "last_turn_at"):
            if stamp in row:
                assert RFC3339_UTC.match(row[stamp]), row[stamp]


# --- hyperhive's request lines ----------------------------------------------------------------
@pytest.mark.parametrize("line", HYPERHIVE_REQUESTS, ids=lambda b: b.decode())
async def test_hyperhive_request_lines_answer_an_envelope(
    hive: Hive, host: str, line: bytes
) -> None:
    with trio.fail_after(TIMEOUT):
        async with await Connection.open(host) as conn:
            answer = await send_line(conn, line + b"\n")
    cmd = json.loads(line)["cmd"]
    if answer["ok"]:
        assert cmd in TABLES["host"]
    else:
        assert answer["code"] not in ("bad_json", "bad_request"), answer
        if cmd in TABLES["host"]:
            assert answer["code"] != "unknown_command", answer
        else:
            assert answer["code"] == "unknown_command", answer


# --- bad lines ---------------------------------------------------------------------------------
BAD_LINES = [
    ("invalid utf-8", b'{"cmd":"list","x":"\xff\xfe"}', "bad_json"),
    ("utf-8 encoded surrogate", b'{"cmd":"list","x":"\xed\xa0\x80"}', "bad_json"),
    ("invalid json", b'{"cmd":"list",', "bad_json"),
    ("empty line", b"", "bad_json"),
    ("non-object", b'["list"]', "bad_json"),
    (
        "100,000-deep nesting",
        b'{"cmd":"list","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "bad_json",
    ),
    ("5,000-digit integer", b'{"cmd":"inbox","max":' + b"7" * 5000 + b"}", "bad_json"),
    ("NaN", b'{"cmd":"inbox","max":NaN}', "bad_json"),
    ("lone surrogate", b'{"cmd":"send","to":"operator","body":"\\udc00"}', "bad_json"),
    ("NUL", b'{"cmd":"send","to":"operator","body":"a\\u0000b"}', "bad_json"),
    ("raw NUL", b'{"cmd":"send","to":"operator","body":"a\x00b"}', "bad_json"),
    ("true for an integer", b'{"cmd":"inbox","max":true}', "bad_request"),
    ("string for an integer", b'{"cmd":"inbox","max":"3"}', "bad_request"),
    ("missing field", b'{"cmd":"send","to":"operator"}', "bad_request"),
    ("no cmd", b'{"verb":"list"}', "bad_request"),
    ("unknown verb", b'{"cmd":"teleport"}', "unknown_command"),
]


@pytest.mark.parametrize(
    ("line", "code"), [(b, c) for _, b, c in BAD_LINES], ids=[name for name, _, _ in BAD_LINES]
)
async def test_bad_line_answers_its_code_and_the_connection_still_serves(
    hive: Hive, host: str, line: bytes, code: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with await Connection.open(host) as conn:
            assert_error(await send_line(conn, line + b"\n"), code)
            await still_serves(conn)
            # no state change: nothing sent, nothing spawned
            assert (await conn.call({"cmd": "inbox", "max": 10}))["messages"] == []
            assert (await conn.call({"cmd": "stats"}))["pending_messages"] == 0


async def test_wrong_type_names_the_field(host: str) -> None:
    with trio.fail_after(TIMEOUT):
        answer = await call(host, {"cmd": "inbox", "max": True})
    assert_error(answer, "bad_request")
    assert "max" in answer["error"]


async def test_crlf_line_is_served(host: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with await Connection.open(host) as conn:
            answer = await send_line(conn, b'{"cmd":"list"}\r\n')
            assert answer == {"version": 1, "ok": True, "agents": []}
            await still_serves(conn)


async def test_every_bad_line_on_one_connection(hive: Hive, host: str) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        for sock in (host, manager_of(hive), agent_sock(hive, "alice")):
            async with await Connection.open(sock) as conn:
                for _, line, code in BAD_LINES:
                    if code == "bad_json":
                        assert_error(await send_line(conn, line + b"\n"), code)
                assert (await send_line(conn, b'{"cmd":"teleport"}\n'))["code"] == (
                    "unknown_command"
                )
                whoami_or_list = b'{"cmd":"list"}\n' if sock == host else b'{"cmd":"whoami"}\n'
                assert (await send_line(conn, whoami_or_list))["ok"] is True


def manager_of(hive: Hive) -> str:
    return str(hive.paths.manager_socket)


async def _send_ignoring_hangup(conn: Connection, data: bytes) -> None:
    try:
        await conn.stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the daemon closed while we were still writing: that is the point


async def test_line_over_one_mib_is_line_too_long_and_closes(hive: Hive, host: str) -> None:
    limit = hive.config.line_limit
    assert limit == 1 << 20
    head = b'{"cmd":"list","pad":"'
    line = head + b"x" * (limit + 1 - len(head) - 2) + b'"}\n'
    assert len(line) - 1 == limit + 1
    with trio.fail_after(TIMEOUT):
        async with await Connection.open(host) as conn, trio.open_nursery() as nursery:
            nursery.start_soon(_send_ignoring_hangup, conn, line)
            answer = await conn.read()
            assert_error(answer, "line_too_long")
            with pytest.raises((EOFError, trio.BrokenResourceError)):
                await conn.read()
        # the daemon itself keeps serving
        assert (await call(host, {"cmd": "list"}))["ok"] is True


async def test_line_over_the_limit_without_newline_is_refused(hive: Hive, host: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with await Connection.open(host) as conn, trio.open_nursery() as nursery:
            nursery.start_soon(_send_ignoring_hangup, conn, b"[" * (hive.config.line_limit + 1))
            assert_error(await conn.read(), "line_too_long")
            with pytest.raises((EOFError, trio.BrokenResourceError)):
                await conn.read()


async def test_line_at_the_limit_is_served(hive: Hive, host: str) -> None:
    limit = hive.config.line_limit
    head = b'{"cmd":"list","pad":"'
    line = head + b"x" * (limit - len(head) - 2) + b'"}'
    assert len(line) == limit
    with trio.fail_after(TIMEOUT):
        async with await Connection.open(host) as conn, trio.open_nursery() as nursery:
            nursery.start_soon(conn.stream.send_all, line + b"\n")
            assert (await conn.read())["agents"] == []
            await still_serves(conn)


# --- pipelining -----------------------------------------------------------------------------------
async def test_pipelined_requests_are_answered_in_order(hive: Hive, host: str) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        async with await Connection.open(host) as conn:
            await conn.stream.send_all(
                b'{"cmd":"list"}\n'
                b'{"cmd":"teleport"}\n'
                b'{"cmd":"send","to":"ghost","body":"x"}\n'
                b"not json\n"
                b'{"cmd":"urls"}\n'
                b'{"cmd":"inbox","max":true}\n'
                b'{"cmd":"stats"}\n'
            )
            answers = [await conn.read() for _ in range(7)]
            for a in answers:
                assert_envelope(a)
            assert answers[0]["agents"] == ["alice"]
            assert answers[1]["code"] == "unknown_command"
            assert answers[2]["code"] == "not_found"
            assert answers[3]["code"] == "bad_json"
            assert list(answers[4]) == ["version", "ok", "urls"]
            assert answers[5]["code"] == "bad_request"
            assert "transactions" in answers[6]

            n = 30  # under the broker's recv cap, so one recv returns them all
            await conn.stream.send_all(
                b"".join(
                    json.dumps({"cmd": "send", "to": "alice", "body": f"m{i}"}).encode() + b"\n"
                    for i in range(n)
                )
            )
            ids = [(await conn.read())["id"] for _ in range(n)]
            assert ids == sorted(ids) and len(set(ids)) == n
        got = await call(agent_sock(hive, "alice"), {"cmd": "recv", "max": n})
        assert [m["body"] for m in got["messages"]] == [f"m{i}" for i in range(n)]
        assert [m["id"] for m in got["messages"]] == ids


# --- identity is the socket ------------------------------------------------------------------------
async def test_whoami_is_the_socket(hive: Hive, manager: str) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        alice = await call(agent_sock(hive, "alice"), {"cmd": "whoami", "name": "manager"})
        boss = await call(manager, {"cmd": "whoami"})
    assert alice == {"version": 1, "ok": True, "name": "alice", "role": "agent"}
    assert list(alice) == ["version", "ok", "name", "role"]
    assert boss == {"version": 1, "ok": True, "name": "manager", "role": "manager"}


async def test_forged_from_is_ignored(hive: Hive, host: str) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice", "bob")
        alice = agent_sock(hive, "alice")
        for forged in (
            {"from": "manager"},
            {"from": "bob"},
            {"from": "operator"},
            {"from_": "system", "sender": "reminder", "caller": "hive"},
        ):
            sent = await call(alice, {"cmd": "send", "to": "bob", "body": "hi", **forged})
            assert sent["ok"] is True, sent
        sent = await call(alice, {"cmd": "send", "to": "operator", "body": "op", "from": "manager"})
        assert sent["ok"] is True
        got = await call(agent_sock(hive, "bob"), {"cmd": "recv", "max": 10})
        inbox = await call(host, {"cmd": "inbox", "max": 10})
    assert [m["from"] for m in got["messages"]] == ["alice"] * 4
    assert [(m["from"], m["body"]) for m in inbox["messages"]] == [("alice", "op")]


@pytest.mark.parametrize(
    ("where", "request_"),
    [
        ("agent", {"cmd": "spawn", "name": "mallory"}),
        ("agent", {"cmd": "list"}),
        ("agent", {"cmd": "agent_status"}),
        ("agent", {"cmd": "inbox"}),
        ("agent", {"cmd": "stats"}),
        ("agent", {"cmd": "subscribe_events"}),
        ("manager", {"cmd": "spawn", "name": "mallory"}),
        ("manager", {"cmd": "inbox"}),
        ("host", {"cmd": "recv"}),
        ("host", {"cmd": "whoami"}),
        ("host", {"cmd": "ack_turn"}),
        ("host", {"cmd": "set_status", "text": "x"}),
        ("host", {"cmd": "wake", "from": "github", "body": "x"}),
    ],
)
async def test_verbs_not_served_on_a_socket_are_unknown_command(
    hive: Hive, host: str, manager: str, where: str, request_: dict[str, Any]
) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        path = {"host": host, "manager": manager, "agent": agent_sock(hive, "alice")}[where]
        async with await Connection.open(path) as conn:
            await conn.send(request_)
            answer = await conn.read()
            assert_error(answer, "unknown_command")
            await conn.send({"cmd": "list" if where != "agent" else "whoami"})
            assert (await conn.read())["ok"] is True
        assert (await call(host, {"cmd": "list"}))["agents"] == ["alice"]
    assert not hive.paths.agent_dir("mallory").exists()


@pytest.mark.parametrize(
    ("where", "request_"),
    [
        ("agent", {"cmd": "spawn"}),
        ("agent", {"cmd": "inbox", "max": True}),
        ("host", {"cmd": "recv", "max": "3"}),
        ("host", {"cmd": "wake", "body": "x"}),
    ],
)
async def test_unserved_verb_is_unknown_command_whatever_its_fields(
    hive: Hive, host: str, where: str, request_: dict[str, Any]
) -> None:
    # The socket does not serve the verb, so it has no business judging its fields.
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        path = host if where == "host" else agent_sock(hive, "alice")
        assert_error(await call(path, request_), "unknown_command")


# --- names refused on spawn --------------------------------------------------------------------------
REFUSED_NAMES = [
    "..",
    ".",
    "a/b",
    "../x",
    "alice\n",
    "-x",
    "a" * 64,
    "\uff41\uff4c\uff49\uff43\uff45",
    "Alice",
    "",
    "a b",
    "al.ce",
    "al_ce",
    "caf\u00e9",
    "manager",
    "operator",
    "system",
    "reminder",
    "self",
    "hive",
    "*",
]


def listing(root: Path) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return sorted((d, tuple(sorted(ds)), tuple(sorted(fs))) for d, ds, fs in os.walk(root))


@pytest.mark.parametrize("name", REFUSED_NAMES, ids=repr)
async def test_refused_names_create_nothing(hive: Hive, host: str, name: str) -> None:
    with trio.fail_after(TIMEOUT):
        before = listing(hive.paths.state), listing(hive.paths.run)
        answer = await call(host, {"cmd": "spawn", "name": name})
        assert_error(answer, "bad_request")
        assert "name" in answer["error"]
        assert (await call(host, {"cmd": "list"}))["agents"] == []
        after = listing(hive.paths.state), listing(hive.paths.run)
    assert after == before


async def test_longest_name_is_accepted(hive: Hive, host: str) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "a" * 63)
        assert (await call(host, {"cmd": "list"}))["agents"] == ["a" * 63]

"""hive_wire without sockets: the sans-io codec, the converter and the client's answer check.

The hyperhive answers below are copied byte for byte from `../shared/hyperhive-fixtures/`
(hyperhive's host socket, wire version 1); the encoder must reproduce them exactly.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.blocking import check_answer
from hive_wire.client import Connection
from hive_wire.codec import (
    DEFAULT_LINE_LIMIT,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    LineBuffer,
    decode_line,
    encode_line,
)
from hive_wire.convert import (
    INT_MAX,
    INT_MIN,
    converter,
    decode_request,
    encode_request,
    error_envelope,
    ok_envelope,
)
from hive_wire.errors import (
    CODES,
    BadJson,
    BadRequest,
    LineTooLong,
    NotFound,
    RemoteVersionError,
    UnknownCommand,
    WireError,
)

# --- hyperhive's answers, byte for byte -------------------------------------------------------
FIXTURES: dict[str, bytes] = {
    "list.json": b'{"version":1,"ok":true,"agents":["trollshell-choom","nixos-choom","stray"]}',
    "agent_status_grouped.json": (
        b'{"version":1,"ok":true,"agent_statuses":[{"name":"trollshell-choom","running":true,'
        b'"failed":false,"needs_update":false,"needs_login":false,"deployed_sha":"1bfaf24abcde",'
        b'"pending_reminders":0,"paused":false,"active_model":"claude-opus-4-6",'
        b'"status_text":"reviewing PR #947","status_set_at":"2026-09-07T12:34:56Z",'
        b'"url":"https://hive.local/agent/trollshell-choom/"},{"name":"nixos-choom",'
        b'"running":true,"failed":false,"needs_update":true,"needs_login":false,'
        b'"deployed_sha":"cafebabe0001","pending_reminders":0,"paused":true,'
        b'"parent":"trollshell-choom","active_model":"claude-sonnet-4-6",'
        b'"url":"https://hive.local/agent/nixos-choom/"},{"name":"stray","running":false,'
        b'"failed":false,"needs_update":false,"needs_login":false,"pending_reminders":0,'
        b'"paused":false,"url":"https://hive.local/agent/stray/"}]}'
    ),
    "agent_status_precedence.json": (
        b'{"version":1,"ok":true,"agent_statuses":[{"name":"wedged","running":false,'
        b'"failed":true,"needs_update":false,"needs_login":true,"pending_reminders":0,'
        b'"paused":true,"url":"https://hive.local/agent/wedged/"},{"name":"locked-out",'
        b'"running":true,"failed":false,"needs_update":false,"needs_login":true,'
        b'"pending_reminders":0,"paused":true,"url":"https://hive.local/agent/locked-out/"},'
        b'{"name":"parked","running":true,"failed":false,"needs_update":false,'
        b'"needs_login":false,"pending_reminders":0,"paused":true,'
        b'"status_text":"mid-turn when paused","status_set_at":"2026-09-07T11:00:00Z",'
        b'"url":"https://hive.local/agent/parked/"},{"name":"off","running":false,'
        b'"failed":false,"needs_update":true,"needs_login":false,"pending_reminders":0,'
        b'"paused":false,"url":"https://hive.local/agent/off/"},{"name":"busy","running":true,'
        b'"failed":false,"needs_update":false,"needs_login":false,"pending_reminders":0,'
        b'"paused":false,"active_model":"claude-opus-4-6","status_text":"running the P1 gate",'
        b'"status_set_at":"2026-09-07T12:40:00Z","url":"https://hive.local/agent/busy/"}]}'
    ),
    "agent_status_bad_name.json": (
        b'{"version":1,"ok":true,"agent_statuses":[{"name":"good","running":true,'
        b'"failed":false,"needs_update":false,"needs_login":false,"pending_reminders":0,'
        b'"paused":false},{"name":"../etc/passwd","running":true,"failed":false,'
        b'"needs_update":false,"needs_login":false,"pending_reminders":0,"paused":false}]}'
    ),
    "agent_status_empty.json": b'{"version":1,"ok":true,"agent_statuses":[]}',
    "urls.json": (
        b'{"version":1,"ok":true,"urls":{"domain":"hive.local","home":"https://hive.local/",'
        b'"forge":"https://forge.hive.local/","matrix":"https://matrix.hive.local/"}}'
    ),
    "pending.json": (
        b'{"version":1,"ok":true,"approvals":[{"id":7,"agent":"trollshell-choom",'
        b'"kind":"merge_config_pr","commit_ref":"12","fetched_sha":"1bfaf24abcde",'
        b'"requested_at":"2026-09-12T09:15:00Z","status":"pending",'
        b'"description":"bump the meta flake inputs"},{"id":8,"agent":"nixos-choom",'
        b'"kind":"spawn","commit_ref":"","requested_at":"2026-09-12T09:20:00Z",'
        b'"status":"pending"},{"id":5,"agent":"trollshell-choom","kind":"update_meta_inputs",'
        b'"commit_ref":"[\\"nixpkgs\\"]","requested_at":"2026-09-12T08:00:00Z",'
        b'"status":"approved","resolved_at":"2026-09-12T08:05:00Z",'
        b'"note":"approved on the dashboard"}]}'
    ),
    "pending_empty.json": b'{"version":1,"ok":true,"approvals":[]}',
    "pending_unknown.json": (
        b'{"version":1,"ok":true,"approvals":[{"id":11,"agent":"trollshell-choom",'
        b'"kind":"teleport_agent","commit_ref":"","requested_at":"2026-09-12T10:00:00Z",'
        b'"status":"pending","description":"a kind this build has never heard of"},'
        b'{"id":12,"agent":"trollshell-choom","kind":"merge_config_pr","commit_ref":"13",'
        b'"requested_at":"2026-09-12T10:01:00Z","status":"awaiting_quorum"}]}'
    ),
    "error.json": b'{"version":1,"ok":false,"error":"agent \\"ghost\\" is not managed by this hive"}',
    "agent_status_v0.json": (
        b'{"ok":true,"agent_statuses":[{"name":"ancient","running":true,"needs_update":false,'
        b'"needs_login":false}]}'
    ),
    "agent_status_v99.json": (
        b'{"version":99,"ok":true,"agent_statuses":[{"name":"newer","running":false,'
        b'"failed":true,"needs_update":false,"needs_login":false,"pending_reminders":0,'
        b'"paused":false}]}'
    ),
}

# The result class of each fixture that hive-core encodes itself.
RESULT_OF: dict[str, type] = {
    "list.json": rs.AgentList,
    "agent_status_grouped.json": rs.AgentStatuses,
    "agent_status_precedence.json": rs.AgentStatuses,
    "agent_status_bad_name.json": rs.AgentStatuses,
    "agent_status_empty.json": rs.AgentStatuses,
    "urls.json": rs.Urls,
    "pending.json": rs.Approvals,
    "pending_empty.json": rs.Approvals,
    "pending_unknown.json": rs.Approvals,
}

# Requests hyperhive's clients send, byte for byte (the fixtures README).
HYPERHIVE_REQUESTS = [
    b'{"cmd":"list"}',
    b'{"cmd":"agent_status"}',
    b'{"cmd":"subscribe_agent_status"}',
    b'{"cmd":"urls"}',
    b'{"cmd":"set_paused","name":"trollshell-choom","paused":true}',
    b'{"cmd":"restart","name":"trollshell-choom"}',
    b'{"cmd":"start","scope":{"agent_names":["trollshell-choom"]}}',
    b'{"cmd":"stop","scope":{"agent_names":["trollshell-choom"]},"graceful":true}',
    b'{"cmd":"pending"}',
    b'{"cmd":"approve","id":42}',
    b'{"cmd":"deny","id":42}',
]


def deep(n: int) -> bytes:
    """An object holding `n` nested lists."""
    return b'{"cmd":"list","x":' + b"[" * n + b"]" * n + b"}"


# --- LineBuffer ---------------------------------------------------------------------------------
line_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))


@given(
    lines=st.lists(line_bytes, max_size=20),
    tail=line_bytes,
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
)
def test_linebuffer_gives_the_same_lines_for_any_chunking(
    lines: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(line + b"\n" for line in lines) + tail
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    buf = LineBuffer(limit=1000)
    got: list[bytes] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        got += buf.feed(stream[a:b])
    assert got == lines
    assert buf.pending == len(tail)


def test_linebuffer_byte_at_a_time_and_empty_feeds() -> None:
    buf = LineBuffer()
    got: list[bytes] = []
    for i in range(len(b'{"cmd":"list"}\n\n{}\n')):
        got += buf.feed(b'{"cmd":"list"}\n\n{}\n'[i : i + 1])
        got += buf.feed(b"")
    assert got == [b'{"cmd":"list"}', b"", b"{}"]
    assert buf.pending == 0


def test_linebuffer_keeps_the_cr_of_crlf_for_json_to_ignore() -> None:
    (line,) = LineBuffer().feed(b'{"cmd":"list"}\r\n')
    assert decode_line(line) == {"cmd": "list"}


def test_line_at_the_limit_passes() -> None:
    buf = LineBuffer(limit=10)
    assert buf.feed(b"x" * 10) == []
    assert buf.feed(b"\n" + b"y" * 10 + b"\n") == [b"x" * 10, b"y" * 10]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"x" * 11],  # no newline yet: refused as soon as the limit is passed
        [b"x" * 11 + b"\n"],
        [b"x" * 6, b"x" * 5 + b"\n"],
        [b"ok\n" + b"x" * 11 + b"\n"],
        [b"x" * 5, b"x" * 5, b"x"],
    ],
)
def test_line_over_the_limit_is_line_too_long(chunks: list[bytes]) -> None:
    buf = LineBuffer(limit=10)
    lines = [line for chunk in chunks for line in buf.feed(chunk)]
    assert lines == ([b"ok"] if chunks[0].startswith(b"ok\n") else [])
    assert isinstance(buf.overflow, LineTooLong)
    assert buf.overflow.code == "line_too_long"
    assert "10" in str(buf.overflow)
    assert buf.feed(b"more\n") == []  # nothing after an overflow


def test_lines_before_an_overflow_are_not_lost() -> None:
    buf = LineBuffer(limit=10)
    assert buf.feed(b"a\nb\n" + b"x" * 20 + b"\nc\n") == [b"a", b"b"]
    assert buf.overflow is not None


def test_default_limit_is_one_mib() -> None:
    assert DEFAULT_LINE_LIMIT == 1 << 20
    buf = LineBuffer()
    assert buf.feed(b"x" * (1 << 20)) == []
    assert buf.overflow is None
    buf.feed(b"x")
    assert isinstance(buf.overflow, LineTooLong)


# --- decode_line --------------------------------------------------------------------------------
BAD_LINES = {
    "invalid utf-8": b'{"cmd":"list","x":"\xff\xfe"}',
    "truncated utf-8": b'{"cmd":"list","x":"\xc3"}',
    "utf-8 encoded surrogate": b'{"cmd":"list","x":"\xed\xa0\x80"}',
    "invalid json": b'{"cmd":"list",}',
    "truncated json": b'{"cmd":',
    "empty line": b"",
    "whitespace only": b"  \r",
    "two objects": b'{"cmd":"list"}{"cmd":"list"}',
    "array": b'[{"cmd":"list"}]',
    "string": b'"list"',
    "number": b"1",
    "null": b"null",
    "true": b"true",
    "100,000 deep lists": deep(100_000),
    "100,000 deep objects": b'{"cmd":"list","x":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
    "5,000-digit integer": b'{"cmd":"approve","id":' + b"9" * 5000 + b"}",
    "5,000-digit negative integer": b'{"cmd":"approve","id":-' + b"9" * 5000 + b"}",
    "NaN": b'{"cmd":"approve","id":NaN}',
    "Infinity": b'{"cmd":"approve","id":Infinity}',
    "-Infinity": b'{"cmd":"approve","id":-Infinity}',
    "float overflowing to infinity": b'{"cmd":"list","x":1e400}',
    "lone high surrogate": b'{"cmd":"send","to":"a","body":"\\ud800"}',
    "lone low surrogate": b'{"cmd":"send","to":"a","body":"x\\udfff"}',
    "lone surrogate in a key": b'{"cmd":"list","\\ud83d":1}',
    "escaped NUL": b'{"cmd":"send","to":"a","body":"a\\u0000b"}',
    "escaped NUL in a key": b'{"cmd":"list","\\u0000":1}',
    "raw NUL": b'{"cmd":"send","to":"a","body":"a\x00b"}',
    "NUL after the object": b'{"cmd":"list"}\x00',
    "utf-8 BOM": b'\xef\xbb\xbf{"cmd":"list"}',
}


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_bad_lines_are_bad_json(line: bytes) -> None:
    with pytest.raises(BadJson) as info:
        decode_line(line)
    assert info.value.code == "bad_json"
    assert isinstance(info.value, WireError) and str(info.value)


def test_depth_and_digits_are_bounded_as_documented() -> None:
    # docs/wire.md: nesting deeper than 64 levels, integers longer than 20 digits.
    assert MAX_DEPTH == 64 and MAX_INT_DIGITS == 20
    assert decode_line(deep(MAX_DEPTH - 1))["x"] is not None
    with pytest.raises(BadJson):
        decode_line(deep(MAX_DEPTH))
    assert decode_line(b'{"n":' + b"9" * 20 + b"}")["n"] == int("9" * 20)
    assert decode_line(b'{"n":-' + b"9" * 20 + b"}")["n"] == -int("9" * 20)
    with pytest.raises(BadJson):
        decode_line(b'{"n":' + b"1" * 21 + b"}")


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b'{"cmd":"list"}\r', {"cmd": "list"}),
        (b' \t{"cmd":"list"} \r', {"cmd": "list"}),
        (
            b'{"cmd":"send","to":"a","body":"h\xc3\xa9 \\u00e9 \\ud83d\\ude00 \xf0\x9f\x98\x80"}',
            {"cmd": "send", "to": "a", "body": "h\u00e9 \u00e9 \U0001f600 \U0001f600"},
        ),
        (b'{"b":1,"a":2,"c":{"z":1,"y":2}}', {"b": 1, "a": 2, "c": {"z": 1, "y": 2}}),
        (
            b'{"cmd":"list","f":1.5,"n":null,"t":true}',
            {"cmd": "list", "f": 1.5, "n": None, "t": True},
        ),
    ],
)
def test_good_lines_decode(line: bytes, value: dict[str, Any]) -> None:
    got = decode_line(line)
    assert got == value
    assert list(got) == list(value)


@given(st.binary(max_size=300))
def test_decode_line_only_ever_raises_bad_json(data: bytes) -> None:
    try:
        value = decode_line(data)
    except BadJson:
        return
    assert isinstance(value, dict)


json_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | json_text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(json_text, json_values, max_size=6))
def test_encode_line_is_one_line_that_decodes_back(obj: dict[str, Any]) -> None:
    line = encode_line(obj)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert LineBuffer().feed(line) == [line[:-1]]
    back = decode_line(line[:-1])
    assert back == obj
    assert list(back) == list(obj)


def test_encode_line_is_compact_utf8() -> None:
    assert encode_line({"version": 1, "ok": True, "x": "h\u00e9"}) == (
        b'{"version":1,"ok":true,"x":"h\xc3\xa9"}\n'
    )


# --- decode_request: strict, named fields -------------------------------------------------------
@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"cmd": "inbox", "max": True}, "max"),
        ({"cmd": "inbox", "max": "3"}, "max"),
        ({"cmd": "inbox", "max": 3.0}, "max"),
        ({"cmd": "inbox", "wait_seconds": None}, "wait_seconds"),
        ({"cmd": "approve", "id": True}, "id"),
        ({"cmd": "approve", "id": "3"}, "id"),
        ({"cmd": "approve", "id": 2**63}, "id"),
        ({"cmd": "approve", "id": -(2**63) - 1}, "id"),
        ({"cmd": "set_paused", "name": "a", "paused": 1}, "paused"),
        ({"cmd": "set_paused", "name": "a", "paused": "true"}, "paused"),
        ({"cmd": "send", "to": 5, "body": "x"}, "to"),
        ({"cmd": "send", "to": "a", "body": ["x"]}, "body"),
        ({"cmd": "spawn", "name": "a", "command": "sleep 1"}, "command"),
        ({"cmd": "spawn", "name": "a", "command": ["sleep", 1]}, "command"),
        ({"cmd": "ack_turn", "ids": [1, True]}, "ids"),
        ({"cmd": "stop", "scope": ["a"]}, "scope"),
        ({"cmd": "stop", "scope": {"agent_names": "a"}}, "agent_names"),
        ({"cmd": "stop", "scope": {"agents": "yes"}}, "agents"),
    ],
)
def test_wrong_types_are_bad_request_naming_the_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(obj)
    assert info.value.code == "bad_request"
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"cmd": "approve"}, "id"),
        ({"cmd": "send", "body": "x"}, "to"),
        ({"cmd": "send", "to": "a"}, "body"),
        ({"cmd": "set_paused", "name": "a"}, "paused"),
        ({"cmd": "spawn"}, "name"),
        ({"cmd": "request_apply_commit", "agent": "a"}, "commit_ref"),
        ({"cmd": "cancel_loose_end", "id": 1}, "kind"),
    ],
)
def test_missing_fields_are_bad_request_naming_the_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(obj)
    assert f"{obj['cmd']}.{field}" in str(info.value)
    assert "missing" in str(info.value)


def test_missing_from_names_the_wire_field_not_the_attribute() -> None:
    with pytest.raises(BadRequest) as info:
        decode_request({"cmd": "wake", "body": "x"})
    assert "wake.from" in str(info.value)
    assert "from_" not in str(info.value)


@pytest.mark.parametrize("obj", [{}, {"cmd": 1}, {"cmd": None}, {"cmd": ["list"]}, {"x": "list"}])
def test_cmd_must_be_a_string(obj: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(obj)
    assert "cmd" in str(info.value)


@pytest.mark.parametrize("cmd", ["teleport", "", "LIST", "List", "list ", "subscribe"])
def test_unknown_verb_is_unknown_command(cmd: str) -> None:
    with pytest.raises(UnknownCommand) as info:
        decode_request({"cmd": cmd})
    assert info.value.code == "unknown_command"


def test_unknown_fields_are_ignored() -> None:
    obj = {
        "cmd": "send",
        "to": "alice",
        "body": "hi",
        "priority": 9,
        "future": {"nested": [1, {"deeply": True}]},
        "from": "manager",
        "sender": "bob",
    }
    assert decode_request(obj) == ("send", rq.Send(to="alice", body="hi"))
    assert decode_request({"cmd": "list", "verbose": True}) == ("list", rq.List())


def test_optional_fields_take_their_defaults() -> None:
    assert decode_request({"cmd": "stop", "scope": {"agents": True}}) == (
        "stop",
        rq.Stop(scope=rq.Scope(agents=True), graceful=True),
    )
    assert decode_request({"cmd": "recv"}) == ("recv", rq.Recv(wait_seconds=0, max=1))
    # hyperhive's other scope flags are accepted.
    _, stop = decode_request(
        {"cmd": "stop", "scope": {"ci": True, "forge": False, "gateway": True, "matrix": True}}
    )
    assert stop.scope.ci is True


@pytest.mark.parametrize("line", HYPERHIVE_REQUESTS)
def test_every_hyperhive_request_decodes(line: bytes) -> None:
    obj = decode_line(line)
    cmd, req = decode_request(obj)
    assert cmd == obj["cmd"]
    assert decode_request(encode_request(req)) == (cmd, req)


def test_hyperhive_requests_decode_to_their_fields() -> None:
    decoded = [decode_request(decode_line(line))[1] for line in HYPERHIVE_REQUESTS]
    assert decoded[4] == rq.SetPaused(name="trollshell-choom", paused=True)
    assert decoded[6] == rq.Start(scope=rq.Scope(agent_names=["trollshell-choom"]))
    assert decoded[7] == rq.Stop(scope=rq.Scope(agent_names=["trollshell-choom"]), graceful=True)
    assert decoded[9] == rq.Approve(id=42)
    assert decoded[10] == rq.Deny(id=42)


# --- the `from` rename ---------------------------------------------------------------------------
def test_from_is_renamed_both_ways() -> None:
    assert decode_request({"cmd": "wake", "from": "github", "body": "push"}) == (
        "wake",
        rq.Wake(from_="github", body="push"),
    )
    assert encode_request(rq.Wake(from_="github", body="push")) == {
        "cmd": "wake",
        "from": "github",
        "body": "push",
    }
    msg = rs.DeliveredMessage(
        id=3, from_="alice", body="hi", sent_at="2026-09-07T12:34:56Z", redelivered=False
    )
    assert list(ok_envelope(rs.Messages(messages=[msg]))["messages"][0]) == [
        "id",
        "from",
        "body",
        "sent_at",
        "redelivered",
    ]
    dead = rs.DeadLetter(
        id=1, from_="a", to="b", body="x", sent_at="t", deliveries=5, dead_at="u", in_reply_to=None
    )
    assert list(converter.unstructure(dead)) == [
        "id",
        "from",
        "to",
        "body",
        "sent_at",
        "deliveries",
        "dead_at",
    ]


def test_from_underscore_on_the_wire_is_not_from() -> None:
    with pytest.raises(BadRequest):
        decode_request({"cmd": "wake", "from_": "github", "body": "push"})


# --- envelopes ----------------------------------------------------------------------------------
def test_ok_envelope_key_order() -> None:
    env = ok_envelope(rs.Whoami(name="alice", role="agent"))
    assert list(env) == ["version", "ok", "name", "role"]
    assert env == {"version": 1, "ok": True, "name": "alice", "role": "agent"}
    assert ok_envelope() == {"version": 1, "ok": True}
    assert ok_envelope(rs.Ok()) == {"version": 1, "ok": True}
    assert list(
        ok_envelope(rs.Stats(transactions=1, operations=2, agents=3, pending_messages=4))
    ) == ["version", "ok", "transactions", "operations", "agents", "pending_messages"]


def test_error_envelope_is_error_json_plus_code() -> None:
    env = error_envelope(NotFound('agent "ghost" is not managed by this hive'))
    assert list(env) == ["version", "ok", "error", "code"]
    assert env == {**json.loads(FIXTURES["error.json"]), "code": "not_found"}


def test_absent_optional_fields_are_omitted_empty_lists_kept() -> None:
    assert ok_envelope(rs.AgentList(agents=[])) == {"version": 1, "ok": True, "agents": []}
    assert ok_envelope(rs.Messages(messages=[]))["messages"] == []
    assert ok_envelope(rs.Lines(lines=[]))["lines"] == []
    assert ok_envelope(rs.Sent(id=5)) == {"version": 1, "ok": True, "id": 5}
    assert ok_envelope(rs.Sent(id=None, ids=[])) == {"version": 1, "ok": True, "ids": []}
    assert ok_envelope(rs.Acked(acked=2)) == {"version": 1, "ok": True, "acked": 2}
    assert ok_envelope(rs.Urls(urls=rs.UrlMap())) == {"version": 1, "ok": True, "urls": {}}
    row = rs.AgentStatusRow(
        name="a",
        running=False,
        failed=False,
        needs_update=False,
        needs_login=False,
        pending_reminders=0,
        paused=False,
    )
    assert list(converter.unstructure(row)) == [
        "name",
        "running",
        "failed",
        "needs_update",
        "needs_login",
        "pending_reminders",
        "paused",
    ]
    # False, 0 and "" are values, not absences.
    assert converter.unstructure(rs.Acked(acked=0, ignored=0)) == {"acked": 0, "ignored": 0}
    assert converter.unstructure(rs.UrlMap(domain="")) == {"domain": ""}


def test_agent_status_row_keeps_hyperhive_key_order_with_every_field() -> None:
    row = rs.AgentStatusRow(
        name="a",
        running=True,
        failed=False,
        needs_update=False,
        needs_login=False,
        deployed_sha="0123456789ab",
        pending_reminders=2,
        paused=False,
        parent="p",
        active_model="m",
        status_text="t",
        status_set_at="2026-09-07T12:34:56Z",
        url="u",
        transient="x",
        last_turn_at="2026-09-07T12:34:57Z",
    )
    assert list(converter.unstructure(row)) == [
        "name",
        "running",
        "failed",
        "needs_update",
        "needs_login",
        "deployed_sha",
        "pending_reminders",
        "paused",
        "parent",
        "active_model",
        "status_text",
        "status_set_at",
        "url",
        "transient",
        "last_turn_at",
    ]


@pytest.mark.parametrize("name", RESULT_OF)
def test_hyperhive_answers_are_reproduced_byte_for_byte(name: str) -> None:
    fixture = FIXTURES[name]
    obj = json.loads(fixture)
    result = converter.structure(
        {k: v for k, v in obj.items() if k not in ("version", "ok")}, RESULT_OF[name]
    )
    assert encode_line(ok_envelope(result)) == fixture + b"\n"


# --- encode_request round trip, every verb -------------------------------------------------------
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(tp)))
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(INT_MIN, INT_MAX)
    if tp is str:
        return text
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return st.lists(strategy_for(item), max_size=4)
    if typing.get_origin(tp) is dict:
        return st.dictionaries(text, st.integers(0, 9) | text, max_size=3)
    if attrs.has(tp):
        return builds(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def builds(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{a.name: strategy_for(hints[a.name]) for a in attrs.fields(cls)})


@pytest.mark.parametrize("cmd", sorted(rq.VERBS))
@given(data=st.data())
def test_encode_request_round_trips_every_verb(cmd: str, data: st.DataObject) -> None:
    req = data.draw(builds(rq.VERBS[cmd]))
    obj = encode_request(req)
    assert next(iter(obj)) == "cmd" and obj["cmd"] == cmd
    assert None not in _leaves(obj)
    line = encode_line(obj)
    assert decode_request(decode_line(line[:-1])) == (cmd, req)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_every_request_class_is_a_verb() -> None:
    classes = {
        cls
        for cls in vars(rq).values()
        if isinstance(cls, type) and attrs.has(cls) and cls is not rq.Scope
    }
    assert classes == set(rq.VERBS.values())
    assert all(rq.CMD_OF[cls] == cmd for cmd, cls in rq.VERBS.items())


# --- the client's answer check ------------------------------------------------------------------
def test_v1_answer_gives_its_result_fields() -> None:
    assert check_answer(json.loads(FIXTURES["list.json"])) == {
        "agents": ["trollshell-choom", "nixos-choom", "stray"]
    }
    assert check_answer({"version": 1, "ok": True}) == {}


def test_v0_answer_without_version_is_accepted() -> None:
    got = check_answer(json.loads(FIXTURES["agent_status_v0.json"]))
    assert got == {
        "agent_statuses": [
            {"name": "ancient", "running": True, "needs_update": False, "needs_login": False}
        ]
    }
    assert check_answer({"version": 0, "ok": True, "x": 1}) == {"x": 1}


@pytest.mark.parametrize(
    "answer",
    [
        json.loads(FIXTURES["agent_status_v99.json"]),
        {"version": 2, "ok": True},
        {"version": 2, "ok": False, "error": "a newer error", "code": "not_found"},
        {"version": "1", "ok": True},
    ],
)
def test_newer_version_is_refused(answer: dict[str, Any]) -> None:
    with pytest.raises(RemoteVersionError) as info:
        check_answer(answer)
    assert str(answer["version"]) in str(info.value)
    assert "upgrade" in str(info.value)


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_answer_raises_the_class_of_its_code(code: str) -> None:
    with pytest.raises(CODES[code]) as info:
        check_answer({"version": 1, "ok": False, "error": "the sentence", "code": code})
    assert type(info.value) is CODES[code]
    assert info.value.code == code
    assert str(info.value) == info.value.message == "the sentence"


def test_error_answer_without_a_known_code_is_still_a_wire_error() -> None:
    with pytest.raises(WireError) as info:
        check_answer(json.loads(FIXTURES["error.json"]))  # hyperhive sends no `code`
    assert str(info.value) == 'agent "ghost" is not managed by this hive'
    with pytest.raises(WireError) as info:
        check_answer({"version": 1, "ok": False, "error": "e", "code": "from_the_future"})
    assert type(info.value) is WireError and info.value.code == "from_the_future"
    with pytest.raises(WireError):
        check_answer({"version": 1, "ok": "yes"})


async def test_client_connection_reads_answers_in_any_chunking() -> None:
    client_end, daemon_end = trio.testing.memory_stream_pair()
    conn = Connection(client_end)  # type: ignore[arg-type]
    answers = (
        b'{"version":1,"ok":true,"agents":[]}\n'
        b'{"version":1,"ok":false,"error":"nope","code":"not_found"}\n'
        b'{"version":99,"ok":true}\n'
    )
    with trio.fail_after(5):
        await conn.send(rq.Send(to="alice", body="hi"))
        sent = b""
        while not sent.endswith(b"\n"):
            sent += await daemon_end.receive_some()
        assert sent == b'{"cmd":"send","to":"alice","body":"hi"}\n'
        for i in range(len(answers)):
            await daemon_end.send_all(answers[i : i + 1])
        assert check_answer(await conn.read()) == {"agents": []}
        with pytest.raises(NotFound):
            check_answer(await conn.read())
        with pytest.raises(RemoteVersionError):
            check_answer(await conn.read())
        await daemon_end.aclose()
        with pytest.raises(EOFError):
            await conn.read()

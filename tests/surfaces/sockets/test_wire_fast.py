"""The fast paths of the wire (orjson, hand-checked hot verbs) against the stdlib and cattrs
paths they stand in for: the same bytes out, the same objects and the same errors in."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hive_wire import codec, convert
from hive_wire import events as ev
from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.codec import decode_line, encode_line, encode_plain
from hive_wire.convert import converter, decode_request, encode_answer, ok_envelope
from hive_wire.errors import BadJson, BadRequest, WireError

TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('\x00\x1f\x7f\u2028\ud800"\\/'))
INTS = st.integers(-(2**70), 2**70) | st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64])
SCALARS = st.none() | st.booleans() | INTS | TEXT
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
JSONISH = st.recursive(
    SCALARS | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def stdlib_decode(line: bytes) -> Any:
    """decode_line without the C parser: the reference."""
    real = codec._SLOW
    codec._SLOW = _ALWAYS  # type: ignore[assignment]
    try:
        return decode_line(line)
    finally:
        codec._SLOW = real


class _Always:
    def search(self, _: bytes) -> bool:
        return True


_ALWAYS = _Always()


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except WireError as e:
        return (type(e).__name__, e.message)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself and the types of numbers compared too."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def lines_of(obj: Any) -> list[bytes]:
    out = []
    for kw in ({}, {"ensure_ascii": False}, {"separators": (",", ":")}, {"indent": 1}):
        try:
            text = json.dumps(obj, **kw)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            continue
        try:
            out.append(text.encode("utf-8", "surrogatepass"))
        except UnicodeEncodeError:
            pass
    return [line.replace(b"\n", b" ") for line in out]


@settings(max_examples=1500)
@given(st.dictionaries(TEXT, JSONISH, max_size=5))
def test_decode_line_agrees_with_the_stdlib_path(obj: dict[str, Any]) -> None:
    for line in lines_of(obj):
        assert same(outcome(decode_line, line), outcome(stdlib_decode, line)), line


@settings(max_examples=1500)
@given(
    st.binary(max_size=40) | st.sampled_from([b"{}", b'{"a":1}', b"[1]"]), st.binary(max_size=10)
)
def test_decode_line_agrees_on_arbitrary_bytes(head: bytes, tail: bytes) -> None:
    for line in (head, b'{"a":' + head + b"}", b'{"a":"' + head + b'"}' + tail):
        assert same(outcome(decode_line, line), outcome(stdlib_decode, line)), line


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":18446744073709551616}',
        b'{"a":-9223372036854775809}',
        b'{"a":1e400}',
        b'{"a":NaN}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\u0000"}',
        b"\xef\xbb\xbf{}",
        b'{"a":1}\r',
        b"[" * 70 + b"]" * 70,
        b'{"a":' + b"[" * 63 + b"]" * 63 + b"}",
        b'{"a":' + b"[" * 62 + b"]" * 62 + b"}",
        b'{"a":"\xff"}',
        b'{"a":1,"a":2}',
        b'{"a":123456789012345678901}',
        b'{"a":1.5}',
        b"1",
        b"",
    ],
)
def test_decode_line_edges_agree(line: bytes) -> None:
    assert same(outcome(decode_line, line), outcome(stdlib_decode, line))


@settings(max_examples=1500)
@given(st.dictionaries(TEXT, PLAIN, max_size=6))
def test_encode_plain_is_byte_identical(obj: dict[str, Any]) -> None:
    try:
        want: Any = encode_line(obj)
    except (UnicodeEncodeError, ValueError) as e:
        want = type(e)
    try:
        got: Any = encode_plain(obj)
    except (UnicodeEncodeError, ValueError) as e:
        got = type(e)
    assert got == want


def _answers() -> st.SearchStrategy[Any]:
    msg = st.builds(
        rs.DeliveredMessage,
        id=INTS,
        from_=TEXT,
        body=TEXT,
        sent_at=TEXT,
        redelivered=st.booleans(),
        in_reply_to=st.none() | INTS,
    )
    return st.one_of(
        st.builds(rs.Sent, id=st.none() | INTS, ids=st.none() | st.lists(INTS, max_size=3)),
        st.builds(rs.Messages, messages=st.lists(msg, max_size=3)),
        st.builds(rs.Acked, acked=INTS, ignored=st.none() | INTS),
        st.builds(rs.Whoami, name=TEXT, role=TEXT),
        st.builds(rs.AgentList, agents=st.lists(TEXT, max_size=3)),
        st.builds(rs.Unread, unread=INTS),
        st.builds(rs.Ok),
        st.none(),
    )


def reference_unstructure(obj: Any) -> Any:
    """The unstructure hook as it was: every field value through the converter."""
    if obj is None or not attrs.has(type(obj)):
        return obj if not isinstance(obj, list) else [reference_unstructure(v) for v in obj]
    out = {}
    for a in attrs.fields(type(obj)):
        value = getattr(obj, a.name)
        if value is None and a.default is None:
            continue
        out[a.name[:-1] if a.name.endswith("_") else a.name] = reference_unstructure(value)
    return out


@settings(max_examples=1500)
@given(_answers())
def test_answers_are_byte_identical(result: Any) -> None:
    envelope = {"version": 1, "ok": True, **(reference_unstructure(result) or {})}
    assert ok_envelope(result) == envelope
    try:
        want: Any = encode_line(envelope)
    except UnicodeEncodeError:
        want = UnicodeEncodeError
    try:
        got: Any = encode_answer(result)
    except UnicodeEncodeError:
        got = UnicodeEncodeError
    assert got == want


def test_float_free_classes_are_those_without_floats() -> None:
    assert convert.float_free(rs.Sent(id=1)) and convert.float_free(None)
    assert not convert.float_free(
        rs.Usage(**dict.fromkeys([a.name for a in attrs.fields(rs.Usage)], 0))
    )


def test_events_unstructure_as_before() -> None:
    for event in (
        ev.Sent(id=1, from_="a", to="b", preview="p", size=1),
        ev.Acked(to="b", ids=[1, 2]),
        ev.Delivered(to="b", ids=[]),
        ev.MessageDead(id=3, to="b", from_="a", deliveries=5),
    ):
        assert converter.unstructure(event) == reference_unstructure(event)


HOT_VALUES = (
    st.none()
    | st.booleans()
    | INTS
    | st.floats()
    | TEXT
    | st.lists(st.none() | st.booleans() | INTS | st.floats() | TEXT, max_size=3)
    | st.dictionaries(TEXT, INTS, max_size=2)
)


def cattrs_decode(obj: dict[str, Any]) -> Any:
    real = convert._FAST
    convert._FAST = {}
    try:
        return decode_request(obj)
    finally:
        convert._FAST = real


@settings(max_examples=3000)
@given(
    st.sampled_from(["send", "recv", "ack_turn"]),
    st.dictionaries(
        st.sampled_from(["to", "body", "in_reply_to", "max", "wait_seconds", "ids", "other"]),
        HOT_VALUES,
        max_size=4,
    ),
)
def test_hot_verbs_decode_as_cattrs_does(cmd: str, fields: dict[str, Any]) -> None:
    obj = {"cmd": cmd, **fields}
    assert outcome(decode_request, obj) == outcome(cattrs_decode, obj)


def test_hot_verbs_fast_path_is_taken() -> None:
    assert convert._fast_send({"to": "a", "body": "b"}) == rq.Send(to="a", body="b")
    assert convert._fast_recv({}) == rq.Recv()
    assert convert._fast_ack_turn({"ids": [1]}) == rq.AckTurn(ids=[1])
    with pytest.raises(BadRequest, match="ids"):
        decode_request({"cmd": "ack_turn", "ids": [True]})
    with pytest.raises(BadJson):
        decode_line(b'{"a":NaN}')


@settings(max_examples=1000)
@given(st.dictionaries(TEXT, PLAIN, max_size=6))
def test_event_text_is_the_stdlibs(obj: dict[str, Any]) -> None:
    from hive_core.services.events import _plain

    text = _plain(obj)
    if text is not None:
        assert text == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

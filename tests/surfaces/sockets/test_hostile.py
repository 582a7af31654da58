"""Hostile input (quality.md "Bad input and abuse": a clear error, no state change, the daemon
keeps serving).

- A hypothesis test throws generated requests at every socket kind (host, manager, an agent) of
  a daemon subprocess: valid verbs with wrongly typed fields, random JSON objects, random JSON
  values and random byte lines. Every answer is an envelope whose code is in the wire's list and
  never `internal`; a refused line leaves its connection usable; the daemon keeps serving; and
  nothing it holds changes (a fresh sqlite3 read of every table, `stats`, `pending`). The
  generators only ever produce a valid request for a verb that changes nothing here (reads,
  feeds, and the agent verbs that are no-ops on an empty inbox): an `ok` for any other verb fails.
  Examples are derandomized, so a run is repeatable.
- One test per item of quality.md's bad-input list that tests/test_compat.py does not already
  cover (oversized bodies on every socket, bad names in every verb that takes one, `*` in a
  scope, commit refs, a full disk), each with its exact code and the database unchanged. Planted symlinks are in
  tests/test_security.py; 1,000 idle connections and a slow client in tests/test_limits.py; a
  stalled event-feed reader in tests/test_events.py (no HTTP/SSE dashboard exists yet).
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hive_core.app import Hive
from hive_core.daemon import serve
from hive_core.surfaces.sockets import TABLES
from hive_wire.blocking import call_sync
from hive_wire.codec import LineBuffer
from hive_wire.errors import CODES
from hive_wire.requests import VERBS
from tests.helpers import SLEEPER, Daemon, agent_sock, call, make_config, refused, spawn_idle

TIMEOUT = 20
SERVED = {"host": TABLES["host"], "manager": TABLES["manager"], "agent": TABLES["agent"]}
FEEDS = {"subscribe_events", "subscribe_agent_status"}
# What a generated request may validly run here without changing anything the test watches:
# reads, feeds, and (with the fuzzed inboxes empty and nothing in flight) recv/inbox/acks/requeue.
HARMLESS = FEEDS | {
    "list",
    "agent_status",
    "urls",
    "pending",
    "tombstones",
    "questions",
    "dead_letters",
    "reminders",
    "stats",
    "whoami",
    "status",
    "recent",
    "get_loose_ends",
    "count_pending_reminders",
    "recv",
    "inbox",
    "ack_turn",
    "requeue_inflight",
    "costs",
    "logs",
}
# Compared before and after: every row, but `last_turn_at` (an ack, even of nothing, ends a turn).
TABLES = {
    "messages": "*",
    "approvals": "*",
    "questions": "*",
    "reminders": "*",
    "agents": "name, created_at, command, paused, status_text, status_set_at, want_running",
}


def db_state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table, read with a fresh connection (what is on disk, not what the daemon says)."""
    conn = sqlite3.connect(db)
    try:
        return {
            t: conn.execute(f"SELECT {cols} FROM {t} ORDER BY 1").fetchall()
            for t, cols in TABLES.items()
        }
    finally:
        conn.close()


def assert_envelope(answer: dict[str, Any]) -> None:
    assert list(answer)[:2] == ["version", "ok"], answer
    assert answer["version"] == 1 and type(answer["ok"]) is bool, answer
    if not answer["ok"]:
        assert list(answer) == ["version", "ok", "error", "code"], answer
        assert answer["code"] in CODES, answer
        assert isinstance(answer["error"], str) and answer["error"], answer
        assert answer["code"] != "internal", f"a bug answered internal: {answer}"


# --- the daemon subprocess, shared by the examples --------------------------------------------
@attrs.define
class Target:
    daemon: Daemon
    paths: dict[str, str]  # socket kind -> path

    @property
    def db(self) -> Path:
        return self.daemon.base / "state" / "hive.sqlite"

    def state(self) -> tuple[Any, ...]:
        stats = call_sync(self.paths["host"], {"cmd": "stats"}, TIMEOUT)
        return (
            stats["agents"],
            stats["pending_messages"],
            call_sync(self.paths["host"], {"cmd": "pending"}, TIMEOUT)["approvals"],
            call_sync(self.paths["host"], {"cmd": "questions"}, TIMEOUT)["questions"],
            call_sync(self.paths["host"], {"cmd": "reminders"}, TIMEOUT)["reminders"],
            db_state(self.db),
        )


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    """A daemon holding some of everything: bob has pending messages, a question to the operator
    and a reminder; the manager has asked to spawn carol. The fuzzed sockets (host, manager,
    alice) have empty inboxes and nothing in flight."""
    base = Path(tempfile.mkdtemp(prefix="hc", dir="/tmp"))
    d = Daemon(base)
    try:
        d.start()
        host = d.host
        run = base / "run"
        paths = {
            "host": host,
            "manager": str(run / "manager" / "mcp.sock"),
            "agent": str(run / "agents" / "alice" / "mcp.sock"),
        }
        bob = str(run / "agents" / "bob" / "mcp.sock")
        for name in ("alice", "bob"):
            call_sync(host, {"cmd": "spawn", "name": name, "command": SLEEPER}, TIMEOUT)
        for i in range(3):
            call_sync(host, {"cmd": "send", "to": "bob", "body": f"for bob {i}"}, TIMEOUT)
        call_sync(bob, {"cmd": "ask", "question": "may I?"}, TIMEOUT)
        call_sync(bob, {"cmd": "remind", "message": "later", "delay_seconds": 86400}, TIMEOUT)
        call_sync(paths["manager"], {"cmd": "request_spawn", "name": "carol"}, TIMEOUT)
        got = call_sync(paths["manager"], {"cmd": "recv", "max": 32}, TIMEOUT)["messages"]
        assert len(got) == 2  # the `spawned` helper events
        call_sync(paths["manager"], {"cmd": "ack_turn"}, TIMEOUT)
        yield Target(d, paths)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        shutil.rmtree(base, ignore_errors=True)


def raw_exchange(path: str, line: bytes, then: bytes | None) -> list[dict[str, Any]]:
    """Send `line` (and `then` on the same connection), read one answer per line sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        sock.sendall(line + (then or b""))
        want = 2 if then else 1
        buf = LineBuffer(1 << 24)
        lines: list[bytes] = []
        while len(lines) < want:
            data = sock.recv(65536)
            if not data:
                raise AssertionError(f"connection closed after {len(lines)} answer(s) to {line!r}")
            lines += buf.feed(data)
    return [json.loads(x) for x in lines[:want]]


def throw(target: Target, kind: str, line: bytes, cmd: str | None) -> dict[str, Any]:
    """One hostile line on a fresh connection of `kind`, then a plain request on the same one
    (unless the line opened a feed); the daemon's state must not have moved."""
    before = target.state()
    plain = b'{"cmd":"list"}\n' if kind == "host" else b'{"cmd":"whoami"}\n'
    feed = cmd in FEEDS
    answers = raw_exchange(target.paths[kind], line, None if feed else plain)
    answer = answers[0]
    assert_envelope(answer)
    if answer["ok"]:
        assert cmd in HARMLESS and cmd in SERVED[kind], (
            f"a generated line ran a state-changing verb: {line!r} -> {answer}"
        )
    if not feed:
        assert_envelope(answers[1])
        assert answers[1]["ok"] is True, f"the connection is unusable after {line!r}: {answers}"
    # The daemon keeps serving every socket, and nothing changed.
    assert call_sync(target.paths["host"], {"cmd": "list"}, TIMEOUT)["agents"] == ["alice", "bob"]
    assert call_sync(target.paths["manager"], {"cmd": "whoami"}, TIMEOUT)["name"] == "manager"
    assert call_sync(target.paths["agent"], {"cmd": "whoami"}, TIMEOUT)["name"] == "alice"
    assert target.state() == before, f"state changed after {line!r} -> {answer}"
    return answer


# --- generators -----------------------------------------------------------------------------
TEXT = st.text(max_size=12)
BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(min_value=-(10**20 - 1), max_value=10**20 - 1),  # more digits: bad_json
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": TEXT,
}
JSON = st.recursive(
    st.one_of(*BY_KIND.values()),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
BY_KIND["list"] = st.lists(JSON, max_size=3)
BY_KIND["object"] = st.dictionaries(st.text(max_size=6), JSON, max_size=3)
KINDS = st.sampled_from(sorted(SERVED))


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "object"}[type(value)]


def accepted_kinds(cls: type, field: attrs.Attribute[Any]) -> set[str]:
    """The JSON kinds a request field's declared type accepts (`int | None` -> int, null)."""
    hint = typing.get_type_hints(cls)[field.name]
    out = set()
    for part in typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,):
        origin = typing.get_origin(part) or part
        out.add(
            {str: "str", int: "int", bool: "bool", list: "list", type(None): "null"}.get(
                origin, "object"
            )
        )  # an attrs class (`Scope`) is an object
    return out


def wire_name(field: attrs.Attribute[Any]) -> str:
    return field.name.rstrip("_")


@st.composite
def wrongly_typed(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A known verb with at least one of its fields (if it has any) of a wrong JSON type, and
    maybe unknown fields (which are ignored)."""
    cmd = draw(st.sampled_from(sorted(VERBS)))
    fields = list(attrs.fields(VERBS[cmd]))
    request: dict[str, Any] = {"cmd": cmd}
    if fields:
        for f in draw(st.lists(st.sampled_from(fields), min_size=1, unique_by=wire_name)):
            ok = accepted_kinds(VERBS[cmd], f)
            request[wire_name(f)] = draw(st.one_of(*(s for k, s in BY_KIND.items() if k not in ok)))
    names = {"cmd", *map(wire_name, fields)}
    request.update(
        draw(
            st.dictionaries(st.text(max_size=6).filter(lambda k: k not in names), JSON, max_size=2)
        )
    )
    return cmd, request


HYPOTHESIS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@HYPOTHESIS
@given(kind=KINDS, generated=wrongly_typed())
def test_wrongly_typed_fields_on_every_socket(
    target: Target, kind: str, generated: tuple[str, dict[str, Any]]
) -> None:
    cmd, request = generated
    line = json.dumps(request).encode() + b"\n"
    answer = throw(target, kind, line, cmd)
    if b"\\u0000" in line:  # NUL in a string: refused by the codec, before the verb
        assert answer["code"] == "bad_json", answer
    elif cmd not in SERVED[kind]:
        assert answer["code"] == "unknown_command", answer
    elif attrs.fields(VERBS[cmd]):  # at least one of them is there, wrongly typed
        assert answer["code"] == "bad_request", answer


@HYPOTHESIS
@given(
    kind=KINDS,
    obj=st.dictionaries(st.text(max_size=10), JSON, max_size=4),
    cmd=st.none() | st.sampled_from(sorted(VERBS)) | JSON,
)
def test_random_json_objects_on_every_socket(
    target: Target, kind: str, obj: dict[str, Any], cmd: Any
) -> None:
    if cmd is not None:
        obj = {"cmd": cmd, **{k: v for k, v in obj.items() if k != "cmd"}}
    line = json.dumps(obj).encode() + b"\n"
    answer = throw(target, kind, line, obj.get("cmd") if isinstance(obj.get("cmd"), str) else None)
    if b"\\u0000" in line:
        assert answer["code"] == "bad_json", answer
    elif not isinstance(obj.get("cmd"), str):
        assert answer["code"] == "bad_request", answer
    elif obj["cmd"] not in SERVED[kind]:
        assert answer["code"] == "unknown_command", answer


@HYPOTHESIS
@given(kind=KINDS, value=JSON.filter(lambda v: not isinstance(v, dict)))
def test_json_values_that_are_not_objects(target: Target, kind: str, value: Any) -> None:
    answer = throw(target, kind, json.dumps(value).encode() + b"\n", None)
    assert answer["code"] == "bad_json", answer


@HYPOTHESIS
@given(kind=KINDS, data=st.binary(max_size=300) | st.text(max_size=60).map(str.encode))
def test_random_byte_lines_on_every_socket(target: Target, kind: str, data: bytes) -> None:
    line = data.replace(b"\n", b"") + b"\n"
    try:
        parsed = json.loads(line)
    except ValueError:
        parsed = None
    cmd = parsed.get("cmd") if isinstance(parsed, dict) else None
    throw(target, kind, line, cmd if isinstance(cmd, str) else None)


# --- the bad-input list, item by item -----------------------------------------------------------
async def snapshot(hive: Hive) -> tuple[Any, ...]:
    stats = await call(str(hive.paths.host_socket), {"cmd": "stats"})
    pending = await call(str(hive.paths.host_socket), {"cmd": "pending"})
    return (
        stats["agents"],
        stats["pending_messages"],
        pending["approvals"],
        db_state(hive.paths.database),
    )


async def _some_state(hive: Hive) -> None:
    """alice and bob, a message in bob's inbox, one in flight for alice, a pending approval."""
    await spawn_idle(hive, "alice", "bob")
    host, manager = str(hive.paths.host_socket), str(hive.paths.manager_socket)
    assert (await call(host, {"cmd": "send", "to": "bob", "body": "waiting"}))["ok"]
    assert (await call(host, {"cmd": "send", "to": "alice", "body": "in flight"}))["ok"]
    assert len((await call(agent_sock(hive, "alice"), {"cmd": "recv"}))["messages"]) == 1
    assert (await call(manager, {"cmd": "request_spawn", "name": "carol"}))["ok"]


@pytest.mark.parametrize("where", ["host", "manager", "agent"])
async def test_oversized_body_is_too_large_on_every_socket(hive: Hive, where: str) -> None:
    with trio.fail_after(TIMEOUT):
        await _some_state(hive)
        path = {
            "host": str(hive.paths.host_socket),
            "manager": str(hive.paths.manager_socket),
            "agent": agent_sock(hive, "alice"),
        }[where]
        limit = hive.config.body_limit
        before = await snapshot(hive)
        for to in ("bob", "*", "operator"):
            await refused(path, {"cmd": "send", "to": to, "body": "x" * (limit + 1)}, "too_large")
            await refused(
                path, {"cmd": "send", "to": to, "body": "\u00e9" * (limit // 2 + 1)}, "too_large"
            )  # bytes, not characters
        if where != "host":
            await refused(
                path, {"cmd": "wake", "from": "github", "body": "x" * (limit + 1)}, "too_large"
            )
        assert await snapshot(hive) == before


BAD_NAMES = [
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
    "caf\u00e9",
    "system",
    "reminder",
    "self",
    "hive",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_bad_names_in_every_verb_that_takes_one(hive: Hive, name: str) -> None:
    """The spawn side is in test_compat.py; here every other place a name goes."""
    with trio.fail_after(TIMEOUT):
        await _some_state(hive)
        host, manager = str(hive.paths.host_socket), str(hive.paths.manager_socket)
        alice = agent_sock(hive, "alice")
        before = await snapshot(hive)
        for path, request in [
            (host, {"cmd": "send", "to": name, "body": "x"}),
            (manager, {"cmd": "send", "to": name, "body": "x"}),
            (alice, {"cmd": "send", "to": name, "body": "x"}),
            (alice, {"cmd": "ask", "question": "q", "to": name}),
            (host, {"cmd": "kill", "name": name}),
            (host, {"cmd": "restart", "name": name}),
            (host, {"cmd": "rebuild", "name": name}),
            (host, {"cmd": "destroy", "name": name, "purge": True}),
            (host, {"cmd": "purge_tombstone", "name": name}),
            (host, {"cmd": "set_paused", "name": name, "paused": True}),
            (host, {"cmd": "logs", "name": name}),
            (host, {"cmd": "request_spawn", "name": name}),
            (host, {"cmd": "start", "scope": {"agent_names": [name]}}),
            (host, {"cmd": "stop", "scope": {"agent_names": ["bob", name]}, "graceful": False}),
            (manager, {"cmd": "request_spawn", "name": name}),
            (manager, {"cmd": "kill", "name": name}),
            (manager, {"cmd": "start", "name": name}),
            (manager, {"cmd": "restart", "name": name}),
            (manager, {"cmd": "rebuild", "name": name}),
        ]:
            await refused(path, request, "bad_request")
        assert await snapshot(hive) == before
        rows = (await call(host, {"cmd": "agent_status"}))["agent_statuses"]
        assert all(r["running"] for r in rows), rows


async def test_star_in_agent_names_is_refused_not_every_agent(hive: Hive) -> None:
    """`*` is reserved and never an agent; "every agent" is `{"agents": true}` and nothing else
    (wire.md: nothing means everything by accident)."""
    with trio.fail_after(TIMEOUT):
        await _some_state(hive)
        host, manager = str(hive.paths.host_socket), str(hive.paths.manager_socket)
        before = await snapshot(hive)
        await refused(
            host, {"cmd": "stop", "scope": {"agent_names": ["*"]}, "graceful": False}, "bad_request"
        )
        await refused(host, {"cmd": "stop", "name": "*", "graceful": False}, "bad_request")
        await refused(manager, {"cmd": "start", "name": "*"}, "bad_request")
        rows = (await call(host, {"cmd": "agent_status"}))["agent_statuses"]
        assert [(r["name"], r["running"]) for r in rows] == [("alice", True), ("bob", True)]
        assert await snapshot(hive) == before


@pytest.mark.parametrize(
    "ref",
    [
        "HEAD",
        "--upload-pack=x",
        "-x",
        "abcdef",
        "a" * 41,
        "ABCDEF1234567890ABCDEF1234567890ABCDEF12",
        "main",
        "",
        "g" * 40,
        "a" * 39 + "\n",
    ],
)
async def test_bad_commit_refs_are_refused(hive: Hive, ref: str) -> None:
    with trio.fail_after(TIMEOUT):
        await _some_state(hive)
        before = await snapshot(hive)
        answer = await call(
            str(hive.paths.manager_socket),
            {"cmd": "request_apply_commit", "agent": "alice", "commit_ref": ref},
        )
        assert_envelope(answer)
        assert answer["ok"] is False and answer["code"] == "bad_request", answer
        assert "commit_ref" in answer["error"], (
            answer
        )  # refused for the ref, not for another reason
        assert await snapshot(hive) == before


async def test_full_disk_sends_are_unavailable_and_nothing_stored_is_lost(dirs: Path) -> None:
    """The second run caps the database (config `database_max_bytes`, SQLite's
    `max_page_count`) a few pages past what the first run stored: the disk is full."""
    cfg = make_config(dirs)
    host = str(dirs / "run" / "host.sock")
    with trio.fail_after(TIMEOUT * 3):
        async with trio.open_nursery() as nursery:  # first run: some messages stored
            h: Hive = await nursery.start(serve, cfg)
            await spawn_idle(h, "alice")
            kept = [
                (await call(host, {"cmd": "send", "to": "alice", "body": f"kept {i}"}))["id"]
                for i in range(5)
            ]
            h.shutdown()
        conn = sqlite3.connect(cfg.state_dir / "hive.sqlite")
        pages, page_size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size")
        )
        conn.close()

        full = make_config(dirs, database_max_bytes=(pages + 6) * page_size)
        filled: list[int] = []
        async with trio.open_nursery() as nursery:  # second run: the disk fills up
            h = await nursery.start(serve, full)
            for size in (6000, 100):  # big rows until one is refused, then small ones
                for _ in range(200):
                    answer = await call(
                        host,
                        {"cmd": "send", "to": "alice", "body": f"fill {len(filled)} " + "x" * size},
                    )
                    assert_envelope(answer)
                    if not answer["ok"]:
                        assert answer["code"] == "unavailable", answer
                        break
                    filled.append(answer["id"])
                else:
                    raise AssertionError("the database never filled up")
            assert filled, "not one send fitted in the room left"
            before = await snapshot(h)
            await refused(host, {"cmd": "send", "to": "alice", "body": "y" * 6000}, "unavailable")
            await refused(
                agent_sock(h, "alice"),
                {"cmd": "send", "to": "alice", "body": "z" * 20000},
                "unavailable",
            )
            assert (await call(host, {"cmd": "list"}))["agents"] == ["alice"]  # still serving
            assert await snapshot(h) == before
            h.shutdown()

        conn = sqlite3.connect(cfg.state_dir / "hive.sqlite")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            stored = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE recipient = 'alice' AND acked_at IS NULL "
                    "ORDER BY id"
                )
            ]
        finally:
            conn.close()
        assert stored == kept + filled

        async with trio.open_nursery() as nursery:  # room again: every message is delivered
            h = await nursery.start(serve, cfg)
            got: list[dict[str, Any]] = []
            while batch := (await call(agent_sock(h, "alice"), {"cmd": "recv", "max": 32}))[
                "messages"
            ]:
                got += batch
            assert [m["id"] for m in got] == kept + filled
            assert [m["body"] for m in got[:5]] == [f"kept {i}" for i in range(5)]
            assert (await call(host, {"cmd": "send", "to": "alice", "body": "fits"}))["ok"]
            h.shutdown()

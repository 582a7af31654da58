"""Approvals, questions, reminders and loose ends, through the sockets (queues.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.app import Hive
from hive_core.daemon import serve
from tests.helpers import agent_sock, make_config, ok, refused, spawn_idle


async def helper_events(path: str) -> list[dict[str, Any]]:
    got = await ok(path, {"cmd": "recv", "max": 32})
    await ok(path, {"cmd": "ack_turn"})
    return [json.loads(m["body"]) for m in got["messages"] if m["from"] == "system"]


# --- approvals ------------------------------------------------------------------------------
async def test_request_spawn_approve_runs_spawn_and_tells_manager(
    hive: Hive, host: str, manager: str
) -> None:
    rid = (await ok(manager, {"cmd": "request_spawn", "name": "bob", "description": "a helper"}))[
        "id"
    ]
    rows = (await ok(host, {"cmd": "pending"}))["approvals"]
    assert [(r["id"], r["kind"], r["agent"], r["status"]) for r in rows] == [
        (rid, "spawn", "bob", "pending")
    ]
    assert list(rows[0]) == [
        "id",
        "agent",
        "kind",
        "commit_ref",
        "requested_at",
        "status",
        "description",
    ]
    await ok(host, {"cmd": "approve", "id": rid})
    assert "bob" in (await ok(host, {"cmd": "list"}))["agents"]
    row = (await ok(host, {"cmd": "pending"}))["approvals"][0]
    assert row["status"] == "approved" and "resolved_at" in row
    events = await helper_events(manager)
    assert events == [
        {"event": "spawned", "agent": "bob"},
        {"event": "approval_resolved", "id": rid, "agent": "bob", "status": "approved"},
    ]
    # A second approve or a deny of a resolved approval is a conflict and runs nothing.
    await refused(host, {"cmd": "approve", "id": rid}, "conflict")
    await refused(host, {"cmd": "deny", "id": rid}, "conflict")
    assert await helper_events(manager) == []


async def test_deny_records_note_and_failed_spawn_says_why(
    hive: Hive, host: str, manager: str
) -> None:
    b = (await ok(manager, {"cmd": "request_spawn", "name": "dave"}))["id"]
    await spawn_idle(hive, "dave")  # the name is taken before approval: the action fails
    a = (await ok(host, {"cmd": "request_spawn", "name": "carol"}))["id"]
    await ok(host, {"cmd": "deny", "id": a, "note": "not today"})
    await ok(host, {"cmd": "approve", "id": b})
    rows = {r["id"]: r for r in (await ok(host, {"cmd": "pending"}))["approvals"]}
    assert rows[a]["status"] == "denied" and rows[a]["note"] == "not today"
    assert rows[b]["status"] == "failed" and "already exists" in rows[b]["note"]
    assert [e["status"] for e in await helper_events(manager)] == ["denied", "failed"]


async def test_approval_bad_input(hive: Hive, host: str, manager: str) -> None:
    await refused(host, {"cmd": "approve", "id": 999}, "not_found")
    await refused(host, {"cmd": "approve", "id": "1"}, "bad_request")
    await refused(host, {"cmd": "approve"}, "bad_request")
    await refused(host, {"cmd": "deny", "id": True}, "bad_request")
    await refused(manager, {"cmd": "request_spawn", "name": "../x"}, "bad_request")
    await refused(manager, {"cmd": "request_spawn", "name": "manager"}, "bad_request")
    await ok(manager, {"cmd": "request_spawn", "name": "erin"})
    await refused(manager, {"cmd": "request_spawn", "name": "erin"}, "conflict")
    await refused(agent_or_manager_only := manager, {"cmd": "approve", "id": 1}, "unknown_command")
    assert agent_or_manager_only
    assert len((await ok(host, {"cmd": "pending"}))["approvals"]) == 1


async def test_manager_withdraws_its_request(hive: Hive, host: str, manager: str) -> None:
    rid = (await ok(manager, {"cmd": "request_spawn", "name": "fred"}))["id"]
    await spawn_idle(hive, "alice")
    await refused(
        agent_sock(hive, "alice"),
        {"cmd": "cancel_loose_end", "kind": "approval", "id": rid},
        "forbidden",
    )
    await ok(manager, {"cmd": "cancel_loose_end", "kind": "approval", "id": rid})
    row = (await ok(host, {"cmd": "pending"}))["approvals"][0]
    assert row["status"] == "cancelled"
    await refused(host, {"cmd": "approve", "id": rid}, "conflict")


# --- questions ------------------------------------------------------------------------------
async def test_question_to_operator_answered_by_operator_only(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice = agent_sock(hive, "alice")
    qid = (await ok(alice, {"cmd": "ask", "question": "deploy?", "options": ["yes", "no"]}))["id"]
    listed = (await ok(host, {"cmd": "questions"}))["questions"]
    assert [(q["id"], q["asker"], q["to"], q["options"]) for q in listed] == [
        (qid, "alice", "operator", ["yes", "no"])
    ]
    await refused(
        agent_sock(hive, "bob"), {"cmd": "answer", "id": qid, "answer": "yes"}, "forbidden"
    )
    await ok(host, {"cmd": "answer", "id": qid, "answer": "yes"})
    assert (await ok(host, {"cmd": "questions"}))["questions"] == []
    assert await helper_events(alice) == [
        {
            "event": "question_answered",
            "id": qid,
            "question": "deploy?",
            "answer": "yes",
            "answerer": "operator",
        }
    ]
    await refused(host, {"cmd": "answer", "id": qid, "answer": "again"}, "conflict")


async def test_question_between_agents(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    await refused(alice, {"cmd": "ask", "question": "me?", "to": "alice"}, "bad_request")
    await refused(alice, {"cmd": "ask", "question": "x", "to": "ghost"}, "not_found")
    qid = (await ok(alice, {"cmd": "ask", "question": "lunch?", "to": "bob"}))["id"]
    assert (await ok(host, {"cmd": "questions"}))["questions"] == []  # not the operator's
    assert await helper_events(bob) == [
        {
            "event": "question_asked",
            "id": qid,
            "asker": "alice",
            "question": "lunch?",
            "options": [],
            "multi": False,
        }
    ]
    ends = (await ok(bob, {"cmd": "get_loose_ends"}))["loose_ends"]
    assert [(e["kind"], e["id"], e["status"]) for e in ends] == [("question", qid, "to_answer")]
    await refused(bob, {"cmd": "cancel_loose_end", "kind": "question", "id": qid}, "forbidden")
    await ok(bob, {"cmd": "answer", "id": qid, "answer": "sure"})
    assert (await helper_events(alice))[0]["answerer"] == "bob"


async def test_operator_override_and_cancel(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice = agent_sock(hive, "alice")
    q1 = (await ok(alice, {"cmd": "ask", "question": "a", "to": "bob"}))["id"]
    q2 = (await ok(alice, {"cmd": "ask", "question": "b"}))["id"]
    await ok(host, {"cmd": "answer", "id": q1, "answer": "override"})
    await ok(alice, {"cmd": "cancel_loose_end", "kind": "question", "id": q2})
    answers = [(e["id"], e["answer"]) for e in await helper_events(alice)]
    assert answers == [(q1, "override"), (q2, "[cancelled by alice]")]
    await refused(host, {"cmd": "cancel_question", "id": q2}, "conflict")
    await refused(host, {"cmd": "cancel_question", "id": 12345}, "not_found")


async def test_question_ttl_expires_and_is_capped(
    hive: Hive, host: str, autojump_clock: trio.testing.MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    short = (await ok(alice, {"cmd": "ask", "question": "quick?", "ttl_seconds": 30}))["id"]
    long_ = (await ok(alice, {"cmd": "ask", "question": "slow?", "ttl_seconds": 10**6}))["id"]
    await refused(alice, {"cmd": "ask", "question": "x", "ttl_seconds": -1}, "bad_request")
    q = {x["id"]: x for x in (await ok(host, {"cmd": "questions"}))["questions"]}
    assert set(q) == {short, long_}
    await trio.sleep(31)
    assert [x["id"] for x in (await ok(host, {"cmd": "questions"}))["questions"]] == [long_]
    await trio.sleep(6 * 3600)
    assert (await ok(host, {"cmd": "questions"}))["questions"] == []
    events = await helper_events(alice)
    assert [(e["id"], e["answer"], e["answerer"]) for e in events] == [
        (short, "[expired]", "ttl-watchdog"),
        (long_, "[expired]", "ttl-watchdog"),
    ]


# --- reminders ------------------------------------------------------------------------------
async def test_reminder_fires_when_due(
    hive: Hive, host: str, autojump_clock: trio.testing.MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    start = trio.current_time()
    await ok(alice, {"cmd": "remind", "message": "stand up", "delay_seconds": 3600})
    await ok(alice, {"cmd": "remind", "message": "sooner", "delay_seconds": 10})
    assert (await ok(alice, {"cmd": "count_pending_reminders"}))["count"] == 2
    rows = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"]
    assert rows[0]["pending_reminders"] == 2
    got = await ok(alice, {"cmd": "recv", "wait_seconds": 60})
    assert [(m["from"], m["body"]) for m in got["messages"]] == [("reminder", "sooner")]
    assert 10 <= trio.current_time() - start < 11  # woken for the earlier one, not the tick
    await ok(alice, {"cmd": "ack_turn"})
    got = await ok(alice, {"cmd": "recv", "wait_seconds": 180})
    assert got["messages"] == []
    await trio.sleep(3600)
    got = await ok(alice, {"cmd": "recv"})
    assert [m["body"] for m in got["messages"]] == ["stand up"]
    assert (await ok(alice, {"cmd": "count_pending_reminders"}))["count"] == 0


async def test_reminder_bad_input_changes_nothing(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    bad = [
        {"cmd": "remind", "message": "x"},
        {"cmd": "remind", "message": "x", "delay_seconds": 5, "at_unix_timestamp": 5},
        {"cmd": "remind", "message": "x", "delay_seconds": -5},
        {"cmd": "remind", "message": "x", "delay_seconds": 10**12},
        {"cmd": "remind", "message": "x", "at_unix_timestamp": 10**12},
        {"cmd": "remind", "message": "x", "delay_seconds": "5"},
        {"cmd": "remind", "message": "", "delay_seconds": 5},
        {"cmd": "remind", "message": "x", "delay_seconds": 5, "file_path": "../../etc/passwd"},
        {"cmd": "remind", "message": "x", "delay_seconds": 5, "file_path": "/etc/passwd"},
        {"cmd": "remind", "message": "x", "delay_seconds": 5, "file_path": "/state/../x"},
    ]
    for req in bad:
        await refused(alice, req, "bad_request")
    assert (await ok(host, {"cmd": "reminders"}))["reminders"] == []
    for i in range(50):
        await ok(alice, {"cmd": "remind", "message": f"r{i}", "delay_seconds": 1000})
    await refused(alice, {"cmd": "remind", "message": "one more", "delay_seconds": 5}, "limit")
    assert (await ok(alice, {"cmd": "count_pending_reminders"}))["count"] == 50
    await refused(host, {"cmd": "retry_reminder", "id": 9999}, "not_found")


async def test_reminder_file_path_resolved_and_escape_parked(
    hive: Hive,
    host: str,
    manager: str,
    dirs: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    state = hive.paths.agent_state("alice")
    (state / "notes.md").write_text("hello")
    (dirs / "secret").write_text("no")
    os.symlink(dirs / "secret", state / "escape")
    await ok(
        alice,
        {"cmd": "remind", "message": "read", "delay_seconds": 1, "file_path": "/state/notes.md"},
    )
    bad = (
        await ok(
            alice, {"cmd": "remind", "message": "leak", "delay_seconds": 1, "file_path": "escape"}
        )
    )["id"]
    got = await ok(alice, {"cmd": "recv", "wait_seconds": 10})
    assert [m["body"] for m in got["messages"]] == ["read\n\nfile: /state/notes.md"]
    await trio.sleep(5 * 60)  # five attempts, 30 s apart, then parked
    rows = (await ok(host, {"cmd": "reminders"}))["reminders"]
    assert [(r["id"], r["status"], r["attempts"]) for r in rows] == [(bad, "parked", 5)]
    assert "outside" in rows[0]["last_error"]
    assert (await ok(alice, {"cmd": "recv"}))["messages"] == []
    events = await helper_events(manager)
    assert [(e["event"], e["id"]) for e in events] == [("reminder_failed", bad)]
    os.unlink(state / "escape")
    (state / "escape").write_text("now inside")
    await ok(host, {"cmd": "retry_reminder", "id": bad})
    got = await ok(alice, {"cmd": "recv", "wait_seconds": 10})
    assert [m["body"] for m in got["messages"]] == ["leak\n\nfile: /state/escape"]


async def test_loose_ends_per_agent_and_hive_wide(hive: Hive, host: str, manager: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    q = (await ok(alice, {"cmd": "ask", "question": "?"}))["id"]
    r = (await ok(bob, {"cmd": "remind", "message": "later", "delay_seconds": 100}))["id"]
    a = (await ok(manager, {"cmd": "request_spawn", "name": "zed"}))["id"]
    mine = (await ok(alice, {"cmd": "get_loose_ends"}))["loose_ends"]
    assert [(e["kind"], e["id"]) for e in mine] == [("question", q)]
    everything = (await ok(manager, {"cmd": "get_loose_ends"}))["loose_ends"]
    assert sorted((e["kind"], e["id"]) for e in everything) == sorted(
        [("question", q), ("reminder", r), ("approval", a)]
    )
    await refused(alice, {"cmd": "cancel_loose_end", "kind": "reminder", "id": r}, "forbidden")
    await refused(alice, {"cmd": "cancel_loose_end", "kind": "thing", "id": r}, "bad_request")
    await ok(manager, {"cmd": "cancel_loose_end", "kind": "reminder", "id": r})
    assert (await ok(bob, {"cmd": "get_loose_ends"}))["loose_ends"] == []


async def test_restart_keeps_queues_and_overdue_reminder_fires(dirs: Path) -> None:
    cfg = make_config(dirs)
    async with trio.open_nursery() as nursery:
        h: Hive = await nursery.start(serve, cfg)
        await spawn_idle(h, "alice")
        alice = agent_sock(h, "alice")
        await ok(alice, {"cmd": "remind", "message": "due soon", "delay_seconds": 1})
        await ok(alice, {"cmd": "ask", "question": "still there?"})
        await ok(str(h.paths.manager_socket), {"cmd": "request_spawn", "name": "bob"})
        # Stop before the reminder is due; it must fire after the restart.
        h.shutdown()
    async with trio.open_nursery() as nursery:
        h = await nursery.start(serve, cfg)
        host = str(h.paths.host_socket)
        assert len((await ok(host, {"cmd": "questions"}))["questions"]) == 1
        assert (await ok(host, {"cmd": "pending"}))["approvals"][0]["status"] == "pending"
        got = await ok(agent_sock(h, "alice"), {"cmd": "recv", "wait_seconds": 30})
        assert [m["body"] for m in got["messages"]] == ["due soon"]
        h.shutdown()


@pytest.fixture
def hive_config() -> dict[str, Any]:
    return {"retention_days": 0.01}  # 864 s, so the test jumps hours, not a month


async def test_vacuum_ages(hive: Hive, host: str, autojump_clock: trio.testing.MockClock) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    qid = (await ok(alice, {"cmd": "ask", "question": "old"}))["id"]
    await ok(host, {"cmd": "answer", "id": qid, "answer": "done"})
    await ok(host, {"cmd": "send", "to": "alice", "body": "m"})
    await ok(alice, {"cmd": "recv", "max": 32})
    await ok(alice, {"cmd": "ack_turn"})
    before = (await ok(alice, {"cmd": "recent", "limit": 10}))["messages"]
    assert [m["body"] for m in before][0] == "m" and len(before) == 2
    await trio.sleep(864 + 3600)  # past the message retention; vacuum is hourly
    assert (await ok(alice, {"cmd": "recent", "limit": 10}))["messages"] == []


async def test_vacuum_sweeps_agent_files_and_survives_a_bad_one(
    hive: Hive, host: str, autojump_clock: trio.testing.MockClock
) -> None:
    import sqlite3
    import time

    await spawn_idle(hive, "alice", "bob")
    now = time.time()
    events = hive.paths.agent_state("bob") / "hyperhive-events.sqlite"
    conn = sqlite3.connect(events)
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, ts INTEGER, kind TEXT, payload_json TEXT)"
    )
    conn.executemany(
        "INSERT INTO events (ts, kind, payload_json) VALUES (?, 'k', '{}')",
        [(int(now - 30 * 86400),), (int((now - 30 * 86400) * 1000),), (int(now),)],
    )
    conn.commit()
    conn.close()
    # alice's file is garbage: the sweep logs it and goes on to bob's.
    (hive.paths.agent_state("alice") / "hyperhive-turn-stats.sqlite").write_bytes(b"not sqlite")
    await trio.sleep(3600 + 60)  # the next hourly sweep
    conn = sqlite3.connect(events)
    left = [r[0] for r in conn.execute("SELECT ts FROM events")]
    conn.close()
    assert left == [int(now)]
    assert (await ok(host, {"cmd": "list"}))["agents"] == ["alice", "bob"]

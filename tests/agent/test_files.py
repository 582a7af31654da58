"""The agent's own files (event history, turn stats), checked by reopening them; the daemon's
vacuum sweeps them; write failures never reach the loop; the activity reporter's batching and
dropping against a stand-in agent socket."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.agent import bus as busmod
from hive_core.agent import claude, turn_stats
from hive_core.agent.bus import ActivityReporter
from hive_core.store import agent_files
from hive_wire.codec import LineBuffer, encode_line


async def test_bus_history_is_written_in_batches_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "hyperhive-events.sqlite"
    bus = busmod.EventBus(path)
    live = bus.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        events = [
            busmod.TurnStart(from_="bob", body="hi", unread=2),
            busmod.Stream(obj={"type": "system", "subtype": "init"}),
            busmod.Note(text="a note"),
            busmod.TurnEnd(ok=True),
            busmod.TurnEnd(ok=False, note="exit code 1"),
            busmod.StatusChanged(status="busy"),
            busmod.ModelChanged(model="m"),
            busmod.TokenUsageChanged(usage={"input_tokens": 3}),
            busmod.TurnStateChanged(state="thinking", since_unix=1700000000),
        ]
        seqs = [bus.emit(e).seq for e in events]
        assert seqs == list(range(1, len(events) + 1))
        await bus.flushed()
        got = [live.receive_nowait().wire() for _ in events]
        assert got[0] == {"seq": 1, "kind": "turn_start", "from": "bob", "body": "hi", "unread": 2}
        assert got[1] == {"seq": 2, "kind": "stream", "type": "system", "subtype": "init"}
        assert got[3] == {"seq": 4, "kind": "turn_end", "ok": True}
        nursery.cancel_scope.cancel()
    conn = sqlite3.connect(path)  # a fresh connection: what is on disk
    rows = conn.execute("SELECT id, ts, kind, payload_json FROM events ORDER BY id").fetchall()
    conn.close()
    assert [r[2] for r in rows] == [e.kind for e in events]
    assert all(abs(r[1] - time.time()) < 60 for r in rows)  # unix seconds
    assert json.loads(rows[4][3]) == {"kind": "turn_end", "ok": False, "note": "exit code 1"}
    assert busmod.history(path)[0]["from"] == "bob"


async def test_bus_writes_what_is_queued_when_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    bus = busmod.EventBus(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        for i in range(500):
            bus.emit(busmod.Note(text=str(i)))
        nursery.cancel_scope.cancel()  # before the writer ran: it writes on its way out
    assert len(busmod.history(path, limit=1000)) == 500


async def test_a_failing_history_never_blocks_emit(tmp_path: Path) -> None:
    bad = tmp_path / "a-directory"
    bad.mkdir()
    bus = busmod.EventBus(bad, max_pending=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        for i in range(3):
            bus.emit(busmod.Note(text=str(i)))
        await bus.flushed()
        assert bus.dropped == 3 and bus.written == 0
        nursery.cancel_scope.cancel()
    unwritten = busmod.EventBus(tmp_path / "x.sqlite", max_pending=10)  # no writer task
    for i in range(25):
        unwritten.emit(busmod.Note(text=str(i)))
    assert unwritten.dropped == 15 and unwritten.seq == 25


async def test_a_slow_subscriber_misses_events_and_emit_goes_on() -> None:
    bus = busmod.EventBus(None, subscriber_buffer=2)
    live = bus.subscribe()
    for i in range(5):
        bus.emit(busmod.Note(text=str(i)))
    assert [live.receive_nowait().seq for _ in range(2)] == [1, 2]
    with pytest.raises(trio.WouldBlock):
        live.receive_nowait()


def row(**changes: Any) -> turn_stats.TurnRow:
    fields: dict[str, Any] = dict(
        started_at=1_700_000_000.5,
        ended_at=1_700_000_002.0,
        duration_ms=1500,
        model="m",
        wake_from="bob",
        result_kind="ok",
        input_tokens=10,
        output_tokens=2,
        cache_read_tokens=3,
        cache_creation_tokens=4,
        cost_usd=0.25,
        tool_calls={"Bash": 2, "mcp__hive__send": 1},
        open_loose_ends=1,
        pending_reminders=0,
    )
    return turn_stats.TurnRow(**{**fields, **changes})


async def test_turn_stats_rows_have_the_spec_columns(tmp_path: Path) -> None:
    stats = turn_stats.TurnStats(tmp_path / turn_stats.FILE)
    assert await stats.record(row())
    assert await stats.record(row(result_kind="timeout", note="killed", cost_usd=None))
    (first, second) = turn_stats.rows(tmp_path / turn_stats.FILE)
    assert {k: first[k] for k in first if k != "id"} == {
        "started_at": 1_700_000_000.5,
        "ended_at": 1_700_000_002.0,
        "duration_ms": 1500,
        "model": "m",
        "wake_from": "bob",
        "result_kind": "ok",
        "input_tokens": 10,
        "output_tokens": 2,
        "cache_read_tokens": 3,
        "cache_creation_tokens": 4,
        "cost_usd": 0.25,
        "tool_call_count": 3,
        "tool_call_breakdown_json": '{"Bash": 2, "mcp__hive__send": 1}',
        "open_loose_ends": 1,
        "pending_reminders": 0,
        "note": None,
    }
    assert (second["result_kind"], second["note"], second["cost_usd"]) == (
        "timeout",
        "killed",
        None,
    )
    with pytest.raises(ValueError):
        row(result_kind="weird")


async def test_a_failing_turn_stats_write_is_logged_not_raised(tmp_path: Path) -> None:
    stats = turn_stats.TurnStats(tmp_path / "no-such-dir" / turn_stats.FILE)
    assert not await stats.record(row())
    assert stats.failures == 1


async def test_the_daemons_vacuum_sweeps_both_files(tmp_path: Path) -> None:
    bus = busmod.EventBus(tmp_path / "hyperhive-events.sqlite")
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        bus.emit(busmod.Note(text="kept"))
        await bus.flushed()
        nursery.cancel_scope.cancel()
    stats = turn_stats.TurnStats(tmp_path / turn_stats.FILE)
    assert await stats.record(row())  # started 2023: old
    assert await stats.record(row(started_at=time.time(), ended_at=time.time()))
    removed = agent_files.vacuum_all(
        [tmp_path],
        {
            "hyperhive-events.sqlite": time.time() - 3600,
            "hyperhive-turn-stats.sqlite": time.time() - 3600,
        },
    )
    assert removed == {
        str(tmp_path / "hyperhive-events.sqlite"): 0,
        str(tmp_path / turn_stats.FILE): 1,
    }
    assert len(turn_stats.rows(tmp_path / turn_stats.FILE)) == 1


class StandInSocket:
    """An agent socket that answers `activity` with what the test wants."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        self.answered = trio.Event()

    async def serve(self, path: str, *, task_status: trio.TaskStatus[None]) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        await sock.bind(path)
        sock.listen()
        listener = trio.SocketListener(sock)
        task_status.started()
        async with listener:
            stream = await listener.accept()
            buf = LineBuffer(1 << 20)
            async with stream:
                while data := await stream.receive_some(65536):
                    for line in buf.feed(data):
                        self.requests.append(json.loads(line))
                        answer = self.answers.pop(0) if self.answers else {"ok": True}
                        await stream.send_all(encode_line(answer))
                        if not self.answers:
                            self.answered.set()


async def serve_until_flushed(server: StandInSocket, path: str, reporter: ActivityReporter) -> None:
    """Run `reporter` against `server` until the server gave its answers and the reporter's
    buffer is empty."""
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, path)
        nursery.start_soon(reporter.run)
        with trio.fail_after(60):
            await server.answered.wait()
            await reporter.flushed()
        nursery.cancel_scope.cancel()


async def test_activity_goes_in_batches_of_64_and_refusals_are_dropped() -> None:
    short = tempfile.mkdtemp(prefix="hca", dir="/tmp")  # a unix socket path is short
    path = os.path.join(short, "a.sock")
    refused = {"ok": False, "code": "limit", "error": "too many events"}
    unknown = {"ok": False, "code": "unknown_command", "error": "no such verb"}
    server = StandInSocket(
        [{"ok": True, "accepted": 64}, refused, unknown, {"ok": True, "accepted": 2}]
    )
    reporter = ActivityReporter(path, max_buffer=64 * 3 + 2)
    for i in range(64 * 3 + 2 + 10):  # 10 past the buffer: dropped at once
        reporter.add(claude.ToolUse(tool=f"t{i}"))
    assert reporter.dropped == 10
    await serve_until_flushed(server, path, reporter)
    assert [len(r["events"]) for r in server.requests] == [64, 64, 64, 2]
    assert all(r["cmd"] == "activity" for r in server.requests)
    assert server.requests[0]["events"][0] == {"kind": "tool_use", "tool": "t0"}
    assert server.requests[3]["events"][-1] == {"kind": "tool_use", "tool": "t193"}
    assert (reporter.sent, reporter.dropped) == (66, 10 + 64 + 64)
    shutil.rmtree(short)


async def test_activity_without_a_daemon_is_dropped(tmp_path: Path) -> None:
    reporter = ActivityReporter(str(tmp_path / "nobody.sock"))
    reporter.add(claude.State(state="idle"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reporter.run)
        with trio.fail_after(10):
            await reporter.flushed()
        nursery.cancel_scope.cancel()
    assert (reporter.sent, reporter.dropped) == (0, 1)


async def test_a_turn_end_that_could_not_be_sent_is_kept_and_sent_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The daemon is restarting when a turn ends: its `turn_end` (the turn's cost) is kept and
    sent once the socket answers again, without another event to carry it; the rest of that
    batch is dropped as before."""
    short = tempfile.mkdtemp(prefix="hck", dir="/tmp")
    path = os.path.join(short, "a.sock")
    reporter = ActivityReporter(path)
    end = claude.TurnEnd(
        ok=True, result_kind="ok", duration_ms=1200, usage={"input_tokens": 5}, cost_usd=0.25
    )
    reporter.add(claude.ToolUse(tool="Bash"))
    reporter.add(end)
    server = StandInSocket([{"ok": True, "accepted": 1}])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reporter.run)
        await trio.testing.wait_all_tasks_blocked()  # tried: nobody at the socket
        assert (reporter.sent, reporter.dropped) == (0, 1)
        await nursery.start(server.serve, path)
        with trio.fail_after(60):
            await server.answered.wait()
            await reporter.flushed()
        nursery.cancel_scope.cancel()
    assert [r["events"] for r in server.requests] == [[end.wire()]]
    assert (reporter.sent, reporter.dropped) == (1, 1)
    shutil.rmtree(short)


async def test_a_turn_end_whose_answer_was_lost_is_sent_again_only_with_its_turn_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The daemon reads the request and goes away before answering: a `turn_end` with a
    `turn_id` is sent again (the daemon records a turn_id once), one without is dropped (it
    may have been recorded: sent again it could count twice)."""
    short = tempfile.mkdtemp(prefix="hcw", dir="/tmp")
    path = os.path.join(short, "a.sock")
    usage = {"input_tokens": 5}
    with_id = claude.TurnEnd(ok=True, result_kind="ok", duration_ms=1, usage=usage, turn_id="t1")
    without = claude.TurnEnd(ok=True, result_kind="ok", duration_ms=2, usage=usage)
    lines: list[dict[str, Any]] = []
    answered = trio.Event()

    async def daemon(*, task_status: trio.TaskStatus[None]) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        await sock.bind(path)
        sock.listen()
        task_status.started()
        async with trio.SocketListener(sock) as listener:
            first = await listener.accept()  # reads the request, then is gone without answer
            lines.append(json.loads(await first.receive_some(65536)))
            await first.aclose()
            async with await listener.accept() as again:
                lines.append(json.loads(await again.receive_some(65536)))
                await again.send_all(encode_line({"ok": True, "accepted": 1}))
                answered.set()
                await trio.sleep_forever()

    reporter = ActivityReporter(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon)
        reporter.add(with_id)
        reporter.add(without)
        nursery.start_soon(reporter.run)
        with trio.fail_after(60):
            await answered.wait()
            await reporter.flushed()
        nursery.cancel_scope.cancel()
    assert [r["events"] for r in lines] == [[with_id.wire(), without.wire()], [with_id.wire()]]
    assert (reporter.sent, reporter.dropped) == (1, 1)
    shutil.rmtree(short)


async def test_turn_ends_unsent_at_a_stop_are_sent_by_the_next_start(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The harness stops while the daemon is away: its unsent `turn_end`s go to a file in its
    state dir, and the next harness sends them first (the rest of the activity is dropped)."""
    short = tempfile.mkdtemp(prefix="hcs", dir="/tmp")
    path = os.path.join(short, "a.sock")
    keep = tmp_path / "unsent-turn-ends.json"
    end = claude.TurnEnd(ok=True, result_kind="ok", duration_ms=3, usage={}, turn_id="t9")
    first = ActivityReporter(path, keep=keep)
    first.add(claude.ToolUse(tool="Read"))
    first.add(end)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.run)
        await trio.testing.wait_all_tasks_blocked()  # tried: nobody at the socket
        nursery.cancel_scope.cancel()  # the harness stops
    assert json.loads(keep.read_text()) == [end.wire()]
    server = StandInSocket([{"ok": True, "accepted": 1}])
    second = ActivityReporter(path, keep=keep)
    await serve_until_flushed(server, path, second)
    assert [r["events"] for r in server.requests] == [[end.wire()]]
    assert not keep.exists()
    shutil.rmtree(short)


async def test_a_turn_end_in_a_batch_refused_for_the_rate_goes_again_alone() -> None:
    """Over the rate the daemon refuses a batch whole (`limit`); the turn's cost in it is not
    lost: the turn_end goes again at once, alone (the rate never counts a turn_end)."""
    short = tempfile.mkdtemp(prefix="hcl", dir="/tmp")
    path = os.path.join(short, "a.sock")
    refused = {"ok": False, "code": "limit", "error": "too many events"}
    server = StandInSocket([refused, {"ok": True, "accepted": 1}])
    end = claude.TurnEnd(ok=True, result_kind="ok", duration_ms=4, usage={}, turn_id="t4")
    reporter = ActivityReporter(path)
    reporter.add(claude.ToolUse(tool="Bash"))
    reporter.add(end)
    await serve_until_flushed(server, path, reporter)
    assert [r["events"] for r in server.requests] == [
        [{"kind": "tool_use", "tool": "Bash"}, end.wire()],
        [end.wire()],
    ]
    assert (reporter.sent, reporter.dropped) == (1, 1)
    shutil.rmtree(short)


async def test_a_turn_end_in_flight_when_the_harness_stops_is_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The daemon took the request and never answers; the harness stops meanwhile: the
    turn_end (it has a turn_id, so a second report is harmless) waits in the keep file."""
    short = tempfile.mkdtemp(prefix="hcf", dir="/tmp")
    path = os.path.join(short, "a.sock")
    keep = tmp_path / "unsent-turn-ends.json"
    end = claude.TurnEnd(ok=True, result_kind="ok", duration_ms=5, usage={}, turn_id="t5")
    got = trio.Event()

    async def mute(*, task_status: trio.TaskStatus[None]) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        await sock.bind(path)
        sock.listen()
        task_status.started()
        async with trio.SocketListener(sock) as listener, await listener.accept() as stream:
            await stream.receive_some(65536)
            got.set()
            await trio.sleep_forever()

    reporter = ActivityReporter(path, keep=keep)
    reporter.add(end)
    async with trio.open_nursery() as nursery:
        await nursery.start(mute)
        nursery.start_soon(reporter.run)
        await got.wait()
        nursery.cancel_scope.cancel()  # the harness stops
    assert json.loads(keep.read_text()) == [end.wire()]
    shutil.rmtree(short)

"""The services alone, built by `app.build`: the rules that live in them (not in a surface)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from hive_core.app import Hive
from hive_wire.errors import BadRequest, Limit, NotFound, TooLarge
from hive_wire.requests import Scope
from tests.helpers import SLEEPER


async def test_send_recv_ack_round_trip(services: Hive) -> None:
    await services.lifecycle.spawn("alice", SLEEPER)
    [mid] = await services.broker.send("operator", "alice", "hi", None)
    rows, _ = await services.broker.recv("alice", 5, 0)
    assert [(r.id, r.sender, r.body, r.redelivered) for r in rows] == [
        (mid, "operator", "hi", False)
    ]
    assert await services.broker.ack_turn("alice", [mid]) == (1, 0)
    assert (await services.broker.recv("alice", 5, 0))[0] == []


async def test_scope_rules_live_in_the_lifecycle(services: Hive) -> None:
    for name in ("alice", "bob"):
        await services.lifecycle.spawn(name, SLEEPER)
    lc = services.lifecycle
    assert lc.targets("restart", "operator", None, Scope(agents=True)) == ["alice", "bob"]
    assert lc.targets("kill", "operator", "bob", None) == ["bob"]
    with pytest.raises(BadRequest, match="scope: required"):
        lc.targets("start", "operator", None, None)
    with pytest.raises(BadRequest, match="scope: name agents"):
        lc.targets("start", "operator", None, Scope(agent_names=[]))
    with pytest.raises(BadRequest, match="cannot restart itself"):
        lc.targets("restart", "manager", "manager", None)
    with pytest.raises(NotFound):
        lc.targets("kill", "operator", None, Scope(agent_names=["alice", "nobody"]))


async def test_kill_of_every_agent_skips_the_stopped_ones(services: Hive) -> None:
    for name in ("alice", "bob", "carol"):
        await services.lifecycle.spawn(name, SLEEPER)
    await services.lifecycle.stop("alice")
    names = services.lifecycle.targets("kill", "operator", None, Scope(agents=True))
    await services.lifecycle.each("kill", names)
    assert await services.backend.running() == set()


async def test_activity_is_checked_capped_and_rate_limited(services: Hive) -> None:
    await services.lifecycle.spawn("alice", SLEEPER)
    act = services.activity
    with pytest.raises(TooLarge):
        await act.report("alice", [{"kind": "state", "state": "idle"}] * 65)
    with pytest.raises(BadRequest, match=r"events\[1\]\.tool: required"):
        await act.report("alice", [{"kind": "turn_start"}, {"kind": "tool_use"}])
    assert act.history("alice") == []  # a refused request keeps nothing
    long = "x" * 10_000
    assert await act.report("alice", [{"kind": "text", "preview": long}]) == 1
    assert len(act.history("alice")[-1]["activity"]["preview"]) == 2048
    # A burst of 1,000 is taken, then the reporter is over its rate until time passes.
    for _ in range(15):
        await act.report("alice", [{"kind": "state", "state": "thinking"}] * 64)
    with pytest.raises(Limit):
        await act.report("alice", [{"kind": "state", "state": "thinking"}] * 64)
    assert act.source("operator", "claude-1234abcd") == "claude-1234abcd"
    with pytest.raises(BadRequest, match="source"):
        act.source("operator", None)
    assert act.source("alice", "ignored") == "alice"


async def test_a_turn_end_becomes_a_turn_row(services: Hive) -> None:
    await services.lifecycle.spawn("alice", SLEEPER)
    await services.activity.report(
        "alice",
        [
            {
                "kind": "turn_end",
                "ok": True,
                "result_kind": "ok",
                "duration_ms": 1200,
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "cache_read_tokens": 100,
                    "cache_creation_tokens": 0,
                },
                "cost_usd": 0.25,
                "model": "m",
            }
        ],
    )
    rows = await services.store.run(
        lambda conn: conn.execute(
            "SELECT agent, ok, cost_usd, context_tokens FROM turns"
        ).fetchall()
    )
    assert rows == [("alice", 1, 0.25, 110)]


async def test_reported_numbers_are_range_checked(services: Hive) -> None:
    await services.lifecycle.spawn("alice", SLEEPER)
    end = {"kind": "turn_end", "ok": True, "result_kind": "ok", "duration_ms": 1, "usage": {}}
    for bad, field in [
        ({"cost_usd": -1e308}, "cost_usd"),
        ({"duration_ms": 2**63}, "duration_ms"),
        ({"usage": {"input_tokens": -5}}, "usage"),
        ({"message_ids": [2**60]}, "message_ids"),
    ]:
        with pytest.raises(BadRequest, match=field):
            await services.activity.report("alice", [{**end, **bad}])
    rows = await services.store.run(lambda conn: conn.execute("SELECT * FROM turns").fetchall())
    assert rows == []  # nothing of a refused request is kept


async def test_hook_sources_are_bounded_and_never_an_agent(services: Hive) -> None:
    await services.lifecycle.spawn("alice", SLEEPER)
    act = services.activity
    for bad in ("alice", "manager", "operator"):
        with pytest.raises(BadRequest, match="reserved"):
            act.source("operator", bad)
    for i in range(100):
        who = act.source("operator", f"claude-{i:08x}")
        await act.report(who, [{"kind": "state", "state": "idle"}])
    assert len(act.recent) <= 64 and act.history("claude-00000000") == []
    assert len(act.history("claude-00000063")) == 1


async def test_a_turn_end_is_never_refused_for_the_rate(services: Hive) -> None:
    await services.lifecycle.spawn("alice", SLEEPER)
    act = services.activity
    for _ in range(15):
        await act.report("alice", [{"kind": "state", "state": "thinking"}] * 64)
    with pytest.raises(Limit):
        await act.report("alice", [{"kind": "state", "state": "thinking"}] * 64)
    end = {
        "kind": "turn_end",
        "ok": True,
        "result_kind": "ok",
        "duration_ms": 5,
        "usage": {"input_tokens": 1},
        "cost_usd": 0.01,
    }
    assert await act.report("alice", [end]) == 1
    rows = await services.store.run(lambda conn: conn.execute("SELECT agent FROM turns").fetchall())
    assert rows == [("alice",)]


async def test_a_failed_event_write_is_retried_from_the_same_replay_fold(services: Hive) -> None:
    """The history's writer folds state events into the replay snapshots only with a batch that
    was written: a write that fails (here the table is away) is retried from the same fold, so a
    batch is never counted twice (600 changes, then 600 again, would pass the 1,000 of a
    snapshot)."""
    from hive_wire import events as ev
    from hive_wire.responses import AgentStatusRow

    channel = services.events
    await channel.open(services.store)
    row = AgentStatusRow(name="a", running=True, failed=False, needs_update=False,
                         needs_login=False, pending_reminders=0, paused=False)  # fmt: skip
    for _ in range(600):
        channel.publish(ev.ContainerStateChanged(agent="a", row=row))
    await services.store.run(lambda c: c.execute("ALTER TABLE events RENAME TO events_away"))
    await channel.flush()  # fails: nothing written, the events kept
    await services.store.run(lambda c: c.execute("ALTER TABLE events_away RENAME TO events"))
    await channel.flush()

    def counts(conn: Any) -> tuple[int, int]:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return events, conn.execute("SELECT count(*) FROM event_snapshots").fetchone()[0]

    assert await services.store.run(counts) == (600, 0)


class CountingStore:
    """The broker's store, counting the jobs it runs; `gate`, when set, holds each job back
    until it is set (the job not yet submitted: the caller can still be cancelled there)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.jobs: list[str] = []
        self.gate: trio.Event | None = None

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.jobs.append(getattr(fn, "__name__", "?"))
        if self.gate is not None:
            await self.gate.wait()
        return await self.store.run(fn, *args, **kwargs)


async def test_a_send_to_a_parked_long_poll_pops_for_it_in_its_own_transaction(
    services: Hive,
) -> None:
    """Send → waiting long-poll costs one commit, not two (insert, then the woken pop): the
    waiter gets the rows its own pop would have, oldest first, up to its max."""
    await services.lifecycle.spawn("alice", SLEEPER)
    broker = services.broker
    store = broker.store = CountingStore(broker.store)  # type: ignore[assignment]
    got: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def waiter() -> None:
            got.extend((await broker.recv("alice", 5, 60))[0])

        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        store.jobs.clear()
        [mid] = await broker.send("operator", "alice", "wake up", None)
    assert [(r.id, r.body, r.redelivered) for r in got] == [(mid, "wake up", False)]
    assert store.jobs == ["_insert_and_pop"]
    # leased to the waiter, as a pop of its own would have: in flight, acked by its turn
    assert await broker.ack_turn("alice", [mid]) == (1, 0)


async def test_a_long_poll_cancelled_after_a_send_claimed_it_loses_nothing(
    services: Hive,
) -> None:
    """The client of a long-poll hangs up just as a send pops for it: the send still commits,
    and the row goes back to the inbox undelivered (not in flight unseen until a lease ends)."""
    await services.lifecycle.spawn("alice", SLEEPER)
    broker = services.broker
    store = broker.store = CountingStore(broker.store)  # type: ignore[assignment]
    sent: list[int] = []
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def waiter() -> None:
            with scope:
                await broker.recv("alice", 5, 60)

        async def sender() -> None:
            sent.extend(await broker.send("operator", "alice", "for nobody", None))

        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        store.gate = trio.Event()
        nursery.start_soon(sender)
        await wait_all_tasks_blocked()  # the send has claimed the waiter, its job held back
        assert store.jobs[-1] == "_insert_and_pop"
        scope.cancel()
        await wait_all_tasks_blocked()  # the waiter waits for the claim's outcome
        store.gate.set()
    assert scope.cancelled_caught
    assert await broker.unread("alice") == 1
    rows, _ = await broker.recv("alice", 5, 0)
    assert [(r.id, r.redelivered) for r in rows] == [(sent[0], False)]

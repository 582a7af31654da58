"""The dashboard event channel on the host socket: `subscribe_events` (wire.md, broker.md).

An ok answer with `seq`, then one answer per event (`event: {seq, kind, at, ...}`), in publish
order with strictly increasing `seq`; `since_seq` replays the history; a subscriber that does not
read never slows the daemon and is told it `lagged`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from hive_core.app import Hive
from hive_wire.client import Connection
from tests.helpers import agent_sock, call, ok, send, spawn_idle

MESSAGE_KINDS = ("sent", "delivered", "acked", "requeued")


@asynccontextmanager
async def subscribed(
    host: str, since_seq: int | None = None
) -> AsyncIterator[tuple[Connection, int]]:
    """A `subscribe_events` connection and the `seq` of its ok answer."""
    request: dict[str, Any] = {"cmd": "subscribe_events"}
    if since_seq is not None:
        request["since_seq"] = since_seq
    async with await Connection.open(host) as conn:
        await conn.send(request)
        answer = await conn.read()
        assert list(answer) == ["version", "ok", "seq"] and answer["ok"] is True, answer
        yield conn, answer["seq"]


async def next_event(conn: Connection) -> dict[str, Any]:
    frame = await conn.read()
    assert list(frame) == ["version", "ok", "event"] and frame["ok"] is True, frame
    event: dict[str, Any] = frame["event"]
    assert isinstance(event["seq"], int) and isinstance(event["kind"], str)
    assert event["at"].endswith("Z")
    return event


async def events_until(conn: Connection, last: Any) -> list[dict[str, Any]]:
    """Read events up to and including the first one for which `last(event)` is true."""
    events: list[dict[str, Any]] = []
    with trio.fail_after(30):
        while not events or not last(events[-1]):
            events.append(await next_event(conn))
    return events


def strictly_increasing(events: list[dict[str, Any]]) -> bool:
    seqs = [e["seq"] for e in events]
    return all(a < b for a, b in zip(seqs, seqs[1:], strict=False))


def is_sent(msg_id: int) -> Any:
    return lambda e: e["kind"] == "sent" and e["id"] == msg_id


async def turn(hive: Hive, host: str, body: str) -> int:
    """The operator sends to alice; alice receives and acks: sent, delivered, acked."""
    alice = agent_sock(hive, "alice")
    msg_id = await send(host, "alice", body)
    (msg,) = (await ok(alice, {"cmd": "recv"}))["messages"]
    assert msg["id"] == msg_id
    assert (await ok(alice, {"cmd": "ack_turn", "ids": [msg_id]}))["acked"] == 1
    return msg_id


async def test_sent_delivered_acked_in_order(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    async with subscribed(host) as (feed, seq):
        msg_id = await turn(hive, host, "hello")
        events = await events_until(feed, lambda e: e["kind"] == "acked")

    assert events[0]["seq"] > seq
    assert strictly_increasing(events)
    mine = [e for e in events if e["kind"] in MESSAGE_KINDS]
    assert [e["kind"] for e in mine] == ["sent", "delivered", "acked"]
    sent, delivered, acked = mine
    assert (sent["id"], sent["from"], sent["to"], sent["preview"], sent["size"]) == (
        msg_id,
        "operator",
        "alice",
        "hello",
        5,
    )
    assert (delivered["to"], delivered["ids"]) == ("alice", [msg_id])
    assert (acked["to"], acked["ids"]) == ("alice", [msg_id])


async def test_every_send_recv_and_ack_is_published(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    async with subscribed(host) as (feed, _):
        broadcast = (await ok(bob, {"cmd": "send", "to": "*", "body": "all"}))["ids"]
        first = await send(host, "alice", "one")
        batch = [m["id"] for m in (await ok(alice, {"cmd": "recv", "max": 5}))["messages"]]
        assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 2
        await ok(alice, {"cmd": "recv", "max": 5})
        await ok(alice, {"cmd": "ack_turn"})
        inbox = (await ok(host, {"cmd": "inbox"}))["messages"]
        assert inbox == []
        marker = await send(host, "bob", "marker")
        events = await events_until(feed, is_sent(marker))

    assert strictly_increasing(events)
    kinds = [(e["kind"], e.get("to")) for e in events if e["kind"] in MESSAGE_KINDS]
    assert kinds == [
        ("sent", "alice"),
        ("sent", "manager"),  # the broadcast: one event per row
        ("sent", "alice"),
        ("delivered", "alice"),
        ("requeued", "alice"),
        ("delivered", "alice"),
        ("acked", "alice"),
        ("sent", "bob"),
    ]
    sent_ids = [e["id"] for e in events if e["kind"] == "sent"]
    assert sent_ids == [*sorted(broadcast), first, marker]
    deliveries = [e["ids"] for e in events if e["kind"] == "delivered"]
    assert deliveries == [batch, batch]


async def test_dead_letters_are_published(hive: Hive, host: str, manager: str) -> None:
    """A message set aside as dead publishes `message_dead`, and the helper event the manager
    gets is a message like any other: its `sent` is published too."""
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    poison = await send(host, "alice", "poison")
    async with subscribed(host) as (feed, _):
        for _attempt in range(5):  # max_deliveries
            (msg,) = (await ok(alice, {"cmd": "recv"}))["messages"]
            assert msg["id"] == poison
            await ok(alice, {"cmd": "requeue_inflight"})
        events = await events_until(feed, lambda e: e["kind"] == "message_dead")
        (note,) = (await ok(manager, {"cmd": "recv"}))["messages"]
        marker = await send(host, "alice", "marker")
        events += await events_until(feed, is_sent(marker))

    dead = [e for e in events if e["kind"] == "message_dead"]
    assert [(e["id"], e["to"]) for e in dead] == [(poison, "alice")]
    assert any(
        e["kind"] == "sent"
        and e["id"] == note["id"]
        and e["from"] == "system"
        and e["to"] == "manager"
        for e in events
    ), "no `sent` for the manager's note"


async def test_since_seq_replays_the_history(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    async with subscribed(host) as (_, baseline):
        pass
    msg_id = await turn(hive, host, "while nobody listened")

    async with subscribed(host, since_seq=baseline) as (feed, seq):
        assert seq >= baseline + 3
        replayed = await events_until(feed, lambda e: e["seq"] == seq)
        live = await send(host, "alice", "after the replay")
        rest = await events_until(feed, is_sent(live))

    assert [e["seq"] for e in replayed] == list(range(baseline + 1, seq + 1))  # no gap
    mine = [e for e in replayed if e["kind"] in MESSAGE_KINDS]
    assert [(e["kind"], e.get("id"), e.get("ids")) for e in mine] == [
        ("sent", msg_id, None),
        ("delivered", None, [msg_id]),
        ("acked", None, [msg_id]),
    ]
    assert strictly_increasing(replayed + rest)
    assert rest[0]["seq"] == seq + 1

    # from the very beginning: the spawn's own event is still in the history
    async with subscribed(host, since_seq=0) as (feed, _):
        everything = await events_until(feed, is_sent(live))
    assert everything[0]["seq"] == 1
    assert [e["seq"] for e in everything] == list(range(1, everything[-1]["seq"] + 1))
    assert any(
        e["kind"] == "container_state_changed" and e.get("agent") == "alice" for e in everything
    )


async def test_without_since_seq_only_new_events_arrive(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    await turn(hive, host, "old news")
    async with subscribed(host) as (feed, seq):
        fresh = await send(host, "alice", "news")
        (event,) = await events_until(feed, is_sent(fresh))
    assert event["seq"] == seq + 1


async def test_since_seq_must_not_be_negative(hive: Hive, host: str) -> None:
    answer = await call(host, {"cmd": "subscribe_events", "since_seq": -1})
    assert (answer["ok"], answer["code"]) == (False, "bad_request")
    await spawn_idle(hive, "alice")
    answer = await call(agent_sock(hive, "alice"), {"cmd": "subscribe_events"})
    assert (answer["ok"], answer["code"]) == (False, "unknown_command")


async def test_a_subscriber_that_does_not_read_lags_and_blocks_nobody(
    hive: Hive, host: str
) -> None:
    await spawn_idle(hive, "alice")
    # Three times what a subscriber buffers, with wide previews so that the socket buffer
    # between the daemon and the idle reader holds only a few hundred of them.
    senders = 20
    per_sender = 3 * hive.events.buffer // senders
    wide = "\N{HONEYBEE}" * 200
    async with subscribed(host) as (feed, seq):
        # Nobody reads `feed` while the senders run: every send must still complete.
        async def sender(n: int) -> None:
            async with await Connection.open(host) as conn:
                for i in range(per_sender):
                    await conn.call({"cmd": "send", "to": "alice", "body": f"{n}.{i}{wide}"})

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for n in range(senders):
                    nursery.start_soon(sender, n)
        assert hive.events.seq >= seq + senders * per_sender

        marker = await send(host, "alice", "after the flood")
        events = await events_until(feed, is_sent(marker))

    lagged = [e for e in events if e["kind"] == "lagged"]
    assert len(lagged) >= 1
    assert strictly_increasing(events)
    published = events[-1]["seq"] - seq
    assert len(events) < published  # some were dropped, and the feed said so
    # after the lag the feed goes on with the newest events
    assert events[-1]["seq"] > lagged[-1]["seq"]
    # the daemon still answers, and the lagging reader recovers with a fresh subscription
    async with subscribed(host) as (feed, seq):
        again = await send(host, "alice", "still alive")
        (event,) = await events_until(feed, is_sent(again))
        assert event["seq"] == seq + 1
    # the history no longer reaches back to the start: a replay from 0 says `lagged` first
    async with subscribed(host, since_seq=0) as (feed, seq):
        first = await next_event(feed)
        assert first["kind"] == "lagged"
        after = await send(host, "alice", "after the lag")
        rest = await events_until(feed, is_sent(after))
    assert strictly_increasing([first, *rest])

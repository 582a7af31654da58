"""The broker's guarantees (broker.md), end to end through the sockets of an in-process daemon.

Synchronisation never sleeps: tasks hand over with trio Events and
`wait_all_tasks_blocked()`, and timers run on `autojump_clock` (under a mock clock the store
runs its jobs inline, so "every task is blocked" means the daemon is idle and a wake-up can be
timed to the exact virtual instant). The module's lease timeout is 60 s, so the maintenance
sweep runs every 15 s.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock, wait_all_tasks_blocked

from hive_core.app import Hive
from hive_core.daemon import serve
from hive_wire.client import Connection
from tests.helpers import Daemon, agent_sock, make_config, ok, refused, send, spawn_idle

LEASE = 60  # seconds; the maintenance sweep then runs every LEASE / 4 = 15 s
SWEEP = LEASE / 4
BODY_LIMIT = 256 * 1024
RECV_CAP = 32
WAIT_CAP = 180
MAX_DELIVERIES = 5


@pytest.fixture
def hive_config() -> dict[str, Any]:
    return {"lease_timeout": LEASE}


# --- helpers --------------------------------------------------------------------------------


async def recv(path: str, max_: int = RECV_CAP, wait: int = 0) -> list[dict[str, Any]]:
    answer = await ok(path, {"cmd": "recv", "max": max_, "wait_seconds": wait})
    return list(answer["messages"])


async def unread(path: str) -> int:
    return int((await ok(path, {"cmd": "status"}))["unread"])


async def pending(host: str) -> int:
    return int((await ok(host, {"cmd": "stats"}))["pending_messages"])


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [m["id"] for m in messages]


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["body"] for m in messages]


# --- FIFO, requeue, isolation, batches --------------------------------------------------------
async def test_fifo_per_recipient(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    for i in range(6):  # interleaved recipients: each inbox keeps its own order
        await send(host, "alice", f"a{i}")
        await send(bob, "alice", f"from-bob{i}")
        await send(host, "bob", f"b{i}")
    got = await recv(alice)
    assert bodies(got) == [b for i in range(6) for b in (f"a{i}", f"from-bob{i}")]
    assert ids(got) == sorted(ids(got))
    assert [m["from"] for m in got[:2]] == ["operator", "bob"]
    one_by_one = [(await recv(bob, max_=1))[0]["body"] for _ in range(6)]
    assert one_by_one == [f"b{i}" for i in range(6)]
    assert await recv(alice) == [] and await recv(bob) == []


async def test_delivered_message_shape(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    first = await send(host, "bob", "question")
    answer = await ok(
        agent_sock(hive, "bob"),
        {"cmd": "send", "to": "alice", "body": "reply", "in_reply_to": first},
    )
    (msg,) = await recv(agent_sock(hive, "alice"))
    assert list(msg) == ["id", "from", "body", "sent_at", "redelivered", "in_reply_to"]
    assert msg["id"] == answer["id"]
    assert (msg["from"], msg["body"], msg["redelivered"], msg["in_reply_to"]) == (
        "bob",
        "reply",
        False,
        first,
    )
    assert msg["sent_at"].endswith("Z") and "T" in msg["sent_at"]


async def test_requeued_messages_come_first(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sent = [await send(host, "alice", f"m{i}") for i in range(4)]
    first_two = await recv(alice, max_=2)
    assert ids(first_two) == sent[:2]
    assert [m["redelivered"] for m in first_two] == [False, False]
    later = await send(host, "alice", "m4")  # newer than everything requeued
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 2
    got = await recv(alice)
    assert ids(got) == [*sent, later]
    assert [m["redelivered"] for m in got] == [True, True, False, False, False]


async def test_ack_and_requeue_touch_only_the_caller(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    for i in range(3):
        await send(host, "alice", f"a{i}")
        await send(host, "bob", f"b{i}")
    a_ids = ids(await recv(alice, max_=2))
    b_ids = ids(await recv(bob, max_=2))

    # alice acks bob's ids: ignored, bob's leases untouched
    assert await ok(alice, {"cmd": "ack_turn", "ids": b_ids}) == {
        "version": 1,
        "ok": True,
        "acked": 0,
        "ignored": 2,
    }
    # alice's bare ack takes her two, not bob's
    assert (await ok(alice, {"cmd": "ack_turn"}))["acked"] == 2
    # alice's requeue finds nothing of hers in flight and leaves bob's alone
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
    assert await unread(bob) == 1 and await unread(alice) == 1

    # bob requeues: his come back, alice's acked ones stay acked
    assert (await ok(bob, {"cmd": "requeue_inflight"}))["requeued"] == 2
    assert await unread(bob) == 3 and await unread(alice) == 1
    assert ids(await recv(bob))[:2] == b_ids
    assert (await ok(bob, {"cmd": "ack_turn"}))["acked"] == 3
    rest = await recv(alice)
    assert len(rest) == 1 and rest[0]["id"] not in a_ids and not rest[0]["redelivered"]


async def test_batch_is_acked_and_requeued_as_a_whole(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sent = [await send(host, "alice", f"m{i}") for i in range(6)]

    batch = await recv(alice, max_=3)
    assert ids(batch) == sent[:3]
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 3
    again = await recv(alice, max_=3)
    assert ids(again) == sent[:3] and all(m["redelivered"] for m in again)
    assert (await ok(alice, {"cmd": "ack_turn"}))["acked"] == 3

    batch = await recv(alice, max_=3)
    assert ids(batch) == sent[3:]
    assert await ok(alice, {"cmd": "ack_turn", "ids": ids(batch)}) == {
        "version": 1,
        "ok": True,
        "acked": 3,
        "ignored": 0,
    }
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
    assert await recv(alice) == []


async def test_max_is_capped_and_zero_answers_at_once(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    for i in range(RECV_CAP + 8):
        await send(host, "alice", f"m{i}")

    start = trio.current_time()
    assert await recv(alice, max_=0, wait=30) == []  # at once, even with messages waiting
    assert trio.current_time() == start
    assert await unread(alice) == RECV_CAP + 8  # and nothing was popped

    assert len(await recv(alice, max_=1000)) == RECV_CAP
    assert len(await recv(alice, max_=1000)) == 8
    assert await recv(alice, max_=0) == []
    assert await refused(alice, {"cmd": "recv", "max": -1}) == "bad_request"
    assert await refused(alice, {"cmd": "recv", "max": "3"}) == "bad_request"


async def test_default_recv_pops_one(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    await send(host, "alice", "one")
    await send(host, "alice", "two")
    assert bodies((await ok(alice, {"cmd": "recv"}))["messages"]) == ["one"]
    assert await unread(alice) == 1


# --- ack_turn and requeue_inflight ---------------------------------------------------------------
async def test_ack_turn_with_ids_acks_exactly_those(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice = agent_sock(hive, "alice")
    bobs = await send(host, "bob", "not yours")
    a, b, c = [await send(host, "alice", x) for x in ("a", "b", "c")]
    assert ids(await recv(alice)) == [a, b, c]
    waiting = await send(host, "alice", "d")  # undelivered: not in flight, so ignored

    answer = await ok(alice, {"cmd": "ack_turn", "ids": [a, c, 999_999, bobs, waiting]})
    assert answer == {"version": 1, "ok": True, "acked": 2, "ignored": 3}
    # acking an acked id again: ignored
    assert (await ok(alice, {"cmd": "ack_turn", "ids": [a]}))["ignored"] == 1
    # only b is still in flight: the requeue returns it alone, before d
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 1
    got = await recv(alice)
    assert ids(got) == [b, waiting] and [m["redelivered"] for m in got] == [True, False]
    assert await unread(agent_sock(hive, "bob")) == 1
    assert await ok(alice, {"cmd": "ack_turn", "ids": []}) == {
        "version": 1,
        "ok": True,
        "acked": 0,
        "ignored": 0,
    }
    assert await refused(alice, {"cmd": "ack_turn", "ids": ["1"]}) == "bad_request"


async def test_bare_ack_acks_everything_in_flight(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    for i in range(5):
        await send(host, "alice", f"m{i}")
    await recv(alice, max_=2)
    await recv(alice, max_=2)  # two batches in flight
    answer = await ok(alice, {"cmd": "ack_turn"})
    assert answer == {"version": 1, "ok": True, "acked": 4}  # no `ignored` for a bare ack
    assert await unread(alice) == 1  # the undelivered one is not acked
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
    assert bodies(await recv(alice)) == ["m4"]


async def test_requeue_inflight_flags_redelivered_and_is_idempotent(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sent = [await send(host, "alice", f"m{i}") for i in range(3)]
    await recv(alice, max_=2)
    assert await unread(alice) == 1
    assert await ok(alice, {"cmd": "requeue_inflight"}) == {"version": 1, "ok": True, "requeued": 2}
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
    assert await unread(alice) == 3
    got = await recv(alice)
    assert ids(got) == sent
    assert [m["redelivered"] for m in got] == [True, True, False]


async def test_acked_message_is_never_delivered_again(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    acked = await send(host, "alice", "done")
    assert ids(await recv(alice)) == [acked]
    assert (await ok(alice, {"cmd": "ack_turn", "ids": [acked]}))["acked"] == 1
    assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
    await trio.sleep(3 * LEASE)  # lease sweeps come and go
    assert await recv(alice) == []
    assert await unread(alice) == 0
    assert (await ok(alice, {"cmd": "ack_turn"}))["acked"] == 0


# --- long-poll ------------------------------------------------------------------------------------
async def test_long_poll_wakes_when_the_send_happens(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    got: list[dict[str, Any]] = []
    returned_at: list[float] = []
    done = trio.Event()

    async def receiver() -> None:
        got.extend(await recv(alice, max_=5, wait=30))
        returned_at.append(trio.current_time())
        done.set()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        await trio.sleep(10)  # time passes; the waiter stays parked
        await wait_all_tasks_blocked()
        assert not done.is_set()
        sent_at = trio.current_time()
        sent = await send(bob, "alice", "wake up")
        await done.wait()

    assert ids(got) == [sent] and got[0]["from"] == "bob"
    # Woken by the send itself: not one virtual instant later (no polling interval), and
    # well before the deadline.
    assert returned_at[0] == sent_at
    assert returned_at[0] - start < 30


async def test_long_poll_drains_what_is_there_without_waiting_for_max(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    for i in range(3):
        await send(host, "alice", f"m{i}")
    start = trio.current_time()
    assert bodies(await recv(alice, max_=10, wait=60)) == ["m0", "m1", "m2"]
    assert trio.current_time() == start


async def test_long_poll_times_out_empty_at_the_deadline(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    start = trio.current_time()
    answer = await ok(alice, {"cmd": "recv", "wait_seconds": 30, "max": 5})
    assert answer == {"version": 1, "ok": True, "messages": []}
    assert trio.current_time() - start == pytest.approx(30)

    start = trio.current_time()  # the server caps the wait
    assert await recv(alice, wait=10_000) == []
    assert trio.current_time() - start == pytest.approx(WAIT_CAP)
    assert await refused(alice, {"cmd": "recv", "wait_seconds": -1}) == "bad_request"


@pytest.mark.parametrize("who", ["agent", "operator"])
async def test_a_waiter_that_hung_up_does_not_take_the_message(
    hive: Hive, host: str, autojump_clock: MockClock, who: str
) -> None:
    """A harness gives up on a long-poll (closes its connection), a message arrives, the harness
    polls again: it gets the message at once, first-time, not a lease later as `redelivered`
    (nobody saw it; the hung-up connection must not have popped it). The operator's `inbox`,
    which acks what it answers, must not have acked it either."""
    await spawn_idle(hive, "alice")
    sock, verb, to = (
        (agent_sock(hive, "alice"), "recv", "alice")
        if who == "agent"
        else (host, "inbox", "operator")
    )
    abandoned = await Connection.open(sock)
    await abandoned.send({"cmd": verb, "wait_seconds": WAIT_CAP})
    await wait_all_tasks_blocked()
    await abandoned.aclose()
    await wait_all_tasks_blocked()

    sent = await send(agent_sock(hive, "alice"), to, "for whoever is listening")
    await wait_all_tasks_blocked()
    sent_at = trio.current_time()
    got = (await ok(sock, {"cmd": verb, "wait_seconds": WAIT_CAP}))["messages"]
    assert ids(got) == [sent]
    assert got[0]["redelivered"] is False
    assert trio.current_time() == sent_at


async def test_operator_inbox_long_polls(hive: Hive, host: str, autojump_clock: MockClock) -> None:
    await spawn_idle(hive, "alice")
    got: list[dict[str, Any]] = []
    returned_at: list[float] = []
    async with trio.open_nursery() as nursery:

        async def operator() -> None:
            answer = await ok(host, {"cmd": "inbox", "max": 5, "wait_seconds": 60})
            got.extend(answer["messages"])
            returned_at.append(trio.current_time())

        nursery.start_soon(operator)
        await wait_all_tasks_blocked()
        sent_at = trio.current_time()
        sent = await send(agent_sock(hive, "alice"), "operator", "done")
    assert ids(got) == [sent] and returned_at == [sent_at]
    start = trio.current_time()
    assert (await ok(host, {"cmd": "inbox", "wait_seconds": 60}))["messages"] == []
    assert trio.current_time() - start == pytest.approx(60)


async def test_long_poll_on_the_manager_socket(
    hive: Hive, host: str, manager: str, autojump_clock: MockClock
) -> None:
    got: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:

        async def receiver() -> None:
            got.extend(await recv(manager, wait=100))

        nursery.start_soon(receiver)
        await wait_all_tasks_blocked()
        await send(host, "manager", "for the manager")
    assert bodies(got) == ["for the manager"]


async def test_concurrent_senders_and_a_long_polling_receiver(
    hive: Hive, host: str, manager: str
) -> None:
    await spawn_idle(hive, "alice", "bob", "carol")
    alice = agent_sock(hive, "alice")
    senders = {
        "operator": host,
        "manager": manager,
        "bob": agent_sock(hive, "bob"),
        "carol": agent_sock(hive, "carol"),
    }
    per_sender = 25
    total = per_sender * len(senders)
    sent: dict[int, str] = {}
    received: list[dict[str, Any]] = []

    async def sender(name: str, path: str) -> None:
        async with await Connection.open(path) as conn:
            for i in range(per_sender):
                body = f"{name}:{i}"
                answer = await conn.call({"cmd": "send", "to": "alice", "body": body})
                sent[answer["id"]] = body

    async def receiver() -> None:
        async with await Connection.open(alice) as conn:
            while len(received) < total:
                batch = (await conn.call({"cmd": "recv", "max": 7, "wait_seconds": 30}))["messages"]
                received.extend(batch)
                if batch:
                    answer = await conn.call({"cmd": "ack_turn", "ids": ids(batch)})
                    assert answer == {"acked": len(batch), "ignored": 0}

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            for name, path in senders.items():
                nursery.start_soon(sender, name, path)

    got = ids(received)
    assert len(got) == len(set(got)) == total  # no duplicates
    assert set(got) == set(sent)  # none missed
    assert all(m["body"] == sent[m["id"]] and not m["redelivered"] for m in received)
    assert got == sorted(got)  # FIFO
    for name in senders:  # each sender's messages in the order it sent them
        mine = [m["body"] for m in received if m["body"].startswith(f"{name}:")]
        assert mine == [f"{name}:{i}" for i in range(per_sender)]
    assert await recv(alice) == [] and await unread(alice) == 0


# --- send: recipients and bodies -----------------------------------------------------------------
async def test_broadcast_reaches_everyone_but_the_sender(
    hive: Hive, host: str, manager: str
) -> None:
    await spawn_idle(hive, "alice", "bob", "carol")
    socks = {n: agent_sock(hive, n) for n in ("alice", "bob", "carol")}
    socks["manager"] = manager

    answer = await ok(socks["alice"], {"cmd": "send", "to": "*", "body": "hello all"})
    assert list(answer) == ["version", "ok", "id", "ids"]
    assert len(answer["ids"]) == len(set(answer["ids"])) == 3
    assert answer["id"] in answer["ids"]
    delivered = []
    for name in ("bob", "carol", "manager"):
        (msg,) = await recv(socks[name])  # one row each
        assert (msg["from"], msg["body"]) == ("alice", "hello all")
        delivered.append(msg["id"])
    assert sorted(delivered) == sorted(answer["ids"])
    assert await recv(socks["alice"]) == []  # not the sender
    assert (await ok(host, {"cmd": "inbox", "max": 10}))["messages"] == []  # not the operator

    from_manager = await ok(manager, {"cmd": "send", "to": "*", "body": "from manager"})
    assert len(from_manager["ids"]) == 3
    for name in ("alice", "bob", "carol"):
        assert bodies(await recv(socks[name])) == ["from manager"]
    assert await recv(manager) == []

    from_operator = await ok(host, {"cmd": "send", "to": "*", "body": "from operator"})
    assert len(from_operator["ids"]) == 4
    for name in ("alice", "bob", "carol", "manager"):
        (msg,) = await recv(socks[name])
        assert (msg["from"], msg["body"]) == ("operator", "from operator")


async def test_send_to_manager_and_operator(hive: Hive, host: str, manager: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    to_manager = await send(alice, "manager", "hi manager")
    to_operator = await send(alice, "operator", "hi operator")
    (msg,) = await recv(manager)
    assert (msg["id"], msg["from"]) == (to_manager, "alice")
    (msg,) = (await ok(host, {"cmd": "inbox"}))["messages"]
    assert (msg["id"], msg["from"], msg["body"]) == (to_operator, "alice", "hi operator")


async def test_send_to_unknown_agent_is_not_found(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    before = await pending(host)
    for path in (host, agent_sock(hive, "alice")):
        assert await refused(path, {"cmd": "send", "to": "zed", "body": "x"}) == "not_found"
    assert await pending(host) == before


@pytest.mark.parametrize(
    "to",
    [
        "system",
        "reminder",
        "self",
        "hive",
        "Alice",
        "-alice",
        "al ice",
        "",
        "a" * 64,
        "../alice",
        "alice/",
        "ali.ce",
        "alice\n",
        "é",
    ],
)
async def test_send_to_reserved_or_invalid_name_is_bad_request(
    hive: Hive, host: str, to: str
) -> None:
    await spawn_idle(hive, "alice")
    before = await pending(host)
    for path in (host, agent_sock(hive, "alice")):
        assert await refused(path, {"cmd": "send", "to": to, "body": "x"}) == "bad_request"
    assert await pending(host) == before


async def test_send_request_shape_is_checked(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    for request in (
        {"cmd": "send", "body": "x"},
        {"cmd": "send", "to": "alice"},
        {"cmd": "send", "to": ["alice"], "body": "x"},
        {"cmd": "send", "to": "alice", "body": 3},
    ):
        assert await refused(alice, request) == "bad_request"


async def test_body_over_the_limit_is_too_large_and_not_stored(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice = agent_sock(hive, "alice")
    before = await pending(host)
    for to in ("bob", "*", "manager"):
        request = {"cmd": "send", "to": to, "body": "x" * (BODY_LIMIT + 1)}
        assert await refused(alice, request) == "too_large"
    # the limit counts UTF-8 bytes, not characters
    wide = "é" * (BODY_LIMIT // 2 + 1)
    assert await refused(host, {"cmd": "send", "to": "bob", "body": wide}) == "too_large"
    assert await pending(host) == before
    assert await unread(agent_sock(hive, "bob")) == 0
    # exactly at the limit is fine
    at_limit = await send(alice, "bob", "y" * BODY_LIMIT)
    (msg,) = await recv(agent_sock(hive, "bob"))
    assert msg["id"] == at_limit and len(msg["body"]) == BODY_LIMIT


async def test_empty_body_is_bad_request(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    before = await pending(host)
    for path, to in ((host, "alice"), (agent_sock(hive, "alice"), "manager"), (host, "*")):
        assert await refused(path, {"cmd": "send", "to": to, "body": ""}) == "bad_request"
    assert await pending(host) == before


# --- leases and dead letters ----------------------------------------------------------------------
async def test_lease_expiry_requeues_with_redelivered(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sent = await send(host, "alice", "slow turn")
    assert ids(await recv(alice)) == [sent]
    leased_at = trio.current_time()

    await trio.sleep(LEASE - 1)  # still leased
    assert await unread(alice) == 0
    # a waiter is woken by the sweep that requeues the expired lease
    got = await recv(alice, wait=WAIT_CAP)
    expired_after = trio.current_time() - leased_at
    assert LEASE < expired_after <= LEASE + SWEEP
    assert ids(got) == [sent] and got[0]["redelivered"] is True
    # the redelivered message has a fresh lease and can be acked
    assert (await ok(alice, {"cmd": "ack_turn", "ids": [sent]}))["acked"] == 1
    await trio.sleep(3 * LEASE)
    assert await recv(alice) == []


async def test_lease_expiries_count_towards_dead_letters(
    hive: Hive, host: str, manager: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sent = await send(host, "alice", "crashes every turn")
    for delivery in range(1, MAX_DELIVERIES + 1):
        got = await recv(alice, wait=WAIT_CAP)  # woken by the sweep after the first
        assert ids(got) == [sent]
        assert got[0]["redelivered"] is (delivery > 1)
    # the fifth lease expires: dead instead of a sixth delivery
    assert await recv(alice, wait=WAIT_CAP) == []
    (dead,) = (await ok(host, {"cmd": "dead_letters"}))["messages"]
    assert (dead["id"], dead["deliveries"]) == (sent, MAX_DELIVERIES)
    (note,) = await recv(manager)
    assert note["from"] == "system"
    assert json.loads(note["body"])["event"] == "message_dead"


async def _deliver_until_dead(alice: str, msg_id: int) -> None:
    for delivery in range(1, MAX_DELIVERIES + 1):
        got = await recv(alice)
        assert ids(got) == [msg_id], delivery
        await ok(alice, {"cmd": "requeue_inflight"})  # the turn failed again


async def test_dead_letters_after_max_deliveries(hive: Hive, host: str, manager: str) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    poison = await send(host, "alice", "poison")
    await _deliver_until_dead(alice, poison)

    assert await recv(alice) == []  # the sixth delivery does not happen
    assert await unread(alice) == 0
    listed = (await ok(host, {"cmd": "dead_letters"}))["messages"]
    assert len(listed) == 1
    dead = listed[0]
    assert list(dead) == ["id", "from", "to", "body", "sent_at", "deliveries", "dead_at"]
    assert (dead["id"], dead["from"], dead["to"], dead["body"], dead["deliveries"]) == (
        poison,
        "operator",
        "alice",
        "poison",
        MAX_DELIVERIES,
    )

    (note,) = await recv(manager)
    assert note["from"] == "system"
    event = json.loads(note["body"])
    assert event["event"] == "message_dead"
    assert (event["id"], event["to"], event["from"]) == (poison, "alice", "operator")

    # requeue_dead: back in the inbox, delivered again
    assert await ok(host, {"cmd": "requeue_dead", "id": poison}) == {"version": 1, "ok": True}
    assert (await ok(host, {"cmd": "dead_letters"}))["messages"] == []
    got = await recv(alice)
    assert ids(got) == [poison] and got[0]["redelivered"] is True
    assert (await ok(alice, {"cmd": "ack_turn"}))["acked"] == 1
    assert await refused(host, {"cmd": "requeue_dead", "id": poison}) == "not_found"

    # drop_dead: gone for good
    doomed = await send(host, "alice", "doomed")
    await _deliver_until_dead(alice, doomed)
    assert ids((await ok(host, {"cmd": "dead_letters"}))["messages"]) == [doomed]
    assert await ok(host, {"cmd": "drop_dead", "id": doomed}) == {"version": 1, "ok": True}
    assert (await ok(host, {"cmd": "dead_letters"}))["messages"] == []
    assert await refused(host, {"cmd": "drop_dead", "id": doomed}) == "not_found"
    assert await refused(host, {"cmd": "requeue_dead", "id": doomed}) == "not_found"
    assert await recv(alice) == []


async def test_dead_letter_verbs_refuse_unknown_and_live_ids(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice")
    live = await send(host, "alice", "alive")
    for cmd in ("requeue_dead", "drop_dead"):
        assert await refused(host, {"cmd": cmd, "id": 999_999}) == "not_found"
        assert await refused(host, {"cmd": cmd, "id": live}) == "not_found"
        assert await refused(host, {"cmd": cmd}) == "bad_request"
    assert await unread(agent_sock(hive, "alice")) == 1  # the live one is untouched


# --- status, recent, wake, operator inbox ------------------------------------------------------
async def test_status_counts_unread(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice = agent_sock(hive, "alice")
    assert await ok(alice, {"cmd": "status"}) == {"version": 1, "ok": True, "unread": 0}
    for i in range(3):
        await send(host, "alice", f"m{i}")
    await send(host, "bob", "not alice's")
    assert await unread(alice) == 3
    await recv(alice, max_=2)
    assert await unread(alice) == 1  # in flight is not unread
    await ok(alice, {"cmd": "requeue_inflight"})
    assert await unread(alice) == 3
    await recv(alice)
    await ok(alice, {"cmd": "ack_turn"})
    assert await unread(alice) == 0


async def test_recent_lists_the_callers_delivered_messages(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice = agent_sock(hive, "alice")
    sent = [await send(host, "alice", f"m{i}") for i in range(4)]
    await send(host, "bob", "bob's")
    await recv(alice, max_=3)
    await ok(alice, {"cmd": "ack_turn"})
    answer = await ok(alice, {"cmd": "recent", "limit": 10})
    assert list(answer) == ["version", "ok", "messages"]
    assert sorted(ids(answer["messages"])) == sent[:3]  # not the undelivered one, not bob's
    assert len((await ok(alice, {"cmd": "recent", "limit": 2}))["messages"]) == 2
    assert (await ok(alice, {"cmd": "recent", "limit": 0}))["messages"] == []
    assert await refused(alice, {"cmd": "recent", "limit": -1}) == "bad_request"


async def test_wake_lands_in_the_callers_own_inbox(hive: Hive, host: str) -> None:
    await spawn_idle(hive, "alice", "bob")
    alice, bob = agent_sock(hive, "alice"), agent_sock(hive, "bob")
    answer = await ok(alice, {"cmd": "wake", "from": "github", "body": "push to main"})
    assert list(answer) == ["version", "ok", "id"]
    (msg,) = await recv(alice)
    assert (msg["id"], msg["from"], msg["body"]) == (answer["id"], "github", "push to main")
    assert await recv(bob) == []
    assert (await ok(host, {"cmd": "inbox"}))["messages"] == []
    assert await refused(alice, {"cmd": "wake", "from": "", "body": "x"}) == "bad_request"
    assert await refused(alice, {"cmd": "wake", "from": "github", "body": ""}) == "bad_request"
    big = "x" * (BODY_LIMIT + 1)
    assert await refused(alice, {"cmd": "wake", "from": "github", "body": big}) == "too_large"


async def test_operator_inbox_pops_and_acks(
    hive: Hive, host: str, autojump_clock: MockClock
) -> None:
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sent = [await send(alice, "operator", f"report {i}") for i in range(3)]
    first = (await ok(host, {"cmd": "inbox", "max": 2}))["messages"]
    assert ids(first) == sent[:2] and [m["from"] for m in first] == ["alice", "alice"]
    second = (await ok(host, {"cmd": "inbox", "max": 10}))["messages"]
    assert ids(second) == sent[2:]
    await trio.sleep(3 * LEASE)  # acked, so no lease to expire
    assert (await ok(host, {"cmd": "inbox", "max": 10}))["messages"] == []
    assert await pending(host) == 0


async def test_a_hung_up_long_poll_pops_nothing(hive: Hive, host: str) -> None:
    """A harness killed during its long-poll: the daemon notices the closed connection and
    stops waiting, so a message sent afterwards is never popped for it (popped and put back, it
    would be served after newer ones, or acked unseen by a bare `ack_turn` meanwhile)."""
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    events = await Connection.open(host)
    await events.call({"cmd": "subscribe_events"})
    zombie = await Connection.open(alice)
    await zombie.send({"cmd": "recv", "wait_seconds": WAIT_CAP})
    await wait_all_tasks_blocked()
    await zombie.aclose()
    await wait_all_tasks_blocked(cushion=0.05)  # the close reaches the daemon's epoll
    first = await send(alice, "alice", "first")
    await send(alice, "alice", "second")
    marker = await send(host, "operator", "marker")
    kinds = []
    while True:
        event = (await events.read())["event"]
        kinds.append((event["kind"], event.get("id") or event.get("ids")))
        if event["kind"] == "sent" and event["id"] == marker:
            break
    await events.aclose()
    assert [k for k, _ in kinds] == ["sent", "sent", "sent"], kinds  # no delivered/requeued
    assert ids(await recv(alice, max_=1)) == [first]


async def test_a_half_closed_long_poll_still_gets_its_answer(hive: Hive) -> None:
    """A client that shuts its writing side after the request (`nc -N`, socat) is not gone: the
    long-poll answers it when a message comes."""
    await spawn_idle(hive, "alice")
    alice = agent_sock(hive, "alice")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(alice)
    await sock.send(b'{"cmd":"recv","wait_seconds":30}\n')
    sock.shutdown(socket.SHUT_WR)
    await wait_all_tasks_blocked()
    sent = await send(alice, "alice", "for the half-closed")
    with trio.fail_after(10):
        answer = json.loads(await sock.recv(65536))
    sock.close()
    assert ids(answer["messages"]) == [sent]


async def test_operator_inbox_acks_only_after_the_answer_is_out(
    hive: Hive, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the operator is shown is acked after the answer has been written, never before: a
    daemon killed in between leaves the row in flight (redelivered, flagged, on lease expiry),
    not acked and unseen. The ack is held back here to look at the row in that gap."""
    await spawn_idle(hive, "alice")
    sent = await send(agent_sock(hive, "alice"), "operator", "report")
    release = trio.Event()
    ack_turn = hive.broker.ack_turn

    async def held(who: str, ids: list[int] | None) -> tuple[int, int | None]:
        await release.wait()
        return await ack_turn(who, ids)

    monkeypatch.setattr(hive.broker, "ack_turn", held)
    got = (await ok(host, {"cmd": "inbox"}))["messages"]
    assert ids(got) == [sent]

    def acked() -> bool:
        conn = sqlite3.connect(hive.paths.database)
        try:
            (at,) = conn.execute("SELECT acked_at FROM messages WHERE id = ?", (sent,)).fetchone()
        finally:
            conn.close()
        return at is not None

    assert not acked()  # answered, not yet acked
    release.set()
    await wait_all_tasks_blocked()
    assert acked()
    assert await pending(host) == 0


# --- durability ------------------------------------------------------------------------------------
async def _serving(dirs: Path, body: Callable[[Hive], Awaitable[None]]) -> None:
    """Run `serve()` on `dirs`, call `body(hive)`, then stop the daemon and wait for it."""
    async with trio.open_nursery() as nursery:
        hive: Hive = await nursery.start(serve, make_config(dirs))
        try:
            await body(hive)
        finally:
            hive.shutdown()


async def test_lease_state_survives_a_daemon_restart(dirs: Path) -> None:
    sent: list[int] = []
    popped: list[int] = []

    async def before(hive: Hive) -> None:
        await spawn_idle(hive, "alice")
        host = str(hive.paths.host_socket)
        sent.extend([await send(host, "alice", f"m{i}") for i in range(3)])
        popped.extend(ids(await recv(agent_sock(hive, "alice"), max_=2)))

    async def after(hive: Hive) -> None:
        alice = agent_sock(hive, "alice")
        assert await unread(alice) == 1  # the two leases are still held
        answer = await ok(alice, {"cmd": "ack_turn", "ids": popped})
        assert (answer["acked"], answer["ignored"]) == (2, 0)
        got = await recv(alice)
        assert ids(got) == sent[2:] and got[0]["redelivered"] is False
        assert (await ok(alice, {"cmd": "ack_turn"}))["acked"] == 1
        assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
        assert await recv(alice) == []

    with trio.fail_after(60):
        await _serving(dirs, before)
        assert popped == sent[:2]
        await _serving(dirs, after)


async def test_bare_ack_after_restart_acks_the_old_leases(dirs: Path) -> None:
    async def before(hive: Hive) -> None:
        await spawn_idle(hive, "alice")
        for i in range(2):
            await send(str(hive.paths.host_socket), "alice", f"m{i}")
        assert len(await recv(agent_sock(hive, "alice"))) == 2

    async def after(hive: Hive) -> None:
        alice = agent_sock(hive, "alice")
        assert (await ok(alice, {"cmd": "ack_turn"}))["acked"] == 2
        assert (await ok(alice, {"cmd": "requeue_inflight"}))["requeued"] == 0
        assert await recv(alice) == []

    with trio.fail_after(60):
        await _serving(dirs, before)
        await _serving(dirs, after)


async def test_nothing_sent_is_lost_on_kill_9(dirs: Path) -> None:
    """Messages whose `send` was answered survive `kill -9` in the middle of concurrent sends;
    acked ones are never delivered again, unacked in-flight ones come back."""
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await notify.bind(str(dirs / "notify.sock"))
    daemon = Daemon(dirs, {"NOTIFY_SOCKET": str(dirs / "notify.sock")})
    host = daemon.host
    manager = str(dirs / "run" / "manager" / "mcp.sock")

    async def start() -> None:
        await trio.to_thread.run_sync(daemon.start)
        # The host socket answers before every socket is up; READY=1 comes after.
        while b"READY=1" not in (await notify.recv(4096)).split(b"\n"):
            pass

    answered: dict[int, str] = {}
    enough = trio.Event()

    async def sender(n: int) -> None:
        try:
            async with await Connection.open(host) as conn:
                for i in range(10_000):
                    body = f"late {n}.{i}"
                    answer = await conn.call({"cmd": "send", "to": "manager", "body": body})
                    answered[answer["id"]] = body
                    if len(answered) >= 60:
                        enough.set()
        except (EOFError, trio.BrokenResourceError, OSError):
            pass  # the daemon died under us

    try:
        with trio.fail_after(60):
            await start()
            for i in range(10):
                answered[await send(host, "manager", f"early {i}")] = f"early {i}"
            batch = ids(await recv(manager, max_=4))
            acked = batch[:2]
            assert (await ok(manager, {"cmd": "ack_turn", "ids": acked}))["acked"] == 2

            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(sender, n)
                await enough.wait()
                await trio.to_thread.run_sync(daemon.kill9)
            await start()

            assert (await ok(manager, {"cmd": "requeue_inflight"}))["requeued"] == 2
            delivered: list[dict[str, Any]] = []
            while more := await recv(manager):
                delivered.extend(more)
                await ok(manager, {"cmd": "ack_turn", "ids": ids(more)})
            assert await trio.to_thread.run_sync(daemon.stop) == 0
    finally:
        notify.close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()

    got = ids(delivered)
    assert len(got) == len(set(got))
    assert not set(got) & set(acked)  # acked: never again
    assert set(answered) - set(acked) <= set(got)  # everything answered is deliverable
    assert ids(delivered[:2]) == batch[2:]  # the requeued leases come first
    assert [m["redelivered"] for m in delivered[:3]] == [True, True, False]
    # a send may have committed without its answer reaching us: still one of ours
    assert all(m["body"].startswith(("early ", "late ")) for m in delivered)
    assert all(answered.get(m["id"], m["body"]) == m["body"] for m in delivered)


# --- group commit ----------------------------------------------------------------------------------
async def test_concurrent_sends_share_transactions(hive: Hive, host: str, manager: str) -> None:
    names = [f"a{i}" for i in range(50)]
    await spawn_idle(hive, *names)
    conns = [await Connection.open(agent_sock(hive, n)) for n in names]
    try:
        before = await ok(host, {"cmd": "stats"})
        for name, conn in zip(names, conns, strict=True):
            await conn.send({"cmd": "send", "to": "manager", "body": f"from {name}"})
        answers = [await conn.read() for conn in conns]
        after = await ok(host, {"cmd": "stats"})
    finally:
        for conn in conns:
            await conn.aclose()
    assert all(a["ok"] for a in answers), answers
    # the `stats` call in between costs one transaction of its own
    assert after["transactions"] - before["transactions"] < 50
    assert after["operations"] - before["operations"] >= 50
    got = await recv(manager) + await recv(manager)
    assert sorted(bodies(got)) == sorted(f"from {n}" for n in names)
    assert after["pending_messages"] - before["pending_messages"] == 50

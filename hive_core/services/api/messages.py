"""The verbs of messages: send, recv, acks, the operator's inbox, dead letters, events, activity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hive_core.clock import rfc3339
from hive_core.services.answers import Feed, Handler, Undoable
from hive_core.store.messages import Row
from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.errors import BadRequest

if TYPE_CHECKING:
    from hive_core.app import Hive


def delivered(rows: list[Row]) -> rs.Messages:
    return rs.Messages(
        messages=[
            rs.DeliveredMessage(
                id=r.id,
                from_=r.sender,
                body=r.body,
                sent_at=rfc3339(r.sent_at) or "",
                redelivered=r.redelivered,
                in_reply_to=r.in_reply_to,
            )
            for r in rows
        ]
    )


# --- shared by every socket ---------------------------------------------------------------
async def send(hive: Hive, caller: str, req: rq.Send) -> rs.Sent:
    ids = await hive.broker.send(caller, req.to, req.body, req.in_reply_to)
    if req.to == "*":
        return rs.Sent(id=ids[0] if ids else None, ids=ids)
    return rs.Sent(id=ids[0])


# --- agent and manager sockets --------------------------------------------------------------
async def whoami(hive: Hive, caller: str, req: rq.Whoami) -> rs.Whoami:
    return rs.Whoami(name=caller, role="manager" if caller == "manager" else "agent")


async def _pop(hive: Hive, caller: str, max_: int, wait: int, ack: bool) -> Undoable:
    """Pop; the rows go back if the answer cannot be written. With `ack`, they are acked once
    it has been written (a crash in between redelivers them, flagged, never loses them)."""
    rows, at = await hive.broker.recv(caller, max_, wait)

    async def undo() -> None:
        if rows:
            await hive.broker.unpop(caller, rows, at)

    async def done() -> None:
        if rows:
            await hive.broker.ack_turn(caller, [r.id for r in rows])

    return Undoable(delivered(rows), undo, done if ack else None)


async def recv(hive: Hive, caller: str, req: rq.Recv) -> Undoable:
    return await _pop(hive, caller, req.max, req.wait_seconds, ack=False)


async def ack_turn(hive: Hive, caller: str, req: rq.AckTurn) -> rs.Acked:
    acked, ignored = await hive.broker.ack_turn(caller, req.ids)
    return rs.Acked(acked=acked, ignored=ignored)


async def requeue_inflight(hive: Hive, caller: str, req: rq.RequeueInflight) -> rs.Requeued:
    return rs.Requeued(requeued=await hive.broker.requeue_inflight(caller))


async def status(hive: Hive, caller: str, req: rq.Status) -> rs.Unread:
    return rs.Unread(unread=await hive.broker.unread(caller))


async def recent(hive: Hive, caller: str, req: rq.Recent) -> rs.Messages:
    return delivered(await hive.broker.recent(caller, req.limit))


async def wake(hive: Hive, caller: str, req: rq.Wake) -> rs.IdResult:
    return rs.IdResult(id=await hive.broker.wake(caller, req.from_, req.body))


async def set_status(hive: Hive, caller: str, req: rq.SetStatus) -> rs.Ok:
    await hive.agents.set_status(caller, req.text)
    await hive.lifecycle.changed(caller)
    return rs.Ok()


async def activity(hive: Hive, caller: str, req: rq.Activity) -> rs.Accepted:
    who = hive.activity.source(caller, req.source)
    return rs.Accepted(accepted=await hive.activity.report(who, req.events))


async def inbox(hive: Hive, caller: str, req: rq.Inbox) -> Undoable:
    return await _pop(hive, caller, req.max, req.wait_seconds, ack=True)


async def dead_letters(hive: Hive, caller: str, req: rq.DeadLetters) -> rs.DeadLetters:
    return rs.DeadLetters(
        messages=[
            rs.DeadLetter(
                id=d.id,
                from_=d.sender,
                to=d.recipient,
                body=d.body,
                sent_at=rfc3339(d.sent_at) or "",
                deliveries=d.deliveries,
                dead_at=rfc3339(d.dead_at) or "",
                in_reply_to=d.in_reply_to,
            )
            for d in await hive.broker.dead_letters()
        ]
    )


async def requeue_dead(hive: Hive, caller: str, req: rq.RequeueDead) -> rs.Ok:
    await hive.broker.requeue_dead(req.id)
    return rs.Ok()


async def drop_dead(hive: Hive, caller: str, req: rq.DropDead) -> rs.Ok:
    await hive.broker.drop_dead(req.id)
    return rs.Ok()


async def subscribe_events(hive: Hive, caller: str, req: rq.SubscribeEvents) -> Feed:
    if req.since_seq is not None and req.since_seq < 0:
        raise BadRequest("since_seq: must not be negative")
    seq = hive.events.seq
    # The feed replays from the history whatever was published after `seq` before it started.
    start = seq if req.since_seq is None else min(req.since_seq, seq)

    async def items() -> AsyncIterator[Any]:
        with hive.events.subscribe(start) as sub:
            while True:
                yield rs.EventFrame(event=await sub.next())

    return Feed(ack=rs.Subscribed(seq=seq), items=items())


async def stats(hive: Hive, caller: str, req: rq.Stats) -> rs.Stats:
    return rs.Stats(
        transactions=hive.store.transactions,
        operations=hive.store.operations,
        agents=len(hive.agents.names),
        pending_messages=await hive.broker.pending_total(),
    )


HANDLERS: dict[str, Handler] = {
    "whoami": whoami,
    "send": send,
    "recv": recv,
    "ack_turn": ack_turn,
    "requeue_inflight": requeue_inflight,
    "status": status,
    "recent": recent,
    "wake": wake,
    "set_status": set_status,
    "inbox": inbox,
    "dead_letters": dead_letters,
    "requeue_dead": requeue_dead,
    "drop_dead": drop_dead,
    "subscribe_events": subscribe_events,
    "stats": stats,
    "activity": activity,
}

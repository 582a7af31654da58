"""The verbs of each socket kind: thin functions from a decoded request to one service call and
the answer shape. No logic lives here beyond choosing the caller and the shape.

`HOST`, `MANAGER` and `AGENT` are the tables the socket server dispatches on; a verb missing
from a table answers `unknown_command` on that socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.errors import BadRequest

from .clock import rfc3339
from .rpc import Feed, Handler
from .store.messages import Row

if TYPE_CHECKING:
    from .daemon import Hive


def _delivered(rows: list[Row]) -> rs.Messages:
    return rs.Messages(
        messages=[
            rs.DeliveredMessage(
                id=r.id, from_=r.sender, body=r.body, sent_at=rfc3339(r.sent_at) or "",
                redelivered=r.redelivered, in_reply_to=r.in_reply_to,
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


async def recv(hive: Hive, caller: str, req: rq.Recv) -> rs.Messages:
    return _delivered(await hive.broker.recv(caller, req.max, req.wait_seconds))


async def ack_turn(hive: Hive, caller: str, req: rq.AckTurn) -> rs.Acked:
    acked, ignored = await hive.broker.ack_turn(caller, req.ids)
    return rs.Acked(acked=acked, ignored=ignored)


async def requeue_inflight(hive: Hive, caller: str, req: rq.RequeueInflight) -> rs.Requeued:
    return rs.Requeued(requeued=await hive.broker.requeue_inflight(caller))


async def status(hive: Hive, caller: str, req: rq.Status) -> rs.Unread:
    return rs.Unread(unread=await hive.broker.unread(caller))


async def recent(hive: Hive, caller: str, req: rq.Recent) -> rs.Messages:
    return _delivered(await hive.broker.recent(caller, req.limit))


async def wake(hive: Hive, caller: str, req: rq.Wake) -> rs.IdResult:
    return rs.IdResult(id=await hive.broker.wake(caller, req.from_, req.body))


async def set_status(hive: Hive, caller: str, req: rq.SetStatus) -> rs.Ok:
    await hive.agents.set_status(caller, req.text)
    return rs.Ok()


# --- host socket (and the manager's read verbs) -----------------------------------------------
async def list_agents(hive: Hive, caller: str, req: rq.List) -> rs.AgentList:
    return rs.AgentList(agents=hive.agents.sorted_names())


async def agent_status(hive: Hive, caller: str, req: rq.AgentStatus) -> rs.AgentStatuses:
    rows = await hive.agents.status_rows()
    return rs.AgentStatuses(
        agent_statuses=[
            rs.AgentStatusRow(
                name=r["name"], running=r["running"], failed=False, needs_update=False,
                needs_login=False, pending_reminders=0, paused=r["paused"],
                status_text=r["status_text"], status_set_at=r["status_set_at"],
                last_turn_at=r["last_turn_at"],
            )
            for r in rows
        ]
    )


async def urls(hive: Hive, caller: str, req: rq.Urls) -> rs.Urls:
    u = hive.config.urls
    return rs.Urls(urls=rs.UrlMap(domain=u.get("domain"), home=u.get("home"),
                                  forge=u.get("forge"), matrix=u.get("matrix")))


async def spawn(hive: Hive, caller: str, req: rq.Spawn) -> rs.Ok:
    await hive.agents.spawn(req.name, req.command)
    return rs.Ok()


async def inbox(hive: Hive, caller: str, req: rq.Inbox) -> rs.Messages:
    return _delivered(await hive.broker.recv(caller, req.max, req.wait_seconds, ack=True))


async def dead_letters(hive: Hive, caller: str, req: rq.DeadLetters) -> rs.DeadLetters:
    return rs.DeadLetters(
        messages=[
            rs.DeadLetter(
                id=d.id, from_=d.sender, to=d.recipient, body=d.body,
                sent_at=rfc3339(d.sent_at) or "", deliveries=d.deliveries,
                dead_at=rfc3339(d.dead_at) or "", in_reply_to=d.in_reply_to,
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
        transactions=hive.store.transactions, operations=hive.store.operations,
        agents=len(hive.agents.names), pending_messages=await hive.broker.pending_total(),
    )


AGENT: dict[str, Handler] = {
    "whoami": whoami,
    "send": send,
    "recv": recv,
    "ack_turn": ack_turn,
    "requeue_inflight": requeue_inflight,
    "status": status,
    "recent": recent,
    "wake": wake,
    "set_status": set_status,
}

MANAGER: dict[str, Handler] = {
    **AGENT,
    "list": list_agents,
    "agent_status": agent_status,
}

HOST: dict[str, Handler] = {
    "list": list_agents,
    "agent_status": agent_status,
    "urls": urls,
    "spawn": spawn,
    "send": send,
    "inbox": inbox,
    "dead_letters": dead_letters,
    "requeue_dead": requeue_dead,
    "drop_dead": drop_dead,
    "subscribe_events": subscribe_events,
    "stats": stats,
}

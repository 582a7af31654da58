"""The verbs of each socket kind: thin functions from a decoded request to one service call and
the answer shape. No logic lives here beyond choosing the caller and the shape.

`HOST`, `MANAGER` and `AGENT` are the tables the socket server dispatches on; a verb missing
from a table answers `unknown_command` on that socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hive_core.clock import rfc3339
from hive_core.store.approvals import ApprovalRow
from hive_core.store.messages import Row
from hive_core.store.questions import QuestionRow
from hive_core.store.reminders import ReminderRow
from hive_core.surfaces.sockets.server import Feed, Handler, Undoable
from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.errors import BadRequest, WireError

if TYPE_CHECKING:
    from hive_core.daemon import Hive


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

    return Undoable(_delivered(rows), undo, done if ack else None)


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
    return _delivered(await hive.broker.recent(caller, req.limit))


async def wake(hive: Hive, caller: str, req: rq.Wake) -> rs.IdResult:
    return rs.IdResult(id=await hive.broker.wake(caller, req.from_, req.body))


async def set_status(hive: Hive, caller: str, req: rq.SetStatus) -> rs.Ok:
    await hive.agents.set_status(caller, req.text)
    await hive.lifecycle.changed(caller)
    return rs.Ok()


# --- host socket (and the manager's read verbs) -----------------------------------------------
async def list_agents(hive: Hive, caller: str, req: rq.List) -> rs.AgentList:
    return rs.AgentList(agents=hive.agents.sorted_names())


async def agent_status(hive: Hive, caller: str, req: rq.AgentStatus) -> rs.AgentStatuses:
    rows = await hive.lifecycle.rows()
    return rs.AgentStatuses(agent_statuses=[rs.AgentStatusRow(**r) for r in rows])


async def subscribe_agent_status(hive: Hive, caller: str,
                                 req: rq.SubscribeAgentStatus) -> Feed:
    start = hive.events.seq

    async def items() -> AsyncIterator[Any]:
        with hive.events.subscribe(start) as sub:
            while True:
                event = await sub.next()
                if event["kind"] == "container_state_changed":
                    yield rs.AgentStatuses(agent_statuses=[rs.AgentStatusRow(**event["row"])])

    return Feed(ack=rs.Ok(), items=items())


async def urls(hive: Hive, caller: str, req: rq.Urls) -> rs.Urls:
    u = hive.config.urls
    return rs.Urls(urls=rs.UrlMap(domain=u.get("domain"), home=u.get("home"),
                                  forge=u.get("forge"), matrix=u.get("matrix")))


async def spawn(hive: Hive, caller: str, req: rq.Spawn) -> rs.Ok:
    await hive.lifecycle.spawn(req.name, req.command)
    return rs.Ok()


async def inbox(hive: Hive, caller: str, req: rq.Inbox) -> Undoable:
    return await _pop(hive, caller, req.max, req.wait_seconds, ack=True)


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


# --- lifecycle -------------------------------------------------------------------------------
def _target(hive: Hive, caller: str, req: Any) -> list[str]:
    """`start`/`stop` take a scope on the host socket (or a bare `name`, as on the manager's);
    only `{"agents": true}` means every agent."""
    if req.name is not None:
        return [_own(hive, caller, req.name)]
    if req.scope is None:
        raise BadRequest("scope: required (agent_names, or agents: true)")
    if req.scope.agents:
        return hive.agents.sorted_names()
    if not req.scope.agent_names:
        raise BadRequest("scope: name agents (agent_names) or all of them (agents: true)")
    return [_own(hive, caller, n) for n in req.scope.agent_names]


async def _each(names: list[str], action: Callable[[str], Awaitable[None]]) -> rs.Ok:
    """`action` on every agent of a scope: one that fails does not keep the others from it; the
    first failure's kind is answered, naming every agent that failed."""
    failures: list[tuple[str, WireError]] = []
    for name in names:
        try:
            await action(name)
        except WireError as e:
            failures.append((name, e))
    if failures:
        first = failures[0][1]
        raise type(first)("; ".join(f"{n}: {e.message}" for n, e in failures))
    return rs.Ok()


async def start(hive: Hive, caller: str, req: rq.Start) -> rs.Ok:
    return await _each(_target(hive, caller, req), hive.lifecycle.start)


async def stop(hive: Hive, caller: str, req: rq.Stop) -> rs.Ok:
    return await _each(_target(hive, caller, req),
                       lambda name: hive.lifecycle.stop(name, req.graceful))


def _own(hive: Hive, caller: str, name: str) -> str:
    if caller == "manager" and name == "manager":
        raise BadRequest("the manager cannot do this to itself")
    return hive.agents.require(name)


async def restart(hive: Hive, caller: str, req: rq.Restart) -> rs.Ok:
    await hive.lifecycle.restart(_own(hive, caller, req.name))
    return rs.Ok()


async def kill(hive: Hive, caller: str, req: rq.Kill) -> rs.Ok:
    await hive.lifecycle.kill(_own(hive, caller, req.name))
    return rs.Ok()


async def rebuild(hive: Hive, caller: str, req: rq.Rebuild) -> rs.Ok:
    await hive.lifecycle.rebuild(_own(hive, caller, req.name))
    return rs.Ok()


async def destroy(hive: Hive, caller: str, req: rq.Destroy) -> rs.Ok:
    await hive.lifecycle.destroy(req.name, req.purge)
    return rs.Ok()


async def tombstones(hive: Hive, caller: str, req: rq.Tombstones) -> rs.Tombstones:
    return rs.Tombstones(tombstones=[rs.Tombstone(**t) for t in await hive.lifecycle.tombstones()])


async def purge_tombstone(hive: Hive, caller: str, req: rq.PurgeTombstone) -> rs.Ok:
    await hive.lifecycle.purge_tombstone(req.name)
    return rs.Ok()


async def set_paused(hive: Hive, caller: str, req: rq.SetPaused) -> rs.Ok:
    await hive.lifecycle.set_paused(req.name, req.paused)
    return rs.Ok()


async def logs(hive: Hive, caller: str, req: rq.Logs) -> rs.Lines:
    if not 0 <= req.lines <= 10_000:
        raise BadRequest("lines: must be 0 to 10000")
    return rs.Lines(lines=await hive.backend.logs(hive.agents.require(req.name), req.lines))


# --- approvals -------------------------------------------------------------------------------
def _approval(a: ApprovalRow) -> rs.Approval:
    return rs.Approval(
        id=a.id, agent=a.agent, kind=a.kind, commit_ref=a.commit_ref, fetched_sha=a.fetched_sha,
        requested_at=rfc3339(a.requested_at) or "", status=a.status,
        resolved_at=rfc3339(a.resolved_at), note=a.note, description=a.description,
    )


async def pending(hive: Hive, caller: str, req: rq.Pending) -> rs.Approvals:
    return rs.Approvals(approvals=[_approval(a) for a in await hive.approvals.listing()])


async def approve(hive: Hive, caller: str, req: rq.Approve) -> rs.Ok:
    await hive.approvals.approve(req.id)
    return rs.Ok()


async def deny(hive: Hive, caller: str, req: rq.Deny) -> rs.Ok:
    await hive.approvals.deny(req.id, req.note)
    return rs.Ok()


async def request_spawn(hive: Hive, caller: str, req: rq.RequestSpawn) -> rs.IdResult:
    row = await hive.approvals.request_spawn(
        req.name, caller, req.description, hive.agents.is_agent(req.name))
    return rs.IdResult(id=row.id)


async def request_apply_commit(hive: Hive, caller: str,
                               req: rq.RequestApplyCommit) -> rs.IdResult:
    return rs.IdResult(id=await hive.lifecycle.propose(req.agent, req.commit_ref, caller,
                                                       req.description))


async def diff(hive: Hive, caller: str, req: rq.Diff) -> rs.Diff:
    subject, stat, text = await hive.lifecycle.proposal_diff(req.id)
    return rs.Diff(subject=subject, stat=stat, diff=text)


# --- questions -------------------------------------------------------------------------------
def _question(q: QuestionRow) -> rs.Question:
    return rs.Question(
        id=q.id, asker=q.asker, to=q.target or "operator", question=q.question,
        options=q.options, multi=q.multi, asked_at=rfc3339(q.asked_at) or "",
        deadline=rfc3339(q.deadline), answer=q.answer, answerer=q.answerer,
        answered_at=rfc3339(q.answered_at),
    )


async def ask(hive: Hive, caller: str, req: rq.Ask) -> rs.IdResult:
    row = await hive.questions.ask(caller, req.question, req.options, req.multi,
                                   req.ttl_seconds, req.to)
    return rs.IdResult(id=row.id)


async def answer(hive: Hive, caller: str, req: rq.Answer) -> rs.Ok:
    await hive.questions.answer(req.id, req.answer, caller)
    return rs.Ok()


async def questions(hive: Hive, caller: str, req: rq.Questions) -> rs.Questions:
    return rs.Questions(questions=[_question(q) for q in await hive.questions.for_operator()])


async def cancel_question(hive: Hive, caller: str, req: rq.CancelQuestion) -> rs.Ok:
    await hive.questions.cancel(req.id, caller)
    return rs.Ok()


# --- reminders -------------------------------------------------------------------------------
def _reminder(r: ReminderRow) -> rs.Reminder:
    return rs.Reminder(
        id=r.id, agent=r.agent, message=r.message, file_path=r.file_path,
        due_at=rfc3339(r.due_at) or "", status=r.status, attempts=r.attempts,
        last_error=r.last_error,
    )


async def remind(hive: Hive, caller: str, req: rq.Remind) -> rs.IdResult:
    row = await hive.reminders.remind(caller, req.message, req.delay_seconds,
                                      req.at_unix_timestamp, req.file_path)
    return rs.IdResult(id=row.id)


async def count_pending_reminders(hive: Hive, caller: str,
                                  req: rq.CountPendingReminders) -> rs.Count:
    return rs.Count(count=await hive.reminders.count_pending(caller))


async def reminders(hive: Hive, caller: str, req: rq.Reminders) -> rs.Reminders:
    return rs.Reminders(reminders=[_reminder(r) for r in await hive.reminders.open_rows()])


async def retry_reminder(hive: Hive, caller: str, req: rq.RetryReminder) -> rs.Ok:
    await hive.reminders.retry(req.id)
    return rs.Ok()


# --- loose ends ------------------------------------------------------------------------------
async def get_loose_ends(hive: Hive, caller: str, req: rq.GetLooseEnds) -> rs.LooseEnds:
    return rs.LooseEnds(loose_ends=await hive.loose_ends.list(
        None if caller == "manager" else caller))


async def cancel_loose_end(hive: Hive, caller: str, req: rq.CancelLooseEnd) -> rs.Ok:
    await hive.loose_ends.cancel(caller, req.kind, req.id)
    return rs.Ok()


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
    "ask": ask,
    "answer": answer,
    "remind": remind,
    "count_pending_reminders": count_pending_reminders,
    "get_loose_ends": get_loose_ends,
    "cancel_loose_end": cancel_loose_end,
}

MANAGER: dict[str, Handler] = {
    **AGENT,
    "list": list_agents,
    "agent_status": agent_status,
    "pending": pending,
    "request_spawn": request_spawn,
    "request_apply_commit": request_apply_commit,
    "kill": kill,
    "start": start,
    "restart": restart,
    "rebuild": rebuild,
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
    "pending": pending,
    "approve": approve,
    "deny": deny,
    "request_spawn": request_spawn,
    "questions": questions,
    "answer": answer,
    "cancel_question": cancel_question,
    "reminders": reminders,
    "retry_reminder": retry_reminder,
    "subscribe_agent_status": subscribe_agent_status,
    "diff": diff,
    "set_paused": set_paused,
    "start": start,
    "stop": stop,
    "restart": restart,
    "kill": kill,
    "rebuild": rebuild,
    "destroy": destroy,
    "tombstones": tombstones,
    "purge_tombstone": purge_tombstone,
    "logs": logs,
}

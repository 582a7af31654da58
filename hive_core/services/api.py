"""One function per verb of the table: (hive, caller, request) -> one service call -> the
answer shape. Every surface (sockets, HTTP, CLI through the host socket) calls these.

Rules kept here:
- no logic beyond choosing the caller and converting rows to answer shapes: rules about targets,
  ownership and "not on yourself" live in the services;
- `HANDLERS` names a function for every verb of `hive_wire.verbs.VERBS` (checked at import by
  the sockets surface); which socket serves a verb is the table's business, not this module's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hive_core.clock import rfc3339
from hive_core.services.answers import Feed, Handler, Undoable
from hive_core.store.approvals import ApprovalRow
from hive_core.store.messages import Row
from hive_core.store.questions import QuestionRow
from hive_core.store.reminders import ReminderRow
from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.errors import BadRequest

if TYPE_CHECKING:
    from hive_core.app import Hive


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


async def activity(hive: Hive, caller: str, req: rq.Activity) -> rs.Accepted:
    who = hive.activity.source(caller, req.source)
    return rs.Accepted(accepted=await hive.activity.report(who, req.events))


# --- host socket (and the manager's read verbs) -----------------------------------------------
async def list_agents(hive: Hive, caller: str, req: rq.List) -> rs.AgentList:
    return rs.AgentList(agents=hive.agents.sorted_names())


def _status_row(row: dict[str, Any], costs: dict[str, Any] | None = None) -> rs.AgentStatusRow:
    """A status row, with its cost keys (`Costs.row_keys`) when given."""
    row = {**row, **(costs or {})}
    if isinstance(row.get("budget"), dict):
        row["budget"] = rs.Budget(**row["budget"])
    return rs.AgentStatusRow(**row)


async def agent_status(hive: Hive, caller: str, req: rq.AgentStatus) -> rs.AgentStatuses:
    rows = await hive.lifecycle.rows()
    costs = await hive.costs.row_keys()
    manager = None
    if req.with_manager:
        manager = rs.ManagerStatus(**await hive.lifecycle.manager_status())
    return rs.AgentStatuses(agent_statuses=[_status_row(r, costs.get(r["name"])) for r in rows],
                            manager=manager)


async def subscribe_agent_status(hive: Hive, caller: str,
                                 req: rq.SubscribeAgentStatus) -> Feed:
    start = hive.events.seq

    async def items() -> AsyncIterator[Any]:
        with hive.events.subscribe(start) as sub:
            while True:
                event = await sub.next()
                if event["kind"] == "container_state_changed":
                    yield rs.AgentStatuses(agent_statuses=[_status_row(event["row"])])

    return Feed(ack=rs.Ok(), items=items())


async def urls(hive: Hive, caller: str, req: rq.Urls) -> rs.Urls:
    u = hive.config.urls
    return rs.Urls(urls=rs.UrlMap(domain=u.get("domain"), home=u.get("home") or hive.dashboard_url,
                                  forge=u.get("forge"), matrix=u.get("matrix")))


async def spawn(hive: Hive, caller: str, req: rq.Spawn) -> rs.Ok:
    await hive.lifecycle.spawn(req.name, req.command, req.settle_seconds)
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
async def _scoped(hive: Hive, caller: str, verb: str, req: Any, graceful: bool = True) -> rs.Ok:
    names = hive.lifecycle.targets(verb, caller, req.name, req.scope)
    await hive.lifecycle.each(verb, names, graceful)
    return rs.Ok()


async def start(hive: Hive, caller: str, req: rq.Start) -> rs.Ok:
    return await _scoped(hive, caller, "start", req)


async def stop(hive: Hive, caller: str, req: rq.Stop) -> rs.Ok:
    return await _scoped(hive, caller, "stop", req, req.graceful)


async def restart(hive: Hive, caller: str, req: rq.Restart) -> rs.Ok:
    return await _scoped(hive, caller, "restart", req)


async def kill(hive: Hive, caller: str, req: rq.Kill) -> rs.Ok:
    return await _scoped(hive, caller, "kill", req)


async def rebuild(hive: Hive, caller: str, req: rq.Rebuild) -> rs.Ok:
    return await _scoped(hive, caller, "rebuild", req)


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


# --- costs -----------------------------------------------------------------------------------
def _usage(u: dict[str, Any]) -> rs.Usage:
    return rs.Usage(**u)


async def costs(hive: Hive, caller: str, req: rq.Costs) -> rs.Costs:
    got = await hive.costs.report(req.agent, req.since, req.by_thread)
    agents = []
    for a in got["agents"]:
        b = a["budget"]
        agents.append(rs.AgentCost(
            agent=a["agent"], turns=a["turns"], input_tokens=a["input_tokens"],
            output_tokens=a["output_tokens"], cache_read_tokens=a["cache_read_tokens"],
            cache_creation_tokens=a["cache_creation_tokens"], cost_usd=a["cost_usd"],
            last_24h=_usage(a["last_24h"]), last_7d=_usage(a["last_7d"]),
            last_30d=_usage(a["last_30d"]), budget=rs.Budget(**b) if b else None))
    threads = got.get("threads")
    return rs.Costs(agents=agents,
                    threads=None if threads is None else [rs.ThreadCost(**t) for t in threads])


# Every verb of the table, by name (hive_wire.verbs.VERBS says which sockets serve it).
HANDLERS: dict[str, Handler] = {
    "whoami": whoami, "send": send, "recv": recv, "ack_turn": ack_turn,
    "requeue_inflight": requeue_inflight, "status": status, "recent": recent, "wake": wake,
    "set_status": set_status, "ask": ask, "answer": answer, "remind": remind,
    "count_pending_reminders": count_pending_reminders, "get_loose_ends": get_loose_ends,
    "cancel_loose_end": cancel_loose_end, "list": list_agents, "agent_status": agent_status,
    "pending": pending, "request_spawn": request_spawn,
    "request_apply_commit": request_apply_commit, "kill": kill, "start": start,
    "restart": restart, "rebuild": rebuild, "urls": urls, "spawn": spawn, "inbox": inbox,
    "dead_letters": dead_letters, "requeue_dead": requeue_dead, "drop_dead": drop_dead,
    "subscribe_events": subscribe_events, "stats": stats, "approve": approve, "deny": deny,
    "questions": questions, "cancel_question": cancel_question, "reminders": reminders,
    "retry_reminder": retry_reminder, "subscribe_agent_status": subscribe_agent_status,
    "diff": diff, "set_paused": set_paused, "stop": stop, "destroy": destroy,
    "tombstones": tombstones, "purge_tombstone": purge_tombstone, "logs": logs,
    "activity": activity, "costs": costs,
}

"""The verbs of the queues: approvals, questions, reminders, loose ends, costs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hive_core.clock import rfc3339
from hive_core.services.answers import Handler
from hive_core.store.approvals import ApprovalRow
from hive_core.store.questions import QuestionRow
from hive_core.store.reminders import ReminderRow
from hive_wire import requests as rq
from hive_wire import responses as rs

if TYPE_CHECKING:
    from hive_core.app import Hive


# --- approvals -------------------------------------------------------------------------------
def _approval(a: ApprovalRow) -> rs.Approval:
    return rs.Approval(
        id=a.id,
        agent=a.agent,
        kind=a.kind,
        commit_ref=a.commit_ref,
        fetched_sha=a.fetched_sha,
        requested_at=rfc3339(a.requested_at) or "",
        status=a.status,
        resolved_at=rfc3339(a.resolved_at),
        note=a.note,
        description=a.description,
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
        req.name, caller, req.description, hive.agents.is_agent(req.name)
    )
    return rs.IdResult(id=row.id)


async def request_apply_commit(hive: Hive, caller: str, req: rq.RequestApplyCommit) -> rs.IdResult:
    return rs.IdResult(
        id=await hive.lifecycle.propose(req.agent, req.commit_ref, caller, req.description)
    )


async def diff(hive: Hive, caller: str, req: rq.Diff) -> rs.Diff:
    subject, stat, text = await hive.lifecycle.proposal_diff(req.id)
    return rs.Diff(subject=subject, stat=stat, diff=text)


# --- questions -------------------------------------------------------------------------------
def _question(q: QuestionRow) -> rs.Question:
    return rs.Question(
        id=q.id,
        asker=q.asker,
        to=q.target or "operator",
        question=q.question,
        options=q.options,
        multi=q.multi,
        asked_at=rfc3339(q.asked_at) or "",
        deadline=rfc3339(q.deadline),
        answer=q.answer,
        answerer=q.answerer,
        answered_at=rfc3339(q.answered_at),
    )


async def ask(hive: Hive, caller: str, req: rq.Ask) -> rs.IdResult:
    row = await hive.questions.ask(
        caller, req.question, req.options, req.multi, req.ttl_seconds, req.to
    )
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
        id=r.id,
        agent=r.agent,
        message=r.message,
        file_path=r.file_path,
        due_at=rfc3339(r.due_at) or "",
        status=r.status,
        attempts=r.attempts,
        last_error=r.last_error,
    )


async def remind(hive: Hive, caller: str, req: rq.Remind) -> rs.IdResult:
    row = await hive.reminders.remind(
        caller, req.message, req.delay_seconds, req.at_unix_timestamp, req.file_path
    )
    return rs.IdResult(id=row.id)


async def count_pending_reminders(
    hive: Hive, caller: str, req: rq.CountPendingReminders
) -> rs.Count:
    return rs.Count(count=await hive.reminders.count_pending(caller))


async def reminders(hive: Hive, caller: str, req: rq.Reminders) -> rs.Reminders:
    return rs.Reminders(reminders=[_reminder(r) for r in await hive.reminders.open_rows()])


async def retry_reminder(hive: Hive, caller: str, req: rq.RetryReminder) -> rs.Ok:
    await hive.reminders.retry(req.id)
    return rs.Ok()


# --- loose ends ------------------------------------------------------------------------------
async def get_loose_ends(hive: Hive, caller: str, req: rq.GetLooseEnds) -> rs.LooseEnds:
    return rs.LooseEnds(
        loose_ends=await hive.loose_ends.list(None if caller == "manager" else caller)
    )


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
        agents.append(
            rs.AgentCost(
                agent=a["agent"],
                turns=a["turns"],
                input_tokens=a["input_tokens"],
                output_tokens=a["output_tokens"],
                cache_read_tokens=a["cache_read_tokens"],
                cache_creation_tokens=a["cache_creation_tokens"],
                cost_usd=a["cost_usd"],
                last_24h=_usage(a["last_24h"]),
                last_7d=_usage(a["last_7d"]),
                last_30d=_usage(a["last_30d"]),
                budget=rs.Budget(**b) if b else None,
            )
        )
    threads = got.get("threads")
    return rs.Costs(
        agents=agents, threads=None if threads is None else [rs.ThreadCost(**t) for t in threads]
    )


HANDLERS: dict[str, Handler] = {
    "ask": ask,
    "answer": answer,
    "remind": remind,
    "count_pending_reminders": count_pending_reminders,
    "get_loose_ends": get_loose_ends,
    "cancel_loose_end": cancel_loose_end,
    "pending": pending,
    "request_spawn": request_spawn,
    "request_apply_commit": request_apply_commit,
    "approve": approve,
    "deny": deny,
    "questions": questions,
    "cancel_question": cancel_question,
    "reminders": reminders,
    "retry_reminder": retry_reminder,
    "diff": diff,
    "costs": costs,
}

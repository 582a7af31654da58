"""Loose ends: one view of what is still open for an agent (or, for the manager, the hive):
pending approvals, open questions it asked or was asked, its pending and parked reminders.

An agent may cancel only what it owns (questions it asked, its reminders); the manager may
cancel anything, including withdrawing a pending approval.
"""

from __future__ import annotations

from hive_core.clock import rfc3339
from hive_core.services.approvals import Approvals
from hive_core.services.broker import MANAGER, OPERATOR
from hive_core.services.questions import Questions
from hive_core.services.reminders import Reminders
from hive_wire.errors import BadRequest, Forbidden, NotFound
from hive_wire.responses import LooseEnd

KINDS = ("approval", "question", "reminder")


class LooseEnds:
    def __init__(self, approvals: Approvals, questions: Questions, reminders: Reminders) -> None:
        self.approvals = approvals
        self.questions = questions
        self.reminders = reminders

    async def list(self, agent: str | None) -> list[LooseEnd]:
        """`agent=None`: the whole hive."""
        out: list[LooseEnd] = []
        for a in await self.approvals.pending_for(agent):
            out.append(
                LooseEnd(
                    kind="approval",
                    id=a.id,
                    agent=a.agent,
                    status=a.status,
                    summary=f"{a.kind} {a.commit_ref}".strip(),
                    since=rfc3339(a.requested_at) or "",
                )
            )
        for q in await self.questions.open_involving(agent):
            who = q.asker if agent is None or q.asker == agent else q.target or OPERATOR
            status = "asked" if agent is None or q.asker == agent else "to_answer"
            out.append(
                LooseEnd(
                    kind="question",
                    id=q.id,
                    agent=who,
                    status=status,
                    summary=q.question[:200],
                    since=rfc3339(q.asked_at) or "",
                )
            )
        for r in await self.reminders.open_rows(agent):
            out.append(
                LooseEnd(
                    kind="reminder",
                    id=r.id,
                    agent=r.agent,
                    status=r.status,
                    summary=r.message[:200],
                    since=rfc3339(r.created_at) or "",
                )
            )
        return out

    async def cancel(self, caller: str, kind: str, item_id: int) -> None:
        if kind not in KINDS:
            raise BadRequest(f"kind: must be one of {', '.join(KINDS)}")
        if kind == "question":
            await self.questions.cancel(item_id, caller)
        elif kind == "reminder":
            row = await self.reminders.get(item_id)
            if row is None:
                raise NotFound(f"no reminder with id {item_id}")
            if caller != MANAGER and row.agent != caller:
                raise Forbidden(f"reminder {item_id} is not {caller}'s")
            await self.reminders.cancel(item_id)
        else:
            if caller != MANAGER:
                raise Forbidden("only the manager may withdraw an approval request")
            await self.approvals.cancel(item_id, caller)

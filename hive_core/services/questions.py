"""Questions: ask and answer between agents and the operator (queues.md).

Rules kept here:
- without `to` (or with `to: "operator"`) a question goes to the operator; with `to: <agent>` or
  `to: "manager"` it goes to that principal's inbox as a `question_asked` helper event; asking
  yourself is refused;
- a question to the operator is answered by the operator only; a question to an agent by that
  agent, or by the operator as an override; an answered question is a `conflict`;
- the answer reaches the asker as `question_answered {id, question, answer, answerer}`;
- TTL is capped at 6 h; the watchdog task sleeps until the next deadline (woken when an earlier
  one is added) and answers `[expired]` as `ttl-watchdog`;
- the operator may cancel any question, the asker its own (`[cancelled by <name>]`).
"""

from __future__ import annotations

import logging
import math

import trio

from hive_core.clock import now
from hive_core.services.broker import MANAGER, OPERATOR, Broker
from hive_core.services.events import EventChannel
from hive_core.store import questions as sql
from hive_core.store.db import Store
from hive_core.store.questions import QuestionRow
from hive_wire import events as ev
from hive_wire.errors import BadRequest, Conflict, Forbidden, NotFound
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)

TTL_CAP = 6 * 3600
QUESTION_MAX = 16 * 1024
ANSWER_MAX = 16 * 1024
OPTIONS_MAX = 32
OPTION_MAX = 512
WATCHDOG = "ttl-watchdog"
SAFETY_TICK = 60.0


class Questions:
    def __init__(self, store: Store, events: EventChannel, broker: Broker) -> None:
        self.store = store
        self.events = events
        self.broker = broker
        self._changed = trio.Event()

    async def ask(
        self,
        asker: str,
        question: str,
        options: list[str] | None,
        multi: bool,
        ttl_seconds: int | None,
        to: str | None,
    ) -> QuestionRow:
        if not question or len(question) > QUESTION_MAX:
            raise BadRequest(f"question: must be 1 to {QUESTION_MAX} characters")
        if options is not None:
            if len(options) > OPTIONS_MAX or any(not o or len(o) > OPTION_MAX for o in options):
                raise BadRequest(
                    f"options: at most {OPTIONS_MAX} options of 1 to {OPTION_MAX} characters"
                )
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise BadRequest("ttl_seconds: must be positive")
        target = None if to in (None, OPERATOR) else to
        if target == asker:
            raise BadRequest("to: you cannot ask yourself")
        if target is not None and target != MANAGER:
            check_agent_name(target, "to")
            if not self.broker.is_agent(target):
                raise NotFound(f'agent "{target}" is not managed by this hive')
        at = now()
        deadline = at + min(ttl_seconds, TTL_CAP) if ttl_seconds is not None else None
        row: QuestionRow = await self.store.run(
            sql.insert, asker, target, question, options, multi, at, deadline
        )
        self.events.publish(
            ev.QuestionAdded(id=row.id, asker=asker, to=target or OPERATOR, question=question)
        )
        if target is not None:
            await self.broker.notify(
                target,
                "question_asked",
                id=row.id,
                asker=asker,
                question=question,
                options=options or [],
                multi=multi,
            )
        if deadline is not None:
            self._changed.set()
        return row

    async def answer(self, qid: int, text: str, answerer: str) -> QuestionRow:
        if len(text) > ANSWER_MAX:
            raise BadRequest(f"answer: longer than {ANSWER_MAX} characters")
        row: QuestionRow | None = await self.store.run(sql.get, qid)
        if row is None:
            raise NotFound(f"no question with id {qid}")
        if answerer != OPERATOR and answerer != row.target:
            raise Forbidden(f"question {qid} is not addressed to {answerer}")
        return await self._close(row, text, answerer)

    async def cancel(self, qid: int, by: str) -> QuestionRow:
        row: QuestionRow | None = await self.store.run(sql.get, qid)
        if row is None:
            raise NotFound(f"no question with id {qid}")
        if by not in (OPERATOR, MANAGER) and by != row.asker:
            raise Forbidden(f"question {qid} was not asked by {by}")
        return await self._close(row, f"[cancelled by {by}]", by)

    async def _close(self, row: QuestionRow, text: str, answerer: str) -> QuestionRow:
        if row.answer is not None:
            raise Conflict(_closed_already(row))
        done: QuestionRow | None = await self.store.run(sql.answer, row.id, text, answerer, now())
        if done is None:
            again: QuestionRow | None = await self.store.run(sql.get, row.id)
            raise Conflict(
                _closed_already(again)
                if again is not None and again.answer is not None
                else f"question {row.id} is already closed"
            )
        self.events.publish(ev.QuestionResolved(id=row.id, answer=text, answerer=answerer))
        if done.asker != OPERATOR:
            await self.broker.notify(
                done.asker,
                "question_answered",
                id=done.id,
                question=done.question,
                answer=text,
                answerer=answerer,
            )
        return done

    async def for_operator(self) -> list[QuestionRow]:
        return await self.store.run(sql.open_for_operator)

    async def open_involving(self, agent: str | None) -> list[QuestionRow]:
        return await self.store.run(sql.open_involving, agent)

    async def vacuum(self, retention_seconds: float) -> int:
        return await self.store.run(sql.vacuum, now() - retention_seconds)

    async def watchdog(self) -> None:
        """Answer expired questions `[expired]`; sleep until the next deadline."""
        while True:
            self._changed = trio.Event()
            try:
                for qid in await self.store.run(sql.expired, now()):
                    row = await self.store.run(sql.get, qid)
                    if row is not None and row.answer is None:
                        try:
                            await self._close(row, "[expired]", WATCHDOG)
                        except Conflict:
                            pass
                nxt = await self.store.run(sql.next_deadline)
            except Exception:
                log.exception("question watchdog failed")
                nxt = None
            delay = SAFETY_TICK if nxt is None else max(0.0, min(nxt - now(), SAFETY_TICK))
            with trio.move_on_after(math.ceil(delay * 1000) / 1000):
                await self._changed.wait()


def _closed_already(row: QuestionRow) -> str:
    """What became of a question that can no longer be answered or cancelled."""
    answer = row.answer or ""
    if answer.startswith("[cancelled by "):
        return f"question {row.id} was already cancelled (by {row.answerer})"
    if answer == "[expired]":
        return f"question {row.id} already expired unanswered"
    return f"question {row.id} was already answered (by {row.answerer})"

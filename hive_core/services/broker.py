"""The message broker: at-least-once delivery with leases (broker.md).

Rules kept here:
- a message leaves an inbox for good only when acked; popped rows are leased (`delivered_at`)
  and come back, flagged `redelivered`, on `requeue_inflight`, lease expiry or a crash;
- FIFO per recipient by id; requeued rows keep their id, so they come first;
- every SQL statement lives in `store.messages`; the jobs here compose them in one transaction;
- a long-polling `recv` parks as a waiter of its recipient; a send to one recipient with a
  waiter parked *claims* it and pops for it in the send's own transaction (one commit from a
  send to the waiter's answer, not two); any other change wakes the waiters, which pop again;
  a per-recipient counter closes the gap between "inbox was empty" and "started waiting";
- after `max_deliveries` deliveries without an ack a row is dead: set aside, the manager told;
- every change is published on the event channel (`sent`, `delivered`, `acked`, `requeued`,
  `message_dead`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import trio

from hive_core.clock import now
from hive_core.services import helper_events
from hive_core.services.events import EventChannel
from hive_core.store import agents as agents_sql
from hive_core.store import messages as sql
from hive_core.store.db import Store, light
from hive_wire import events as ev
from hive_wire.errors import BadRequest, NotFound, TooLarge
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)

MANAGER = "manager"
OPERATOR = "operator"
BROADCAST = "*"
RECV_MAX_CAP = 32
WAIT_CAP = 180
PREVIEW = 200


def _bury(conn: sqlite3.Connection, dead: list[sql.DeadRow], at: float) -> list[tuple[int, str]]:
    """Tell the manager about each dead row, in the same transaction that killed it; the notes'
    (id, body)."""
    notes = []
    for row in dead:
        body = helper_events.body(
            "message_dead",
            id=row.id,
            to=row.recipient,
            **{"from": row.sender},
            deliveries=row.deliveries,
        )
        (note_id,) = sql.insert(conn, [MANAGER], helper_events.SYSTEM, body, at, soft_cap=False)
        notes.append((note_id, body))
    return notes


def _requeue_job(
    conn: sqlite3.Connection,
    who: str | None,
    at: float,
    max_deliveries: int,
    leased_before: float | None,
) -> tuple[dict[str, list[int]], list[sql.DeadRow], list[tuple[int, str]]]:
    requeued, dead = sql.requeue(conn, who, at, max_deliveries, leased_before)
    return requeued, dead, _bury(conn, dead, at)


@light
def _insert_and_pop(
    conn: sqlite3.Connection,
    recipient: str,
    sender: str,
    body: str,
    at: float,
    in_reply_to: int | None,
    limit: int,
) -> tuple[list[int], list[sql.Row]]:
    """A send handed straight to a waiting long-poll: the insert and the waiter's pop (oldest
    first, so anything queued before still comes first) in one transaction."""
    ids = sql.insert(conn, [recipient], sender, body, at, in_reply_to)
    return ids, sql.pop(conn, recipient, limit, at)


class _Waiter:
    """A parked long-poll. A send may claim it: it then pops for the waiter in its own
    transaction and hands over the rows (`settled` set once the outcome is known, rows or
    none)."""

    __slots__ = ("limit", "woken", "settled", "rows", "at")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.woken = trio.Event()
        self.settled: trio.Event | None = None  # set by a claim
        self.rows: list[sql.Row] = []
        self.at = 0.0


@light
def _ack_job(conn: sqlite3.Connection, who: str, ids: list[int] | None, at: float) -> list[int]:
    acked = sql.ack(conn, who, ids, at)
    agents_sql.touch_turn(conn, who, at)
    return acked


class Broker:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        is_agent: Callable[[str], bool],
        agent_names: Callable[[], list[str]],
        *,
        body_limit: int = 256 * 1024,
        lease_timeout: float = 1800.0,
        max_deliveries: int = 5,
    ) -> None:
        self.store = store
        self.events = events
        self.is_agent = is_agent
        self.agent_names = agent_names
        self.body_limit = body_limit
        self.lease_timeout = lease_timeout
        self.max_deliveries = max_deliveries
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, list[_Waiter]] = {}

    # --- wake-ups -------------------------------------------------------------------------
    def _wake(self, recipient: str) -> None:
        self._versions[recipient] = self._versions.get(recipient, 0) + 1
        for waiter in self._waiters.get(recipient, ()):
            waiter.woken.set()

    def _claim(self, recipient: str) -> _Waiter | None:
        """The oldest waiter of `recipient` no send has claimed yet, now claimed."""
        for waiter in self._waiters.get(recipient, ()):
            if waiter.settled is None:
                waiter.settled = trio.Event()
                return waiter
        return None

    async def _park(self, who: str, limit: int, deadline: float) -> tuple[list[sql.Row], float]:
        """Wait as a waiter of `who` until woken or the deadline; the rows a send popped for
        it, if one claimed it. A claimed waiter waits for the claim's commit whatever happens:
        if it is cancelled meanwhile (the client hung up), the rows go back to the inbox."""
        waiter = _Waiter(limit)
        waiting = self._waiters.setdefault(who, [])
        waiting.append(waiter)
        try:
            with trio.move_on_at(deadline):
                await waiter.woken.wait()
        except BaseException:
            self._leave(who, waiting, waiter)
            if waiter.settled is not None:
                with trio.CancelScope(shield=True):
                    await waiter.settled.wait()
                if waiter.rows:
                    try:
                        await self.unpop(who, waiter.rows, waiter.at)
                    except Exception:  # the database is gone: the rows' lease brings them back
                        log.exception("could not put back rows popped for %s", who)
            raise
        self._leave(who, waiting, waiter)
        if waiter.settled is not None and not waiter.settled.is_set():
            with trio.CancelScope(shield=True):  # the claim's job cannot be dropped either
                await waiter.settled.wait()
        return waiter.rows, waiter.at

    def _leave(self, who: str, waiting: list[_Waiter], waiter: _Waiter) -> None:
        waiting.remove(waiter)
        if not waiting and self._waiters.get(who) is waiting:
            del self._waiters[who]

    # --- checks ---------------------------------------------------------------------------
    def _check_body(self, body: str, field: str = "body") -> None:
        if not body:
            raise BadRequest(f"{field}: must not be empty")
        size = len(body.encode("utf-8"))
        if size > self.body_limit:
            raise TooLarge(f"{field}: {size} bytes is over the limit of {self.body_limit} bytes")

    def recipients(self, sender: str, to: str) -> list[str]:
        """The inboxes a message from `sender` to `to` lands in."""
        if to == BROADCAST:
            return [n for n in [*self.agent_names(), MANAGER] if n != sender]
        if to in (MANAGER, OPERATOR):
            return [to]
        check_agent_name(to, "to")
        if not self.is_agent(to):
            raise NotFound(f'agent "{to}" is not managed by this hive')
        return [to]

    # --- operations -----------------------------------------------------------------------
    async def send(
        self, sender: str, to: str, body: str, in_reply_to: int | None = None
    ) -> list[int]:
        self._check_body(body)
        recipients = self.recipients(sender, to)
        return await self.deliver(sender, recipients, body, in_reply_to)

    async def deliver(
        self, sender: str, recipients: list[str], body: str, in_reply_to: int | None = None
    ) -> list[int]:
        """Store one message per recipient (already checked) and wake them."""
        if not recipients:
            return []
        at = now()
        # Once queued it commits and its waiters must learn: `Store.run` waits for the commit
        # even if cancelled (so no shield here, nor in recv and ack_turn).
        waiter = self._claim(recipients[0]) if len(recipients) == 1 else None
        if waiter is None:
            ids: list[int] = await self.store.run(
                sql.insert, recipients, sender, body, at, in_reply_to
            )
        else:
            assert waiter.settled is not None
            try:
                ids, waiter.rows = await self.store.run(
                    _insert_and_pop, recipients[0], sender, body, at, in_reply_to, waiter.limit
                )
                waiter.at = at
            finally:  # rows or none (the send failed: the waiter pops again itself)
                waiter.settled.set()
                waiter.woken.set()
        self.announce(sender, recipients, ids, body)
        return ids

    def announce(self, sender: str, recipients: list[str], ids: list[int], body: str) -> None:
        """After a commit that inserted messages (here or in another service's job): wake the
        recipients and publish `sent`."""
        preview = body[:PREVIEW]
        for recipient, mid in zip(recipients, ids, strict=True):
            self._wake(recipient)
            self.events.publish(
                ev.Sent(id=mid, from_=sender, to=recipient, preview=preview, size=len(body))
            )

    async def notify(self, to: str, event: str, **fields: Any) -> int:
        """A helper event from `system` (to an agent or the manager)."""
        (mid,) = await self.deliver(helper_events.SYSTEM, [to], helper_events.body(event, **fields))
        return mid

    async def wake(self, who: str, label: str, body: str) -> int:
        """Inject a message into `who`'s own inbox under any sender label."""
        if not label or len(label) > 128 or not label.isprintable():
            raise BadRequest("from: must be 1 to 128 printable characters")
        self._check_body(body)
        (mid,) = await self.deliver(label, [who], body)
        return mid

    async def recv(
        self, who: str, max_: int = 1, wait_seconds: float = 0
    ) -> tuple[list[sql.Row], float]:
        """Pop up to `max_` rows (long-polling up to `wait_seconds` for the first); the rows and
        the pop's timestamp, which `unpop` needs if the answer cannot be handed over."""
        if max_ < 0:
            raise BadRequest("max: must not be negative")
        if wait_seconds < 0:
            raise BadRequest("wait_seconds: must not be negative")
        limit = min(max_, RECV_MAX_CAP)
        if limit == 0:
            return [], 0.0
        deadline = trio.current_time() + min(wait_seconds, WAIT_CAP)
        while True:
            version = self._versions.get(who, 0)
            at = now()
            rows: list[sql.Row] = await self.store.run(sql.pop, who, limit, at)  # never dropped
            if rows:
                break
            if trio.current_time() >= deadline:
                return [], at
            if self._versions.get(who, 0) == version:
                rows, at = await self._park(who, limit, deadline)
                if rows:
                    break
        self.events.publish(ev.Delivered(to=who, ids=[r.id for r in rows]))
        return rows, at

    async def unpop(self, who: str, rows: list[sql.Row], popped_at: float) -> None:
        """Put back rows whose answer never reached the client (it hung up while waiting)."""
        ids = [r.id for r in rows]
        with trio.CancelScope(shield=True):
            back = await self.store.run(sql.unpop, who, ids, popped_at)
        if back:
            self._wake(who)
            self.events.publish(ev.Requeued(to=who, ids=ids))

    async def ack_turn(self, who: str, ids: list[int] | None) -> tuple[int, int | None]:
        """Ack in-flight rows; (acked, ignored) where ignored is None for a bare ack."""
        acked = await self.store.run(_ack_job, who, ids, now())  # always published
        if acked:
            self.events.publish(ev.Acked(to=who, ids=acked))
        ignored = None if ids is None else len(set(ids)) - len(acked)
        return len(acked), ignored

    async def requeue_inflight(self, who: str) -> int:
        return await self._requeue(who, None)

    async def expire_leases(self) -> int:
        """Requeue every lease older than the lease timeout (the maintenance sweep)."""
        return await self._requeue(None, now() - self.lease_timeout)

    async def _requeue(self, who: str | None, leased_before: float | None) -> int:
        with trio.CancelScope(shield=True):  # a committed requeue always wakes its waiters
            requeued, dead, notes = await self.store.run(
                _requeue_job, who, now(), self.max_deliveries, leased_before
            )
        for recipient, ids in requeued.items():
            self._wake(recipient)
            self.events.publish(ev.Requeued(to=recipient, ids=ids))
        for row in dead:
            self.events.publish(
                ev.MessageDead(
                    id=row.id, to=row.recipient, from_=row.sender, deliveries=row.deliveries
                )
            )
        for note_id, body in notes:
            self.announce(helper_events.SYSTEM, [MANAGER], [note_id], body)
        return sum(len(ids) for ids in requeued.values())

    async def unread(self, who: str) -> int:
        return await self.store.run(sql.unread, who)

    async def recent(self, who: str, limit: int) -> list[sql.Row]:
        if limit < 0:
            raise BadRequest("limit: must not be negative")
        return await self.store.run(sql.recent, who, min(limit, 200))

    async def dead_letters(self) -> list[sql.DeadRow]:
        return await self.store.run(sql.dead_letters)

    async def requeue_dead(self, msg_id: int) -> None:
        recipient = await self.store.run(sql.revive_dead, msg_id)
        if recipient is None:
            raise NotFound(f"no dead letter with id {msg_id}")
        self._wake(recipient)
        self.events.publish(ev.Requeued(to=recipient, ids=[msg_id]))

    async def drop_dead(self, msg_id: int) -> None:
        if not await self.store.run(sql.drop_dead, msg_id):
            raise NotFound(f"no dead letter with id {msg_id}")

    async def vacuum(self, retention_seconds: float) -> int:
        return await self.store.run(sql.vacuum, now() - retention_seconds)

    async def purge(self, who: str) -> int:
        """Delete everything addressed to `who` (a purged agent's inbox); how many rows."""
        with trio.CancelScope(shield=True):
            purged: int = await self.store.run(sql.purge_recipient, who)
        return purged

    async def peek(self, who: str, limit: int) -> list[sql.Row]:
        """`who`'s newest undelivered messages, left where they are (the dashboard's inbox)."""
        return await self.store.run(sql.peek, who, limit)

    async def pending_total(self) -> int:
        return await self.store.run(sql.pending_total)

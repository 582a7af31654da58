"""Reminders: messages the daemon delivers to an agent at a due time, from `reminder`.

Rules kept here:
- exactly one timing (`delay_seconds` or `at_unix_timestamp`), within a year; at most 50 pending
  per agent (`limit`);
- `file_path` names a file in the agent's state dir (relative, or absolute under the container's
  `/state`); `..` and other absolute paths are refused at once, and at delivery the host path is
  resolved (symlinks included) and must still be inside the state dir;
- the scheduler sleeps until the next due time, woken when an earlier reminder is added, with a
  5 s safety tick; it never polls faster;
- a delivery inserts the message and marks the reminder delivered in one transaction;
- a failed delivery raises `attempts` and records the reason; after 5 the reminder is parked, the
  manager and the dashboard are told; the operator may retry it; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import os
import posixpath
import sqlite3
from collections.abc import Callable
from pathlib import Path

import trio

from hive_core.clock import now
from hive_core.paths import inside
from hive_core.services.broker import MANAGER, Broker
from hive_core.services.events import EventChannel
from hive_core.store import messages as messages_sql
from hive_core.store import reminders as sql
from hive_core.store.db import Store
from hive_core.store.reminders import ReminderRow
from hive_wire import events as ev
from hive_wire.errors import BadRequest, Limit, NotFound

log = logging.getLogger(__name__)

SENDER = "reminder"
MAX_PENDING = 50
MAX_ATTEMPTS = 5
HORIZON = 366 * 86400
SAFETY_TICK = 5.0
RETRY_AFTER = 30.0
MESSAGE_MAX = 64 * 1024
CONTAINER_STATE = "/state"


def check_file_path(file_path: str) -> str:
    """The path relative to the agent's state dir, or `BadRequest`."""
    if not file_path or "\x00" in file_path or len(file_path) > 1024:
        raise BadRequest("file_path: must be 1 to 1024 characters without NUL")
    if file_path.startswith("/"):
        if not (file_path + "/").startswith(CONTAINER_STATE + "/"):
            raise BadRequest(f"file_path: absolute paths must be under {CONTAINER_STATE}")
        file_path = file_path[len(CONTAINER_STATE) :].lstrip("/")
    parts = file_path.split("/")
    if ".." in parts:
        raise BadRequest("file_path: must not contain '..'")
    rel = posixpath.normpath(file_path)
    if rel in (".", ""):
        raise BadRequest("file_path: must name a file inside the state dir")
    return rel


def _deliver_job(conn: sqlite3.Connection, rid: int, agent: str, body: str, at: float) -> list[int]:
    ids = messages_sql.insert(conn, [agent], SENDER, body, at)
    sql.mark_delivered(conn, rid, at)
    return ids


class Reminders:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        broker: Broker,
        state_dir: Callable[[str], Path],
    ) -> None:
        self.store = store
        self.events = events
        self.broker = broker
        self.state_dir = state_dir
        self._changed = trio.Event()

    async def remind(
        self,
        agent: str,
        message: str,
        delay_seconds: int | None,
        at_unix_timestamp: int | None,
        file_path: str | None,
    ) -> ReminderRow:
        if not message or len(message) > MESSAGE_MAX:
            raise BadRequest(f"message: must be 1 to {MESSAGE_MAX} characters")
        if (delay_seconds is None) == (at_unix_timestamp is None):
            raise BadRequest("give exactly one of delay_seconds and at_unix_timestamp")
        at = now()
        if delay_seconds is not None:
            if not 0 <= delay_seconds <= HORIZON:
                raise BadRequest(f"delay_seconds: must be 0 to {HORIZON}")
            due = at + delay_seconds
        else:
            assert at_unix_timestamp is not None
            if not 0 <= at_unix_timestamp <= at + HORIZON:
                raise BadRequest("at_unix_timestamp: must be a time within the next year")
            due = float(at_unix_timestamp)
        rel = check_file_path(file_path) if file_path is not None else None
        row = await self.store.run(self._insert_job, agent, message, rel, at, due)
        self.events.publish(ev.ReminderAdded(id=row.id, agent=agent, due_at=row.due_at))
        self._changed.set()
        return row

    @staticmethod
    def _insert_job(
        conn: sqlite3.Connection, agent: str, message: str, rel: str | None, at: float, due: float
    ) -> ReminderRow:
        if sql.count_pending(conn, agent) >= MAX_PENDING:
            raise Limit(f"{agent} already has {MAX_PENDING} pending reminders")
        return sql.insert(conn, agent, message, rel, at, due)

    def _body(self, row: ReminderRow) -> str:
        if row.file_path is None:
            return row.message
        root = self.state_dir(row.agent)
        host_path = root / row.file_path
        if not inside(root, host_path):
            raise BadRequest(f"file_path {row.file_path!r} resolves outside the state dir")
        if not os.path.exists(host_path):
            raise NotFound(f"file_path {row.file_path!r} does not exist")
        return f"{row.message}\n\nfile: {CONTAINER_STATE}/{row.file_path}"

    async def _deliver(self, row: ReminderRow) -> None:
        try:
            if not self.broker.is_agent(row.agent) and row.agent != MANAGER:
                raise NotFound(f'agent "{row.agent}" no longer exists')
            body = self._body(row)
        except (BadRequest, NotFound) as e:
            failed = await self.store.run(
                sql.mark_failed, row.id, e.message, now() + RETRY_AFTER, MAX_ATTEMPTS
            )
            log.warning(
                "reminder failed id=%d agent=%s attempt=%d error=%s",
                row.id,
                row.agent,
                failed.attempts,
                e.message,
            )
            if failed.status == "parked":
                self.events.publish(
                    ev.ReminderFailed(
                        id=row.id, agent=row.agent, error=e.message, attempts=failed.attempts
                    )
                )
                await self.broker.notify(
                    MANAGER,
                    "reminder_failed",
                    id=row.id,
                    agent=row.agent,
                    error=e.message,
                    attempts=failed.attempts,
                )
            return
        at = now()
        ids = await self.store.run(_deliver_job, row.id, row.agent, body, at)
        self.broker.announce(SENDER, [row.agent], ids, body)
        self.events.publish(ev.ReminderFired(id=row.id, agent=row.agent, message_id=ids[0]))

    async def scheduler(self) -> None:
        """Deliver due reminders; sleep until the next one (5 s safety tick at most)."""
        while True:
            self._changed = trio.Event()
            try:
                for row in await self.store.run(sql.due, now()):
                    await self._deliver(row)
                nxt = await self.store.run(sql.next_due)
            except Exception:
                log.exception("reminder scheduler failed")
                nxt = None
            delay = SAFETY_TICK if nxt is None else max(0.0, min(nxt - now(), SAFETY_TICK))
            with trio.move_on_after(delay):
                await self._changed.wait()

    async def count_pending(self, agent: str) -> int:
        return await self.store.run(sql.count_pending, agent)

    async def pending_counts(self) -> dict[str, int]:
        return await self.store.run(sql.pending_counts)

    async def open_rows(self, agent: str | None = None) -> list[ReminderRow]:
        return await self.store.run(sql.open_rows, agent)

    async def retry(self, rid: int) -> ReminderRow:
        row = await self.store.run(sql.retry, rid, now())
        if row is None:
            raise NotFound(f"no pending or parked reminder with id {rid}")
        self._changed.set()
        return row

    async def get(self, rid: int) -> ReminderRow | None:
        return await self.store.run(sql.get, rid)

    async def cancel(self, rid: int) -> None:
        if not await self.store.run(sql.delete_open, rid):
            raise NotFound(f"no pending or parked reminder with id {rid}")

    async def vacuum(self, retention_seconds: float) -> int:
        return await self.store.run(sql.vacuum, now() - retention_seconds)

"""Approvals: requests only the operator may grant (queues.md).

Rules kept here:
- `approve` runs the kind's action at once and records `approved` or `failed` (the note says
  why); a kind without an action fails with a clear note, never a crash;
- approving or denying anything but a pending approval is a `conflict` and runs nothing; an
  approval whose action is running is not pending for anyone else;
- the requester (the manager) may withdraw its own pending request (`cancelled`);
- every resolution is published (`approval_resolved`) and told to the manager as a helper event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from hive_core.clock import now
from hive_core.services.broker import MANAGER, Broker
from hive_core.services.events import EventChannel
from hive_core.store import approvals as sql
from hive_core.store.approvals import ApprovalRow
from hive_core.store.db import Store
from hive_wire import events as ev
from hive_wire.errors import BadRequest, Conflict, Forbidden, NotFound, WireError
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)


class NotNow(Conflict):
    """An approval's action cannot run at the moment (its agent is busy): the approval stays
    pending and the caller is told `conflict`, to approve again later."""


KINDS = (
    "apply_commit",
    "spawn",
    "raise_budget",
    "init_config",
    "update_meta_inputs",
    "schedule_prompt",
    "merge_config_pr",
)
NOTE_MAX = 4096
DESCRIPTION_MAX = 4096

# An action returns extra fields for the manager's helper event (`sha`, `tag`), or raises.
Action = Callable[[ApprovalRow], Awaitable[dict[str, str]]]


class Approvals:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        broker: Broker,
        actions: dict[str, Action],
        on_deny: dict[str, Callable[[ApprovalRow], Awaitable[None]]],
    ) -> None:
        self.store = store
        self.events = events
        self.broker = broker
        self.actions = actions  # what approving a kind runs
        # What a denial of a kind records besides the row (apply_commit: a `denied/` tag).
        self.on_deny = on_deny
        self._running: set[int] = set()

    async def request(
        self,
        kind: str,
        agent: str,
        requested_by: str,
        *,
        commit_ref: str = "",
        fetched_sha: str | None = None,
        description: str | None = None,
    ) -> ApprovalRow:
        if description is not None and len(description) > DESCRIPTION_MAX:
            raise BadRequest(f"description: longer than {DESCRIPTION_MAX} characters")
        row: ApprovalRow = await self.store.run(
            sql.insert, agent, kind, commit_ref, fetched_sha, description, requested_by, now()
        )
        self.events.publish(ev.ApprovalAdded(id=row.id, agent=agent, approval_kind=kind))
        return row

    async def request_spawn(
        self, name: str, requested_by: str, description: str | None, exists: bool
    ) -> ApprovalRow:
        check_agent_name(name)
        if exists:
            raise Conflict(f'agent "{name}" already exists')
        pending = await self.store.run(sql.pending_for, None)
        if any(r.kind == "spawn" and r.agent == name for r in pending):
            raise Conflict(f'a spawn of "{name}" is already waiting for approval')
        return await self.request("spawn", name, requested_by, description=description)

    async def get(self, approval_id: int) -> ApprovalRow:
        row: ApprovalRow | None = await self.store.run(sql.get, approval_id)
        if row is None:
            raise NotFound(f"no approval with id {approval_id}")
        return row

    async def listing(self) -> list[ApprovalRow]:
        return await self.store.run(sql.listing)

    async def _pending(self, approval_id: int) -> ApprovalRow:
        row = await self.get(approval_id)
        if row.status != "pending" or approval_id in self._running:
            status = "being approved" if approval_id in self._running else row.status
            raise Conflict(f"approval {approval_id} is already {status}")
        return row

    async def approve(self, approval_id: int) -> ApprovalRow:
        row = await self._pending(approval_id)
        self._running.add(approval_id)
        extra: dict[str, str] = {}
        try:
            action = self.actions.get(row.kind)
            if action is None:
                status, note = "failed", f"hive-core cannot carry out {row.kind!r} approvals yet"
            else:
                try:
                    extra = await action(row)
                    status, note = "approved", None
                except NotNow:
                    raise  # nothing was done: still pending
                except WireError as e:
                    status, note = "failed", e.message
                except Exception as e:
                    log.exception("approval action failed id=%d kind=%s", row.id, row.kind)
                    status, note = "failed", f"internal error: {type(e).__name__}"
            resolved = await self.store.run(sql.resolve, approval_id, status, note, now())
        finally:
            self._running.discard(approval_id)
        assert resolved is not None  # the row was pending and ours (`_running`)
        await self._resolved(resolved, **extra)
        return resolved

    async def deny(self, approval_id: int, note: str | None) -> ApprovalRow:
        if note is not None and len(note) > NOTE_MAX:
            raise BadRequest(f"note: longer than {NOTE_MAX} characters")
        await self._pending(approval_id)
        resolved = await self.store.run(sql.resolve, approval_id, "denied", note, now())
        if resolved is None:
            raise Conflict(f"approval {approval_id} is no longer pending")
        hook = self.on_deny.get(resolved.kind)
        if hook is not None:
            try:
                await hook(resolved)
            except Exception:
                log.exception("recording the denial failed id=%d", approval_id)
        await self._resolved(resolved)
        return resolved

    async def cancel(self, approval_id: int, by: str) -> ApprovalRow:
        row = await self._pending(approval_id)
        if by != MANAGER and row.requested_by != by:
            raise Forbidden(f"approval {approval_id} was not requested by {by}")
        resolved = await self.store.run(
            sql.resolve, approval_id, "cancelled", f"withdrawn by {by}", now()
        )
        if resolved is None:
            raise Conflict(f"approval {approval_id} is no longer pending")
        await self._resolved(resolved)
        return resolved

    async def _resolved(self, row: ApprovalRow, **extra: str) -> None:
        self.events.publish(
            ev.ApprovalResolved(
                id=row.id, agent=row.agent, approval_kind=row.kind, status=row.status, note=row.note
            )
        )
        await self.broker.notify(
            MANAGER,
            "approval_resolved",
            id=row.id,
            agent=row.agent,
            status=row.status,
            sha=extra.get("sha"),
            tag=extra.get("tag"),
            note=row.note,
        )

    async def pending_for(self, agent: str | None) -> list[ApprovalRow]:
        return await self.store.run(sql.pending_for, agent)

    async def vacuum(self, retention_seconds: float) -> int:
        return await self.store.run(sql.vacuum, now() - retention_seconds)

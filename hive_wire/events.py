"""The dashboard events (dashboard.md, "The event channel"): one frozen class per kind.

Rules kept here:
- a service publishes an instance; the channel stamps it with `seq`, `kind` and `at` and encodes
  it once: `{"seq": N, "kind": "...", "at": "<RFC 3339>", ...its fields in attribute order}`;
- fields follow the wire's rules (absent optional fields left out; `from_` is `from`);
- `KINDS` maps every kind to its class, so a client can decode what it reads.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .responses import AgentStatusRow


@attrs.frozen(kw_only=True)
class Sent:
    kind: ClassVar[str] = "sent"
    id: int
    from_: str
    to: str
    preview: str
    size: int
    in_reply_to: int | None = None


@attrs.frozen(kw_only=True)
class Delivered:
    kind: ClassVar[str] = "delivered"
    to: str
    ids: list[int]


@attrs.frozen(kw_only=True)
class Acked:
    kind: ClassVar[str] = "acked"
    to: str
    ids: list[int]


@attrs.frozen(kw_only=True)
class Requeued:
    kind: ClassVar[str] = "requeued"
    to: str
    ids: list[int]


@attrs.frozen(kw_only=True)
class MessageDead:
    kind: ClassVar[str] = "message_dead"
    id: int
    to: str
    from_: str
    deliveries: int


@attrs.frozen(kw_only=True)
class ApprovalAdded:
    kind: ClassVar[str] = "approval_added"
    id: int
    agent: str
    approval_kind: str


@attrs.frozen(kw_only=True)
class ApprovalResolved:
    kind: ClassVar[str] = "approval_resolved"
    id: int
    agent: str
    approval_kind: str
    status: str
    note: str | None = None


@attrs.frozen(kw_only=True)
class QuestionAdded:
    kind: ClassVar[str] = "question_added"
    id: int
    asker: str
    to: str
    question: str


@attrs.frozen(kw_only=True)
class QuestionResolved:
    kind: ClassVar[str] = "question_resolved"
    id: int
    answer: str
    answerer: str


@attrs.frozen(kw_only=True)
class ReminderAdded:
    kind: ClassVar[str] = "reminder_added"
    id: int
    agent: str
    due_at: float


@attrs.frozen(kw_only=True)
class ReminderFired:
    kind: ClassVar[str] = "reminder_fired"
    id: int
    agent: str
    message_id: int


@attrs.frozen(kw_only=True)
class ReminderFailed:
    kind: ClassVar[str] = "reminder_failed"
    id: int
    agent: str
    error: str
    attempts: int


@attrs.frozen(kw_only=True)
class TransientSet:
    kind: ClassVar[str] = "transient_set"
    agent: str
    transient: str


@attrs.frozen(kw_only=True)
class TransientCleared:
    kind: ClassVar[str] = "transient_cleared"
    agent: str
    transient: str


@attrs.frozen(kw_only=True)
class ContainerStateChanged:
    kind: ClassVar[str] = "container_state_changed"
    agent: str
    row: AgentStatusRow


@attrs.frozen(kw_only=True)
class ContainerRemoved:
    kind: ClassVar[str] = "container_removed"
    agent: str


@attrs.frozen(kw_only=True)
class ContainerCrash:
    kind: ClassVar[str] = "container_crash"
    agent: str
    note: str | None = None
    requeued: int = 0


@attrs.frozen(kw_only=True)
class RestartGivenUp:
    kind: ClassVar[str] = "restart_given_up"
    agent: str
    crashes: int


@attrs.frozen(kw_only=True)
class TombstoneAdded:
    kind: ClassVar[str] = "tombstone_added"
    agent: str


@attrs.frozen(kw_only=True)
class TombstoneRemoved:
    kind: ClassVar[str] = "tombstone_removed"
    agent: str


@attrs.frozen(kw_only=True)
class AgentActivity:
    """`agent` is the reporting agent, or a hook session's `source`; `activity` is the checked
    event (agent.md, "Activity")."""

    kind: ClassVar[str] = "agent_activity"
    agent: str
    activity: dict[str, Any]


@attrs.frozen(kw_only=True)
class BudgetWarning:
    kind: ClassVar[str] = "budget_warning"
    agent: str
    period: str
    spent_usd: float
    limit_usd: float | None = None
    spent_tokens: int = 0
    limit_tokens: int | None = None
    paused: bool = False


@attrs.frozen(kw_only=True)
class Lagged:
    """Not published: what a subscriber reads when it fell behind (re-fetch the snapshot)."""

    kind: ClassVar[str] = "lagged"


DashboardEvent = (
    Sent
    | Delivered
    | Acked
    | Requeued
    | MessageDead
    | ApprovalAdded
    | ApprovalResolved
    | QuestionAdded
    | QuestionResolved
    | ReminderAdded
    | ReminderFired
    | ReminderFailed
    | TransientSet
    | TransientCleared
    | ContainerStateChanged
    | ContainerRemoved
    | ContainerCrash
    | RestartGivenUp
    | TombstoneAdded
    | TombstoneRemoved
    | AgentActivity
    | BudgetWarning
)

KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (
        Sent,
        Delivered,
        Acked,
        Requeued,
        MessageDead,
        ApprovalAdded,
        ApprovalResolved,
        QuestionAdded,
        QuestionResolved,
        ReminderAdded,
        ReminderFired,
        ReminderFailed,
        TransientSet,
        TransientCleared,
        ContainerStateChanged,
        ContainerRemoved,
        ContainerCrash,
        RestartGivenUp,
        TombstoneAdded,
        TombstoneRemoved,
        AgentActivity,
        BudgetWarning,
        Lagged,
    )
}

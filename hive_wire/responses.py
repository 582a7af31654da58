"""Every result shape of wire.md as a frozen attrs class.

Rules kept here:
- attribute order is key order on the wire (hyperhive's order where hyperhive has the shape);
- an optional field defaults to `None` and is left out when absent, never sent as `null`;
- list fields have no default, so an empty list is always written as `[]`;
- timestamps are RFC 3339 UTC strings (`2026-09-07T12:34:56Z`).
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Ok:
    pass


@attrs.frozen(kw_only=True)
class AgentList:
    agents: list[str]


@attrs.frozen(kw_only=True)
class AgentStatusRow:
    name: str
    running: bool
    failed: bool
    needs_update: bool
    needs_login: bool
    deployed_sha: str | None = None
    pending_reminders: int
    paused: bool
    parent: str | None = None
    active_model: str | None = None
    status_text: str | None = None
    status_set_at: str | None = None
    url: str | None = None
    transient: str | None = None
    last_turn_at: str | None = None
    exit_status: str | None = None  # hive-core: how its process last ended, if it crashed
    # hive-core's cost keys (agent.md "Costs and budgets"): today's cost (UTC), the last turn's
    # prompt size, the budget, and why it is paused when its budget paused it.
    cost_usd: float | None = None
    context_tokens: int | None = None
    budget: Budget | None = None
    paused_reason: str | None = None


@attrs.frozen(kw_only=True)
class ManagerStatus:
    """hive-core's own: the manager's process and queue (its messages wait with or without a
    process to read them)."""

    running: bool
    unread: int
    exit_status: str | None = None


@attrs.frozen(kw_only=True)
class AgentStatuses:
    agent_statuses: list[AgentStatusRow]
    manager: ManagerStatus | None = None  # hive-core: asked for with `with_manager`


@attrs.frozen(kw_only=True)
class UrlMap:
    domain: str | None = None
    home: str | None = None
    forge: str | None = None
    matrix: str | None = None


@attrs.frozen(kw_only=True)
class Urls:
    urls: UrlMap


@attrs.frozen(kw_only=True)
class Approval:
    id: int
    agent: str
    kind: str
    commit_ref: str
    fetched_sha: str | None = None
    requested_at: str
    status: str
    resolved_at: str | None = None
    note: str | None = None
    description: str | None = None


@attrs.frozen(kw_only=True)
class Approvals:
    approvals: list[Approval]


@attrs.frozen(kw_only=True)
class Whoami:
    name: str
    role: str


@attrs.frozen(kw_only=True)
class Sent:
    """`send`: the new message's id; a broadcast (`*`) also lists every copy's id."""

    id: int | None = None
    ids: list[int] | None = None


@attrs.frozen(kw_only=True)
class IdResult:
    id: int


@attrs.frozen(kw_only=True)
class DeliveredMessage:
    id: int
    from_: str
    body: str
    sent_at: str
    redelivered: bool
    in_reply_to: int | None = None


@attrs.frozen(kw_only=True)
class Messages:
    messages: list[DeliveredMessage]


@attrs.frozen(kw_only=True)
class DeadLetter:
    id: int
    from_: str
    to: str
    body: str
    sent_at: str
    deliveries: int
    dead_at: str
    in_reply_to: int | None = None


@attrs.frozen(kw_only=True)
class DeadLetters:
    messages: list[DeadLetter]


@attrs.frozen(kw_only=True)
class Acked:
    acked: int
    ignored: int | None = None


@attrs.frozen(kw_only=True)
class Requeued:
    requeued: int


@attrs.frozen(kw_only=True)
class Unread:
    unread: int


@attrs.frozen(kw_only=True)
class Count:
    count: int


@attrs.frozen(kw_only=True)
class Lines:
    lines: list[str]


@attrs.frozen(kw_only=True)
class Subscribed:
    seq: int


@attrs.frozen(kw_only=True)
class EventFrame:
    """One dashboard event on a `subscribe_events` connection."""

    event: dict[str, Any]


@attrs.frozen(kw_only=True)
class Diff:
    """`diff`: the proposal's commit subject, its diffstat and the diff itself."""

    subject: str
    stat: str
    diff: str


@attrs.frozen(kw_only=True)
class Stats:
    """hive-core's own: store counters, for tests and benchmarks."""

    transactions: int
    operations: int
    agents: int
    pending_messages: int


@attrs.frozen(kw_only=True)
class Question:
    id: int
    asker: str
    to: str
    question: str
    options: list[str] | None = None
    multi: bool
    asked_at: str
    deadline: str | None = None
    answer: str | None = None
    answerer: str | None = None
    answered_at: str | None = None


@attrs.frozen(kw_only=True)
class Questions:
    questions: list[Question]


@attrs.frozen(kw_only=True)
class Reminder:
    id: int
    agent: str
    message: str
    file_path: str | None = None
    due_at: str
    status: str
    attempts: int
    last_error: str | None = None


@attrs.frozen(kw_only=True)
class Reminders:
    reminders: list[Reminder]


@attrs.frozen(kw_only=True)
class LooseEnd:
    """One open item of an agent: `kind` is `approval`, `question` or `reminder`."""

    kind: str
    id: int
    agent: str
    status: str
    summary: str
    since: str


@attrs.frozen(kw_only=True)
class LooseEnds:
    loose_ends: list[LooseEnd]


@attrs.frozen(kw_only=True)
class Tombstone:
    name: str
    destroyed_at: str


@attrs.frozen(kw_only=True)
class Tombstones:
    tombstones: list[Tombstone]


@attrs.frozen(kw_only=True)
class Accepted:
    accepted: int


@attrs.frozen(kw_only=True)
class Usage:
    """Counters of a set of turns."""

    turns: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float


@attrs.frozen(kw_only=True)
class Budget:
    period: str  # "day" | "month"
    limit_usd: float | None = None
    limit_tokens: int | None = None
    spent_usd: float
    spent_tokens: int
    paused: bool


@attrs.frozen(kw_only=True)
class AgentCost:
    agent: str
    turns: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float
    last_24h: Usage
    last_7d: Usage
    last_30d: Usage
    budget: Budget | None = None


@attrs.frozen(kw_only=True)
class ThreadCost:
    thread: int
    agents: list[str]
    turns: int
    cost_usd: float
    first_body: str


@attrs.frozen(kw_only=True)
class Costs:
    agents: list[AgentCost]
    threads: list[ThreadCost] | None = None

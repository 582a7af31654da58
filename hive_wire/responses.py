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

frozen = attrs.frozen(kw_only=True)


@frozen
class Ok:
    pass


@frozen
class AgentList:
    agents: list[str]


@frozen
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


@frozen
class AgentStatuses:
    agent_statuses: list[AgentStatusRow]


@frozen
class UrlMap:
    domain: str | None = None
    home: str | None = None
    forge: str | None = None
    matrix: str | None = None


@frozen
class Urls:
    urls: UrlMap


@frozen
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


@frozen
class Approvals:
    approvals: list[Approval]


@frozen
class Whoami:
    name: str
    role: str


@frozen
class Sent:
    """`send`: the new message's id; a broadcast (`*`) also lists every copy's id."""

    id: int | None = None
    ids: list[int] | None = None


@frozen
class IdResult:
    id: int


@frozen
class DeliveredMessage:
    id: int
    from_: str
    body: str
    sent_at: str
    redelivered: bool
    in_reply_to: int | None = None


@frozen
class Messages:
    messages: list[DeliveredMessage]


@frozen
class DeadLetter:
    id: int
    from_: str
    to: str
    body: str
    sent_at: str
    deliveries: int
    dead_at: str
    in_reply_to: int | None = None


@frozen
class DeadLetters:
    messages: list[DeadLetter]


@frozen
class Acked:
    acked: int
    ignored: int | None = None


@frozen
class Requeued:
    requeued: int


@frozen
class Unread:
    unread: int


@frozen
class Count:
    count: int


@frozen
class Lines:
    lines: list[str]


@frozen
class Subscribed:
    seq: int


@frozen
class EventFrame:
    """One dashboard event on a `subscribe_events` connection."""

    event: dict[str, Any]


@frozen
class Diff:
    """`diff`: the proposal's commit subject, its diffstat and the diff itself."""

    subject: str
    stat: str
    diff: str


@frozen
class Stats:
    """hive-core's own: store counters, for tests and benchmarks."""

    transactions: int
    operations: int
    agents: int
    pending_messages: int


@frozen
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


@frozen
class Questions:
    questions: list[Question]


@frozen
class Reminder:
    id: int
    agent: str
    message: str
    file_path: str | None = None
    due_at: str
    status: str
    attempts: int
    last_error: str | None = None


@frozen
class Reminders:
    reminders: list[Reminder]


@frozen
class LooseEnd:
    """One open item of an agent: `kind` is `approval`, `question` or `reminder`."""

    kind: str
    id: int
    agent: str
    status: str
    summary: str
    since: str


@frozen
class LooseEnds:
    loose_ends: list[LooseEnd]


@frozen
class Tombstone:
    name: str
    destroyed_at: str


@frozen
class Tombstones:
    tombstones: list[Tombstone]

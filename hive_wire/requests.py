"""Every request of wire.md as a frozen attrs class, and the table from verb to class.

Rules kept here:
- one class per verb; the verb is the `cmd` key and is not an attribute;
- a field that is optional on the wire has a default (`None`, or the documented default);
- one class serves a verb on every socket where it exists (`start` takes `scope` on the host
  socket and `name` on the manager's); which fields a socket requires is the daemon's business;
- attributes that are Python keywords end in `_` (`from_`) and are renamed on the wire.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Scope:
    agent_names: list[str] | None = None
    agents: bool | None = None
    # hyperhive's other flags: accepted and ignored.
    ci: bool | None = None
    forge: bool | None = None
    gateway: bool | None = None
    matrix: bool | None = None


# --- host socket (hyperhive's verbs) -------------------------------------------------------
@attrs.frozen(kw_only=True)
class List:
    pass


@attrs.frozen(kw_only=True)
class AgentStatus:
    # hive-core: also answer the manager's queue (hyperhive's clients never ask, and get
    # hyperhive's exact answer).
    with_manager: bool = False


@attrs.frozen(kw_only=True)
class SubscribeAgentStatus:
    pass


@attrs.frozen(kw_only=True)
class SetPaused:
    name: str
    paused: bool


@attrs.frozen(kw_only=True)
class Restart:
    name: str | None = None
    scope: Scope | None = None  # hive-core: as `start`/`stop` (docs/wire.md)
    settle_seconds: float | None = None  # hive-core: as `spawn`'s, for every agent of the scope


@attrs.frozen(kw_only=True)
class Start:
    scope: Scope | None = None
    name: str | None = None
    settle_seconds: float | None = None  # hive-core: as `spawn`'s, for every agent of the scope


@attrs.frozen(kw_only=True)
class Stop:
    scope: Scope | None = None
    name: str | None = None
    graceful: bool = True


@attrs.frozen(kw_only=True)
class Approve:
    id: int


@attrs.frozen(kw_only=True)
class Deny:
    id: int
    note: str | None = None


@attrs.frozen(kw_only=True)
class Urls:
    pass


@attrs.frozen(kw_only=True)
class Pending:
    pass


# --- host socket (hive-core's further verbs) -------------------------------------------------
@attrs.frozen(kw_only=True)
class Spawn:
    name: str
    command: list[str] | None = None
    # hive-core: wait up to this long (at most 10 s) for the new process to stay up; one that
    # exits in that time makes the spawn answer `unavailable` with its exit status.
    settle_seconds: float | None = None


@attrs.frozen(kw_only=True)
class RequestSpawn:
    name: str
    description: str | None = None


@attrs.frozen(kw_only=True)
class Kill:
    name: str | None = None
    scope: Scope | None = None  # hive-core: as `start`/`stop` (docs/wire.md)


@attrs.frozen(kw_only=True)
class Rebuild:
    name: str | None = None
    scope: Scope | None = None  # hive-core: as `start`/`stop` (docs/wire.md)


@attrs.frozen(kw_only=True)
class Destroy:
    name: str
    purge: bool = False


@attrs.frozen(kw_only=True)
class Tombstones:
    pass


@attrs.frozen(kw_only=True)
class PurgeTombstone:
    name: str


@attrs.frozen(kw_only=True)
class Questions:
    pass


@attrs.frozen(kw_only=True)
class Answer:
    id: int
    answer: str


@attrs.frozen(kw_only=True)
class CancelQuestion:
    id: int


@attrs.frozen(kw_only=True)
class Send:
    to: str
    body: str
    in_reply_to: int | None = None


@attrs.frozen(kw_only=True)
class Inbox:
    max: int = 1
    wait_seconds: int = 0


@attrs.frozen(kw_only=True)
class DeadLetters:
    pass


@attrs.frozen(kw_only=True)
class RequeueDead:
    id: int


@attrs.frozen(kw_only=True)
class DropDead:
    id: int


@attrs.frozen(kw_only=True)
class Logs:
    name: str
    lines: int = 100


@attrs.frozen(kw_only=True)
class Reminders:
    pass


@attrs.frozen(kw_only=True)
class RetryReminder:
    id: int


@attrs.frozen(kw_only=True)
class SubscribeEvents:
    since_seq: int | None = None


@attrs.frozen(kw_only=True)
class Stats:
    pass


@attrs.frozen(kw_only=True)
class Diff:
    """hive-core's own: an `apply_commit` approval's change against the deployed config."""

    id: int


# --- agent and manager sockets ----------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Whoami:
    pass


@attrs.frozen(kw_only=True)
class Recv:
    wait_seconds: int = 0
    max: int = 1


@attrs.frozen(kw_only=True)
class AckTurn:
    ids: list[int] | None = None


@attrs.frozen(kw_only=True)
class RequeueInflight:
    pass


@attrs.frozen(kw_only=True)
class Status:
    pass


@attrs.frozen(kw_only=True)
class Recent:
    limit: int = 20


@attrs.frozen(kw_only=True)
class Wake:
    from_: str
    body: str


@attrs.frozen(kw_only=True)
class Ask:
    question: str
    options: list[str] | None = None
    multi: bool = False
    ttl_seconds: int | None = None
    to: str | None = None


@attrs.frozen(kw_only=True)
class Remind:
    message: str
    delay_seconds: int | None = None
    at_unix_timestamp: int | None = None
    file_path: str | None = None


@attrs.frozen(kw_only=True)
class GetLooseEnds:
    pass


@attrs.frozen(kw_only=True)
class CancelLooseEnd:
    kind: str
    id: int


@attrs.frozen(kw_only=True)
class CountPendingReminders:
    pass


@attrs.frozen(kw_only=True)
class SetStatus:
    text: str


@attrs.frozen(kw_only=True)
class RequestApplyCommit:
    agent: str
    commit_ref: str
    description: str | None = None


@attrs.frozen(kw_only=True)
class Activity:
    """What an agent's turn is doing (agent socket), or an operator's own Claude Code session
    through `hive-core hook` (host socket, with `source`). Each event is an object with `kind`."""

    events: list[dict[str, Any]]
    source: str | None = None


@attrs.frozen(kw_only=True)
class Costs:
    agent: str | None = None
    since: str | None = None
    by_thread: bool = False


VERBS: dict[str, type] = {
    "list": List,
    "agent_status": AgentStatus,
    "subscribe_agent_status": SubscribeAgentStatus,
    "set_paused": SetPaused,
    "restart": Restart,
    "start": Start,
    "stop": Stop,
    "approve": Approve,
    "deny": Deny,
    "urls": Urls,
    "pending": Pending,
    "spawn": Spawn,
    "request_spawn": RequestSpawn,
    "kill": Kill,
    "rebuild": Rebuild,
    "destroy": Destroy,
    "tombstones": Tombstones,
    "purge_tombstone": PurgeTombstone,
    "questions": Questions,
    "answer": Answer,
    "cancel_question": CancelQuestion,
    "send": Send,
    "inbox": Inbox,
    "dead_letters": DeadLetters,
    "requeue_dead": RequeueDead,
    "drop_dead": DropDead,
    "logs": Logs,
    "reminders": Reminders,
    "retry_reminder": RetryReminder,
    "subscribe_events": SubscribeEvents,
    "stats": Stats,
    "diff": Diff,
    "whoami": Whoami,
    "recv": Recv,
    "ack_turn": AckTurn,
    "requeue_inflight": RequeueInflight,
    "status": Status,
    "recent": Recent,
    "wake": Wake,
    "ask": Ask,
    "remind": Remind,
    "get_loose_ends": GetLooseEnds,
    "cancel_loose_end": CancelLooseEnd,
    "count_pending_reminders": CountPendingReminders,
    "set_status": SetStatus,
    "request_apply_commit": RequestApplyCommit,
    "activity": Activity,
    "costs": Costs,
}

CMD_OF: dict[type, str] = {cls: cmd for cmd, cls in VERBS.items()}

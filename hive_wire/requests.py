"""Every request of wire.md as a frozen attrs class, and the table from verb to class.

Rules kept here:
- one class per verb; the verb is the `cmd` key and is not an attribute;
- a field that is optional on the wire has a default (`None`, or the documented default);
- one class serves a verb on every socket where it exists (`start` takes `scope` on the host
  socket and `name` on the manager's); which fields a socket requires is the daemon's business;
- attributes that are Python keywords end in `_` (`from_`) and are renamed on the wire.
"""

from __future__ import annotations

import attrs

frozen = attrs.frozen(kw_only=True)


@frozen
class Scope:
    agent_names: list[str] | None = None
    agents: bool | None = None
    # hyperhive's other flags: accepted and ignored.
    ci: bool | None = None
    forge: bool | None = None
    gateway: bool | None = None
    matrix: bool | None = None


# --- host socket (hyperhive's verbs) -------------------------------------------------------
@frozen
class List:
    pass


@frozen
class AgentStatus:
    pass


@frozen
class SubscribeAgentStatus:
    pass


@frozen
class SetPaused:
    name: str
    paused: bool


@frozen
class Restart:
    name: str


@frozen
class Start:
    scope: Scope | None = None
    name: str | None = None


@frozen
class Stop:
    scope: Scope | None = None
    name: str | None = None
    graceful: bool = True


@frozen
class Approve:
    id: int


@frozen
class Deny:
    id: int
    note: str | None = None


@frozen
class Urls:
    pass


@frozen
class Pending:
    pass


# --- host socket (hive-core's further verbs) -------------------------------------------------
@frozen
class Spawn:
    name: str
    command: list[str] | None = None


@frozen
class RequestSpawn:
    name: str
    description: str | None = None


@frozen
class Kill:
    name: str


@frozen
class Rebuild:
    name: str


@frozen
class Destroy:
    name: str
    purge: bool = False


@frozen
class Tombstones:
    pass


@frozen
class PurgeTombstone:
    name: str


@frozen
class Questions:
    pass


@frozen
class Answer:
    id: int
    answer: str


@frozen
class CancelQuestion:
    id: int


@frozen
class Send:
    to: str
    body: str
    in_reply_to: int | None = None


@frozen
class Inbox:
    max: int = 1
    wait_seconds: int = 0


@frozen
class DeadLetters:
    pass


@frozen
class RequeueDead:
    id: int


@frozen
class DropDead:
    id: int


@frozen
class Logs:
    name: str
    lines: int = 100


@frozen
class Reminders:
    pass


@frozen
class RetryReminder:
    id: int


@frozen
class SubscribeEvents:
    since_seq: int | None = None


@frozen
class Stats:
    pass


@frozen
class Diff:
    """hive-core's own: an `apply_commit` approval's change against the deployed config."""

    id: int


# --- agent and manager sockets ----------------------------------------------------------------
@frozen
class Whoami:
    pass


@frozen
class Recv:
    wait_seconds: int = 0
    max: int = 1


@frozen
class AckTurn:
    ids: list[int] | None = None


@frozen
class RequeueInflight:
    pass


@frozen
class Status:
    pass


@frozen
class Recent:
    limit: int = 20


@frozen
class Wake:
    from_: str
    body: str


@frozen
class Ask:
    question: str
    options: list[str] | None = None
    multi: bool = False
    ttl_seconds: int | None = None
    to: str | None = None


@frozen
class Remind:
    message: str
    delay_seconds: int | None = None
    at_unix_timestamp: int | None = None
    file_path: str | None = None


@frozen
class GetLooseEnds:
    pass


@frozen
class CancelLooseEnd:
    kind: str
    id: int


@frozen
class CountPendingReminders:
    pass


@frozen
class SetStatus:
    text: str


@frozen
class RequestApplyCommit:
    agent: str
    commit_ref: str
    description: str | None = None


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
}

CMD_OF: dict[type, str] = {cls: cmd for cmd, cls in VERBS.items()}

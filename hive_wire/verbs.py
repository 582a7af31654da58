"""The verb table: every verb of wire.md with its request class, its answer class, the sockets
that serve it, and how it answers. Every surface is generated from it: the socket dispatcher,
the dashboard's `POST /api/VERB` routes, the agent's MCP tools and the CLI's generic path.

Rules kept here:
- a verb is served on exactly the sockets named in its row (`host`, `manager`, `agent`); any
  other socket answers `unknown_command`;
- `mode` says how the verb answers: `call` (one answer), `poll` (one answer, after popping
  messages, possibly long-polling: never replayed, never served as a stateless HTTP POST),
  `feed` (an ack, then one answer per item: a subscription);
- `summary` is one sentence for a human or a model (MCP tool descriptions, `--help`).
"""

from __future__ import annotations

from typing import Literal

import attrs

from . import requests as rq
from . import responses as rs

Socket = Literal["host", "manager", "agent"]
Mode = Literal["call", "poll", "feed"]

HOST: frozenset[Socket] = frozenset({"host"})
AGENTS: frozenset[Socket] = frozenset({"manager", "agent"})  # every agent socket, the manager's too
MANAGER: frozenset[Socket] = frozenset({"manager"})
ALL: frozenset[Socket] = frozenset({"host", "manager", "agent"})


@attrs.frozen(kw_only=True)
class Verb:
    name: str
    request: type
    answer: type
    sockets: frozenset[Socket]
    summary: str
    mode: Mode = "call"


def _table(*verbs: Verb) -> dict[str, Verb]:
    table = {v.name: v for v in verbs}
    assert len(table) == len(verbs), "a verb is listed twice"
    return table


VERBS: dict[str, Verb] = _table(
    # --- messages ---------------------------------------------------------------------------
    Verb(
        name="send",
        request=rq.Send,
        answer=rs.Sent,
        sockets=ALL,
        summary="Send a message to an agent, `manager`, `operator`, or `*` (every agent).",
    ),
    Verb(
        name="recv",
        request=rq.Recv,
        answer=rs.Messages,
        sockets=AGENTS,
        mode="poll",
        summary="Pop up to `max` messages from your inbox, waiting up to `wait_seconds` for "
        "the first.",
    ),
    Verb(
        name="ack_turn",
        request=rq.AckTurn,
        answer=rs.Acked,
        sockets=AGENTS,
        summary="Acknowledge popped messages (all in flight, or exactly `ids`) once handled.",
    ),
    Verb(
        name="requeue_inflight",
        request=rq.RequeueInflight,
        answer=rs.Requeued,
        sockets=AGENTS,
        summary="Put every popped but unacknowledged message back.",
    ),
    Verb(
        name="status",
        request=rq.Status,
        answer=rs.Unread,
        sockets=AGENTS,
        summary="How many messages wait in your inbox.",
    ),
    Verb(
        name="recent",
        request=rq.Recent,
        answer=rs.Messages,
        sockets=AGENTS,
        summary="Your last delivered messages.",
    ),
    Verb(
        name="wake",
        request=rq.Wake,
        answer=rs.IdResult,
        sockets=AGENTS,
        summary="Put a message into your own inbox under any sender label.",
    ),
    Verb(
        name="inbox",
        request=rq.Inbox,
        answer=rs.Messages,
        sockets=HOST,
        mode="poll",
        summary="Pop the operator's messages (acknowledged once answered).",
    ),
    Verb(
        name="dead_letters",
        request=rq.DeadLetters,
        answer=rs.DeadLetters,
        sockets=HOST,
        summary="Messages set aside after too many deliveries.",
    ),
    Verb(
        name="requeue_dead",
        request=rq.RequeueDead,
        answer=rs.Ok,
        sockets=HOST,
        summary="Give a dead message another round of deliveries.",
    ),
    Verb(
        name="drop_dead",
        request=rq.DropDead,
        answer=rs.Ok,
        sockets=HOST,
        summary="Delete a dead message.",
    ),
    # --- who and what -------------------------------------------------------------------------
    Verb(
        name="whoami",
        request=rq.Whoami,
        answer=rs.Whoami,
        sockets=AGENTS,
        summary="Your name and role in the hive.",
    ),
    Verb(
        name="set_status",
        request=rq.SetStatus,
        answer=rs.Ok,
        sockets=AGENTS,
        summary="Set the one-line status text the operator sees for you.",
    ),
    Verb(
        name="list",
        request=rq.List,
        answer=rs.AgentList,
        sockets=HOST | MANAGER,
        summary="The names of every agent.",
    ),
    Verb(
        name="agent_status",
        request=rq.AgentStatus,
        answer=rs.AgentStatuses,
        sockets=HOST | MANAGER,
        summary="One status row per agent.",
    ),
    Verb(
        name="subscribe_agent_status",
        request=rq.SubscribeAgentStatus,
        answer=rs.AgentStatuses,
        sockets=HOST,
        mode="feed",
        summary="A status row each time an agent changes.",
    ),
    Verb(
        name="urls",
        request=rq.Urls,
        answer=rs.Urls,
        sockets=HOST,
        summary="Where the hive's web parts are.",
    ),
    Verb(
        name="stats",
        request=rq.Stats,
        answer=rs.Stats,
        sockets=HOST,
        summary="Store and broker counters.",
    ),
    Verb(
        name="subscribe_events",
        request=rq.SubscribeEvents,
        answer=rs.EventFrame,
        sockets=HOST,
        mode="feed",
        summary="Every dashboard event, live.",
    ),
    Verb(
        name="activity",
        request=rq.Activity,
        answer=rs.Accepted,
        sockets=ALL,
        summary="Report what a turn is doing (tool calls, sub-agents, turn end).",
    ),
    Verb(
        name="costs",
        request=rq.Costs,
        answer=rs.Costs,
        sockets=HOST,
        summary="What each agent (and, with `by_thread`, each thread) cost: turns, tokens, "
        "dollars, budgets.",
    ),
    # --- lifecycle ----------------------------------------------------------------------------
    Verb(
        name="spawn",
        request=rq.Spawn,
        answer=rs.Ok,
        sockets=HOST,
        summary="Create and start an agent.",
    ),
    Verb(
        name="request_spawn",
        request=rq.RequestSpawn,
        answer=rs.IdResult,
        sockets=HOST | MANAGER,
        summary="Ask the operator to approve a new agent.",
    ),
    Verb(
        name="start",
        request=rq.Start,
        answer=rs.Ok,
        sockets=HOST | MANAGER,
        summary="Start an agent (or a scope of agents).",
    ),
    Verb(
        name="stop",
        request=rq.Stop,
        answer=rs.Ok,
        sockets=HOST,
        summary="Stop an agent (or a scope of agents).",
    ),
    Verb(
        name="restart",
        request=rq.Restart,
        answer=rs.Ok,
        sockets=HOST | MANAGER,
        summary="Restart an agent.",
    ),
    Verb(
        name="kill",
        request=rq.Kill,
        answer=rs.Ok,
        sockets=HOST | MANAGER,
        summary="Kill an agent's process at once.",
    ),
    Verb(
        name="rebuild",
        request=rq.Rebuild,
        answer=rs.Ok,
        sockets=HOST | MANAGER,
        summary="Re-apply an agent's deployed config and restart it.",
    ),
    Verb(
        name="destroy",
        request=rq.Destroy,
        answer=rs.Ok,
        sockets=HOST,
        summary="Remove an agent (its state stays as a tombstone unless purged).",
    ),
    Verb(
        name="tombstones",
        request=rq.Tombstones,
        answer=rs.Tombstones,
        sockets=HOST,
        summary="Destroyed agents whose state was kept.",
    ),
    Verb(
        name="purge_tombstone",
        request=rq.PurgeTombstone,
        answer=rs.Ok,
        sockets=HOST,
        summary="Delete a destroyed agent's kept state.",
    ),
    Verb(
        name="set_paused",
        request=rq.SetPaused,
        answer=rs.Ok,
        sockets=HOST,
        summary="Pause or resume an agent's turns.",
    ),
    Verb(
        name="logs",
        request=rq.Logs,
        answer=rs.Lines,
        sockets=HOST | MANAGER,
        summary="The last lines of an agent's log.",
    ),
    # --- approvals ----------------------------------------------------------------------------
    Verb(
        name="pending",
        request=rq.Pending,
        answer=rs.Approvals,
        sockets=HOST | MANAGER,
        summary="Approvals, pending first.",
    ),
    Verb(
        name="approve",
        request=rq.Approve,
        answer=rs.Ok,
        sockets=HOST,
        summary="Grant an approval (its action runs now).",
    ),
    Verb(
        name="deny",
        request=rq.Deny,
        answer=rs.Ok,
        sockets=HOST,
        summary="Refuse an approval, with a note.",
    ),
    Verb(
        name="diff",
        request=rq.Diff,
        answer=rs.Diff,
        sockets=HOST,
        summary="The change an apply_commit approval would deploy.",
    ),
    Verb(
        name="request_apply_commit",
        request=rq.RequestApplyCommit,
        answer=rs.IdResult,
        sockets=MANAGER,
        summary="Ask the operator to deploy a commit of an agent's proposed config.",
    ),
    # --- questions ----------------------------------------------------------------------------
    Verb(
        name="ask",
        request=rq.Ask,
        answer=rs.IdResult,
        sockets=AGENTS,
        summary="Ask the operator (or another agent, `to`) a question; the answer arrives "
        "in your inbox.",
    ),
    Verb(
        name="answer",
        request=rq.Answer,
        answer=rs.Ok,
        sockets=ALL,
        summary="Answer a question addressed to you.",
    ),
    Verb(
        name="questions",
        request=rq.Questions,
        answer=rs.Questions,
        sockets=HOST,
        summary="Questions addressed to the operator.",
    ),
    Verb(
        name="cancel_question",
        request=rq.CancelQuestion,
        answer=rs.Ok,
        sockets=HOST,
        summary="Withdraw a question.",
    ),
    # --- reminders and loose ends -------------------------------------------------------------
    Verb(
        name="remind",
        request=rq.Remind,
        answer=rs.IdResult,
        sockets=AGENTS,
        summary="Have a message delivered to you later (`delay_seconds` or `at_unix_timestamp`).",
    ),
    Verb(
        name="count_pending_reminders",
        request=rq.CountPendingReminders,
        answer=rs.Count,
        sockets=AGENTS,
        summary="How many of your reminders are pending.",
    ),
    Verb(
        name="reminders",
        request=rq.Reminders,
        answer=rs.Reminders,
        sockets=HOST,
        summary="Pending and failed reminders.",
    ),
    Verb(
        name="retry_reminder",
        request=rq.RetryReminder,
        answer=rs.Ok,
        sockets=HOST,
        summary="Try a failed reminder again.",
    ),
    Verb(
        name="get_loose_ends",
        request=rq.GetLooseEnds,
        answer=rs.LooseEnds,
        sockets=AGENTS,
        summary="What is still open: approvals, questions, reminders.",
    ),
    Verb(
        name="cancel_loose_end",
        request=rq.CancelLooseEnd,
        answer=rs.Ok,
        sockets=AGENTS,
        summary="Cancel a question or reminder you own.",
    ),
)


def served_on(socket: Socket) -> dict[str, Verb]:
    """The verbs one socket kind serves."""
    return {name: v for name, v in VERBS.items() if socket in v.sockets}

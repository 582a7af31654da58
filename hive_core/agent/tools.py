"""The hive's MCP tools, generated from the verb table (`hive_wire.verbs.VERBS`): names,
descriptions, JSON schemas, the request each call becomes, and the text a model reads back.
No I/O and no MCP SDK here; `mcp.py` serves these over stdio.

Rules kept here:
- a tool is one verb of the socket it is served on (hyperhive's tool names: `list_agents` is
  `list`, `get_logs` is `logs`); a tool whose verb the socket does not serve is not listed, so
  the manager-only tools appear on the manager socket only (and `get_logs` appears once the
  daemon serves `logs` there);
- the input schema is derived from the verb's request class (attrs fields and their types,
  required when the field has no default, the default when there is one); `OVERRIDES` may only
  drop fields, rename them, require them, describe them and reword the verb's summary, never
  restate a type;
- `get_agent_meta` is the one tool that is no verb: it is answered from `whoami` and, on the
  manager socket, the `agent_status` rows;
- the structured result is the socket's answer (without `version`/`ok`); the text result is
  written for a model (hyperhive's formats for messages).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from hive_wire.verbs import VERBS, Socket

REDELIVERED = "[redelivered: this may already have been handled]"
EMPTY = "(empty)"


@attrs.frozen(kw_only=True)
class Override:
    verb: str | None = None  # the verb, when the tool's name is not the verb's
    description: str | None = None  # replaces the verb's summary
    drop: frozenset[str] = frozenset()  # fields a model must not set here
    rename: Mapping[str, str] = attrs.Factory(dict)  # wire field -> tool argument
    require: frozenset[str] = frozenset()  # fields optional on the wire, required here


# Tool names in the order a model sees them; the harness's `--allowedTools` lists these.
AGENT_TOOLS: tuple[str, ...] = (
    "recv",
    "send",
    "ask",
    "answer",
    "get_loose_ends",
    "cancel_loose_end",
    "remind",
    "set_status",
    "whoami",
    "get_agent_meta",
)
MANAGER_TOOLS: tuple[str, ...] = (
    "request_spawn",
    "request_apply_commit",
    "kill",
    "start",
    "restart",
    "rebuild",
    "get_logs",
    "list_agents",
)

_ONE_AGENT = frozenset({"scope"})  # the manager names one agent; scopes are the operator's
# hyperhive's tools take the name alone: the operator's settle wait stays the operator's
_ONE_AGENT_NOW = _ONE_AGENT | {"settle_seconds"}
OVERRIDES: dict[str, Override] = {
    "recv": Override(
        description=(
            "Pop up to `max` messages from your inbox, waiting up to `wait_seconds` (at most "
            "180) for the first. Popped messages count as handled when your turn ends well."
        )
    ),
    "send": Override(
        description=(
            "Send a message to an agent, `manager`, `operator`, or `*` (every agent but you). "
            "Set `in_reply_to` to the id of the message you answer."
        )
    ),
    "answer": Override(description="Answer a question addressed to you (its id and your answer)."),
    "get_loose_ends": Override(
        description=(
            "What is still open: approvals, questions, reminders (yours; the manager sees "
            "the whole hive's)."
        )
    ),
    "remind": Override(
        description=(
            "Have `message` delivered to your inbox later: after `delay_seconds`, or at "
            "`at_unix_timestamp` (give exactly one). `file_path` (under your state dir) is "
            "read at delivery time and appended."
        )
    ),
    "kill": Override(drop=_ONE_AGENT, require=frozenset({"name"})),
    "start": Override(drop=_ONE_AGENT_NOW, require=frozenset({"name"})),
    "restart": Override(drop=_ONE_AGENT_NOW, require=frozenset({"name"})),
    "rebuild": Override(drop=_ONE_AGENT, require=frozenset({"name"})),
    "get_logs": Override(verb="logs", rename={"name": "agent"}),
    "list_agents": Override(verb="list"),
}

FIELD_DOCS: dict[str, str] = {
    "wait_seconds": "seconds to wait for a first message when the inbox is empty (0: none)",
    "max": "at most this many messages",
    "to": "an agent's name, `manager`, `operator`, or `*` (every agent but you)",
    "ask.to": "an agent's name or `manager` (default: the operator)",
    "body": "the message text",
    "in_reply_to": "the id of the message this answers",
    "question": "the question",
    "options": "choices to offer (none: a free answer)",
    "multi": "whether several options may be picked",
    "ttl_seconds": "seconds after which the question expires unanswered",
    "id": "the id",
    "answer": "your answer",
    "kind": "`question` or `reminder` (as get_loose_ends lists it)",
    "message": "the text to be delivered",
    "delay_seconds": "deliver after this many seconds",
    "at_unix_timestamp": "deliver at this time (seconds since 1970, UTC)",
    "file_path": "a file under your state dir whose content is appended at delivery",
    "text": "one line of status",
    "name": "an agent's name",
    "agent": "an agent's name",
    "description": "why (shown to the operator who approves)",
    "commit_ref": "the commit of the agent's proposed config repo (40 hex digits)",
    "lines": "how many of the last lines",
}


@attrs.frozen(kw_only=True)
class Tool:
    name: str
    verb: str | None  # None: `get_agent_meta`
    description: str
    input_schema: dict[str, Any]
    rename: Mapping[str, str] = attrs.Factory(dict)  # tool argument -> wire field

    def request(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """The wire request of a call: the schema's arguments under their wire names (any
        other argument is left out; the daemon checks types and says which field is wrong)."""
        assert self.verb is not None
        props = self.input_schema["properties"]
        req: dict[str, Any] = {"cmd": self.verb}
        for arg, value in (arguments or {}).items():
            if arg in props:
                req[self.rename.get(arg, arg)] = value
        return req


def _type_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of one annotation of a request class."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return _type_schema(rest[0])
        return {"anyOf": [_type_schema(a) for a in rest]}
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": _type_schema(item)}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if tp is Any:
        return {}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if attrs.has(tp):
        return _object_schema(tp, Override())
    raise TypeError(f"no JSON schema for {tp!r}")


def _object_schema(cls: type, ov: Override, tool: str = "") -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in attrs.fields(cls):
        if f.name in ov.drop:
            continue
        wire = f.name.rstrip("_")  # `from_` is `from` on the wire
        arg = ov.rename.get(wire, wire)
        schema = _type_schema(hints[f.name])
        doc = FIELD_DOCS.get(f"{tool}.{arg}") or FIELD_DOCS.get(arg)
        if doc:
            schema["description"] = doc
        has_default = f.default is not attrs.NOTHING
        if has_default and not isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            if f.default is not None:
                schema["default"] = f.default
        if not has_default or wire in ov.require:
            required.append(arg)
        props[arg] = schema
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _tool(name: str) -> Tool:
    ov = OVERRIDES.get(name, Override())
    verb = VERBS[ov.verb or name]
    return Tool(
        name=name,
        verb=verb.name,
        description=ov.description or verb.summary,
        input_schema=_object_schema(verb.request, ov, name),
        rename={arg: wire for wire, arg in ov.rename.items()},
    )


GET_AGENT_META = Tool(
    name="get_agent_meta",
    verb=None,
    description=(
        "Who an agent is: without `name`, you (your name and role); the manager may name any "
        "agent and also gets its status row (running, paused, model, status text...)."
    ),
    input_schema={
        "type": "object",
        "properties": {"name": {"type": "string", "description": "an agent's name"}},
    },
)


def tools_for(socket: Socket) -> list[Tool]:
    """The tools of one socket kind (`agent` or `manager`), in `AGENT_TOOLS` order."""
    names = AGENT_TOOLS + (MANAGER_TOOLS if socket == "manager" else ())
    out: list[Tool] = []
    for name in names:
        if name == GET_AGENT_META.name:
            out.append(GET_AGENT_META)
            continue
        ov = OVERRIDES.get(name, Override())
        if socket in VERBS[ov.verb or name].sockets:
            out.append(_tool(name))
    return out


# --- text for a model --------------------------------------------------------------------------
def message_text(m: Mapping[str, Any]) -> str:
    head = [REDELIVERED] if m.get("redelivered") else []
    return "\n".join([*head, f"from: {m.get('from')}", "", str(m.get("body", ""))])


def messages_text(msgs: Sequence[Mapping[str, Any]]) -> str:
    if not msgs:
        return EMPTY
    if len(msgs) == 1:
        return message_text(msgs[0])
    return f"popped {len(msgs)} message(s)\n\n" + "\n---\n".join(message_text(m) for m in msgs)


def _loose_ends(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "nothing is open"
    return "\n".join(
        f"- {r.get('kind')} {r.get('id')} ({r.get('agent')}, {r.get('status')} since "
        f"{r.get('since')}): {r.get('summary')}"
        for r in rows
    )


def text(tool: str, args: Mapping[str, Any], answer: Mapping[str, Any]) -> str:
    """The text result of a successful call, for a model."""
    who = args.get("name") or args.get("agent")
    if tool == "recv":
        return messages_text(answer.get("messages") or [])
    if tool == "send":
        if answer.get("ids") is not None:
            ids = answer["ids"]
            return f"sent to {len(ids)} agent(s) (message ids {', '.join(map(str, ids))})"
        return f"sent (message id {answer.get('id')})"
    if tool == "ask":
        return f"asked (question id {answer.get('id')}); the answer will arrive in your inbox"
    if tool == "answer":
        return f"answered question {args.get('id')}"
    if tool == "get_loose_ends":
        return _loose_ends(answer.get("loose_ends") or [])
    if tool == "cancel_loose_end":
        return f"cancelled {args.get('kind')} {args.get('id')}"
    if tool == "remind":
        return f"reminder set (id {answer.get('id')})"
    if tool == "set_status":
        return "status set"
    if tool == "whoami":
        return f"you are {answer.get('name')} (role: {answer.get('role')})"
    if tool in ("request_spawn", "request_apply_commit"):
        return f"approval requested (id {answer.get('id')}); the operator decides"
    if tool in ("kill", "start", "restart", "rebuild"):
        done = {"kill": "killed", "start": "started", "restart": "restarted"}
        return f"{done.get(tool, 'rebuilt')} {who}"
    if tool == "list_agents":
        return "\n".join(answer.get("agents") or []) or "(no agents)"
    if tool == "get_logs":
        return "\n".join(answer.get("lines") or []) or "(no log lines)"
    return json.dumps(dict(answer), indent=1) if answer else "ok"

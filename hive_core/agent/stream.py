"""A sans-io reader of Claude Code's stream-json output.

Rules kept here:
- `StreamParser` does no I/O: it is fed one stdout line at a time and keeps the turn's summary
  (tool calls per tool name as Claude Code spells it, the final `result` line's figures) and
  returns the activity events the line means; a line that is not a JSON object is counted and
  becomes a note, never an error;
- sub-agents: a `Task`/`Agent` tool_use starts one whose id is that tool_use's id; a tool call
  whose `parent_tool_use_id` is that id is attributed to it; its tool_result ends it;
- `LineSplitter` bounds a line (`MAX_LINE`): a longer one is skipped and counted, so no output
  can grow the harness's memory or kill it;
- money comes from the `result` line (`total_cost_usd`), tokens from its `usage`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

MAX_LINE = 1 << 20  # bytes of one stream-json line; longer ones are skipped
PREVIEW = 2048  # bytes of a text preview
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})


def preview(text: str, limit: int = PREVIEW) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    raw = text.encode("utf-8", "replace")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


# --- activity events (agent.md "Activity"; `wire()` is the object sent to the daemon) --------
@attrs.frozen(kw_only=True)
class Activity:
    kind: ClassVar[str] = ""

    def wire(self) -> dict[str, Any]:
        fields = attrs.asdict(self, recurse=False)
        return {"kind": self.kind, **{k: v for k, v in fields.items() if v is not None}}


@attrs.frozen(kw_only=True)
class TurnStart(Activity):
    kind: ClassVar[str] = "turn_start"
    message_ids: list[int] | None = None  # the messages that woke the turn (at most 32)


@attrs.frozen(kw_only=True)
class ToolUse(Activity):
    kind: ClassVar[str] = "tool_use"
    tool: str
    subagent: str | None = None


@attrs.frozen(kw_only=True)
class SubagentStart(Activity):
    kind: ClassVar[str] = "subagent_start"
    id: str
    description: str | None = None


@attrs.frozen(kw_only=True)
class SubagentEnd(Activity):
    kind: ClassVar[str] = "subagent_end"
    id: str
    ok: bool


@attrs.frozen(kw_only=True)
class Text(Activity):
    kind: ClassVar[str] = "text"
    preview: str


@attrs.frozen(kw_only=True)
class TurnEnd(Activity):
    kind: ClassVar[str] = "turn_end"
    ok: bool
    result_kind: str
    duration_ms: int
    usage: dict[str, int]
    cost_usd: float | None = None
    model: str | None = None
    message_ids: list[int] | None = None  # the messages that woke the turn: its thread's cost
    turn_id: str | None = None  # the harness's id of the turn: a report sent twice counts once
    ended_at: float | None = None  # unix seconds: a report kept while the daemon was away is late


@attrs.frozen(kw_only=True)
class State(Activity):
    kind: ClassVar[str] = "state"
    state: str  # idle, thinking, compacting, rate_limited


@attrs.frozen(kw_only=True)
class Note:
    """Not an activity: something the harness noticed about the output (the bus's `note`)."""

    text: str


Output = Activity | Note


# --- the turn's summary ----------------------------------------------------------------------
def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@attrs.define(kw_only=True)
class Summary:
    session_id: str | None = None
    model: str | None = None
    tool_calls: Counter[str] = attrs.Factory(Counter)
    subagent_tool_calls: Counter[str] = attrs.Factory(Counter)
    result_seen: bool = False
    subtype: str | None = None
    is_error: bool = False
    terminal_reason: str | None = None
    api_error_status: int | None = None
    result: str | None = None
    usage: dict[str, int] = attrs.Factory(dict)
    cost_usd: float | None = None
    num_turns: int | None = None
    compacted: bool = False
    rate_limit_retries: int = 0
    popped_ids: list[int] = attrs.Factory(list)  # message ids the hive `recv` tool returned
    garbage_lines: int = 0
    oversized_lines: int = 0

    def result_kind(self, exit_code: int | None) -> str:
        """ok | prompt_too_long | rate_limited | failed (the loop adds `timeout`)."""
        if exit_code == 0 and self.result_seen and not self.is_error:
            return "ok"
        if self.terminal_reason == "prompt_too_long":
            return "prompt_too_long"
        if self.api_error_status == 429:
            return "rate_limited"
        return "failed"


USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_creation_tokens",
}


def _message_ids(tool_result: Any) -> list[int]:
    """Ids in a hive `recv` tool's structured result (the socket's answer, maybe wrapped)."""
    if not isinstance(tool_result, Mapping):
        return []
    sc = tool_result.get("structuredContent")
    if isinstance(sc, Mapping) and isinstance(sc.get("result"), Mapping):
        sc = sc["result"]
    msgs = sc.get("messages") if isinstance(sc, Mapping) else None
    if not isinstance(msgs, list):
        return []
    return [m["id"] for m in msgs if isinstance(m, Mapping) and type(m.get("id")) is int]


class StreamParser:
    """Fed stream-json lines (bytes or str, without the newline); keeps `summary`."""

    RECV_TOOL = "mcp__hive__recv"

    def __init__(self) -> None:
        self.summary = Summary()
        self._subagents: set[str] = set()
        self._recv_calls: set[str] = set()
        self._state = "thinking"

    def oversized(self, size: int) -> list[Output]:
        self.summary.oversized_lines += 1
        return [Note(text=f"skipped a stream-json line of {size} bytes (limit {MAX_LINE})")]

    def feed(self, line: bytes | str) -> tuple[dict[str, Any] | None, list[Output]]:
        """The line as a JSON object (None if it is not one) and what it means."""
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            self.summary.garbage_lines += 1
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            return None, [Note(text=preview(f"not stream-json: {text}", 512))]
        handler = getattr(self, f"_on_{obj.get('type')}", None)
        out: list[Output] = handler(obj) if handler is not None else []
        return obj, out

    def _set_state(self, state: str) -> list[Output]:
        if state == self._state:
            return []
        self._state = state
        return [State(state=state)]

    def _on_system(self, obj: dict[str, Any]) -> list[Output]:
        sub = obj.get("subtype")
        if sub == "init":
            self.summary.session_id = obj.get("session_id") or self.summary.session_id
            if isinstance(obj.get("model"), str):
                self.summary.model = obj["model"]
            servers = obj.get("mcp_servers")
            return [  # a hive server that did not connect: the turn goes on without its tools
                Note(text=f"MCP server {srv.get('name')} is {srv.get('status')}")
                for srv in (servers if isinstance(servers, list) else [])
                if isinstance(srv, Mapping) and srv.get("status") != "connected"
            ]
        elif sub == "status":
            return self._set_state(
                "compacting" if obj.get("status") == "compacting" else "thinking"
            )
        elif sub == "compact_boundary":
            self.summary.compacted = True
        elif sub == "api_retry" and obj.get("error_status") == 429:
            self.summary.rate_limit_retries += 1
            return self._set_state("rate_limited")
        return []

    def _on_assistant(self, obj: dict[str, Any]) -> list[Output]:
        msg = obj.get("message")
        if not isinstance(msg, Mapping):
            return []
        out = self._set_state("thinking")
        model = msg.get("model")
        if isinstance(model, str) and not model.startswith("<"):  # not "<synthetic>"
            self.summary.model = model
        parent = obj.get("parent_tool_use_id")
        sub = parent if isinstance(parent, str) and parent in self._subagents else None
        content = msg.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                name: str = block["name"]
                self.summary.tool_calls[name] += 1
                if sub is not None:
                    self.summary.subagent_tool_calls[name] += 1
                out.append(ToolUse(tool=name, subagent=sub))
                bid = block.get("id")
                if isinstance(bid, str) and name == self.RECV_TOOL:
                    self._recv_calls.add(bid)
                if isinstance(bid, str) and name in SUBAGENT_TOOLS:
                    self._subagents.add(bid)
                    inp = block.get("input")
                    desc = inp.get("description") if isinstance(inp, Mapping) else None
                    out.append(
                        SubagentStart(
                            id=bid, description=preview(desc) if isinstance(desc, str) else None
                        )
                    )
            elif block.get("type") == "text" and isinstance(block.get("text"), str):
                if block["text"]:
                    out.append(Text(preview=preview(block["text"])))
        return out

    def _on_user(self, obj: dict[str, Any]) -> list[Output]:
        msg = obj.get("message")
        content = msg.get("content") if isinstance(msg, Mapping) else None
        out: list[Output] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, Mapping) or block.get("type") != "tool_result":
                continue
            tid = block.get("tool_use_id")
            if tid in self._recv_calls and not block.get("is_error"):
                self.summary.popped_ids.extend(_message_ids(obj.get("tool_use_result")))
            if tid in self._subagents:
                self._subagents.discard(tid)
                out.append(SubagentEnd(id=tid, ok=not block.get("is_error")))
        return out

    def _on_result(self, obj: dict[str, Any]) -> list[Output]:
        s = self.summary
        s.result_seen = True
        s.subtype = obj.get("subtype") if isinstance(obj.get("subtype"), str) else None
        s.is_error = obj.get("is_error") is True or s.subtype != "success"
        s.terminal_reason = obj.get("terminal_reason")
        status = obj.get("api_error_status")
        s.api_error_status = status if isinstance(status, int) else None
        s.result = obj.get("result") if isinstance(obj.get("result"), str) else None
        usage = obj.get("usage")
        if isinstance(usage, Mapping):
            s.usage = {ours: _int(usage.get(theirs)) for theirs, ours in USAGE_KEYS.items()}
        cost = obj.get("total_cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            s.cost_usd = float(cost)
        s.num_turns = obj.get("num_turns") if isinstance(obj.get("num_turns"), int) else None
        models = obj.get("modelUsage")
        if isinstance(models, Mapping) and models:  # the model that cost most

            def cost_of(name: str) -> float:
                entry = models[name]
                return float(entry.get("costUSD") or 0) if isinstance(entry, Mapping) else 0.0

            s.model = max(models, key=cost_of)
        return []


# --- output framing --------------------------------------------------------------------------
class LineSplitter:
    """Bytes in, lines out; a line longer than `limit` comes out as its size (an int)."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._skipping: int | None = None  # bytes of an oversized line seen so far

    def feed(self, data: bytes | bytearray) -> list[bytes | int]:
        out: list[bytes | int] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            if self._skipping is not None:
                out.append(self._skipping + len(piece))
                self._skipping = None
            elif len(self._buf) + len(piece) > self.limit:
                out.append(len(self._buf) + len(piece))
                self._buf.clear()
            else:
                self._buf += piece
                out.append(bytes(self._buf))
                self._buf.clear()
            start = end + 1
        rest = data[start:]
        if self._skipping is not None:
            self._skipping += len(rest)
        else:
            self._buf += rest
            if len(self._buf) > self.limit:
                self._skipping = len(self._buf)
                self._buf.clear()
        return out

    def close(self) -> bytes | int | None:
        """What is left at end of file (a line cut off by the writer's death), if anything."""
        if self._skipping is not None:
            return self._skipping
        return bytes(self._buf) if self._buf else None


# --- the command line and the process --------------------------------------------------------

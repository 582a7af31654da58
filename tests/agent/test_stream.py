"""The stream-json parser against every recorded fixture, the line splitter, the command line,
and the agent package's imports."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from hive_core.agent import claude
from hive_core.agent.claude import LineSplitter, StreamParser
from hive_core.agent.options import options as options_of

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "claude-code-fixtures"
if not FIXTURES.is_dir():  # CI lays shared/ beside the clone
    FIXTURES = Path("/work/shared/claude-code-fixtures")

# file -> (result_kind with the exit code the CLI gave, tool calls, usage, cost, num_turns,
#          compacted, the activity kinds in order)
EXPECTED: dict[str, dict[str, Any]] = {
    "text-only.jsonl": dict(
        exit=0,
        kind="ok",
        tools={},
        cost=0.08680500000000001,
        turns=1,
        compacted=False,
        usage=dict(
            input_tokens=28875, output_tokens=12, cache_read_tokens=0, cache_creation_tokens=0
        ),
        activity=["text"],
    ),
    "stream.jsonl": dict(
        exit=0,
        kind="ok",
        tools={"mcp__hive__ping": 1},
        cost=0.177327,
        turns=2,
        compacted=False,
        usage=dict(
            input_tokens=58989, output_tokens=24, cache_read_tokens=0, cache_creation_tokens=0
        ),
        activity=["text", "tool_use", "text"],
    ),
    "stream-2.1.332.jsonl": dict(
        exit=0,
        kind="ok",
        tools={"mcp__hive__ping": 1},
        cost=0.19425599999999998,
        turns=2,
        compacted=False,
        usage=dict(
            input_tokens=64632, output_tokens=24, cache_read_tokens=0, cache_creation_tokens=0
        ),
        activity=["text", "tool_use", "text"],
    ),
    "prompt-too-long.jsonl": dict(
        exit=1,
        kind="prompt_too_long",
        tools={},
        cost=0.0,
        turns=1,
        compacted=False,
        usage=dict(input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_creation_tokens=0),
        activity=["text"],
    ),
    "reactive-compact.jsonl": dict(
        exit=0,
        kind="ok",
        tools={},
        cost=0.175773,
        turns=2,
        compacted=True,
        usage=dict(
            input_tokens=27979, output_tokens=12, cache_read_tokens=0, cache_creation_tokens=0
        ),
        activity=["state:compacting", "state:thinking", "text"],
    ),
    "429-transient.jsonl": dict(
        exit=0,
        kind="ok",
        tools={},
        cost=0.086802,
        turns=1,
        compacted=False,
        usage=dict(
            input_tokens=28874, output_tokens=12, cache_read_tokens=0, cache_creation_tokens=0
        ),
        activity=["state:rate_limited", "state:thinking", "text"],
    ),
    "429-exhausted.jsonl": dict(
        exit=1,
        kind="rate_limited",
        tools={},
        cost=0.0,
        turns=1,
        compacted=False,
        usage=dict(input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_creation_tokens=0),
        activity=["state:rate_limited", "state:thinking", "text"],
    ),
}


def test_every_fixture_is_covered() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.jsonl")) == sorted(EXPECTED)


def parse(lines: list[bytes]) -> tuple[StreamParser, list[claude.Output], int]:
    parser, outputs, objects = StreamParser(), [], 0
    for line in lines:
        obj, out = parser.feed(line)
        objects += obj is not None
        outputs += out
    return parser, outputs, objects


def label(out: claude.Output) -> str:
    return f"state:{out.state}" if isinstance(out, claude.State) else getattr(out, "kind", "note")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    want = EXPECTED[name]
    lines = (FIXTURES / name).read_bytes().splitlines()
    parser, outputs, objects = parse(lines)
    s = parser.summary
    assert objects == len(lines) and s.garbage_lines == 0
    assert s.result_seen
    assert s.result_kind(want["exit"]) == want["kind"]
    assert dict(s.tool_calls) == want["tools"]
    assert s.usage == want["usage"]
    assert s.cost_usd == pytest.approx(want["cost"])
    assert s.num_turns == want["turns"]
    assert s.compacted is want["compacted"]
    assert s.model == "claude-sonnet-4-5"
    assert s.session_id == json.loads(lines[0])["session_id"]
    assert [label(o) for o in outputs] == want["activity"]
    for out in outputs:  # every activity event is wire-ready JSON
        if isinstance(out, claude.Activity):
            json.dumps(out.wire())


def test_the_fixtures_error_facts() -> None:
    ptl = parse((FIXTURES / "prompt-too-long.jsonl").read_bytes().splitlines())[0].summary
    assert (ptl.is_error, ptl.terminal_reason, ptl.api_error_status) == (
        True,
        "prompt_too_long",
        400,
    )
    assert ptl.result is not None and ptl.result.startswith("Prompt is too long")
    limited = parse((FIXTURES / "429-exhausted.jsonl").read_bytes().splitlines())[0].summary
    assert (limited.is_error, limited.api_error_status, limited.rate_limit_retries) == (
        True,
        429,
        2,
    )
    # an OK result still fails the turn when the process did not exit 0
    ok = parse((FIXTURES / "text-only.jsonl").read_bytes().splitlines())[0].summary
    assert ok.result_kind(1) == "failed" and ok.result_kind(None) == "failed"


def assistant(content: list[dict[str, Any]], parent: str | None = None) -> str:
    return json.dumps(
        {
            "type": "assistant",
            "parent_tool_use_id": parent,
            "message": {"model": "m", "content": content},
        }
    )


def tool_result(
    tid: str, parent: str | None = None, is_error: bool = False, structured: Any = None
) -> str:
    line: dict[str, Any] = {
        "type": "user",
        "parent_tool_use_id": parent,
        "message": {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tid, "is_error": is_error, "content": "x"}
            ],
        },
    }
    if structured is not None:
        line["tool_use_result"] = {"content": "x", "structuredContent": structured}
    return json.dumps(line)


def test_subagents_get_their_tool_calls() -> None:
    lines = [
        assistant(
            [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "Task",
                    "input": {"description": "look around", "prompt": "..."},
                }
            ]
        ),
        assistant([{"type": "tool_use", "id": "t2", "name": "Bash", "input": {}}], parent="t1"),
        tool_result("t2", parent="t1"),
        assistant([{"type": "tool_use", "id": "t3", "name": "Agent", "input": {}}]),
        assistant(
            [{"type": "tool_use", "id": "t4", "name": "mcp__hive__send", "input": {}}], parent="t3"
        ),
        tool_result("t3", is_error=True),
        tool_result("t1"),
        assistant([{"type": "tool_use", "id": "t5", "name": "Bash", "input": {}}], parent="t1"),
    ]
    parser, outputs, _ = parse([line.encode() for line in lines])
    assert [o.wire() for o in outputs if isinstance(o, claude.Activity)] == [
        {"kind": "tool_use", "tool": "Task"},
        {"kind": "subagent_start", "id": "t1", "description": "look around"},
        {"kind": "tool_use", "tool": "Bash", "subagent": "t1"},
        {"kind": "tool_use", "tool": "Agent"},
        {"kind": "subagent_start", "id": "t3"},
        {"kind": "tool_use", "tool": "mcp__hive__send", "subagent": "t3"},
        {"kind": "subagent_end", "id": "t3", "ok": False},
        {"kind": "subagent_end", "id": "t1", "ok": True},
        {"kind": "tool_use", "tool": "Bash"},  # t1 has ended: no longer attributed
    ]
    assert parser.summary.tool_calls == {"Task": 1, "Bash": 2, "Agent": 1, "mcp__hive__send": 1}
    assert parser.summary.subagent_tool_calls == {"Bash": 1, "mcp__hive__send": 1}


def test_ids_popped_by_the_recv_tool() -> None:
    answer = {"messages": [{"id": 7, "from": "bob", "body": "b"}, {"id": 9, "from": "c"}]}
    lines = [
        assistant([{"type": "tool_use", "id": "r1", "name": "mcp__hive__recv", "input": {}}]),
        tool_result("r1", structured=answer),
        assistant([{"type": "tool_use", "id": "r2", "name": "mcp__hive__recv", "input": {}}]),
        tool_result("r2", structured={"result": {"messages": [{"id": 11}]}}),  # wrapped form
        assistant([{"type": "tool_use", "id": "r3", "name": "mcp__hive__recv", "input": {}}]),
        tool_result("r3", is_error=True, structured={"messages": [{"id": 12}]}),
        tool_result("other", structured={"messages": [{"id": 13}]}),  # not a recv call
    ]
    parser, _, _ = parse([line.encode() for line in lines])
    assert parser.summary.popped_ids == [7, 9, 11]


def test_text_previews_are_cut_at_2_kib() -> None:
    parser = StreamParser()
    _, out = parser.feed(assistant([{"type": "text", "text": "é" * 3000}]))
    (text,) = out
    assert isinstance(text, claude.Text)
    assert len(text.preview.encode()) <= 2048 and text.preview == "é" * 1024


def test_garbage_is_counted_and_noted() -> None:
    parser = StreamParser()
    for line in (b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe"):
        obj, out = parser.feed(line)
        assert obj is None and isinstance(out[0], claude.Note)
    assert parser.summary.garbage_lines == 4
    assert parser.summary.result_kind(0) == "failed"  # no result line: not an OK turn


def test_line_splitter_bounds_lines() -> None:
    s = LineSplitter(limit=10)
    assert s.feed(b"abc\nde") == [b"abc"]
    assert s.feed(b"f\n") == [b"def"]
    assert s.feed(b"x" * 8) == []
    assert s.feed(b"y" * 8) == []  # over the limit: skipping from here on
    assert s.feed(b"zz\nok\n") == [18, b"ok"]
    assert s.feed(b"0123456789\n0123456789A\n") == [b"0123456789", 11]
    assert s.feed(b"tail") == [] and s.close() == b"tail"


def test_command_line() -> None:
    argv = claude.command(
        ["claude", "--x"],
        mcp_config="/s/m.json",
        tools=["mcp__hive__recv", "mcp__hive__send"],
        resume=True,
        model="m1",
    )
    assert argv == [
        "claude",
        "--x",
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--mcp-config",
        "/s/m.json",
        "--strict-mcp-config",
        "--allowedTools",
        "mcp__hive__recv,mcp__hive__send",
        "--continue",
        "--model",
        "m1",
    ]
    assert "--continue" not in claude.command(
        ["c"], mcp_config="f", tools=[], resume=False, model=None
    )
    env = claude.environment({"A": "1"}, socket="/run/a.sock", token="t")
    assert env["MCP_CONNECTION_NONBLOCKING"] == "0" and env["ENABLE_TOOL_SEARCH"] == "false"
    assert env["HIVE_AGENT_SOCKET"] == "/run/a.sock" and env["A"] == "1"
    assert env["CLAUDE_CODE_MCP_TOOL_IDLE_TIMEOUT"] == "0"  # the server bounds its calls


def test_the_mcp_option(tmp_path: Path) -> None:
    assert options_of([]).mcp == "http"
    assert options_of(["--mcp", "stdio"]).mcp == "stdio"
    toml = tmp_path / "agent.toml"
    toml.write_text('[claude]\nmcp = "stdio"\n')
    assert options_of(["--config", str(toml)]).mcp == "stdio"
    assert options_of(["--config", str(toml), "--mcp", "http"]).mcp == "http"
    toml.write_text('[claude]\nmcp = "carrier-pigeon"\n')
    with pytest.raises(SystemExit):
        options_of(["--config", str(toml)])


ALLOWED = {"trio", "attrs", "hive_wire", "__future__"}


AGENT_MODULES = sorted(p.stem for p in Path(claude.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("module", AGENT_MODULES)
def test_agent_modules_import_only_the_stdlib_trio_attrs_and_hive_wire(module: str) -> None:
    import sys

    path = Path(claude.__file__).parent / f"{module}.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").startswith("hive_core.agent"):
                continue  # within hive_core.agent
            roots = [(node.module or "").split(".")[0]]
        else:
            continue
        for root in roots:
            allowed = ALLOWED | ({"mcp", "mcp_types", "hypercorn"} if module == "mcp" else set())
            assert root in allowed or root in sys.stdlib_module_names, (module, root)


def test_an_mcp_server_that_failed_is_noted() -> None:
    init = {
        "type": "system",
        "subtype": "init",
        "session_id": "s",
        "mcp_servers": [
            {"name": "hive", "status": "failed"},
            {"name": "other", "status": "connected"},
        ],
    }
    _, out = StreamParser().feed(json.dumps(init))
    assert out == [claude.Note(text="MCP server hive is failed")]

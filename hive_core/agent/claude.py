"""Claude Code for one turn: its command line, its environment and its process (the output is
read by `stream.StreamParser`).

Rules kept here:
- `run` starts claude in a session of its own (its process group holds claude and whatever it
  started: the MCP server, tool commands) and kills that whole group when the turn ends,
  times out or is cancelled; the prompt goes on stdin, never as an argument;
- the command line is an argv list (the configured claude command is split shell-style once),
  never a shell.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

from .stream import (  # noqa: F401 (the turn's vocabulary, re-exported)
    MAX_LINE,
    PREVIEW,
    Activity,
    LineSplitter,
    Note,
    Output,
    State,
    StreamParser,
    SubagentEnd,
    SubagentStart,
    Summary,
    Text,
    ToolUse,
    TurnEnd,
    TurnStart,
    preview,
)

DRAIN = 5.0  # seconds to read what is left on stdout once claude has exited
TURN_TOKEN_ENV = "HIVE_HARNESS_TURN"  # marks claude's environment (finding orphans)


def command(
    base: Sequence[str], *, mcp_config: str, tools: Sequence[str], resume: bool, model: str | None
) -> list[str]:
    """The claude argv (the prompt goes on stdin: `--allowedTools` would swallow it)."""
    argv = [
        *base,
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--mcp-config",
        mcp_config,
        "--strict-mcp-config",
        "--allowedTools",
        ",".join(tools),
    ]
    if resume:
        argv.append("--continue")
    if model:
        argv += ["--model", model]
    return argv


def environment(base: Mapping[str, str], *, socket: str, token: str) -> dict[str, str]:
    """The hive tools present from the first request (claude-code-fixtures/README.md); no idle
    bound on a call to an HTTP MCP server (Claude Code's default aborts a call silent for 300 s:
    a `rebuild` may take 30 min; the server bounds each call itself)."""
    return {
        **base,
        "MCP_CONNECTION_NONBLOCKING": "0",
        "ENABLE_TOOL_SEARCH": "false",
        "CLAUDE_CODE_MCP_TOOL_IDLE_TIMEOUT": "0",
        "HIVE_AGENT_SOCKET": socket,
        TURN_TOKEN_ENV: token,
    }


@attrs.define(kw_only=True)
class Outcome:
    summary: Summary
    exit_code: int | None = None
    timed_out: bool = False

    @property
    def result_kind(self) -> str:
        return "timeout" if self.timed_out else self.summary.result_kind(self.exit_code)


Sink = Callable[[dict[str, Any] | None, list[Output]], None]


def killpg(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    prompt: str,
    sink: Sink,
    time_limit: float,
    parser: StreamParser | None = None,
    started: Callable[[int], None] = lambda pid: None,
) -> Outcome:
    """One claude process: `sink(obj, outputs)` for each stdout line as it comes. If the
    caller cancels, the group is killed and `parser.summary` holds what was read."""
    parser = parser or StreamParser()
    outcome = Outcome(summary=parser.summary)
    proc = await trio.lowlevel.open_process(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    started(proc.pid)
    try:
        with trio.move_on_after(time_limit) as deadline:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_write_prompt, proc, prompt.encode())
                eof = trio.Event()
                nursery.start_soon(_pump, proc, parser, sink, eof)
                outcome.exit_code = await proc.wait()
                killpg(proc.pid)  # whatever claude left behind in its group
                with trio.move_on_after(DRAIN):
                    await eof.wait()
                nursery.cancel_scope.cancel()
        outcome.timed_out = deadline.cancelled_caught
    finally:
        with trio.CancelScope(shield=True):
            killpg(proc.pid)
            await proc.wait()
    return outcome


async def _write_prompt(proc: trio.Process, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        await proc.stdin.send_all(data)
        await proc.stdin.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # claude exited without reading it: its exit code and output say why


async def _pump(proc: trio.Process, parser: StreamParser, sink: Sink, eof: trio.Event) -> None:
    assert proc.stdout is not None
    splitter = LineSplitter()
    while data := await proc.stdout.receive_some(65536):
        for item in splitter.feed(data):
            if isinstance(item, int):
                sink(None, parser.oversized(item))
            elif item.strip():
                sink(*parser.feed(item))
    rest = splitter.close()
    if isinstance(rest, int):
        sink(None, parser.oversized(rest))
    elif rest is not None and rest.strip():
        sink(*parser.feed(rest))
    eof.set()

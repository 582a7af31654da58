"""`hive-core hook`: a Claude Code hook command that shows an operator's own Claude Code session
(and its sub-agents) in the hive's live graph. It reads the hook's JSON on stdin and forwards
what it means to the host socket as `activity {source, events}`.

Rules kept here:
- it never blocks or fails the session: whatever happens (no daemon, a daemon that does not
  answer, bad input, a bug) it prints nothing and exits 0: the daemon gets until `BUDGET`
  seconds after the process started (python's start-up counts), and an interval timer ends the
  process at `HARD_STOP` if anything else hangs;
- it imports only json, os, select, signal, socket, sys, time and zlib: it runs on every tool call;
- mapping: `SessionStart` and `UserPromptSubmit` (each prompt of an interactive session is a
  turn) -> `turn_start`; `PreToolUse` -> `tool_use {tool}` (the `Task`/`Agent`
  tool also `subagent_start {id, description}`, the id being the tool call's `tool_use_id`);
  `PostToolUse`/`PostToolUseFailure` of that tool -> `subagent_end {id, ok}` under the same id
  (so the graph closes the sub-agent it opened); `SubagentStop` -> `subagent_end {id: agent_id,
  ok: true}`; `Stop` -> `turn_end`; every other event is ignored;
- source: `$HIVE_HOOK_LABEL`, else `claude-` and the first 8 characters of `session_id`;
- socket: `$HIVE_HOST_SOCKET`, else `$HIVE_RUN_DIR/host.sock`, else the default run dir of
  `hive_core.config` (replicated here: importing it costs more than this whole hook), falling
  back to the system daemon's `/run/hyperhive/host.sock` when that one exists and the user's
  does not.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
import zlib
from typing import Any

BUDGET = 0.13  # seconds from the process's start to giving up on the daemon
HARD_STOP = 0.17  # seconds from the process's start to `os._exit(0)`, whatever is running
MIN_WAIT = 0.02  # seconds the daemon gets even when python itself started slowly
MAX_INPUT = 16 << 20  # bytes of hook JSON read at most
SUBAGENT_TOOLS = ("Task", "Agent")
SYSTEM_SOCKET = "/run/hyperhive/host.sock"
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def host_socket(env: Any = os.environ) -> str:
    if env.get("HIVE_HOST_SOCKET"):
        return str(env["HIVE_HOST_SOCKET"])
    if env.get("HIVE_RUN_DIR"):
        return os.path.join(env["HIVE_RUN_DIR"], "host.sock")
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        personal = os.path.join(runtime, "hive-core", "host.sock")
    else:
        personal = f"/tmp/hive-core-{os.getuid()}/host.sock"
    order = [SYSTEM_SOCKET, personal] if os.geteuid() == 0 else [personal, SYSTEM_SOCKET]
    for path in order:
        if os.path.exists(path):
            return path
    return order[0]


def label(hook: dict[str, Any], env: Any = os.environ) -> str:
    raw = env.get("HIVE_HOOK_LABEL") or f"claude-{str(hook.get('session_id') or '')[:8]}"
    clean = "".join(c if c in _LABEL_CHARS else "-" for c in str(raw))[:64]
    return clean if clean[:1].isalnum() else f"c{clean}"[:64]


def _call_id(hook: dict[str, Any]) -> str:
    """The sub-agent's id: the tool call's id, else one derived from its input (the same for
    the call's Pre- and PostToolUse)."""
    tid = hook.get("tool_use_id")
    if isinstance(tid, str) and tid:
        return tid
    blob = json.dumps(hook.get("tool_input"), sort_keys=True, default=str).encode()
    return f"task-{zlib.crc32(blob):08x}"


def events(hook: Any) -> list[dict[str, Any]]:
    """The activity events one hook input means (none for an event we do not map)."""
    if not isinstance(hook, dict):
        return []
    name = hook.get("hook_event_name")
    tool = hook.get("tool_name")
    tool = tool if isinstance(tool, str) and tool else None
    if name in ("SessionStart", "UserPromptSubmit"):
        return [{"kind": "turn_start"}]
    if name == "PreToolUse" and tool:
        out: list[dict[str, Any]] = [{"kind": "tool_use", "tool": tool}]
        if tool in SUBAGENT_TOOLS:
            start: dict[str, Any] = {"kind": "subagent_start", "id": _call_id(hook)}
            inp = hook.get("tool_input")
            desc = inp.get("description") if isinstance(inp, dict) else None
            if isinstance(desc, str) and desc:
                start["description"] = desc
            out.append(start)
        return out
    if name in ("PostToolUse", "PostToolUseFailure") and tool in SUBAGENT_TOOLS:
        return [{"kind": "subagent_end", "id": _call_id(hook), "ok": name == "PostToolUse"}]
    if name == "SubagentStop":
        aid = hook.get("agent_id")
        sid = str(hook.get("session_id") or "")[:8]
        return [{"kind": "subagent_end", "id": str(aid or f"subagent-{sid}"), "ok": True}]
    if name == "Stop":
        return [
            {"kind": "turn_end", "ok": True, "result_kind": "ok", "duration_ms": 0, "usage": {}}
        ]
    return []


def read_stdin(deadline: float) -> bytes:
    """stdin until EOF, `MAX_INPUT` or the deadline (a caller that never closes it)."""
    chunks: list[bytes] = []
    size = 0
    fd = sys.stdin.fileno()
    while size < MAX_INPUT:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        data = os.read(fd, 1 << 16)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def forward(path: str, request: dict[str, Any], deadline: float) -> None:
    """Send one request and wait for its answer line, all before `deadline`."""
    line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(max(deadline - time.monotonic(), 0.001))
        s.connect(path)
        s.sendall(line)
        got = b""
        while b"\n" not in got:
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            data = s.recv(4096)
            if not data:
                break
            got += data


def run(started: float) -> None:
    deadline = max(started + BUDGET, time.monotonic() + MIN_WAIT)
    raw = read_stdin(deadline)
    try:
        hook = json.loads(raw)
    except ValueError:
        return
    evs = events(hook)
    if not evs:
        return
    request = {"cmd": "activity", "source": label(hook), "events": evs}
    forward(host_socket(), request, deadline)


def process_age() -> float:
    """Seconds since this process started (python's own start-up counts toward the promise),
    from /proc (10 ms ticks); 0.03 where that cannot be read."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, `starttime`
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError):
        return 0.03


def main(argv: list[str] | None = None) -> int:
    try:
        age = process_age()
        started = time.monotonic() - age
        signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
        signal.setitimer(signal.ITIMER_REAL, max(HARD_STOP - age, MIN_WAIT * 2))
        run(started)
    except BaseException:  # noqa: BLE001 - the session must never see a failure of ours
        pass
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException:  # noqa: BLE001
            pass
    return 0


if __name__ == "__main__":
    main()
    os._exit(0)  # no interpreter teardown work, no exit code but 0

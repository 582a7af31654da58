"""`hive-core hook`: Claude Code's hook JSON in, `activity` on the host socket out; and whatever
goes wrong (no daemon, a mute one, garbage, a stdin never closed), exit 0 at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.agent import hook
from hive_wire.client import Connection

HOOK = [sys.executable, "-m", "hive_core.agent.hook"]
ENTRY = [
    sys.executable,
    "-c",
    "import sys; sys.argv[1:] = ['hook']; import hive_core.entry as e; e.main()",
]
SESSION = "5e1f0c2a-9b7d-4c1e-8f3a-0d2b6c4e8a11"
BASE = {
    "session_id": SESSION,
    "transcript_path": f"/home/op/.claude/projects/-work/{SESSION}.jsonl",
    "cwd": "/work",
    "permission_mode": "default",
}
# Hook inputs as Claude Code writes them (its hooks reference), one per event we map.
SESSION_START = {**BASE, "hook_event_name": "SessionStart", "source": "startup"}
PRE_BASH = {
    **BASE,
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "ls", "description": "List files"},
    "tool_use_id": "toolu_01AbCdEf",
}
PRE_TASK = {
    **BASE,
    "hook_event_name": "PreToolUse",
    "tool_name": "Task",
    "tool_input": {
        "description": "Find the flaky test",
        "prompt": "Look through tests/ ...",
        "subagent_type": "general-purpose",
    },
    "tool_use_id": "toolu_01TaSk",
}
POST_TASK = {**PRE_TASK, "hook_event_name": "PostToolUse", "tool_response": {"content": []}}
SUBAGENT_STOP = {
    **BASE,
    "hook_event_name": "SubagentStop",
    "stop_hook_active": False,
    "agent_id": "a1b2c3d4",
    "agent_transcript_path": "/home/op/.claude/projects/-work/agent-a1b2c3d4.jsonl",
}
STOP = {**BASE, "hook_event_name": "Stop", "stop_hook_active": False}
PROMPT = {**BASE, "hook_event_name": "UserPromptSubmit", "prompt": "hello"}
TURN_END = {"kind": "turn_end", "ok": True, "result_kind": "ok", "duration_ms": 0, "usage": {}}


# --- the mapping (no I/O) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (SESSION_START, [{"kind": "turn_start"}]),
        (PRE_BASH, [{"kind": "tool_use", "tool": "Bash"}]),
        (
            PRE_TASK,
            [
                {"kind": "tool_use", "tool": "Task"},
                {
                    "kind": "subagent_start",
                    "id": "toolu_01TaSk",
                    "description": "Find the flaky test",
                },
            ],
        ),
        (POST_TASK, [{"kind": "subagent_end", "id": "toolu_01TaSk", "ok": True}]),
        (
            {**POST_TASK, "hook_event_name": "PostToolUseFailure"},
            [{"kind": "subagent_end", "id": "toolu_01TaSk", "ok": False}],
        ),
        (SUBAGENT_STOP, [{"kind": "subagent_end", "id": "a1b2c3d4", "ok": True}]),
        (STOP, [TURN_END]),
        (PROMPT, [{"kind": "turn_start"}]),  # each prompt of a session is a turn
        ({**BASE, "hook_event_name": "Notification", "message": "waiting"}, []),
        ({**PRE_BASH, "hook_event_name": "PostToolUse"}, []),
        ({"hook_event_name": "PreToolUse"}, []),
        ([1, 2], []),
        ("PreToolUse", []),
    ],
)
def test_events(given: Any, expected: list[dict[str, Any]]) -> None:
    assert hook.events(given) == expected


def test_a_task_without_a_tool_use_id_gets_the_same_id_at_start_and_end() -> None:
    pre = {k: v for k, v in PRE_TASK.items() if k != "tool_use_id"}
    post = {**pre, "hook_event_name": "PostToolUse"}
    start = hook.events(pre)[1]["id"]
    assert start.startswith("task-") and hook.events(post)[0]["id"] == start


def test_label() -> None:
    assert hook.label(PRE_BASH, {}) == "claude-5e1f0c2a"
    assert hook.label(PRE_BASH, {"HIVE_HOOK_LABEL": "laptop"}) == "laptop"
    assert hook.label(PRE_BASH, {"HIVE_HOOK_LABEL": "my laptop/2"}) == "my-laptop-2"
    assert hook.label({}, {}) == "claude-"


def test_host_socket(tmp_path: Path) -> None:
    assert hook.host_socket({"HIVE_HOST_SOCKET": "/x/h.sock"}) == "/x/h.sock"
    assert hook.host_socket({"HIVE_RUN_DIR": "/r"}) == "/r/host.sock"
    (tmp_path / "hive-core").mkdir()
    mine = tmp_path / "hive-core" / "host.sock"
    mine.touch()
    assert hook.host_socket({"XDG_RUNTIME_DIR": str(tmp_path)}) == str(mine)


# --- the process ---------------------------------------------------------------------------------
def env_for(socket_path: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_")}
    return {**keep, "HIVE_HOST_SOCKET": socket_path, **extra}


def run_hook(
    stdin: bytes, socket_path: str, **extra: str
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    start = time.monotonic()
    done = subprocess.run(
        HOOK, input=stdin, capture_output=True, env=env_for(socket_path, **extra), timeout=10
    )
    return done, time.monotonic() - start


# Not a speed figure (bench/hook.py measures those): a bound far above the 200 ms promise that
# still fails a hook that waits on a dead or mute daemon.
HANG = 2.0


async def test_events_reach_the_host_socket(host: str) -> None:
    events = await Connection.open(host)
    await events.call({"cmd": "subscribe_events"})
    env = env_for(host)
    for given in (SESSION_START, PRE_TASK, POST_TASK, SUBAGENT_STOP, STOP):
        done = await trio.run_process(
            HOOK,
            stdin=json.dumps(given).encode(),
            env=env,
            capture_stdout=True,
            capture_stderr=True,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    # the console script's way in (`hive-core hook`: hive_core.entry)
    await trio.run_process(
        ENTRY, stdin=json.dumps(PRE_BASH).encode(), env={**env, "HIVE_HOOK_LABEL": "laptop"}
    )
    got: list[tuple[str, dict[str, Any]]] = []
    with trio.fail_after(10):
        while len(got) < 7:
            event = (await events.read())["event"]
            if event["kind"] == "agent_activity":
                got.append((event["agent"], event["activity"]))
    await events.aclose()
    me = "claude-5e1f0c2a"
    assert got == [
        (me, {"kind": "turn_start"}),
        (me, {"kind": "tool_use", "tool": "Task"}),
        (
            me,
            {"kind": "subagent_start", "id": "toolu_01TaSk", "description": "Find the flaky test"},
        ),
        (me, {"kind": "subagent_end", "id": "toolu_01TaSk", "ok": True}),
        (me, {"kind": "subagent_end", "id": "a1b2c3d4", "ok": True}),
        (me, TURN_END),
        ("laptop", {"kind": "tool_use", "tool": "Bash"}),
    ]


@pytest.mark.parametrize(
    "stdin", [json.dumps(PRE_BASH).encode(), b"", b"not json", b"\xff\xfe", b"[]", b"{" * 100_000]
)
def test_no_daemon(stdin: bytes, dirs: Path) -> None:
    done, took = run_hook(stdin, str(dirs / "none.sock"))
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert took < HANG


def test_a_daemon_that_never_answers(dirs: Path) -> None:
    path = str(dirs / "mute.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(path)
        mute.listen(4)  # connects succeed; nothing is ever read or answered
        done, took = run_hook(json.dumps(PRE_BASH).encode(), path)
        accepted, _ = mute.accept()
        with accepted:
            assert json.loads(accepted.recv(65536))["cmd"] == "activity"  # it did try
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert took < HANG


def test_a_stdin_never_closed(dirs: Path) -> None:
    start = time.monotonic()
    with subprocess.Popen(
        HOOK,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(str(dirs / "none.sock")),
    ) as proc:
        assert proc.stdin is not None
        proc.stdin.write(b'{"hook_event_name": "Stop"')  # and never closed
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
        took = time.monotonic() - start
        proc.stdin.close()
    assert took < HANG


def test_the_hook_imports_nothing_heavy() -> None:
    code = (
        "import sys; sys.argv = ['hook']; sys.stdin = open('/dev/null');"
        "from hive_core.agent import hook; hook.main();"
        "print(sorted(m for m in ('trio', 'attrs', 'cattrs', 'click', 'hive_wire') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_console_script_goes_straight_to_the_hook() -> None:
    """`hive-core hook` (hive_core.entry, the `[project.scripts]` entry) imports no click and
    no command module; any other command is the click command line."""
    code = (
        "import sys; sys.argv[1:] = ['hook']; sys.stdin = open('/dev/null');"
        "from hive_core.agent import hook;"
        "hook.main = lambda: print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'trio', 'attrs', 'cattrs', 'hive_wire') or m.startswith('hive_core.surfaces')),"
        " flush=True);"
        "from hive_core.entry import main; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    version = subprocess.run(
        [sys.executable, "-m", "hive_core", "--version"], capture_output=True, text=True, check=True
    )
    assert "version 0.1" in version.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "hive_core", "hook", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "Claude Code hook" in helped.stdout

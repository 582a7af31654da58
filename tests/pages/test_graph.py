"""The live graph in Chromium against a real daemon: a spawn adds a node, a destroy fades it out
and removes it, a message pulses from its sender to its recipient, the manager shows only once it
talks, a hook session (`python -m hive_core.agent.hook` with Claude Code's hook JSON) gets a node
of its own with its tool calls and its sub-agent, and a real Claude Code turn (the pinned CLI
against the fake Messages API, run by `hive-core agent run` as a spawned agent) pulses its tool
call with the tool's name and branches a sub-agent (the CLI runs the `Task` tool offline: its
sub-agent's requests are scripted on the same fake) that fades when it ends.

What moves on the graph lasts a fraction of a second, so the tests do not poll for it: a
MutationObserver installed in the page (`RECORDER`) writes down every node state, pulse position
and tool label as the page draws it, and the tests wait on that record (`wait_seen`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.agent import fake_api as fake
from tests.agent.conftest import CLAUDE, MODEL

from .conftest import SHOTS, Hive, agent_row, node, settle

RECORDER = """() => {
  const seen = window.__seen = { nodes: [], pulses: [], labels: [] };
  const look = (el) => {
    if (!(el instanceof Element)) return;
    const t = performance.now();
    if (el.closest("svg.graph") && el.dataset.node !== undefined && el.isConnected) {
      seen.nodes.push({ id: el.dataset.node, state: el.getAttribute("data-state"), t });
    } else if (el.matches("circle.pulse") && el.getAttribute("visibility") === "visible"
               && el.dataset.from) {
      seen.pulses.push({ from: el.dataset.from, to: el.dataset.to,
                         x: Number(el.getAttribute("cx")), y: Number(el.getAttribute("cy")), t });
    } else if (el.matches("text.tool") && el.isConnected) {
      seen.labels.push({ for: el.dataset.for, tool: el.dataset.tool, text: el.textContent, t });
    }
  };
  new MutationObserver((records) => {
    for (const m of records) {
      if (m.type === "attributes") look(m.target);
      for (const n of m.addedNodes) look(n);
      for (const n of m.removedNodes) {
        if (n instanceof Element && n.dataset.node !== undefined && !n.closest("svg.graph-over")) {
          seen.nodes.push({ id: n.dataset.node, state: "removed", t: performance.now() });
        }
      }
    }
  }).observe(document.getElementById("graph"), {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-state", "visibility", "cx", "data-tool"],
  });
}"""


def record(page: Page) -> None:
    page.evaluate(RECORDER)


def wait_seen(page: Page, predicate: str, timeout: float = 20_000) -> Any:
    """Until `predicate` (JS, over `seen`) holds on what the page drew; its value."""
    fn = f"() => {{ const seen = window.__seen; return ({predicate}) || null; }}"
    return page.wait_for_function(fn, timeout=timeout).json_value()


def states(page: Page, name: str) -> list[str]:
    got: list[str] = page.evaluate(
        "(name) => window.__seen.nodes.filter((n) => n.id === name).map((n) => n.state)", name
    )
    return got


def counter(page: Page, name: str) -> int:
    return int(page.locator(f"#graph-counters [data-counter={name}] b").inner_text())


def position(page: Page, name: str) -> tuple[float, float]:
    t = node(page, name).get_attribute("transform") or ""
    x, y = t.removeprefix("translate(").removesuffix(")").split(",")
    return float(x), float(y)


def test_a_spawn_adds_a_node_and_a_destroy_fades_it_out(hive: Hive, page: Page) -> None:
    record(page)
    hive.spawn("alice", "bob")
    expect(node(page, "alice")).to_have_attribute("data-state", "running")
    expect(node(page, "bob")).to_have_attribute("data-state", "running")
    expect(page.locator("#graph-counters [data-counter=alive] b")).to_have_text("2")
    hive.host("destroy", name="bob")
    wait_seen(page, "seen.nodes.some((n) => n.id === 'bob' && n.state === 'removed')")
    expect(node(page, "bob")).to_have_count(0)
    got = states(page, "bob")
    assert got[-2:] == ["gone", "removed"], got  # faded out first (opacity 0), then removed
    gone, removed = page.evaluate(
        "() => window.__seen.nodes.filter((n) => n.id === 'bob').slice(-2).map((n) => n.t)"
    )
    assert removed - gone >= 1000, (gone, removed)  # the fade took its time
    expect(node(page, "alice")).to_have_attribute("data-state", "running")
    expect(page.locator("#graph-counters [data-counter=alive] b")).to_have_text("1")
    # the daemon's `spawned` helper events to the manager do not draw a manager
    expect(node(page, "manager")).to_have_count(0)


def test_a_message_pulses_along_the_edge_from_sender_to_recipient(hive: Hive, page: Page) -> None:
    hive.spawn("alice", "bob")
    expect(node(page, "bob")).to_have_attribute("data-state", "running")
    # the layout has settled (the pulse follows its nodes, and they stay put now)
    page.wait_for_function("() => window.hive.graph.sim.alpha() < 0.02", timeout=30_000)
    record(page)
    before = counter(page, "messages")
    a, b = position(page, "alice"), position(page, "bob")
    hive.agent("alice", "send", to="bob", body="the lease fix is in")
    expect(page.locator("#graph-counters [data-counter=messages] b")).to_have_text(str(before + 1))
    # the pulse flies, frame by frame, each a point on the segment alice -> bob; then it is gone
    wait_seen(page, "seen.pulses.some((p) => p.from === 'alice' && p.to === 'bob')")
    expect(page.locator("#graph svg.graph-over circle.pulse[data-from]")).to_have_count(0)
    points = page.evaluate(
        "() => window.__seen.pulses.filter((p) => p.from === 'alice' && p.to === 'bob')"
    )
    length = ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5
    along = []
    for p in points:
        cross = abs((b[0] - a[0]) * (p["y"] - a[1]) - (b[1] - a[1]) * (p["x"] - a[0])) / length
        assert cross < 3, (p, a, b)
        along.append(((p["x"] - a[0]) * (b[0] - a[0]) + (p["y"] - a[1]) * (b[1] - a[1])) / length)
    assert along == sorted(along), along  # from alice towards bob, never back
    assert along[0] < 0.25 * length and along[-1] > 0.75 * length, (along, length)


def test_the_manager_is_drawn_once_it_talks(hive: Hive, page: Page) -> None:
    hive.spawn("alice")
    expect(node(page, "alice")).to_have_count(1)
    expect(page.locator("#flow .fl", has_text="spawned")).to_have_count(1)  # system -> manager
    expect(node(page, "manager")).to_have_count(0)
    record(page)
    hive.agent("alice", "send", to="manager", body="may I have a reviewer?")
    expect(node(page, "manager")).to_have_count(1)
    wait_seen(page, "seen.pulses.some((p) => p.from === 'alice' && p.to === 'manager')")


# --- a hook session ---------------------------------------------------------------------------
SESSION = "5e1f0c2a-9b7d-4c1e-8f3a-0d2b6c4e8a11"
BASE = {
    "session_id": SESSION,
    "transcript_path": f"/home/op/.claude/projects/-work/{SESSION}.jsonl",
    "cwd": "/work",
    "permission_mode": "default",
}
TASK = {
    "description": "Find the flaky test",
    "prompt": "Look through tests/ ...",
    "subagent_type": "general-purpose",
}
HOOKS = [
    {**BASE, "hook_event_name": "SessionStart", "source": "startup"},
    {
        **BASE,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls", "description": "List files"},
        "tool_use_id": "toolu_01AbCdEf",
    },
    {
        **BASE,
        "hook_event_name": "PreToolUse",
        "tool_name": "Task",
        "tool_input": TASK,
        "tool_use_id": "toolu_01TaSk",
    },
]
TASK_DONE = {
    **BASE,
    "hook_event_name": "PostToolUse",
    "tool_name": "Task",
    "tool_input": TASK,
    "tool_use_id": "toolu_01TaSk",
    "tool_response": {"content": []},
}


def run_hook(hive: Hive, event: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_")}
    env["HIVE_HOST_SOCKET"] = hive.daemon.host
    done = subprocess.run(
        [sys.executable, "-m", "hive_core.agent.hook"],
        input=json.dumps(event).encode(),
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done


def test_a_hook_session_appears_with_its_tool_calls_and_sub_agent(hive: Hive, page: Page) -> None:
    record(page)
    label = "claude-" + SESSION[:8]
    for event in HOOKS:
        run_hook(hive, event)
    expect(node(page, label)).to_have_attribute("data-state", "session")
    wait_seen(page, f"seen.labels.some((l) => l.for === '{label}' && l.tool === 'Bash')")
    sub = f"{label}:toolu_01TaSk"
    wait_seen(page, f"seen.nodes.some((n) => n.id === '{sub}' && n.state === 'subagent')")
    run_hook(hive, TASK_DONE)
    wait_seen(page, f"seen.nodes.some((n) => n.id === '{sub}' && n.state === 'removed')")
    assert states(page, sub)[-2:] == ["gone", "removed"], states(page, sub)
    expect(node(page, label)).to_have_attribute("data-state", "session")  # the session stays


# --- a real Claude Code turn ------------------------------------------------------------------
@pytest.fixture
def claude_home() -> Iterator[Path]:
    if not os.access(CLAUDE, os.X_OK):
        pytest.fail(
            f"the pinned Claude Code CLI is not installed at {CLAUDE}: run "
            "`sh tests/agent/install-claude-code.sh` (needs npm)",
            pytrace=False,
        )
    d = Path(tempfile.mkdtemp(prefix="hch", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def claude_agent(api: fake.FakeAPI, home: Path) -> list[str]:
    """The harness as a spawned agent's command, claude pointed at the fake API."""
    return [
        "/usr/bin/env",
        *("-u", "ANTHROPIC_AUTH_TOKEN", "-u", "CLAUDE_CONFIG_DIR"),
        f"HOME={home}",
        f"ANTHROPIC_BASE_URL={api.url}",
        "ANTHROPIC_API_KEY=fake-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "CLAUDE_CODE_MAX_RETRIES=1",
        sys.executable,
        *("-m", "hive_core", "agent", "run"),
        *("--claude-command", str(CLAUDE), "--model", MODEL, "--turn-timeout", "120"),
    ]


def test_a_real_claude_turn_pulses_its_tool_calls_and_branches_a_sub_agent(
    hive: Hive, page: Page, claude_home: Path
) -> None:
    with fake.running() as api:
        api.add(
            fake.tool("mcp__hive__set_status", {"text": "looking for the flaky test"}),
            fake.tool("Task", TASK),
            fake.tool("Glob", {"pattern": "*"}),  # the sub-agent's call
            fake.text("nothing flaky here"),  # the sub-agent's answer
            fake.text("done: the tests are fine"),
        )
        record(page)
        hive.host("spawn", name="coder", command=claude_agent(api, claude_home))
        expect(node(page, "coder")).to_have_attribute("data-state", "running")
        hive.host("send", to="coder", body="find the flaky test")
        # the hive tool's call pulses on the agent, with its name beside it
        tool = wait_seen(
            page,
            "seen.labels.find((l) => l.for === 'coder' && l.tool === 'mcp__hive__set_status')",
            timeout=90_000,
        )
        assert tool["text"] == "hive:set_status", tool
        # the Task branches a sub-agent off coder; its own call is drawn on it; it fades
        sub = wait_seen(
            page,
            "seen.nodes.find((n) => n.id.startsWith('coder:') && n.state === 'subagent')",
            timeout=90_000,
        )["id"]
        wait_seen(page, f"seen.labels.some((l) => l.for === '{sub}' && l.tool === 'Glob')")
        wait_seen(page, f"seen.nodes.some((n) => n.id === '{sub}' && n.state === 'removed')")
        assert states(page, sub)[-2:] == ["gone", "removed"], states(page, sub)
        expect(page.locator("#graph-counters [data-counter=done] b")).to_have_text(
            "1", timeout=90_000
        )
        expect(agent_row(page, "coder").locator("td.status")).to_have_text(
            "looking for the flaky test"
        )
        assert len(api.model_requests()) == 5


def test_screenshot_graph_mid_traffic(hive: Hive, page: Page) -> None:
    from .test_dashboard import Traffic

    names = [f"w{i:02d}" for i in range(20)]
    hive.spawn(*names)
    expect(page.locator("#graph svg.graph [data-node^='w']")).to_have_count(20)
    run_hook(hive, HOOKS[0])  # an operator's own session beside the hive
    for i, name in enumerate(names[:3]):  # sub-agents at work
        events = [
            {"kind": "tool_use", "tool": "Task"},
            {"kind": "subagent_start", "id": f"t{i}", "description": "look around"},
            {"kind": "tool_use", "tool": "Grep", "subagent": f"t{i}"},
        ]
        hive.agent(name, "activity", events=events)
    expect(node(page, "claude-5e1f0c2a")).to_have_count(1)
    settle(page)  # every node has faded in
    with Traffic(hive, names):
        page.wait_for_function(
            "() => document.querySelectorAll('#graph svg.graph-over circle.pulse[data-from]')"
            ".length >= 4 && document.querySelectorAll('#graph svg.graph-over text.tool')"
            ".length >= 4",
            timeout=30_000,
        )
        page.locator("#graph-panel").screenshot(path=str(SHOTS / "graph-mid-traffic.png"))

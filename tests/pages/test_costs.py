"""Costs on the dashboard, in Chromium against a real daemon with a budget ($1 a day for every
agent, from the config file): a turn of known cost reported on the agent's own socket
(`activity` with `turn_end {cost_usd}`, the daemon's contract with the harness) moves the agent's
cost badge and budget bar and the cost panel (today, 7 d, 30 d, the day's bar, the thread of the
message that woke it); the turn that spends the budget pauses the agent with its reason, and the
`raise_budget` approval shows in "Needs you". The panel never polls: it refreshes on turn_end.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import Hive, agent_row, shot


@pytest.fixture
def hive_toml() -> str:
    return "[budget]\nusd_per_day = 1.0\n"


def turn(hive: Hive, agent: str, cost: float, woken_by: list[int], tools: list[str]) -> None:
    """One turn of `agent` as its harness reports it."""
    events: list[dict[str, Any]] = [{"kind": "turn_start"}]
    events += [{"kind": "tool_use", "tool": t} for t in tools]
    events.append(
        {
            "kind": "turn_end",
            "ok": True,
            "result_kind": "ok",
            "duration_ms": 4200,
            "usage": {
                "input_tokens": 18_000,
                "output_tokens": 900,
                "cache_read_tokens": 42_000,
                "cache_creation_tokens": 0,
            },
            "cost_usd": cost,
            "model": "claude-sonnet-4-5",
            "message_ids": woken_by,
        }
    )
    assert hive.agent(agent, "activity", events=events)["accepted"] == len(events)


def woken(hive: Hive, agent: str, body: str) -> int:
    """The operator writes to `agent`, which takes the message: the turn it wakes is charged to
    this thread."""
    mid = int(hive.host("send", to=agent, body=body)["id"])
    got = hive.agent(agent, "recv", max=5)["messages"]
    assert [m["id"] for m in got] == [mid], got
    return mid


def test_a_turn_moves_the_badges_the_budget_bar_and_the_panel_and_a_spent_budget_pauses(
    hive: Hive, page: Page
) -> None:
    hive.spawn("alice", "bob")
    row = agent_row(page, "alice")
    expect(row.locator(".badge.cost")).to_have_text("$0.00")
    expect(row.locator(".budget .txt")).to_have_text("0%")
    expect(page.locator("#costs-panel .costs-agents")).to_have_text(
        "no turns in 30 days2 agents without turns in 30 days"
    )

    first = woken(hive, "alice", "please review the broker lease fix")
    turn(hive, "alice", 0.5, [first], ["Read", "mcp__hive__send"])
    expect(row.locator(".badge.cost")).to_have_text("$0.50")
    expect(row.locator(".badge.ctx")).to_have_text("60k")  # the last turn's prompt
    expect(row.locator(".budget")).to_have_class("budget ok")
    expect(row.locator(".budget .txt")).to_have_text("50%")
    expect(row.locator(".budget .fill")).to_have_attribute("style", "width:50.0%")
    line = page.locator('#costs-panel [data-cost-agent="alice"]')
    expect(line.locator("td.today")).to_have_text("$0.50")
    expect(line.locator("td.d7")).to_have_text("$0.50")
    expect(line.locator("td.d30")).to_have_text("$0.50")
    expect(line.locator('[data-day="0"]')).to_have_attribute("title", re.compile(r": \$0\.50$"))
    expect(line.locator('[data-day="1"] .fill')).to_have_attribute("style", "height:0%")
    thread = page.locator(f'#costs-panel [data-thread="{first}"]')
    expect(thread).to_contain_text("please review the broker lease fix")
    expect(thread.locator(".cost")).to_have_text("$0.50")
    expect(page.locator('#costs-panel [data-cost-agent="bob"]')).to_have_count(0)
    expect(page.locator("#costs-panel .quiet")).to_have_text("1 agent without turns in 30 days")
    expect(page.locator('#costs-panel [data-total="today"] b')).to_have_text("$0.50")
    assert row.get_attribute("data-state") == "running"

    # the turn that spends the day's dollar: alice pauses, and the operator is asked
    second = woken(hive, "alice", "and the reminder retries too")
    turn(hive, "alice", 0.5, [second], ["Edit", "Bash"])
    expect(row).to_have_attribute("data-state", "paused")
    expect(row.locator(".chip.paused")).to_have_text("paused: budget")
    expect(row.locator(".budget")).to_have_class("budget over")
    expect(row.locator(".budget .txt")).to_have_text("100%")
    expect(row.locator(".badge.cost")).to_have_text("$1.00")
    expect(row.locator("td.status .paused-reason")).to_contain_text("budget: $1.00 of $1.00")
    card = page.locator("#approvals .card", has_text="raise_budget")
    expect(card).to_have_count(1)
    expect(card.locator(".agent")).to_have_text("alice")
    expect(card.locator(".desc")).to_contain_text("alice spent $1.00 of $1.00 per day")
    expect(page.locator("#counters [data-counter=approvals] b")).to_have_text("1")
    expect(line.locator("td.today")).to_have_text("$1.00")
    expect(page.locator("#costs-panel ol.threads li")).to_have_count(2)

    # approving raises the budget and resumes her
    card.locator("button.approve").click()
    expect(card).to_have_count(0)
    expect(row).to_have_attribute("data-state", "running")
    expect(row.locator(".budget .txt")).to_have_text("50%")  # $1.00 of $2.00


def test_screenshot_costs(hive: Hive, page: Page) -> None:
    work = {
        "alice": [("review the broker lease fix", 0.42), ("and the reminder retries", 0.31)],
        "bob": [("port the hook to the new settings.json", 0.18)],
        "carol": [("cut the release from main", 0.64), ("write the changelog", 0.12)],
        "dave": [("why is CI red on the SSE test?", 0.08)],
        "erin": [("budget the nightly crash harness", 0.55), ("and rerun it", 0.5)],
    }
    hive.spawn(*work, "frank", "grace")
    for agent, jobs in work.items():
        for body, cost in jobs:
            turn(hive, agent, cost, [woken(hive, agent, body)], ["Read", "Bash"])
    expect(agent_row(page, "erin")).to_have_attribute("data-state", "paused")
    expect(page.locator("#costs-panel [data-cost-agent]")).to_have_count(5)
    expect(page.locator("#costs-panel ol.threads li")).to_have_count(6)
    expect(page.locator('#costs-panel [data-total="today"] b')).to_have_text("$2.80")
    shot(page, "costs.png", full_page=True)

"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
daemon (`hive-core serve --dashboard 127.0.0.1:0`): what the host and agent sockets cause shows
up without a reload; approve, deny, answer and send from the page; the graph and its replay; the
agent's page. Never skipped: without /usr/bin/chromium these tests fail (`.ci/run` installs it).
Screenshots made here go to docs/screenshots/.
"""

from __future__ import annotations

import random
import threading

from playwright.sync_api import Page, expect

from .conftest import Hive, agent_row, node, shot


def test_an_agent_spawned_on_the_host_socket_appears_and_leaves(hive: Hive, page: Page) -> None:
    expect(node(page, "hive")).to_have_count(1)
    expect(page.locator("#agents-empty")).to_contain_text("hive-core spawn NAME")
    shot(page, "dashboard-empty.png", full_page=True)
    hive.spawn("alice", "bob")
    expect(agent_row(page, "alice")).to_have_attribute("data-state", "running")
    expect(page.locator("#agents-empty")).to_be_hidden()
    expect(agent_row(page, "bob")).to_be_visible()
    expect(node(page, "alice")).to_have_count(1)
    expect(node(page, "bob")).to_have_attribute("data-state", "running")
    hive.host("destroy", name="bob")
    expect(agent_row(page, "bob")).to_have_count(0)
    expect(node(page, "bob")).to_have_count(0)
    expect(page.locator('#tombstones [data-tombstone="bob"]')).to_be_visible()
    expect(agent_row(page, "alice")).to_be_visible()


def test_approve_and_deny_from_the_page(hive: Hive, page: Page) -> None:
    first = hive.manager("request_spawn", name="carol", description="a reviewer")["id"]
    second = hive.manager("request_spawn", name="dave", description="not needed")["id"]
    card = page.locator(f'[data-approval="{first}"]')
    expect(card).to_be_visible()
    card.locator("button.approve").click()
    expect(card).to_have_count(0)
    expect(agent_row(page, "carol")).to_be_visible()  # the approval's action ran
    other = page.locator(f'[data-approval="{second}"]')
    other.locator("input.deny-note").fill("not now")
    other.locator("button.deny").click()
    expect(other).to_have_count(0)
    approvals = {a["id"]: a for a in hive.host("pending")["approvals"]}
    assert approvals[first]["status"] == "approved"
    assert (approvals[second]["status"], approvals[second]["note"]) == ("denied", "not now")


def test_answer_a_question_inline(hive: Hive, page: Page) -> None:
    hive.spawn("alice")
    asked = hive.agent("alice", "ask", question="Ship it?", options=["yes", "no"])["id"]
    typed = hive.agent("alice", "ask", question="Which branch?")["id"]
    card = page.locator(f'[data-question="{asked}"]')
    expect(card).to_contain_text("Ship it?")
    card.locator("button.option", has_text="yes").click()
    expect(card).to_have_count(0)
    free = page.locator(f'[data-question="{typed}"]')
    free.locator("input.answer").fill("main")
    free.locator("input.answer").press("Enter")
    expect(free).to_have_count(0)
    got = hive.agent("alice", "recv", max=5)["messages"]
    assert any("yes" in m["body"] for m in got) and any("main" in m["body"] for m in got), got


def test_compose_to_the_echo_agent_and_its_answer_arrives(hive: Hive, page: Page) -> None:
    hive.host("spawn", name="echo")  # the bundled echo agent
    expect(agent_row(page, "echo")).to_have_attribute("data-state", "running")
    box = page.locator("#compose textarea")
    box.click()
    page.keyboard.type("@ech")
    expect(page.locator("#compose ul.complete li").first).to_have_text("@echo")
    page.keyboard.press("Tab")
    page.keyboard.type("hello from the browser")
    page.keyboard.press("Enter")
    answer = page.locator('#inbox [data-from="echo"]', has_text="echo: hello from the browser")
    expect(answer).to_be_visible(timeout=30_000)


def test_replay_shows_an_agent_destroyed_since_and_live_returns(hive: Hive, page: Page) -> None:
    hive.spawn("alice", "bob")
    expect(node(page, "bob")).to_have_count(1)
    before = page.evaluate("window.hive.state.seq")  # bob is on the graph at this seq
    hive.host("destroy", name="bob")
    expect(node(page, "bob")).to_have_count(0)
    page.eval_on_selector(
        "#replay input[type=range]",
        "(r, seq) => { r.value = String(seq); r.dispatchEvent(new Event('change')); }",
        before,
    )
    expect(page.locator("#replay")).to_have_attribute("data-mode", "replay")
    expect(node(page, "bob")).to_have_count(1)  # as it was then
    expect(node(page, "alice")).to_have_count(1)
    page.locator("#replay button.live").click()
    expect(page.locator("#replay")).to_have_attribute("data-mode", "live")
    expect(node(page, "bob")).to_have_count(0)
    expect(node(page, "alice")).to_have_count(1)


class Traffic:
    """Agents talking (sends over their sockets, tool calls as activity) until stopped."""

    def __init__(self, hive: Hive, names: list[str]) -> None:
        self.hive, self.names = hive, names
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rng = random.Random(7)
        tools = ["Bash", "Read", "Edit", "Grep", "mcp__hive__send"]
        while not self.stop.is_set():
            a, b = rng.sample(self.names, 2)
            self.hive.agent(a, "send", to=b, body=f"{a} to {b}: status?")
            self.hive.agent(
                a,
                "activity",
                events=[
                    {"kind": "turn_start"},
                    {"kind": "tool_use", "tool": rng.choice(tools)},
                    {"kind": "text", "preview": "looking at it"},
                ],
            )
            self.stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_screenshots_ten_agents_and_an_agent_page(hive: Hive, page: Page) -> None:
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    hive.spawn(*names)
    for name in ("kilo", "lima"):
        hive.manager("request_spawn", name=name, description=f"spawn {name} for the release")
    hive.agent("carol", "ask", question="Cut the release from main?", options=["yes", "no"])
    hive.agent("alice", "send", to="operator", body="the broker lease fix is merged")
    hive.host("stop", name="ivan")
    with Traffic(hive, names):
        expect(page.locator("#flow .fl").nth(20)).to_be_visible(timeout=30_000)
        expect(agent_row(page, "judy")).to_be_visible()
        expect(page.locator("#approvals .card")).to_have_count(2)
        shot(page, "dashboard-ten-agents.png")
        agent = page.context.new_page()
        agent.goto(hive.url + "agents/alice")
        expect(agent.locator("#conn")).to_have_attribute("data-state", "connected")
        expect(agent.locator("#term .tl").nth(5)).to_be_visible(timeout=30_000)
        shot(agent, "agent-page.png")
        agent.close()


def test_screenshot_graph_with_twenty_agents(hive: Hive, page: Page) -> None:
    names = [f"w{i:02d}" for i in range(20)]
    hive.spawn(*names)
    expect(page.locator("#graph svg [data-node^='w']")).to_have_count(20)
    with Traffic(hive, names):
        expect(page.locator("#flow .fl").nth(30)).to_be_visible(timeout=30_000)
        shot(page, "graph-twenty-agents.png", "#graph-panel")


def test_a_status_rows_url_opens_the_agents_page(hive: Hive, page: Page) -> None:
    hive.spawn("alice")
    (row,) = hive.host("agent_status")["agent_statuses"]
    assert row["url"] == f"{hive.url}agents/alice", row
    expect(agent_row(page, "alice")).to_be_visible()
    page.goto(row["url"])
    expect(page.locator("#agent-name")).to_have_text("alice")
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")

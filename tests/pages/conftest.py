"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (`browser`), a real
daemon subprocess serving the dashboard on 127.0.0.1:0 (`hive`, with the TOML of `hive_toml` as
its config file), and a page on it that fails the test on any console error (`page`).

`shot` writes docs/screenshots/NAME once every finite animation (a node fading in or out, a
crash flash) has ended, so a screenshot never catches a fade halfway.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from hive_wire.blocking import call_sync
from tests.helpers import Daemon

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Hive:
    """A daemon subprocess serving the dashboard, and its sockets."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.url = call_sync(daemon.host, {"cmd": "urls"}, timeout=10)["urls"]["home"]

    def host(self, cmd: str, **fields: Any) -> dict[str, Any]:
        answer = call_sync(self.daemon.host, {"cmd": cmd, **fields}, timeout=30)
        assert answer.get("ok", True) is not False, answer
        return answer

    def agent(self, name: str, cmd: str, **fields: Any) -> dict[str, Any]:
        path = str(self.daemon.base / "run" / "agents" / name / "mcp.sock")
        return call_sync(path, {"cmd": cmd, **fields}, timeout=30)

    def manager(self, cmd: str, **fields: Any) -> dict[str, Any]:
        path = str(self.daemon.base / "run" / "manager" / "mcp.sock")
        return call_sync(path, {"cmd": cmd, **fields}, timeout=30)

    def spawn(self, *names: str) -> None:
        for name in names:
            self.host("spawn", name=name, command=SLEEPER)


@pytest.fixture
def hive_toml() -> str:
    """The daemon's config file (TOML); empty: none."""
    return ""


@pytest.fixture
def hive(dirs: Path, hive_toml: str) -> Iterator[Hive]:
    env = {"HIVE_DASHBOARD": "127.0.0.1:0"}
    if hive_toml:
        (dirs / "config.toml").write_text(hive_toml)
        env["HIVE_CONFIG"] = str(dirs / "config.toml")
    d = Daemon(dirs, env)
    d.start()
    try:
        yield Hive(d)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


@pytest.fixture
def page(browser: Browser, hive: Hive) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []

    def console(m: ConsoleMessage) -> None:
        if m.type == "error":
            errors.append(m.text)

    pg.on("console", console)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(hive.url)
    expect(pg.locator("#conn")).to_have_attribute("data-state", "connected")
    try:
        yield pg
        assert errors == [], errors  # no console errors, no uncaught exceptions
    finally:
        context.close()


SETTLED = """() => document.getAnimations().every((a) => {
  const t = a.effect && a.effect.getComputedTiming();
  return !t || t.iterations === Infinity || a.playState !== "running";
})"""


def settle(page: Page) -> None:
    """Until no finite animation runs (fades in and out, flashes); endless ones (a blinking
    transient chip) do not count."""
    page.wait_for_function(SETTLED, timeout=10_000)


def shot(page: Page, name: str, selector: str | None = None, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    settle(page)
    if selector:
        page.locator(selector).screenshot(path=str(SHOTS / name))
    else:
        page.screenshot(path=str(SHOTS / name), full_page=full_page)


def agent_row(page: Page, name: str) -> Any:
    return page.locator(f'#agents [data-agent="{name}"]')


def node(page: Page, name: str) -> Any:
    return page.locator(f'#graph svg.graph [data-node="{name}"]')

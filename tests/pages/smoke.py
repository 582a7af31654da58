"""Drive the pages against the mock server through the selectors in static/README.md.

`python tests/pages/smoke.py [BASE_URL]` (default http://127.0.0.1:8765, a mock_server.py
started fresh): approve, deny with a note, answer, compose with completion, a two-click kill,
the graph's nodes, a replay and back, the agent page and its logs. Screenshots go to
/tmp/pages/. Exit status 1 on the first failure or on any console error.
"""

from __future__ import annotations

import sys

from playwright.sync_api import expect, sync_playwright
from shoot import launch

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765"
OUT = "/tmp/pages"


def main() -> int:
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        # A 4xx answer is logged by Chromium as "Failed to load resource": expected here (conflict, not_found).
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and "Failed to load resource" not in m.text
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(BASE + "/")
        expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        expect(page.locator('#agents [data-agent="alice"]')).to_be_visible()
        expect(page.locator('#graph svg [data-node="hive"]')).to_have_count(1)
        expect(page.locator('#graph svg [data-node="alice"]')).to_have_attribute(
            "data-state", "running"
        )

        # The diff of an apply_commit, then approve it.
        page.click('[data-approval="1"] details.diff summary')
        expect(page.locator('[data-approval="1"] .diff-text .add').first).to_be_visible()
        page.screenshot(path=f"{OUT}/smoke-diff.png")
        page.click('[data-approval="1"] button.approve')
        expect(page.locator('[data-approval="1"]')).to_have_count(0)
        # Approving again answers conflict: the sentence shows in a toast.
        page.evaluate(
            "fetch('/api/approve',{method:'POST',headers:{'Content-Type':'application/json'},body:'{\"id\":1}'})"
        )

        page.fill('[data-approval="2"] input.deny-note', "not now")
        page.click('[data-approval="2"] button.deny')
        expect(page.locator('[data-approval="2"]')).to_have_count(0)

        page.fill('[data-question="2"] input.answer', "after the migration")
        page.press('[data-question="2"] input.answer', "Enter")
        expect(page.locator('[data-question="2"]')).to_have_count(0)
        page.click('[data-question="1"] button.option >> nth=0')
        expect(page.locator('[data-question="1"]')).to_have_count(0)

        # Compose with completion.
        page.click("#compose textarea")
        page.keyboard.type("@al")
        expect(page.locator("#compose ul.complete li").first).to_have_text("@alice")
        page.keyboard.press("Tab")
        expect(page.locator("#compose textarea")).to_have_value("@alice ")
        page.keyboard.type("hello from the smoke test")
        page.keyboard.press("Enter")
        expect(page.locator("#flow .fl", has_text="hello from the smoke test")).to_have_count(1)
        # An unknown recipient: the daemon's sentence in a toast.
        page.fill("#compose textarea", "@nobody hi")
        page.click("#compose button")
        expect(page.locator("#toasts .toast.error", has_text="nobody")).to_be_visible()

        # Two-click kill.
        kill = page.locator('#agents [data-agent="bob"] button.kill')
        kill.click()
        expect(page.locator('#agents [data-agent="bob"] button.kill')).to_have_text("confirm kill?")
        page.locator('#agents [data-agent="bob"] button.kill').click()
        expect(page.locator('#agents [data-agent="bob"]')).to_have_attribute(
            "data-state", "stopped"
        )
        page.screenshot(path=f"{OUT}/smoke-dashboard.png")

        # Replay from the middle of history, then back to live.
        page.eval_on_selector(
            "#replay input[type=range]",
            "r => { r.value = String(Math.floor((+r.min + +r.max) / 2)); r.dispatchEvent(new Event('change')); }",
        )
        expect(page.locator("#replay")).to_have_attribute("data-mode", "replay")
        page.select_option("#replay select.speed", "5")
        page.wait_for_timeout(2500)
        page.locator("#graph").screenshot(path=f"{OUT}/smoke-replay.png")
        page.click("#replay button.play")  # pause
        pos = page.locator("#replay .pos").text_content()
        page.click("#replay button.step")
        expect(page.locator("#replay .pos")).not_to_have_text(pos or "")
        page.click("#replay button.live")
        expect(page.locator("#replay")).to_have_attribute("data-mode", "live")
        expect(page.locator('#graph svg [data-node="alice"]')).to_have_count(1)

        # The agent page.
        page.goto(BASE + "/agents/alice")
        expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        expect(page.locator("#term .tl").first).to_be_visible()
        page.click("#logs-btn")
        expect(page.locator("#logs")).to_contain_text("harness")
        page.screenshot(path=f"{OUT}/smoke-agent.png")
        browser.close()
    for e in errors:
        print("console error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

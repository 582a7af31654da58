"""Load a page in headless Chromium (Debian's), report console errors, take a screenshot.

`python tests/pages/shoot.py URL OUT.png [--wait S] [--width W --height H] [--full]
[--click SELECTOR ...] [--eval JS]`: clicks run in order after the wait, each followed by 0.5 s.
Exit status 1 when the page logged an error or threw.
"""

from __future__ import annotations

import argparse
import sys

from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(p):  # type: ignore[no-untyped-def]
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--wait", type=float, default=3)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--click", action="append", default=[])
    ap.add_argument("--eval", action="append", default=[])
    a = ap.parse_args()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": a.width, "height": a.height})
        page.on(
            "console",
            lambda m: (
                errors.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.goto(a.url)
        page.wait_for_timeout(a.wait * 1000)
        for js in a.eval:
            print("eval:", page.evaluate(js))
        for sel in a.click:
            page.click(sel)
            page.wait_for_timeout(500)
        page.screenshot(path=a.out, full_page=a.full)
        browser.close()
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

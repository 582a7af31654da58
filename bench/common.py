"""What the bench scripts share: the header line of a run, the verdict word, a rate loop."""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def header(script: str) -> tuple[str, str]:
    """Print the run's first line (date, the command as typed from the repo, the commit);
    return the command and the short commit id."""
    command = shlex.join([".venv/bin/python", f"bench/{script}", *sys.argv[1:]])
    try:
        rev = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        rev = ""
    print(f"{dt.date.today()}  {command}  (commit {rev or '?'})", flush=True)
    return command, rev


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def rate(step: Callable[[], None], seconds: float) -> tuple[int, float]:
    """Call `step` for about `seconds`: how many calls, and the seconds they took."""
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n, time.perf_counter() - start

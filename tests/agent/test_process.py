"""`claude.run` with the stand-in claude (what the real CLI cannot be made to do): a hang
killed with its whole group, garbage, a 10 MiB line, death mid-line, cancellation."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio

from hive_core.agent import claude

from .conftest import STAND_IN


class Collect:
    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.outputs: list[claude.Output] = []

    def __call__(self, obj: dict[str, Any] | None, outputs: list[claude.Output]) -> None:
        if obj is not None:
            self.objects.append(obj)
        self.outputs += outputs

    def notes(self) -> list[str]:
        return [o.text for o in self.outputs if isinstance(o, claude.Note)]


async def run(mode: str, *extra: str, time_limit: float = 60) -> tuple[claude.Outcome, Collect]:
    sink = Collect()
    outcome = await claude.run(
        [sys.executable, str(STAND_IN), mode, *extra],
        env=os.environ,
        cwd="/",
        prompt="hello",
        sink=sink,
        time_limit=time_limit,
    )
    return outcome, sink


async def wait_gone(pid: int) -> None:
    """Until the process has exited (a pidfd turns readable then: no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with trio.fail_after(10):
            await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


async def test_garbage_lines_are_counted_and_the_turn_goes_on() -> None:
    outcome, sink = await run("garbage")
    s = outcome.summary
    assert outcome.exit_code == 0 and outcome.result_kind == "ok"
    assert s.garbage_lines == 3  # "not json", "[1, 2, 3]", '{"half": ' (blank lines skipped)
    assert len(sink.notes()) == 3 and sink.notes()[0].startswith("not stream-json: this is")
    assert [o["type"] for o in sink.objects] == ["system", "assistant", "result"]
    assert s.usage == {
        "input_tokens": 7,
        "output_tokens": 3,
        "cache_read_tokens": 2,
        "cache_creation_tokens": 1,
    }
    assert s.cost_usd == 0.5


async def test_a_10_mib_line_is_skipped_and_counted() -> None:
    outcome, sink = await run("huge")
    assert outcome.result_kind == "ok" and outcome.summary.oversized_lines == 1
    assert any("skipped a stream-json line of 10485" in n for n in sink.notes())
    texts = [o.preview for o in sink.outputs if isinstance(o, claude.Text)]
    assert texts == ["after the big line"]


async def test_death_mid_line_fails_the_turn_and_says_so() -> None:
    outcome, sink = await run("die-mid-line")
    assert outcome.exit_code == 1 and outcome.result_kind == "failed"
    assert outcome.summary.garbage_lines == 1  # the cut-off line
    assert [o["type"] for o in sink.objects] == ["system"]


async def test_a_hang_is_killed_at_the_time_limit_with_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    with trio.fail_after(30):
        outcome, sink = await run("hang", str(pid_file), time_limit=1.5)
    assert outcome.timed_out and outcome.result_kind == "timeout"
    assert [o["type"] for o in sink.objects] == ["system", "assistant"]
    await wait_gone(int(pid_file.read_text()))  # claude's own child went with it


async def test_cancelling_the_turn_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    pids: list[int] = []
    child_started = trio.Event()

    def sink(obj: dict[str, Any] | None, outputs: list[claude.Output]) -> None:
        if any(isinstance(o, claude.Text) and o.preview == "child started" for o in outputs):
            child_started.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                claude.run,
                [sys.executable, str(STAND_IN), "hang", str(pid_file)],
                env=os.environ,
                cwd="/",
                prompt="",
                sink=sink,
                time_limit=600,
                started=pids.append,
            )
        )
        with trio.fail_after(30):
            await child_started.wait()
        nursery.cancel_scope.cancel()
    await wait_gone(pids[0])
    await wait_gone(int(pid_file.read_text()))

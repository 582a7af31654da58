"""Wall-clock time that follows trio's clock.

`offload` is the one way the daemon runs blocking work off the event loop.

Every timestamp the daemon stores comes from `now()`: real wall time, but advanced by trio's clock
within a run, so tests with `autojump_clock` move leases, deadlines and retention forward without
sleeping. Store jobs run in another thread and never read the clock: callers pass `now` in.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio
import trio.testing

T = TypeVar("T")

_OFFSET: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("hive_wall_offset")


def now() -> float:
    """Seconds since the epoch (float)."""
    try:
        offset = _OFFSET.get()
    except LookupError:
        offset = time.time() - trio.current_time()
        _OFFSET.set(offset)
    return trio.current_time() + offset


_last: tuple[int, str] = (-1, "")


def rfc3339(ts: float | None) -> str | None:
    """`2026-09-07T12:34:56Z` for a timestamp (None stays None)."""
    global _last
    if ts is None:
        return None
    second = int(ts // 1)
    if second != _last[0]:  # the same second is formatted once (events stamp many per second)
        _last = (second, dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _last[1]


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (file sweeps, tree removal) in a worker thread; under trio's mock clock
    (tests) run it inline, so an autojumping clock never jumps while the work is in flight."""
    if isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
        await trio.lowlevel.checkpoint()
        return fn(*args)
    return await trio.to_thread.run_sync(fn, *args)

"""Wall-clock time that follows trio's clock.

`offload` is the one way the daemon runs blocking work off the event loop.

Every timestamp the daemon stores comes from `now()`: real wall time, but advanced by trio's clock
within a run, so tests with `autojump_clock` move leases, deadlines and retention forward without
sleeping. Store jobs run in another thread and never read the clock: callers pass `now` in.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import trio

T = TypeVar("T")
P = ParamSpec("P")

_OFFSET: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("hive_wall_offset")
# Blocking work in the trio thread instead of a worker (config `inline_io`: tests under a mock
# clock, where a task awaiting another thread looks idle and an autojumping clock would jump).
_INLINE: trio.lowlevel.RunVar[bool] = trio.lowlevel.RunVar("hive_inline_io", default=False)


def set_inline_io(inline: bool) -> None:
    """For this trio run: `offload` runs inline and `deadline` sets none (see `_INLINE`)."""
    _INLINE.set(inline)


def inline_io() -> bool:
    return _INLINE.get()


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


async def offload(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (file sweeps, tree removal) in a worker thread; with `inline_io`, in
    the trio thread, so an autojumping clock never jumps while the work is in flight."""
    if _INLINE.get():
        await trio.lowlevel.checkpoint()
        return fn(*args, **kwargs)
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def deadline(seconds: float) -> trio.CancelScope:
    """A timeout on the real clock for a child process; none with `inline_io`, where an
    autojumping clock would fire it while the child runs."""
    if _INLINE.get():
        return trio.CancelScope()
    return trio.move_on_after(seconds)

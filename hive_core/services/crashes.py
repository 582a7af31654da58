"""Crashes: the backend's exit reports, the crash watcher's scan, and the restart policy
(lifecycle.md, "Crash watcher").

Rules kept here:
- an agent that stops running without a transient on it has crashed: its in-flight messages are
  requeued, the manager gets `container_crash`, the dashboard `container_crash`; the process
  backend reports an exit at once (only exits nobody asked for), the watcher's scan (every
  `crash_scan` seconds; the first scan only seeds) catches the rest;
- how the process ended (`exit code 3`, `killed by SIGKILL`) is kept for the status row until the
  agent starts again;
- the manager's own process crashing is reported too (log, dashboard event, a message to the
  operator's inbox): nobody else would notice;
- the restart policy is per agent: `[lifecycle] restart = "on-crash" | "never"` in its
  `agent.toml`, else the daemon's `restart_on_crash`; a restart waits an exponential back-off
  and it gives up, saying so, after too many crashes in a window;
- nothing is reported while the daemon stops (`closing`).
"""

from __future__ import annotations

import logging
import signal
from collections import deque
from typing import Any

import attrs
import trio

from hive_core.services.broker import MANAGER, OPERATOR
from hive_core.services.lifecycle_parts import LifecycleParts
from hive_core.store import agents as agents_sql
from hive_wire import events as ev

log = logging.getLogger(__name__)


@attrs.frozen
class RestartPolicy:
    max_crashes: int = 5
    window: float = 600.0
    backoff: float = 1.0
    backoff_max: float = 60.0
    enabled: bool = True  # the default for agents whose agent.toml says nothing


def exit_status(code: int) -> str:
    """How a process ended, in words (trio gives -N for a death by signal N)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Crashes:
    def __init__(self, lifecycle: LifecycleParts, policy: RestartPolicy | None) -> None:
        self.lc = lifecycle
        self.policy = policy
        self.seen_running: set[str] | None = None  # the last scan's running set
        self._history: dict[str, deque[float]] = {}
        self._exited: dict[str, trio.Event] = {}  # spawns waiting for their start to settle
        self._nursery: trio.Nursery | None = None
        self.scans = 0  # completed scans of the crash watcher
        self._scan_waiters: list[tuple[int, trio.Event]] = []

    # --- what the actions tell us ----------------------------------------------------------
    async def settle(self, name: str) -> None:
        """After an action: the watcher's picture of `name` is what runs now, so what the action
        itself stopped is never taken for a crash at the next scan."""
        if self.seen_running is None:
            return
        if name in await self.lc.backend.running():
            self.seen_running.add(name)
        else:
            self.seen_running.discard(name)

    async def wait_settled(self, names: list[str], seconds: float) -> dict[str, str]:
        """Wait up to `seconds` for the processes of `names` (each `watching`) to exit; how
        each that is not running then ended. Woken by the backend's exit reports, not by
        polling: the wait ends early only if every one of them exited."""
        events = {n: self._exited.setdefault(n, trio.Event()) for n in names}
        try:
            with trio.move_on_after(seconds):
                for event in events.values():
                    await event.wait()
        finally:
            for n in names:
                self._exited.pop(n, None)
        running = await self.lc.backend.running()
        # An exit reported in the window counts even if the restart policy started it again.
        return {
            n: self.lc.exits.get(n, "exited")
            for n, event in events.items()
            if event.is_set() or n not in running
        }

    def watching(self, name: str) -> None:
        """Start listening for `name`'s exit before its process starts (for `wait_settled`)."""
        self._exited.setdefault(name, trio.Event())

    def unwatch(self, name: str) -> None:
        """Stop listening (its start failed: there is nothing to wait for)."""
        self._exited.pop(name, None)

    # --- the backend's reports ---------------------------------------------------------------
    def on_exit(self, nursery: trio.Nursery) -> Any:
        """The backend's exit callback (it calls it only for exits nobody asked for): a crash,
        reported now."""
        self._nursery = nursery

        def exited(name: str, code: int) -> None:
            self.lc.exits[name] = exit_status(code)
            event = self._exited.get(name)
            if event is not None:
                event.set()
            nursery.start_soon(self._report, name, exit_status(code))

        return exited

    async def _report(self, name: str, note: str) -> None:
        if self.seen_running is not None:
            self.seen_running.discard(name)
        if name == MANAGER:
            await self.manager_crashed(note)
            return
        if name not in self.lc.agents.names:
            return
        # The backend reports only exits nobody asked for (its own stops are silent), so this
        # is a crash even under a transient: an agent that dies while starting crashed too.
        await self.crashed(name, note)

    async def manager_crashed(self, note: str) -> None:
        if self.lc.closing:
            return
        log.warning("manager crashed note=%s", note)
        requeued = await self.lc.broker.requeue_inflight(MANAGER)
        self.lc.events.publish(ev.ContainerCrash(agent=MANAGER, note=note, requeued=requeued))
        await self.lc.broker.notify(OPERATOR, "container_crash", agent=MANAGER, note=note)

    async def crashed(self, name: str, note: str) -> None:
        lc = self.lc
        if lc.closing:
            return
        log.warning("agent crashed name=%s note=%s", name, note)
        requeued = await lc.broker.requeue_inflight(name)
        lc.events.publish(ev.ContainerCrash(agent=name, note=note, requeued=requeued))
        await lc.changed(name)
        delay, gave_up = await self._restart_plan(name)
        if gave_up:
            note += f"; gave up restarting after {gave_up}"
        elif delay is not None:
            note += f"; restarting in {delay:g} s"
        await lc.broker.notify(MANAGER, "container_crash", agent=name, note=note)
        if delay is not None and self._nursery is not None:
            self._nursery.start_soon(self._restart_later, name, delay)

    # --- the restart policy ------------------------------------------------------------------
    async def _restarts(self, name: str) -> bool:
        """Whether `name` is restarted after a crash: its agent.toml's `[lifecycle] restart`,
        else the daemon's default."""
        own = await self.lc.agents.restart_setting(name)
        if own is not None:
            return own == "on-crash"
        return self.policy is not None and self.policy.enabled

    async def _restart_plan(self, name: str) -> tuple[float | None, str]:
        """(delay before restarting, or None; what made it give up, or "")."""
        if not await self._restarts(name):
            return None, ""
        policy = self.policy or RestartPolicy()
        at = trio.current_time()
        history = self._history.setdefault(name, deque())
        history.append(at)
        while history and history[0] < at - policy.window:
            history.popleft()
        if len(history) > policy.max_crashes:
            self.lc.events.publish(ev.RestartGivenUp(agent=name, crashes=len(history)))
            return None, f"{len(history)} crashes in {policy.window:g} s"
        return min(policy.backoff_max, policy.backoff * 2 ** (len(history) - 1)), ""

    async def _restart_later(self, name: str, delay: float) -> None:
        lc = self.lc
        await trio.sleep(delay)
        if name not in lc.agents.names or name in lc.transients:
            return
        if name in await lc.backend.running():
            return
        row = await lc.agents.store.run(agents_sql.get, name)
        if row is None or not row.want_running:
            return  # stopped by someone meanwhile
        try:
            await lc.start(name)
        except Exception as e:
            log.error("restart after crash failed name=%s error=%s", name, e)

    # --- the scan ----------------------------------------------------------------------------
    async def watch(self, interval: float) -> None:
        """Every `interval` s: an agent that was running and is gone, with no transient, crashed.
        The first scan only seeds."""
        lc = self.lc
        while True:
            try:
                running = await lc.backend.running()
                seen, self.seen_running = self.seen_running, set(running)
                for name in sorted(seen - running if seen is not None else ()):
                    if name in lc.agents.names and name not in lc.transients:
                        await self.crashed(name, "gone at the crash watcher's scan")
            except Exception:
                log.exception("crash watcher scan failed")
            self.scans += 1
            for _, event in [w for w in self._scan_waiters if w[0] <= self.scans]:
                event.set()
            self._scan_waiters = [w for w in self._scan_waiters if w[0] > self.scans]
            await trio.sleep(interval)

    async def scanned(self, count: int = 1) -> None:
        """Wait until the watcher has completed `count` more scans (tests and tools wait on
        this instead of on time)."""
        event = trio.Event()
        self._scan_waiters.append((self.scans + count, event))
        await event.wait()

"""The agent lifecycle: spawn, start, stop, restart, kill, rebuild, destroy, tombstones and
pause (lifecycle.md). Crashes and the restart policy are in `crashes.py`, config deploys in
`deploys.py`, status rows in `status.py`; `Lifecycle` is the one object the verbs call.

Rules kept here:
- every action holds a *transient* on its agent (`starting`, `stopping`, `restarting`,
  `rebuilding`, `destroying`) for its whole duration and clears it on every exit path; a second
  action on an agent that carries one is a `conflict`;
- every change publishes `container_state_changed` with the agent's full status row (the
  dashboard and `subscribe_agent_status` read it) or `container_removed`;
- a scope (`agent_names`, or `agents: true`) is resolved here, once, for every lifecycle verb;
  one agent that fails does not keep the others from the action; nobody acts on itself;
- `stop` and `kill` of an agent that is not running succeed (idempotent);
- `spawn` may wait a settle time for the new process to stay up (woken by its exit report): one
  that exits at once is `unavailable`, with its exit status; the agent stays, stopped;
- destroy keeps the state dir and the agent's queued messages as a tombstone (spawning the name
  restores both) unless `purge`, which deletes both; nothing is followed through a symlink;
- the `paused` marker is a plain empty file; one an agent replaced with a symlink is removed
  (never followed), anything else in its place is refused as `forbidden`.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from hive_core.backends.process import Backend
from hive_core.clock import offload, rfc3339
from hive_core.paths import Paths
from hive_core.services.agents import Agents
from hive_core.services.approvals import Approvals
from hive_core.services.broker import MANAGER, Broker
from hive_core.services.crashes import Crashes, RestartPolicy
from hive_core.services.deploys import Deploys
from hive_core.services.events import EventChannel
from hive_core.services.helper_events import SYSTEM
from hive_core.services.reminders import Reminders
from hive_core.services.status import PAUSED_MARKER, StatusRows
from hive_core.store import agents as agents_sql
from hive_wire import events as ev
from hive_wire.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable, WireError
from hive_wire.names import check_agent_name

__all__ = ["PAUSED_MARKER", "Lifecycle", "RestartPolicy"]

log = logging.getLogger(__name__)

SETTLE_MAX = 10.0


class Lifecycle:
    def __init__(
        self,
        agents: Agents,
        backend: Backend,
        broker: Broker,
        reminders: Reminders,
        events: EventChannel,
        paths: Paths,
        approvals: Approvals,
        urls: dict[str, str] | None = None,
        policy: RestartPolicy | None = None,
        row_keys: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        """`row_keys(name)`: the keys another service adds to `name`'s published status row
        (the costs service: `cost_usd`, `context_tokens`, `budget`, `paused_reason`)."""
        self.row_keys = row_keys
        self.approvals = approvals
        self.urls = urls or {}
        self.agents = agents
        self.backend = backend
        self.broker = broker
        self.reminders = reminders
        self.events = events
        self.paths = paths
        self.transients: dict[str, str] = {}
        self.exits: dict[str, str] = {}  # how a crashed process ended, until it starts again
        self.closing = False  # the daemon is stopping: no starts, no crash reports
        self.status = StatusRows(self)
        self.crashes = Crashes(self, policy)
        self.deploys = Deploys(self)
        # The parts' public methods, as the verbs and the app call them.
        self.rows = self.status.rows
        self.manager_status = self.status.manager
        self.changed = self.status.changed
        self.paused = self.status.paused
        self.on_exit = self.crashes.on_exit
        self.watch = self.crashes.watch
        self.crashed = self.crashes.crashed
        self.propose = self.deploys.propose
        self.deploy = self.deploys.deploy
        self.proposal_diff = self.deploys.diff
        self.refuse = self.deploys.refuse

    # --- transients -------------------------------------------------------------------------
    @asynccontextmanager
    async def transient(self, name: str, kind: str) -> AsyncIterator[None]:
        if name in self.transients:
            raise Conflict(f'agent "{name}" is busy ({self.transients[name]})')
        self.transients[name] = kind
        self.events.publish(ev.TransientSet(agent=name, transient=kind))
        await self.changed(name)
        try:
            yield
        finally:
            del self.transients[name]
            self.events.publish(ev.TransientCleared(agent=name, transient=kind))
            with trio.CancelScope(shield=True):
                await self.crashes.settle(name)
                await self.changed(name)

    def close(self) -> None:
        """The daemon is stopping its agents: from now on nothing starts and no exit is a
        crash."""
        self.closing = True

    # --- scopes -------------------------------------------------------------------------------
    def targets(self, verb: str, caller: str, name: str | None, scope: Any) -> list[str]:
        """The agents a lifecycle verb acts on: a bare `name`, or a scope (`agent_names`, or
        `agents: true` for every agent; `kill` of every agent skips those not running). Nobody
        acts on the caller itself (the manager cannot stop, kill or restart the manager)."""
        if name is not None:
            names = [name]
        elif scope is None:
            raise BadRequest("scope: required (agent_names, or agents: true)")
        elif scope.agents:
            return self.agents.sorted_names()
        elif not scope.agent_names:
            raise BadRequest("scope: name agents (agent_names) or all of them (agents: true)")
        else:
            names = list(scope.agent_names)
        for n in names:
            if n == caller:
                raise BadRequest(f"the {caller} cannot {verb} itself")
        return [self.agents.require(n) for n in names]

    async def each(
        self, verb: str, names: list[str], graceful: bool = True, settle: float | None = None
    ) -> None:
        """`verb` on every agent of a scope: one that fails does not keep the others from it;
        the first failure's kind is raised, naming every agent that failed. With `settle`
        (start, restart), the agents started must then stay up that long, all in one window."""
        _check_settle(settle)
        if verb == "kill" and len(names) > 1:
            running = await self.backend.running()
            names = [n for n in names if n in running]
        action: dict[str, Callable[[str], Awaitable[None]]] = {
            "start": self.start,
            "restart": self.restart,
            "kill": self.kill,
            "rebuild": self.rebuild,
            "stop": lambda n: self.stop(n, graceful),
        }
        failures: list[tuple[str, WireError]] = []
        started = []
        settling = bool(settle) and verb in ("start", "restart")
        for n in names:
            try:
                if settling:
                    self.crashes.watching(n)
                await action[verb](n)
                started.append(n)
            except WireError as e:
                if settling:
                    self.crashes.unwatch(n)
                failures.append((n, e))
        if settling:
            ended = await self.crashes.wait_settled(started, settle or 0)
            failures += [(n, _ended_at_once(n, verb, how)) for n, how in ended.items()]
        if failures:
            first = failures[0][1]
            raise type(first)("; ".join(f"{n}: {e.message}" for n, e in failures))

    # --- actions ------------------------------------------------------------------------------
    async def kick(self, name: str, what: str) -> None:
        await self.broker.deliver(SYSTEM, [name], f"[system] {what}: your harness may resume")

    def may_run(self, name: str) -> None:
        """Refuse to run `name` while the daemon stops, or if start-up could not reopen it (its
        socket is not served; whatever a killed daemon left of it was reaped)."""
        self.agents.require(name)
        if self.closing:
            raise Unavailable("the daemon is stopping")
        if name in self.agents.broken:
            raise Unavailable(
                f'agent "{name}" was not reopened at start-up (the daemon log '
                "says why); fix it and restart the daemon"
            )

    async def spawn(
        self, name: str, command: list[str] | None = None, settle: float | None = None
    ) -> None:
        _check_settle(settle)
        self.exits.pop(name, None)
        if settle:
            self.crashes.watching(name)
        await self.agents.spawn(name, command)
        await self.changed(name)
        await self.broker.notify(MANAGER, "spawned", agent=name)
        if settle:
            ended = await self.crashes.wait_settled([name], settle)
            if name in ended:
                raise _ended_at_once(name, "spawned", ended[name])

    async def start(self, name: str) -> None:
        self.may_run(name)
        async with self.transient(name, "starting"):
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            if name not in await self.backend.running():
                self.exits.pop(name, None)
                await self.backend.start(await self.agents.spec(name))
            await self.kick(name, "started")

    async def stop(self, name: str, graceful: bool = True) -> None:
        self.agents.require(name)
        async with self.transient(name, "stopping"):
            await self.agents.store.run(agents_sql.set_wanted, name, False)
            await self.backend.stop(name, graceful)
        self.exits.pop(name, None)

    async def restart(self, name: str) -> None:
        self.may_run(name)
        async with self.transient(name, "restarting"):
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            await self.backend.stop(name, True)
            self.exits.pop(name, None)
            await self.backend.start(await self.agents.spec(name))
            await self.kick(name, "restarted")

    async def kill(self, name: str) -> None:
        """Kill the agent's process at once (one that is not running is left as it is)."""
        self.agents.require(name)
        if name not in await self.backend.running():
            return
        async with self.transient(name, "stopping"):
            try:
                await self.backend.kill(name)
            except NotFound:
                pass  # it ended meanwhile
            await self.broker.requeue_inflight(name)
        await self.broker.notify(MANAGER, "killed", agent=name)

    async def rebuild(self, name: str) -> None:
        self.may_run(name)
        async with self.transient(name, "rebuilding"):
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            self.exits.pop(name, None)
            await self.backend.apply_config(await self.agents.spec(name))
            await self.kick(name, "rebuilt")
        await self.broker.notify(MANAGER, "rebuilt", agent=name)

    async def destroy(self, name: str, purge: bool = False) -> None:
        self.agents.require(name)
        async with self.transient(name, "destroying"):
            await self.backend.destroy(name)
            self.agents.endpoints.close(name)
            await self.agents.remove(name)
            await offload(_remove_tree, self.paths.run / "agents", name)
            if purge:
                await offload(_remove_tree, self.paths.state / "agents", name)
                await self.agents.repos.purge(name)
                await self.broker.purge(name)
        self.exits.pop(name, None)
        self.events.publish(ev.ContainerRemoved(agent=name))
        if not purge:
            self.events.publish(ev.TombstoneAdded(agent=name))
        await self.broker.notify(MANAGER, "destroyed", agent=name)

    # --- tombstones ---------------------------------------------------------------------------
    async def tombstones(self) -> list[dict[str, Any]]:
        root = self.paths.state / "agents"
        out = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name in self.agents.names or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                check_agent_name(entry.name)
            except BadRequest:
                continue
            out.append(
                {
                    "name": entry.name,
                    "destroyed_at": rfc3339(entry.stat(follow_symlinks=False).st_mtime),
                }
            )
        return out

    async def purge_tombstone(self, name: str) -> None:
        check_agent_name(name)
        if name in self.agents.names:
            raise Conflict(f'agent "{name}" exists; destroy it first')
        if not await offload(_remove_tree, self.paths.state / "agents", name):
            raise NotFound(f'no tombstone named "{name}"')
        await self.agents.repos.purge(name)
        await self.broker.purge(name)
        self.events.publish(ev.TombstoneRemoved(agent=name))

    # --- pause --------------------------------------------------------------------------------
    async def set_paused(self, name: str, paused: bool) -> None:
        self.agents.require(name)
        marker = self.paths.agent_state(name) / PAUSED_MARKER
        try:
            _set_marker(marker, paused)
        except OSError as e:
            raise Forbidden(
                f"cannot {'write' if paused else 'remove'} {marker}: {e.strerror or e}"
            ) from e
        await self.changed(name)


def _set_marker(marker: Any, present: bool) -> None:
    """Write or remove the plain empty file `marker`; a symlink there (the agent owns its state
    dir and may plant one) is unlinked, never followed."""
    try:
        st = os.lstat(marker)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        os.unlink(marker)
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EEXIST, "something other than a plain file is in the way")
    if present and st is None:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640))
    elif not present and st is not None:
        os.unlink(marker)


def _remove_tree(root: Any, name: str) -> bool:
    """Delete `root/name` if it is a real directory (a symlink there is unlinked, never
    followed); False if there was nothing."""
    path = root / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise Forbidden(f"{path} is not a real directory; refusing to touch it")
    shutil.rmtree(path)
    return True


def _check_settle(settle: float | None) -> None:
    if settle is not None and not 0 <= settle <= SETTLE_MAX:
        raise BadRequest(f"settle_seconds: must be 0 to {SETTLE_MAX:g}")


def _ended_at_once(name: str, done: str, how: str) -> Unavailable:
    done = {"start": "started", "restart": "restarted"}.get(done, done)
    return Unavailable(
        f'agent "{name}" was {done} but its process ended at once ({how}): see '
        f"`hive-core logs {name}`"
    )

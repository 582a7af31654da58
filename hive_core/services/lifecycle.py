"""The agent lifecycle: start, stop, restart, kill, rebuild, destroy, tombstones, pause, the
status rows and their feed, and the crash watcher (lifecycle.md).

Rules kept here:
- every action holds a *transient* on its agent (`starting`, `stopping`, `restarting`,
  `rebuilding`, `destroying`) for its whole duration and clears it on every exit path; a second
  action on an agent that carries one is a `conflict`;
- every change publishes `container_state_changed` with the agent's full status row (the
  dashboard and `subscribe_agent_status` read it) or `container_removed`;
- an agent that stops running without a transient on it has crashed: its in-flight messages are
  requeued, the manager gets `container_crash`; the process backend reports an exit at once, the
  watcher's scan (every `crash_scan` seconds; the first scan only seeds) catches the rest;
- an optional restart policy (off by default) restarts a crashed agent after an exponential
  back-off and gives up, saying so, after too many crashes in a window;
- destroy keeps the state dir as a tombstone unless `purge`; nothing is followed through a symlink.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from hive_core.backends.process import Backend
from hive_core.clock import offload, rfc3339
from hive_core.paths import Paths
from hive_core.services.agents import Agents
from hive_core.services.approvals import Approvals, NotNow
from hive_core.services.broker import MANAGER, Broker
from hive_core.services.events import EventChannel
from hive_core.services.helper_events import SYSTEM
from hive_core.services.reminders import Reminders
from hive_core.store import agents as agents_sql
from hive_wire import events as ev
from hive_wire.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable, WireError
from hive_wire.names import check_agent_name
from hive_wire.responses import AgentStatusRow

log = logging.getLogger(__name__)

PAUSED_MARKER = "paused"


@attrs.frozen
class RestartPolicy:
    max_crashes: int = 5
    window: float = 600.0
    backoff: float = 1.0
    backoff_max: float = 60.0


class Lifecycle:
    def __init__(
        self, agents: Agents, backend: Backend, broker: Broker, reminders: Reminders,
        events: EventChannel, paths: Paths, approvals: Approvals,
        urls: dict[str, str] | None = None, policy: RestartPolicy | None = None,
    ) -> None:
        self.approvals = approvals
        self.urls = urls or {}
        self.agents = agents
        self.backend = backend
        self.broker = broker
        self.reminders = reminders
        self.events = events
        self.paths = paths
        self.transients: dict[str, str] = {}
        self._seen_running: set[str] | None = None
        self.closing = False  # the daemon is stopping: no starts, no crash reports
        self.policy = policy
        self._crashes: dict[str, deque[float]] = {}
        self._nursery: trio.Nursery | None = None

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
                await self._settle(name)
                await self.changed(name)

    async def _settle(self, name: str) -> None:
        """After an action: the crash watcher's picture of `name` is what runs now, so what the
        action itself stopped is never taken for a crash at the next scan."""
        if self._seen_running is None:
            return
        if name in await self.backend.running():
            self._seen_running.add(name)
        else:
            self._seen_running.discard(name)

    def close(self) -> None:
        """The daemon is stopping its agents: from now on nothing starts and no exit is a
        crash."""
        self.closing = True

    # --- status -------------------------------------------------------------------------------
    def paused(self, name: str) -> bool:
        return os.path.lexists(self.paths.agent_state(name) / PAUSED_MARKER)

    async def rows(self, only: str | None = None) -> list[dict[str, Any]]:
        """Status rows (AgentStatusRow fields) of every agent, or of `only`."""
        rows: list[agents_sql.AgentRow] = await self.agents.store.run(agents_sql.all_rows)
        running = await self.backend.running()
        counts = await self.reminders.pending_counts()
        home = self.urls.get("home")
        deployed = {r.name: await self._deployed_sha(r.name) for r in rows
                    if only is None or r.name == only}
        return [
            {
                "name": r.name, "running": r.name in running,
                "failed": r.want_running and r.name not in running
                and r.name not in self.transients,
                "needs_update": False, "needs_login": False,
                "deployed_sha": deployed.get(r.name),
                "pending_reminders": counts.get(r.name, 0), "paused": self.paused(r.name),
                "status_text": r.status_text, "status_set_at": rfc3339(r.status_set_at),
                "url": f"{home.rstrip('/')}/agent/{r.name}/" if home else None,
                "transient": self.transients.get(r.name),
                "last_turn_at": rfc3339(r.last_turn_at),
            }
            for r in rows
            if only is None or r.name == only
        ]

    async def _deployed_sha(self, name: str) -> str | None:
        try:
            return await self.agents.repos.deployed_sha(name)
        except Unavailable:
            return None

    async def changed(self, name: str) -> None:
        rows = await self.rows(name)
        if rows:
            self.events.publish(ev.ContainerStateChanged(agent=name,
                                                         row=AgentStatusRow(**rows[0])))

    # --- actions ------------------------------------------------------------------------------
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

    async def each(self, verb: str, names: list[str], graceful: bool = True) -> None:
        """`verb` on every agent of a scope: one that fails does not keep the others from it;
        the first failure's kind is raised, naming every agent that failed."""
        if verb == "kill" and len(names) > 1:
            running = await self.backend.running()
            names = [n for n in names if n in running]
        action: dict[str, Callable[[str], Awaitable[None]]] = {
            "start": self.start, "restart": self.restart, "kill": self.kill,
            "rebuild": self.rebuild, "stop": lambda n: self.stop(n, graceful),
        }
        failures: list[tuple[str, WireError]] = []
        for n in names:
            try:
                await action[verb](n)
            except WireError as e:
                failures.append((n, e))
        if failures:
            first = failures[0][1]
            raise type(first)("; ".join(f"{n}: {e.message}" for n, e in failures))

    async def _spec(self, name: str) -> Any:
        return await self.agents.spec(name)

    # --- config as git ------------------------------------------------------------------------
    async def propose(self, agent: str, commit_ref: str, by: str,
                      description: str | None) -> int:
        """`request_apply_commit`: pin the manager's commit in the applied repo, tag it
        `proposal/<id>` and queue the approval (a bad ref never creates a row)."""
        self.agents.require(agent)
        sha = await self.agents.repos.resolve(agent, commit_ref)
        row = await self.approvals.request("apply_commit", agent, by, commit_ref=commit_ref,
                                           fetched_sha=sha, description=description)
        await self.agents.repos.tag_proposal(agent, row.id, sha)
        return row.id

    async def deploy(self, row: Any) -> dict[str, str]:
        """The `apply_commit` approval's action: apply the commit through the backend; on any
        failure the agent goes back to what it ran and the repo records `failed/<id>`."""
        name = row.agent
        self._may_run(name)
        if name in self.transients:  # before any tag: the approval stays pending
            raise NotNow(f'agent "{name}" is busy ({self.transients[name]}); approve again '
                         "once it is done")

        async def apply(sha: str) -> None:
            new = await self.agents.spec(name, sha)  # validates agent.toml before anything stops
            # A deploy runs the agent on the new config, as `rebuild` does (wanted running).
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            try:
                await self.backend.apply_config(new)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.backend.stop(name, True)
                    try:
                        await self.backend.start(await self.agents.spec(name))
                    except Exception as e:
                        log.error("could not restore the old config name=%s error=%s", name, e)
                raise
            await self._kick(name, "rebuilt with a new config")

        try:
            async with self.transient(name, "rebuilding"):
                result = await self.agents.repos.approve(name, row.id, apply,
                                                         expected_sha=row.fetched_sha)
        finally:
            self.agents.forget(name)
        await self.changed(name)
        return result

    async def proposal_diff(self, approval_id: int) -> tuple[str, str, str]:
        """(subject, diffstat, diff) of an `apply_commit` approval against the deployed config."""
        row = await self.approvals.get(approval_id)
        if row.kind != "apply_commit" or not row.fetched_sha:
            raise BadRequest(f"approval {approval_id} is not an apply_commit")
        repos = self.agents.repos
        subject, stat = await repos.subject_and_stat(row.agent, row.fetched_sha)
        return subject, stat, await repos.diff(row.agent, row.fetched_sha)

    async def refuse(self, row: Any) -> None:
        """The `apply_commit` approval was denied: record `denied/<id>` in the applied repo."""
        await self.agents.repos.deny(row.agent, row.id, row.note)

    async def _kick(self, name: str, what: str) -> None:
        await self.broker.deliver(SYSTEM, [name], f"[system] {what}: your harness may resume")

    async def spawn(self, name: str, command: list[str] | None = None) -> None:
        await self.agents.spawn(name, command)
        await self.changed(name)
        await self.broker.notify(MANAGER, "spawned", agent=name)

    def _may_run(self, name: str) -> None:
        """Refuse to run `name` while the daemon stops, or if start-up could not reopen it (its
        socket is not served; whatever a killed daemon left of it was reaped)."""
        self.agents.require(name)
        if self.closing:
            raise Unavailable("the daemon is stopping")
        if name in self.agents.broken:
            raise Unavailable(f'agent "{name}" was not reopened at start-up (the daemon log '
                              "says why); fix it and restart the daemon")

    async def start(self, name: str) -> None:
        self._may_run(name)
        async with self.transient(name, "starting"):
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            if name not in await self.backend.running():
                await self.backend.start(await self._spec(name))
            await self._kick(name, "started")

    async def stop(self, name: str, graceful: bool = True) -> None:
        self.agents.require(name)
        async with self.transient(name, "stopping"):
            await self.agents.store.run(agents_sql.set_wanted, name, False)
            await self.backend.stop(name, graceful)

    async def restart(self, name: str) -> None:
        self._may_run(name)
        async with self.transient(name, "restarting"):
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            await self.backend.stop(name, True)
            await self.backend.start(await self._spec(name))
            await self._kick(name, "restarted")

    async def kill(self, name: str) -> None:
        self.agents.require(name)
        async with self.transient(name, "stopping"):
            await self.backend.kill(name)
            await self.broker.requeue_inflight(name)
        await self.broker.notify(MANAGER, "killed", agent=name)

    async def rebuild(self, name: str) -> None:
        self._may_run(name)
        async with self.transient(name, "rebuilding"):
            await self.agents.store.run(agents_sql.set_wanted, name, True)
            await self.backend.apply_config(await self._spec(name))
            await self._kick(name, "rebuilt")
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
        self.events.publish(ev.ContainerRemoved(agent=name))
        if not purge:
            self.events.publish(ev.TombstoneAdded(agent=name))
        await self.broker.notify(MANAGER, "destroyed", agent=name)

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
            out.append({"name": entry.name,
                        "destroyed_at": rfc3339(entry.stat(follow_symlinks=False).st_mtime)})
        return out

    async def purge_tombstone(self, name: str) -> None:
        check_agent_name(name)
        if name in self.agents.names:
            raise Conflict(f'agent "{name}" exists; destroy it first')
        if not await offload(_remove_tree, self.paths.state / "agents", name):
            raise NotFound(f'no tombstone named "{name}"')
        await self.agents.repos.purge(name)
        self.events.publish(ev.TombstoneRemoved(agent=name))

    async def set_paused(self, name: str, paused: bool) -> None:
        self.agents.require(name)
        marker = self.paths.agent_state(name) / PAUSED_MARKER
        if paused:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o640)
            os.close(fd)
        else:
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass
        await self.changed(name)

    # --- crashes ------------------------------------------------------------------------------
    def on_exit(self, nursery: trio.Nursery) -> Any:
        """The backend's exit callback (it calls it only for exits nobody asked for): a crash,
        reported now."""

        self._nursery = nursery

        def exited(name: str, code: int) -> None:
            nursery.start_soon(self._exited, name, f"exit code {code}")

        return exited

    async def _exited(self, name: str, note: str) -> None:
        if self._seen_running is not None:
            self._seen_running.discard(name)
        if name not in self.agents.names:
            return
        # The backend reports only exits nobody asked for (its own stops are silent), so this
        # is a crash even under a transient: an agent that dies while starting crashed too.
        await self.crashed(name, note)

    async def crashed(self, name: str, note: str) -> None:
        if self.closing:
            return
        log.warning("agent crashed name=%s note=%s", name, note)
        requeued = await self.broker.requeue_inflight(name)
        self.events.publish(ev.ContainerCrash(agent=name, note=note, requeued=requeued))
        await self.changed(name)
        delay, gave_up = self._restart_plan(name)
        if gave_up:
            note += f"; gave up restarting after {gave_up}"
        elif delay is not None:
            note += f"; restarting in {delay:g} s"
        await self.broker.notify(MANAGER, "container_crash", agent=name, note=note)
        if delay is not None and self._nursery is not None:
            self._nursery.start_soon(self._restart_later, name, delay)

    def _restart_plan(self, name: str) -> tuple[float | None, str]:
        """(delay before restarting, or None; what made it give up, or "")."""
        policy = self.policy
        if policy is None:
            return None, ""
        at = trio.current_time()
        history = self._crashes.setdefault(name, deque())
        history.append(at)
        while history and history[0] < at - policy.window:
            history.popleft()
        if len(history) > policy.max_crashes:
            self.events.publish(ev.RestartGivenUp(agent=name, crashes=len(history)))
            return None, f"{len(history)} crashes in {policy.window:g} s"
        return min(policy.backoff_max, policy.backoff * 2 ** (len(history) - 1)), ""

    async def _restart_later(self, name: str, delay: float) -> None:
        await trio.sleep(delay)
        if name not in self.agents.names or name in self.transients:
            return
        if name in await self.backend.running():
            return
        row = await self.agents.store.run(agents_sql.get, name)
        if row is None or not row.want_running:
            return  # stopped by someone meanwhile
        try:
            await self.start(name)
        except Exception as e:
            log.error("restart after crash failed name=%s error=%s", name, e)

    async def watch(self, interval: float) -> None:
        """Every `interval` s: an agent that was running and is gone, with no transient, crashed.
        The first scan only seeds."""
        while True:
            try:
                running = await self.backend.running()
                seen, self._seen_running = self._seen_running, set(running)
                for name in sorted(seen - running if seen is not None else ()):
                    if name in self.agents.names and name not in self.transients:
                        await self.crashed(name, "gone at the crash watcher's scan")
            except Exception:
                log.exception("crash watcher scan failed")
            await trio.sleep(interval)


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

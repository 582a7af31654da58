"""The agent registry: which agents exist, their directories, their sockets and their processes.

Rules kept here:
- an agent exists when its row is in `agents`; `names` mirrors the table in memory for the
  broker's recipient checks;
- every path comes from a validated name through `Paths`; a planted symlink is refused, and a
  refused spawn leaves nothing behind (no row, no directory it created);
- opening and closing an agent's socket is the socket server's job, reached through the
  `endpoints`; running its command is the backend's.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any, Protocol

import attrs
import trio

from hive_core.backends.process import AgentSpec, Backend
from hive_core.clock import now
from hive_core.config_repos.agent_toml import MAX_ARGV
from hive_core.config_repos.repos import ConfigRepos
from hive_core.paths import Paths, ensure_dir
from hive_core.services.events import EventChannel
from hive_core.store import agents as sql
from hive_core.store.db import Store
from hive_wire.errors import BadRequest, Conflict, NotFound, Unavailable, WireError
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)

STATUS_TEXT_MAX = 1024
REOPEN_AT_ONCE = 8  # agents reopened at once at start-up (their git processes overlap)


class Endpoints(Protocol):
    """Where an agent's socket is served (the sockets surface): opened before its process
    starts, closed when it is destroyed."""

    async def open(self, name: str) -> None: ...

    def close(self, name: str) -> None: ...


class Agents:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        backend: Backend,
        paths: Paths,
        endpoints: Endpoints,
        repos: ConfigRepos,
    ) -> None:
        self.repos = repos
        # An applied repo's main moves only when the daemon deploys, and a commit's config never
        # changes: both are read from git once (`forget` after a deploy or a destroy).
        self._main: dict[str, str] = {}
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self._no_config: set[str] = set()  # no readable agent.toml on main (until `forget`)
        self.store = store
        self.events = events
        self.backend = backend
        self.paths = paths
        self.endpoints = endpoints
        self.names: set[str] = set()
        self.broken: set[str] = set()  # known agents whose directories or socket were refused

    def is_agent(self, name: str) -> bool:
        return name in self.names

    def sorted_names(self) -> list[str]:
        return sorted(self.names)

    async def load(self) -> list[sql.AgentRow]:
        rows: list[sql.AgentRow] = await self.store.run(sql.all_rows)
        self.names = {r.name for r in rows}
        return rows

    async def spec(self, name: str, sha: str | None = None) -> AgentSpec:
        """What to run for `name`: its config at `sha` in the applied repo (default: main).
        Its directories are checked again first: one swapped for a symlink is refused."""
        self._make_dirs(name)
        command: list[str] = []
        env: dict[str, str] = {}
        if self.backend.kind == "process":
            if sha is None and (sha := self._main.get(name)) is None:
                found = await self.repos.main_config(name)
                if found is None:
                    raise Unavailable(f'agent "{name}" has no applied config repo')
                sha, self._configs[(name, sha)] = found
                self._main[name] = sha
            config = self._configs.get((name, sha))
            if config is None:
                config = self._configs[(name, sha)] = await self.repos.config_at(name, sha)
            command, env = config["command"], config["env"]
        return attrs.evolve(self.bare_spec(name), command=command, env=env)

    async def budget(self, name: str) -> dict[str, float]:
        """`name`'s `[budget]` from `agent.toml` on its applied repo's main (cached as `spec`'s
        config is); {} when it has none, or no readable `agent.toml` (remembered, so a
        nixos-container agent, which has none, costs no git process a turn)."""
        if name in self._no_config:
            return {}
        try:
            if (sha := self._main.get(name)) is None:
                found = await self.repos.main_config(name)
                if found is None:
                    self._no_config.add(name)
                    return {}
                sha, self._configs[(name, sha)] = found
                self._main[name] = sha
            config = self._configs.get((name, sha))
            if config is None:
                config = self._configs[(name, sha)] = await self.repos.config_at(name, sha)
        except (BadRequest, NotFound):  # none, or not a valid one: until the next deploy
            self._no_config.add(name)
            return {}
        except WireError:  # git could not run: try again next time
            return {}
        return dict(config.get("budget", {}))

    def bare_spec(self, name: str) -> AgentSpec:
        """`name`'s paths, no command: enough for the backend's `create`."""
        return AgentSpec(
            name=name,
            command=[],
            state_dir=self.paths.agent_state(name),
            socket=self.paths.agent_socket(name),
            log_file=self.paths.agent_log(name),
        )

    def _make_dirs(self, name: str) -> None:
        ensure_dir(self.paths.state, "agents", name, "state")
        ensure_dir(self.paths.run, "agents", name, mode=0o750)

    async def spawn(self, name: str, command: list[str] | None = None) -> None:
        check_agent_name(name, max_len=self.backend.max_name)
        if command is not None:
            if not command or len(command) > MAX_ARGV:
                raise BadRequest(f"command: must be an argv list of 1 to {MAX_ARGV} strings")
            if any("\x00" in a for a in command):
                raise BadRequest("command: arguments must not contain NUL")
        if name in self.names:
            raise Conflict(f'agent "{name}" already exists')
        created = [
            d
            for d in (self.paths.agent_dir(name), self.paths.agent_run_dir(name))
            if not d.exists()
        ]
        self._make_dirs(name)
        seeded = False
        try:
            seeded = await self.repos.seed(name, self.backend.kind, command)
            if not await self.store.run(sql.insert, name, command, now()):
                raise Conflict(f'agent "{name}" already exists')
        except BaseException:
            with trio.CancelScope(shield=True):
                if seeded:
                    await self.repos.purge(name)
            for made in created:
                shutil.rmtree(made, ignore_errors=True)
            raise
        self.names.add(name)
        try:
            spec = await self.spec(name)
            await self.endpoints.open(name)
            await self.backend.create(spec)
            await self.backend.start(spec)
        except BaseException:
            # Undo everything: a spawn that failed leaves no half-made agent behind.
            self.names.discard(name)
            self.forget(name)
            self.endpoints.close(name)
            with trio.CancelScope(shield=True):
                await self.backend.destroy(name)
                await self.store.run(sql.delete, name)
                if seeded:
                    await self.repos.purge(name)
            for made in created:
                shutil.rmtree(made, ignore_errors=True)
            raise
        log.info("agent spawned name=%s", name)

    async def reopen(self, rows: list[sql.AgentRow]) -> None:
        """At start-up: every known agent gets its directories and socket back. Agents are
        independent and most of the time goes to git processes, so a few go at once."""
        limit = trio.CapacityLimiter(REOPEN_AT_ONCE)

        async def one(row: sql.AgentRow) -> None:
            async with limit:
                try:
                    self._make_dirs(row.name)
                    # First, so that a copy a killed daemon left running is reaped even if a
                    # later step fails (`create` needs only the paths).
                    await self.backend.create(self.bare_spec(row.name))
                    await self.repos.seed(row.name, self.backend.kind, row.command)
                    await self.repos.recover(row.name)  # a build cut short by a crash
                    await self.repos.sync_forge(row.name)
                    await self.endpoints.open(row.name)
                    await self.spec(row.name)  # its config, checked now (cached for the start)
                except (WireError, OSError) as e:  # one broken agent must not stop the daemon
                    log.error("agent not served name=%s error=%s", row.name, e)
                    self.broken.add(row.name)

        async with trio.open_nursery() as nursery:
            for row in rows:
                nursery.start_soon(one, row)

    def forget(self, name: str) -> None:
        """Drop what is cached of `name`'s applied repo (it was deployed to, or removed)."""
        self._main.pop(name, None)
        self._no_config.discard(name)
        for key in [k for k in self._configs if k[0] == name]:
            del self._configs[key]

    async def restart_setting(self, name: str) -> str | None:
        """`[lifecycle] restart` of `name`'s deployed agent.toml ("on-crash" or "never"), or
        None when it says nothing (or has no agent.toml: the nixos-container backend)."""
        if self.backend.kind != "process":
            return None
        try:
            await self.spec(name)  # reads and caches main's config
        except (WireError, OSError):
            return None
        config = self._configs.get((name, self._main.get(name, "")), {})
        value = config.get("restart")
        return value if isinstance(value, str) else None

    async def remove(self, name: str) -> None:
        self.forget(name)
        """Forget an agent (its row and name); its directories are the caller's business."""
        self.names.discard(name)
        await self.store.run(sql.delete, name)

    async def set_status(self, name: str, text: str) -> None:
        if len(text) > STATUS_TEXT_MAX:
            raise BadRequest(f"text: longer than {STATUS_TEXT_MAX} characters")
        if not await self.store.run(sql.set_status, name, text, now()):
            raise NotFound(f'agent "{name}" is not managed by this hive')

    def require(self, name: str) -> str:
        check_agent_name(name)
        if name not in self.names:
            raise NotFound(f'agent "{name}" is not managed by this hive')
        return name

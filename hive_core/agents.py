"""The agent registry: which agents exist, their directories, their sockets and their processes.

Rules kept here:
- an agent exists when its row is in `agents`; `names` mirrors the table in memory for the
  broker's recipient checks;
- every path comes from a validated name through `Paths`; a planted symlink is refused, and a
  refused spawn leaves nothing behind (no row, no directory it created);
- opening and closing an agent's socket is the socket server's job, reached through the
  `open_socket` callback; running its command is the backend's.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Awaitable, Callable

import trio

from hive_wire.errors import BadRequest, Conflict, NotFound
from hive_wire.names import check_agent_name

from .backend import AgentSpec, Backend
from .clock import now
from .events import EventChannel
from .paths import Paths, ensure_dir
from .store import agents as sql
from .store.db import Store

log = logging.getLogger("hive_core.agents")

ECHO_AGENT = [sys.executable, "-m", "hive_core", "agent", "echo"]
MAX_ARGV = 256
STATUS_TEXT_MAX = 1024


class Agents:
    def __init__(
        self,
        store: Store,
        events: EventChannel,
        backend: Backend,
        paths: Paths,
        open_socket: Callable[[str], Awaitable[None]],
        close_socket: Callable[[str], None],
    ) -> None:
        self.store = store
        self.events = events
        self.backend = backend
        self.paths = paths
        self.open_socket = open_socket
        self.close_socket = close_socket
        self.names: set[str] = set()

    def is_agent(self, name: str) -> bool:
        return name in self.names

    def sorted_names(self) -> list[str]:
        return sorted(self.names)

    async def load(self) -> list[sql.AgentRow]:
        rows: list[sql.AgentRow] = await self.store.run(sql.all_rows)
        self.names = {r.name for r in rows}
        return rows

    def spec(self, name: str, command: list[str] | None) -> AgentSpec:
        return AgentSpec(
            name=name,
            command=command or ECHO_AGENT,
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
        created = not self.paths.agent_dir(name).exists()
        self._make_dirs(name)
        try:
            if not await self.store.run(sql.insert, name, command, now()):
                raise Conflict(f'agent "{name}" already exists')
        except BaseException:
            if created:
                shutil.rmtree(self.paths.agent_dir(name), ignore_errors=True)
            raise
        self.names.add(name)
        spec = self.spec(name, command)
        try:
            await self.open_socket(name)
            await self.backend.create(spec)
            await self.backend.start(spec)
        except BaseException:
            # Undo everything: a spawn that failed leaves no half-made agent behind.
            self.names.discard(name)
            self.close_socket(name)
            with trio.CancelScope(shield=True):
                await self.backend.destroy(name)
                await self.store.run(sql.delete, name)
            if created:
                shutil.rmtree(self.paths.agent_dir(name), ignore_errors=True)
            raise
        log.info("agent spawned name=%s", name)

    async def reopen(self, rows: list[sql.AgentRow]) -> None:
        """At start-up: every known agent gets its directories and socket back."""
        for row in rows:
            self._make_dirs(row.name)
            await self.open_socket(row.name)
            await self.backend.create(self.spec(row.name, row.command))

    async def remove(self, name: str) -> None:
        """Forget an agent (its row and name); its directories are the caller's business."""
        self.names.discard(name)
        await self.store.run(sql.delete, name)

    async def set_status(self, name: str, text: str) -> None:
        if len(text) > STATUS_TEXT_MAX:
            raise BadRequest(f"text: longer than {STATUS_TEXT_MAX} characters")
        if not await self.store.run(sql.set_status, name, text, now()):
            raise NotFound(f'agent "{name}" is not managed by this hive')
        self.events.publish("agent_activity", agent=name, status_text=text)

    def require(self, name: str) -> str:
        check_agent_name(name)
        if name not in self.names:
            raise NotFound(f'agent "{name}" is not managed by this hive')
        return name

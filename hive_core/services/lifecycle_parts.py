"""What the parts of the lifecycle (status rows, crashes, deploys) may use of the `Lifecycle`
that owns them: a Protocol, so that they know its shape without importing it (the lifecycle
imports them; an import back would be a circle)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from hive_core.backends.process import Backend
from hive_core.paths import Paths
from hive_core.services.agents import Agents
from hive_core.services.approvals import Approvals
from hive_core.services.broker import Broker
from hive_core.services.events import EventChannel
from hive_core.services.reminders import Reminders


class LifecycleParts(Protocol):
    agents: Agents
    backend: Backend
    broker: Broker
    events: EventChannel
    approvals: Approvals
    reminders: Reminders
    paths: Paths
    urls: dict[str, str]
    transients: dict[str, str]
    exits: dict[str, str]
    closing: bool
    row_keys: Callable[[str], Awaitable[dict[str, Any]]] | None  # more keys of a published row

    async def changed(self, name: str) -> None: ...

    async def start(self, name: str) -> None: ...

    async def kick(self, name: str, what: str) -> None: ...

    def may_run(self, name: str) -> None: ...

    def transient(self, name: str, kind: str) -> AbstractAsyncContextManager[None]: ...

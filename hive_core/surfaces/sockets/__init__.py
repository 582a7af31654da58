"""The unix-socket surface: the verb table mapped onto the three socket kinds.

Rules kept here:
- a socket kind serves exactly the verbs `hive_wire.verbs` lists for it, each by the service
  function `services.api.HANDLERS` names; a verb of the table without a function (or the
  reverse) is an error at import, not at the first request;
- an agent's socket is opened before its process starts and closed when it is destroyed
  (`AgentSockets`, the services' `Endpoints`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from hive_core.paths import Paths
from hive_core.services.answers import Handler
from hive_core.services.api import HANDLERS
from hive_core.surfaces.sockets.server import SocketServer, Surface
from hive_wire.verbs import VERBS, Socket, served_on

_missing = set(VERBS) ^ set(HANDLERS)
if _missing:
    raise ImportError(f"verbs without a service function, or the reverse: {sorted(_missing)}")

TABLES: dict[Socket, dict[str, Handler]] = {
    role: {name: HANDLERS[name] for name in served_on(role)}
    for role in ("host", "manager", "agent")
}


def surface(role: Socket, caller: str, hive: Any) -> Surface:
    return Surface(role, caller, TABLES[role], hive)


class AgentSockets:
    """One socket per agent at `<run>/agents/<name>/mcp.sock`, served in `nursery`. The hive
    its verbs are given is asked for when a socket opens (`hive()`): the daemon builds the hive
    with this object, so it exists by the time an agent is spawned or reopened."""

    def __init__(
        self, server: SocketServer, nursery: trio.Nursery, paths: Paths, hive: Callable[[], Any]
    ) -> None:
        self.server = server
        self.nursery = nursery
        self.paths = paths
        self.hive = hive

    async def open(self, name: str) -> None:
        await self.server.listen(
            self.nursery, self.paths.agent_socket(name), surface("agent", name, self.hive())
        )

    def close(self, name: str) -> None:
        self.server.close(self.paths.agent_socket(name))

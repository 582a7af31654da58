"""Status rows: what `agent_status`, its feed and the dashboard show of each agent, and of the
manager.

Rules kept here:
- a row is built from the registry, the backend's running set, the transients and the crash
  record at the moment it is asked for: nothing here is cached;
- `failed` is "wanted running, not running, no action under way"; `exit_status` says how its
  process last ended when that end was a crash (cleared when it starts again);
- the manager has no row (it is not an agent), but its process and its queue are reported beside
  the rows: its messages pile up whether or not a manager process runs;
- `changed(name)` publishes `container_state_changed` with the full row, and the keys the
  lifecycle was given a source of (`row_keys`: the costs service's, with no import of it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hive_core.clock import rfc3339
from hive_core.services.broker import MANAGER
from hive_core.services.lifecycle_parts import LifecycleParts
from hive_core.store import agents as agents_sql
from hive_wire import events as ev
from hive_wire.errors import Unavailable, WireError
from hive_wire.responses import AgentStatusRow

PAUSED_MARKER = "paused"

log = logging.getLogger(__name__)


class StatusRows:
    def __init__(self, lifecycle: LifecycleParts) -> None:
        self.lc = lifecycle

    def paused(self, name: str) -> bool:
        return os.path.lexists(self.lc.paths.agent_state(name) / PAUSED_MARKER)

    async def rows(self, only: str | None = None) -> list[dict[str, Any]]:
        """Status rows (AgentStatusRow fields) of every agent, or of `only`."""
        lc = self.lc
        rows: list[agents_sql.AgentRow] = await lc.agents.store.run(agents_sql.all_rows)
        running = await lc.backend.running()
        counts = await lc.reminders.pending_counts()
        home = lc.urls.get("home")  # the dashboard (its page of an agent is /agents/NAME)
        deployed = {
            r.name: await self._deployed_sha(r.name) for r in rows if only is None or r.name == only
        }
        out = []
        for r in rows:
            if only is not None and r.name != only:
                continue
            failed = r.want_running and r.name not in running and r.name not in lc.transients
            out.append(
                {
                    "name": r.name,
                    "running": r.name in running,
                    "failed": failed,
                    "needs_update": False,
                    "needs_login": False,
                    "deployed_sha": deployed.get(r.name),
                    "pending_reminders": counts.get(r.name, 0),
                    "paused": self.paused(r.name),
                    "status_text": r.status_text,
                    "status_set_at": rfc3339(r.status_set_at),
                    "url": f"{home.rstrip('/')}/agents/{r.name}" if home else None,
                    "transient": lc.transients.get(r.name),
                    "last_turn_at": rfc3339(r.last_turn_at),
                    "exit_status": lc.exits.get(r.name) if failed else None,
                }
            )
        return out

    async def manager(self) -> dict[str, Any]:
        """The manager's process (running, or how it last ended) and its unread count."""
        lc = self.lc
        running = MANAGER in await lc.backend.running()
        return {
            "running": running,
            "unread": await lc.broker.unread(MANAGER),
            "exit_status": None if running else lc.exits.get(MANAGER),
        }

    async def _deployed_sha(self, name: str) -> str | None:
        try:
            return await self.lc.agents.repos.deployed_sha(name)
        except Unavailable:
            return None

    async def changed(self, name: str) -> None:
        """Publish `container_state_changed` with `name`'s full row, its cost keys included."""
        rows = await self.rows(name)
        if not rows:
            return
        row = rows[0]
        if self.lc.row_keys is not None:
            try:
                row |= await self.lc.row_keys(name)
            except WireError as e:  # the row goes out all the same; the page keeps its figures
                log.warning("status row of %s without its cost keys: %s", name, e)
        self.lc.events.publish(ev.ContainerStateChanged(agent=name, row=AgentStatusRow(**row)))

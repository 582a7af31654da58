"""The verbs of agents: listing, status rows, spawn and the lifecycle verbs, logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hive_core.services.answers import Feed, Handler
from hive_wire import requests as rq
from hive_wire import responses as rs
from hive_wire.errors import BadRequest

if TYPE_CHECKING:
    from hive_core.app import Hive


# --- host socket (and the manager's read verbs) -----------------------------------------------
async def list_agents(hive: Hive, caller: str, req: rq.List) -> rs.AgentList:
    return rs.AgentList(agents=hive.agents.sorted_names())


def _status_row(row: dict[str, Any], costs: dict[str, Any] | None = None) -> rs.AgentStatusRow:
    """A status row, with its cost keys (`Costs.row_keys`) when given."""
    row = {**row, **(costs or {})}
    if isinstance(row.get("budget"), dict):
        row["budget"] = rs.Budget(**row["budget"])
    return rs.AgentStatusRow(**row)


async def agent_status(hive: Hive, caller: str, req: rq.AgentStatus) -> rs.AgentStatuses:
    rows = await hive.lifecycle.rows()
    costs = await hive.costs.row_keys()
    manager = None
    if req.with_manager:
        manager = rs.ManagerStatus(**await hive.lifecycle.manager_status())
    return rs.AgentStatuses(
        agent_statuses=[_status_row(r, costs.get(r["name"])) for r in rows], manager=manager
    )


async def subscribe_agent_status(hive: Hive, caller: str, req: rq.SubscribeAgentStatus) -> Feed:
    start = hive.events.seq

    async def items() -> AsyncIterator[Any]:
        with hive.events.subscribe(start) as sub:
            while True:
                event = await sub.next()
                if event["kind"] == "container_state_changed":
                    yield rs.AgentStatuses(agent_statuses=[_status_row(event["row"])])

    return Feed(ack=rs.Ok(), items=items())


async def urls(hive: Hive, caller: str, req: rq.Urls) -> rs.Urls:
    u = hive.config.urls
    return rs.Urls(
        urls=rs.UrlMap(
            domain=u.get("domain"),
            home=u.get("home") or hive.dashboard_url,
            forge=u.get("forge"),
            matrix=u.get("matrix"),
        )
    )


async def spawn(hive: Hive, caller: str, req: rq.Spawn) -> rs.Ok:
    await hive.lifecycle.spawn(req.name, req.command, req.settle_seconds)
    return rs.Ok()


# --- lifecycle -------------------------------------------------------------------------------
async def _scoped(hive: Hive, caller: str, verb: str, req: Any, graceful: bool = True) -> rs.Ok:
    names = hive.lifecycle.targets(verb, caller, req.name, req.scope)
    await hive.lifecycle.each(verb, names, graceful, getattr(req, "settle_seconds", None))
    return rs.Ok()


async def start(hive: Hive, caller: str, req: rq.Start) -> rs.Ok:
    return await _scoped(hive, caller, "start", req)


async def stop(hive: Hive, caller: str, req: rq.Stop) -> rs.Ok:
    return await _scoped(hive, caller, "stop", req, req.graceful)


async def restart(hive: Hive, caller: str, req: rq.Restart) -> rs.Ok:
    return await _scoped(hive, caller, "restart", req)


async def kill(hive: Hive, caller: str, req: rq.Kill) -> rs.Ok:
    return await _scoped(hive, caller, "kill", req)


async def rebuild(hive: Hive, caller: str, req: rq.Rebuild) -> rs.Ok:
    return await _scoped(hive, caller, "rebuild", req)


async def destroy(hive: Hive, caller: str, req: rq.Destroy) -> rs.Ok:
    await hive.lifecycle.destroy(req.name, req.purge)
    hive.activity.forget(req.name)  # its activity history goes with it
    return rs.Ok()


async def tombstones(hive: Hive, caller: str, req: rq.Tombstones) -> rs.Tombstones:
    return rs.Tombstones(tombstones=[rs.Tombstone(**t) for t in await hive.lifecycle.tombstones()])


async def purge_tombstone(hive: Hive, caller: str, req: rq.PurgeTombstone) -> rs.Ok:
    await hive.lifecycle.purge_tombstone(req.name)
    return rs.Ok()


async def set_paused(hive: Hive, caller: str, req: rq.SetPaused) -> rs.Ok:
    await hive.lifecycle.set_paused(req.name, req.paused)
    return rs.Ok()


async def logs(hive: Hive, caller: str, req: rq.Logs) -> rs.Lines:
    if not 0 <= req.lines <= 10_000:
        raise BadRequest("lines: must be 0 to 10000")
    return rs.Lines(lines=await hive.backend.logs(hive.agents.require(req.name), req.lines))


HANDLERS: dict[str, Handler] = {
    "list": list_agents,
    "agent_status": agent_status,
    "kill": kill,
    "start": start,
    "restart": restart,
    "rebuild": rebuild,
    "urls": urls,
    "spawn": spawn,
    "subscribe_agent_status": subscribe_agent_status,
    "set_paused": set_paused,
    "stop": stop,
    "destroy": destroy,
    "tombstones": tombstones,
    "purge_tombstone": purge_tombstone,
    "logs": logs,
}

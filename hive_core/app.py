"""`Hive`: every service of a running daemon, built from the config in one place.

Rules kept here:
- every service is constructed here and only here, each given what it needs (no service builds
  another, none is patched after construction);
- no transport: the sockets surface is given as `endpoints` (where agent sockets are served);
  the HTTP surface and the socket dispatcher only call into the services;
- the background tasks the services need are listed in `tasks()`; `serve()` starts them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from hive_core.backends.nixos import NixosContainerBackend
from hive_core.backends.process import Backend, ProcessBackend
from hive_core.config import Config
from hive_core.config_repos.repos import ConfigRepos
from hive_core.paths import Paths
from hive_core.services.activity import Activity
from hive_core.services.agents import Agents, Endpoints
from hive_core.services.approvals import Approvals
from hive_core.services.broker import Broker
from hive_core.services.costs import Costs
from hive_core.services.events import EventChannel
from hive_core.services.lifecycle import Lifecycle, RestartPolicy
from hive_core.services.loose_ends import LooseEnds
from hive_core.services.questions import Questions
from hive_core.services.reminders import Reminders
from hive_core.store.approvals import ApprovalRow
from hive_core.store.db import Store


@attrs.define(eq=False)
class Hive:
    """Every service of a running daemon; what the verbs are given."""

    config: Config
    paths: Paths
    store: Store
    events: EventChannel
    backend: Backend
    agents: Agents
    broker: Broker
    approvals: Approvals
    questions: Questions
    reminders: Reminders
    loose_ends: LooseEnds
    lifecycle: Lifecycle
    activity: Activity
    costs: Costs
    stopping: trio.Event = attrs.Factory(trio.Event)
    dashboard_url: str | None = None  # `http://HOST:PORT/` once the dashboard serves

    def shutdown(self) -> None:
        self.stopping.set()

    def tasks(self) -> list[Callable[[], Awaitable[Any]]]:
        """The services' background tasks, each to run until the daemon stops."""
        return [
            self.reminders.scheduler,
            self.questions.watchdog,
            lambda: self.lifecycle.watch(self.config.crash_scan),
            self.costs.rollover,
            self.events.writer,
        ]


def make_backend(config: Config) -> Backend:
    if config.backend == "process":
        return ProcessBackend(grace=config.stop_grace, claude_command=config.claude_command)
    if config.backend == "nixos-container":
        return NixosContainerBackend(
            executable=config.nixos_container,
            journalctl=config.journalctl,
            conf_dir=Path(config.nixos_container_conf_dir),
        )
    raise ValueError(f"backend {config.backend!r} is not built yet")


def build(
    config: Config,
    paths: Paths,
    store: Store,
    backend: Backend,
    endpoints: Endpoints,
    nursery: trio.Nursery,
) -> Hive:
    """Every service, wired once. `nursery` runs the config repos' forge mirror."""
    events = EventChannel()
    token_file = config.forge.get("token_file")
    repos = ConfigRepos(
        paths.state, config.forge.get("url"), Path(token_file) if token_file else None
    )
    repos.attach(nursery)
    agents = Agents(store, events, backend, paths, endpoints, repos)
    broker = Broker(
        store,
        events,
        agents.is_agent,
        agents.sorted_names,
        body_limit=config.body_limit,
        lease_timeout=config.lease_timeout,
        max_deliveries=config.max_deliveries,
    )
    questions = Questions(store, events, broker)
    reminders = Reminders(store, events, broker, paths.agent_state)
    # The lifecycle runs what an approval grants; the approvals service is given those actions.
    actions: dict[str, Callable[[ApprovalRow], Awaitable[dict[str, str]]]] = {}
    on_deny: dict[str, Callable[[ApprovalRow], Awaitable[None]]] = {}
    approvals = Approvals(store, events, broker, actions, on_deny)
    # The default for agents whose agent.toml has no `[lifecycle] restart`.
    policy = RestartPolicy(
        config.restart_max_crashes,
        config.restart_window,
        config.restart_backoff,
        config.restart_backoff_max,
        enabled=config.restart_on_crash,
    )

    # The rows the lifecycle publishes carry the costs service's keys; it is built below, from
    # the lifecycle, so the lifecycle is given a function that asks it (no import, no circle).
    async def cost_keys(name: str) -> dict[str, Any]:
        return await costs.keys_of(name)

    lifecycle = Lifecycle(
        agents, backend, broker, reminders, events, paths, approvals, config.urls, policy, cost_keys
    )

    async def approve_spawn(row: ApprovalRow) -> dict[str, str]:
        await lifecycle.spawn(row.agent)
        return {}

    costs = Costs(store, events, broker, agents, approvals, lifecycle, config.budget)
    actions.update(spawn=approve_spawn, apply_commit=lifecycle.deploy, raise_budget=costs.grant)
    on_deny.update(apply_commit=lifecycle.refuse, raise_budget=costs.refused)
    return Hive(
        config,
        paths,
        store,
        events,
        backend,
        agents,
        broker,
        approvals,
        questions,
        reminders,
        LooseEnds(approvals, questions, reminders),
        lifecycle,
        Activity(store, events, agents.is_agent, costs.recorded),
        costs,
    )

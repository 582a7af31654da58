"""`serve()`: the daemon. It owns every task in one nursery.

Start-up order: directories, database (opened and migrated), the agent registry, the manager
socket, every known agent's socket and process, the host socket (so a client that reaches it finds
everything else up), then `READY=1` and the background tasks.
Shutdown (`Hive.shutdown()`, which SIGTERM/SIGINT call): stop accepting and cancel requests in
flight, stop the agents (unless configured to leave them), cancel the background tasks, close the
database, remove the socket files.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import resource
import signal
from pathlib import Path

import attrs
import trio

from hive_core import sdnotify
from hive_core.backends.nixos import NixosContainerBackend
from hive_core.backends.process import AgentSpec, Backend, ProcessBackend
from hive_core.clock import now, offload
from hive_core.config import Config
from hive_core.config_repos.repos import ConfigRepos
from hive_core.paths import Paths, ensure_dir
from hive_core.services import api as verbs
from hive_core.services.agents import Agents
from hive_core.services.approvals import Approvals
from hive_core.services.broker import MANAGER, OPERATOR, Broker
from hive_core.services.events import EventChannel
from hive_core.services.lifecycle import Lifecycle, RestartPolicy
from hive_core.services.loose_ends import LooseEnds
from hive_core.services.questions import Questions
from hive_core.services.reminders import Reminders
from hive_core.store import agent_files
from hive_core.store.approvals import ApprovalRow
from hive_core.store.db import Store
from hive_core.surfaces.sockets.server import SocketServer, Surface, admin_gid

log = logging.getLogger(__name__)

VACUUM_EVERY = 3600.0
LEASE_SWEEP_MAX = 60.0


@attrs.define(eq=False)
class Hive:
    """Every service of a running daemon; what the socket verbs are given."""

    config: Config
    paths: Paths
    store: Store
    events: EventChannel
    backend: Backend
    agents: Agents
    broker: Broker
    server: SocketServer
    approvals: Approvals
    questions: Questions
    reminders: Reminders
    loose_ends: LooseEnds
    lifecycle: Lifecycle
    stopping: trio.Event = attrs.Factory(trio.Event)

    def shutdown(self) -> None:
        self.stopping.set()


def make_backend(config: Config) -> Backend:
    if config.backend == "process":
        return ProcessBackend(grace=config.stop_grace)
    if config.backend == "nixos-container":
        return NixosContainerBackend(
            executable=config.nixos_container,
            journalctl=config.journalctl,
            conf_dir=Path(config.nixos_container_conf_dir),
        )
    raise ValueError(f"backend {config.backend!r} is not built yet")


def _prepare_dirs(paths: Paths) -> None:
    paths.state.mkdir(parents=True, exist_ok=True, mode=0o750)
    paths.run.mkdir(parents=True, exist_ok=True, mode=0o751)
    os.chmod(paths.run, 0o751)
    ensure_dir(paths.run, "manager", mode=0o750)
    ensure_dir(paths.run, "agents", mode=0o751)
    ensure_dir(paths.state, "agents", mode=0o750)


async def serve(
    config: Config, *, task_status: trio.TaskStatus[Hive] = trio.TASK_STATUS_IGNORED
) -> None:
    paths = Paths(config.state_dir, config.run_dir)
    _raise_fd_limit()
    _prepare_dirs(paths)
    lock = _lock_state_dir(paths)
    store = Store(paths.database, max_bytes=config.database_max_bytes)
    try:
        await store.open()
        async with trio.open_nursery() as nursery:
            backend = make_backend(config)
            try:
                hive = await _start(config, paths, store, nursery, backend)
            except BaseException:  # whatever start-up started, it stops
                if config.stop_agents_on_exit:
                    with trio.CancelScope(shield=True):
                        await backend.close()
                raise
            task_status.started(hive)
            await hive.stopping.wait()
            log.info("stopping")
            sdnotify.notify("STOPPING=1")
            hive.server.close_all()
            hive.lifecycle.close()  # no restarts, no crash reports from here on
            if config.stop_agents_on_exit:
                await hive.backend.close()
            nursery.cancel_scope.cancel()
    finally:
        await store.close()
        os.close(lock)
    log.info("stopped")


def _raise_fd_limit() -> None:
    """Every agent and client holds a descriptor: take the hard limit, not the soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _lock_state_dir(paths: Paths) -> int:
    """One daemon per state dir: an exclusive lock on `<state>/hive.lock`, held until exit."""
    fd = os.open(paths.state / "hive.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OSError(errno.EBUSY, f"another hive-core daemon is using {paths.state}") from None
    return fd


async def _start(
    config: Config, paths: Paths, store: Store, nursery: trio.Nursery, backend: Backend
) -> Hive:
    events = EventChannel()
    server = SocketServer(None, config.line_limit, config.admin_group,
                          config.max_connections, config.read_deadline,
                          config.max_connections_per_agent)

    async def open_agent_socket(name: str) -> None:
        await server.listen(nursery, paths.agent_socket(name), Surface("agent", name, verbs.AGENT))

    def close_agent_socket(name: str) -> None:
        server.close(paths.agent_socket(name))

    token_file = config.forge.get("token_file")
    repos = ConfigRepos(paths.state, config.forge.get("url"),
                        Path(token_file) if token_file else None)
    repos.attach(nursery)
    agents = Agents(store, events, backend, paths, open_agent_socket, close_agent_socket, repos)
    broker = Broker(
        store, events, agents.is_agent, agents.sorted_names,
        body_limit=config.body_limit, lease_timeout=config.lease_timeout,
        max_deliveries=config.max_deliveries,
    )
    approvals = Approvals(store, events, broker)
    questions = Questions(store, events, broker)
    reminders = Reminders(store, events, broker, paths.agent_state)
    lifecycle = Lifecycle(agents, backend, broker, reminders, events, paths, approvals,
                          config.urls)
    if config.restart_on_crash:
        lifecycle.policy = RestartPolicy(config.restart_max_crashes, config.restart_window,
                                         config.restart_backoff, config.restart_backoff_max)
    hive = Hive(config, paths, store, events, backend, agents, broker, server, approvals,
                questions, reminders, LooseEnds(approvals, questions, reminders), lifecycle)
    server.hive = hive

    async def approve_spawn(row: ApprovalRow) -> dict[str, str]:
        await lifecycle.spawn(row.agent)
        return {}

    approvals.actions["spawn"] = approve_spawn
    approvals.actions["apply_commit"] = lifecycle.deploy
    approvals.on_deny["apply_commit"] = lifecycle.refuse

    backend.attach(nursery, lifecycle.on_exit(nursery))
    rows = await agents.load()
    await server.listen(nursery, paths.manager_socket, Surface("manager", MANAGER, verbs.MANAGER))
    await agents.reopen(rows)
    for row in rows:
        if not row.want_running or row.name in agents.broken:
            continue
        try:
            await backend.start(await agents.spec(row.name))
        except Exception as e:  # one agent that cannot start must not stop the daemon
            log.error("cannot start agent name=%s error=%s", row.name, e)
    if config.manager_command:
        await _start_manager(config, paths, backend)
    # The host socket last: once it answers, every other socket is there too.
    await server.listen(
        nursery, paths.host_socket, Surface("host", OPERATOR, verbs.HOST), mode=0o660,
        group=admin_gid(config.admin_group),
    )
    pending = await broker.pending_total()
    sdnotify.notify("READY=1", f"STATUS={len(rows)} agents, {pending} messages pending")
    nursery.start_soon(_maintenance, hive)
    nursery.start_soon(reminders.scheduler)
    nursery.start_soon(questions.watchdog)
    nursery.start_soon(lifecycle.watch, config.crash_scan)
    interval = sdnotify.watchdog_interval()
    if interval:
        nursery.start_soon(_watchdog, interval)
    log.info(
        "ready host_socket=%s state_dir=%s agents=%d pending=%d backend=%s",
        paths.host_socket, paths.state, len(rows), pending, backend.kind,
    )
    return hive


async def _start_manager(config: Config, paths: Paths, backend: Backend) -> None:
    """The manager agent's own process, from `manager_command` (its socket serves either way)."""
    state = ensure_dir(paths.state, "manager", "state")
    spec = AgentSpec(name=MANAGER, command=list(config.manager_command or []), state_dir=state,
                     socket=paths.manager_socket, log_file=state.parent / "agent.log")
    try:
        await backend.create(spec)  # also reaps a manager a killed daemon left running
        await backend.start(spec)
    except Exception as e:
        log.error("cannot start the manager error=%s", e)


async def _maintenance(hive: Hive) -> None:
    """Lease expiry (every minute at most), vacuum (hourly), and systemd's STATUS line."""
    sweep = min(LEASE_SWEEP_MAX, max(hive.config.lease_timeout / 4, 1.0))
    next_vacuum = trio.current_time()
    while True:
        try:
            requeued = await hive.broker.expire_leases()
            if requeued:
                log.info("leases expired requeued=%d", requeued)
            if trio.current_time() >= next_vacuum:
                await _vacuum(hive)
                next_vacuum = trio.current_time() + VACUUM_EVERY
            running = len(await hive.backend.running())
            pending = await hive.broker.pending_total()
            sdnotify.notify(f"STATUS={running} agents running, {pending} messages pending")
        except Exception:
            log.exception("maintenance sweep failed")
        await trio.sleep(sweep)


async def _vacuum(hive: Hive) -> None:
    """Delete what is past its retention; one failing part is logged and the rest goes on."""
    cfg = hive.config
    parts = [
        ("messages", hive.broker.vacuum, cfg.retention_days),
        ("approvals", hive.approvals.vacuum, cfg.resolved_retention_days),
        ("questions", hive.questions.vacuum, cfg.resolved_retention_days),
        ("reminders", hive.reminders.vacuum, cfg.retention_days),
    ]
    for name, sweep, days in parts:
        try:
            removed = await sweep(days * 86400)
            log.info("vacuum table=%s removed=%d", name, removed)
        except Exception:
            log.exception("vacuum failed table=%s", name)
    at = now()
    cutoffs = {
        "hyperhive-events.sqlite": at - cfg.events_retention_days * 86400,
        "hyperhive-turn-stats.sqlite": at - cfg.turn_stats_retention_days * 86400,
    }
    states = [hive.paths.agent_state(n) for n in sorted(hive.agents.names)]
    removed = await offload(agent_files.vacuum_all, states, cutoffs)
    for path, count in removed.items():
        log.info("vacuum file=%s removed=%d", path, count)


async def _watchdog(interval: float) -> None:
    while True:
        sdnotify.notify("WATCHDOG=1")
        await trio.sleep(interval)


async def run(config: Config) -> None:
    """`hive-core serve`: `serve()` until SIGTERM or SIGINT, then a clean stop."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            hive: Hive = await nursery.start(serve, config)
            async for sig in signals:
                log.info("signal %s: shutting down", signal.Signals(sig).name)
                hive.shutdown()
                break

"""`serve()`: the daemon. It owns every task in one nursery.

Start-up order: directories, database (opened and migrated), the agent registry, the manager
socket, every known agent's socket and process, the host socket (so a client that reaches it finds
everything else up), the dashboard (when configured; started, so it accepts before READY), then
`READY=1` and the background tasks.
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

import trio

from hive_core import sdnotify
from hive_core.app import Hive, build, make_backend
from hive_core.backends.process import AgentSpec, Backend
from hive_core.clock import set_inline_io
from hive_core.config import Config, dashboard_address
from hive_core.paths import Paths, ensure_dir
from hive_core.services import maintenance
from hive_core.services.broker import MANAGER, OPERATOR
from hive_core.store.db import Store
from hive_core.surfaces.sockets import AgentSockets, surface
from hive_core.surfaces.sockets.peer import admin_gid
from hive_core.surfaces.sockets.server import SocketServer
from hive_wire.convert import converter
from hive_wire.responses import AgentStatusRow

log = logging.getLogger(__name__)


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
    set_inline_io(config.inline_io)
    store = Store(paths.database, max_bytes=config.database_max_bytes, inline=config.inline_io)
    try:
        await store.open()
        async with trio.open_nursery() as nursery:
            backend = make_backend(config)
            try:
                hive, server = await _start(config, paths, store, nursery, backend)
            except BaseException:  # whatever start-up started, it stops
                if config.stop_agents_on_exit:
                    with trio.CancelScope(shield=True):
                        await backend.close()
                raise
            task_status.started(hive)
            await hive.stopping.wait()
            log.info("stopping")
            sdnotify.notify("STOPPING=1")
            server.close_all()
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
    fd = os.open(
        paths.state / "hive.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OSError(errno.EBUSY, f"another hive-core daemon is using {paths.state}") from None
    return fd


async def _start(
    config: Config, paths: Paths, store: Store, nursery: trio.Nursery, backend: Backend
) -> tuple[Hive, SocketServer]:
    server = SocketServer(
        config.line_limit,
        config.admin_group,
        config.max_connections,
        config.read_deadline,
        config.max_connections_per_agent,
    )
    sockets = AgentSockets(server, nursery, paths, lambda: hive)
    hive = build(config, paths, store, backend, sockets, nursery)
    await hive.events.open(store)  # before anything publishes: seq continues from the table
    agents, broker, lifecycle = hive.agents, hive.broker, hive.lifecycle
    backend.attach(nursery, lifecycle.on_exit(nursery))
    rows = await agents.load()
    await server.listen(nursery, paths.manager_socket, surface("manager", MANAGER, hive))
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
        nursery,
        paths.host_socket,
        surface("host", OPERATOR, hive),
        mode=0o660,
        group=admin_gid(config.admin_group),
    )
    hive.events.baseline(
        {r["name"]: converter.unstructure(AgentStatusRow(**r)) for r in await lifecycle.rows()}
    )
    await _start_dashboard(hive, nursery)
    pending = await broker.pending_total()
    nursery.start_soon(maintenance.run, hive)
    for task in hive.tasks():
        nursery.start_soon(task)
    interval = sdnotify.watchdog_interval()
    if interval:
        nursery.start_soon(_watchdog, interval)
    log.info(
        "ready host_socket=%s state_dir=%s agents=%d pending=%d backend=%s",
        paths.host_socket,
        paths.state,
        len(rows),
        pending,
        backend.kind,
    )
    # Last: whoever waits for READY=1 finds every socket, task and the log line there.
    sdnotify.notify("READY=1", f"STATUS={len(rows)} agents, {pending} messages pending")
    return hive, server


async def _start_dashboard(hive: Hive, nursery: trio.Nursery) -> None:
    """The dashboard, when configured; one that cannot bind its address is logged, and the
    daemon serves on without it (the sockets are what agents need)."""
    listen = hive.config.dashboard_listen
    if dashboard_address(listen) is None:
        log.info("dashboard off")
        return
    from hive_core.surfaces.http.app import serve_dashboard  # starlette: only when served

    try:
        hive.dashboard_url = await nursery.start(serve_dashboard, hive)
    except* OSError as group:
        log.error("dashboard not served listen=%s error=%s", listen, group.exceptions[0])
    if hive.dashboard_url:
        if not hive.lifecycle.urls.get("home"):  # status rows link to the dashboard served
            hive.lifecycle.urls = {**hive.lifecycle.urls, "home": hive.dashboard_url}
        log.info("dashboard url=%s", hive.dashboard_url)


async def _start_manager(config: Config, paths: Paths, backend: Backend) -> None:
    """The manager agent's own process, from `manager_command` (its socket serves either way)."""
    state = ensure_dir(paths.state, "manager", "state")
    spec = AgentSpec(
        name=MANAGER,
        command=list(config.manager_command or []),
        state_dir=state,
        socket=paths.manager_socket,
        log_file=state.parent / "agent.log",
    )
    try:
        await backend.create(spec)  # also reaps a manager a killed daemon left running
        await backend.start(spec)
    except Exception as e:
        log.error("cannot start the manager error=%s", e)


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

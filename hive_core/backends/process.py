"""Container backends: the one interface the lifecycle code talks to, and the process backend.

Rules kept here:
- a backend knows nothing of the broker or the database; it is told what to run (`AgentSpec`)
  and reports exits through the `on_exit` callback it was attached with;
- `process`: one child per agent, started from its argv with the agent's state dir as working
  directory and `HIVE_AGENT_NAME`/`HIVE_AGENT_SOCKET` (and `HIVE_CLAUDE_COMMAND`, config
  `claude_command`, when set) set, stdout and stderr appended to the
  agent's log file, in its own session; every child is reaped by a watcher task in the daemon's
  nursery, so an exit is known at once; stop is SIGTERM, then SIGKILL after the grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import attrs
import trio

from hive_core.clock import offload
from hive_wire.errors import Conflict, Forbidden, NotFound, Unavailable

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class AgentSpec:
    name: str
    command: list[str]
    env: dict[str, str] = attrs.Factory(dict)
    state_dir: Path
    socket: Path
    log_file: Path


ExitCallback = Callable[[str, int], None]


class Backend(Protocol):
    kind: str
    max_name: int

    def attach(self, nursery: trio.Nursery, on_exit: ExitCallback) -> None: ...
    async def create(self, spec: AgentSpec) -> None: ...
    async def start(self, spec: AgentSpec) -> None: ...
    async def stop(self, name: str, graceful: bool = True) -> None: ...
    async def kill(self, name: str) -> None: ...
    async def destroy(self, name: str) -> None: ...
    async def apply_config(self, spec: AgentSpec) -> None: ...
    async def running(self) -> set[str]: ...
    async def logs(self, name: str, lines: int) -> list[str]: ...
    async def close(self) -> None: ...


class _Child:
    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.exited = trio.Event()
        self.stopping = False


class ProcessBackend:
    kind = "process"
    max_name = 63

    def __init__(self, grace: float = 10.0, claude_command: str | None = None) -> None:
        self.grace = grace
        self.claude_command = claude_command  # config `claude_command`, for Claude agents
        self._children: dict[str, _Child] = {}
        self._logs: dict[str, Path] = {}
        self._nursery: trio.Nursery | None = None
        self._on_exit: ExitCallback = lambda name, code: None
        self._closing = False

    def attach(self, nursery: trio.Nursery, on_exit: ExitCallback) -> None:
        self._nursery = nursery
        self._on_exit = on_exit

    async def create(self, spec: AgentSpec) -> None:
        self._logs[spec.name] = spec.log_file
        if spec.name not in self._children:
            _reap_orphan(spec)

    async def start(self, spec: AgentSpec) -> None:
        if self._nursery is None:
            raise Unavailable("the process backend is not attached to the daemon")
        if self._closing:
            raise Unavailable("the daemon is stopping its agents")
        if spec.name in self._children:
            raise Conflict(f'agent "{spec.name}" is already running')
        self._logs[spec.name] = spec.log_file
        env = {
            **os.environ,
            **({"HIVE_CLAUDE_COMMAND": self.claude_command} if self.claude_command else {}),
            **spec.env,
            "HIVE_AGENT_NAME": spec.name,
            "HIVE_AGENT_SOCKET": str(spec.socket),
        }
        try:
            logfd = os.open(
                spec.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640
            )
        except OSError as e:
            raise Forbidden(
                f'cannot open the log of "{spec.name}" ({spec.log_file}): {e.strerror}'
            ) from e
        try:
            proc = await trio.lowlevel.open_process(
                spec.command,
                cwd=spec.state_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logfd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            raise Unavailable(f'cannot start agent "{spec.name}": {e.strerror or e}') from e
        finally:
            os.close(logfd)
        child = _Child(proc)
        self._children[spec.name] = child
        _write_pid(spec, proc.pid)
        log.info("agent started name=%s pid=%d", spec.name, proc.pid)
        self._nursery.start_soon(self._watch, spec.name, child)

    async def _watch(self, name: str, child: _Child) -> None:
        code = await child.proc.wait()
        if self._children.get(name) is child:
            del self._children[name]
        child.exited.set()
        log.info("agent exited name=%s pid=%d code=%s", name, child.proc.pid, code)
        if not child.stopping:
            self._on_exit(name, code)

    async def stop(self, name: str, graceful: bool = True) -> None:
        child = self._children.get(name)
        if child is None:
            return
        child.stopping = True
        if graceful:
            self._signal(child, signal.SIGTERM)
            with trio.move_on_after(self.grace):
                await child.exited.wait()
        if not child.exited.is_set():
            self._signal(child, signal.SIGKILL)
            await child.exited.wait()

    async def kill(self, name: str) -> None:
        if name not in self._children:
            raise NotFound(f'agent "{name}" is not running')
        await self.stop(name, graceful=False)

    @staticmethod
    def _signal(child: _Child, sig: signal.Signals) -> None:
        try:  # the whole session: the agent and whatever it started
            os.killpg(child.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            child.proc.send_signal(sig)

    async def destroy(self, name: str) -> None:
        await self.stop(name, graceful=True)
        self._logs.pop(name, None)

    async def apply_config(self, spec: AgentSpec) -> None:
        await self.stop(spec.name)
        await self.start(spec)

    async def running(self) -> set[str]:
        return set(self._children)

    async def logs(self, name: str, lines: int) -> list[str]:
        path = self._logs.get(name)
        if path is None:
            raise NotFound(f'no log for agent "{name}"')

        def tail() -> list[str]:
            try:
                with open(path, "rb") as f:
                    return [
                        ln.decode("utf-8", "replace").rstrip("\n") for ln in deque(f, maxlen=lines)
                    ]
            except FileNotFoundError:
                return []

        return await offload(tail)

    async def close(self) -> None:
        """Stop every child (the daemon is going away); nothing starts from now on."""
        self._closing = True
        while self._children:
            async with trio.open_nursery() as nursery:
                for name in list(self._children):
                    nursery.start_soon(self.stop, name)


def _pid_file(spec: AgentSpec) -> Path:
    return spec.log_file.parent / "agent.pid"


def _write_pid(spec: AgentSpec, pid: int) -> None:
    try:
        fd = os.open(_pid_file(spec), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    except OSError as e:  # a planted symlink: never written through
        log.warning("cannot record the pid of name=%s error=%s", spec.name, e)
        return
    with os.fdopen(fd, "w") as f:
        f.write(f"{pid}\n")


def _reap_orphan(spec: AgentSpec) -> None:
    """A daemon killed with -9 leaves its agents running in their own sessions: at start-up, the
    process recorded for this agent is killed if it is still that agent (its environment names
    the agent's socket), so no second copy runs beside the new one."""
    try:
        fd = os.open(_pid_file(spec), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            pid = int(f.read().strip())
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if f"HIVE_AGENT_SOCKET={spec.socket}".encode() not in environ:
        return  # the pid was reused by someone else
    log.warning("reaping agent left by a previous daemon name=%s pid=%d", spec.name, pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

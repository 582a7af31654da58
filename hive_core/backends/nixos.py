"""The `nixos-container` backend: one imperative NixOS container per agent, driven by shelling
out to `nixos-container` (and `journalctl` for logs).

Rules kept here:
- the container of agent `<name>` is `h-<name>`; names are checked (`check_agent_name`, at most
  `max_name` = 9 characters, since nixos-container refuses container names over 11) before any
  command runs, so a name is never read as an option: every container name we pass starts `h-`;
- every command runs through `trio.run_process` with an argv list (never a shell), stdin empty,
  output captured; a missing executable or a non-zero exit becomes `Unavailable` naming the
  command and carrying the tail of its stderr (at most `TAIL_MAX` characters). No secret is ever
  in an argv or an environment we build, so none can reach a message;
- `status` is the one probe: `up`, `down`, or (non-zero exit, `gone` on stdout) no container;
- containers are not our children: an exit is not reported through `on_exit` (unused); the crash
  watcher sees it at its next `running()` scan. Containers outlive the daemon, so `create` of an
  existing container only refreshes its bind mounts (the daemon calls `create` for every agent at
  start-up), `start` of a running one is a no-op (systemctl), and `close` stops every running
  `h-*` container (the daemon calls it only with `stop_agents_on_exit`).

The NixOS config of an agent: `spec.env["HIVE_CONFIG_FILE"]` if set, else
`<state>/applied/<name>/agent.nix` (the *applied* repo, derived from `spec.state_dir`, which is
`<state>/agents/<name>/state`). Never the proposed repo `<state>/agents/<name>/config/`: the
manager writes that one, and building from it would deploy unapproved config, evaluated as root
on the host. nixos-container writes `imports = [ <path> ];` unquoted into the container's
configuration.nix, so the path must be an absolute, plain nix path (`SAFE_PATH`).

Bind mounts. `nixos-container create` has no bind-mount flag (its options are `--nixos-path`,
`--system-path`, `--config`, `--config-file`, `--flake`, `--ensure-unique-name`, `--auto-start`,
`--bridge`, `--port`, `--host-address`, `--local-address`), and `containers.<name>.bindMounts`
exists only in the *host's* NixOS configuration (a host rebuild per agent, which the daemon cannot
do). What `bindMounts` compiles to is the line `EXTRA_NSPAWN_FLAGS="--bind=... --bind-ro=..."` in
`<conf_dir>/<container>.conf`; `container@.service` reads that file as its `EnvironmentFile` at
every start and passes `$EXTRA_NSPAWN_FLAGS` (unquoted, word-split) to `systemd-nspawn`. So after
`create` we write the same line into the imperative container's conf file (the file
`nixos-container create` wrote, the one `destroy` deletes): `--bind=<socket dir>:/run/hive`,
`--bind=<state dir>:/state`, `--bind-ro=<config dir>:/config`. Other flags already on that line
are kept; ours (by mount point) are replaced. A conf file that is a symlink is a declarative
container (a link into /etc/static): refused, never followed. Because the value is word-split,
every bound path must match `SAFE_PATH` (no spaces, colons, quotes or `$`). Binds take effect at
the next start of the container (`apply_config` = `update` reloads the system in place; a changed
bind needs a restart). `conf_dir` is `/etc/nixos-containers` (`system.stateVersion` >= 22.05;
`/etc/containers` before).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
from pathlib import Path

import trio

from hive_core.backends.process import AgentSpec, ExitCallback
from hive_core.clock import offload
from hive_core.errors import translate
from hive_wire.errors import BadRequest, Conflict, NotFound, Unavailable
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)

PREFIX = "h-"
TAIL_MAX = 500
RUN_MOUNT = "/run/hive"
STATE_MOUNT = "/state"
CONFIG_MOUNT = "/config"
CONFIG_FILE_ENV = "HIVE_CONFIG_FILE"
CONFIG_FILE_NAME = "agent.nix"
DEFAULT_CONF_DIR = Path("/etc/nixos-containers")
FLAGS_KEY = "EXTRA_NSPAWN_FLAGS="
STATUS_PROBES = 8  # `status` calls at once in `running()`

SAFE_PATH = re.compile(r"/[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*\Z")
_MOUNTS = "|".join(re.escape(m) for m in (RUN_MOUNT, STATE_MOUNT, CONFIG_MOUNT))
_OUR_BIND = re.compile(rf"--bind(?:-ro)?=[^:]*:(?:{_MOUNTS})(?::.*)?\Z")  # ours, by mount point
_UNSAFE_FLAG_CHARS = re.compile(r"[\"'\\$`]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def container_name(name: str) -> str:
    return PREFIX + name


def tail(data: bytes, limit: int = TAIL_MAX) -> str:
    """The last `limit` characters of a command's output, on one line, control chars removed."""
    text = _CONTROL.sub(" ", data.decode("utf-8", "replace"))
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


class NixosContainerBackend:
    kind = "nixos-container"
    max_name = 9

    def __init__(
        self,
        executable: str = "nixos-container",
        journalctl: str = "journalctl",
        conf_dir: Path = DEFAULT_CONF_DIR,
    ) -> None:
        self.executable = executable  # a bare name is looked up on PATH at each call
        self.journalctl = journalctl
        self.conf_dir = Path(conf_dir)

    def attach(self, nursery: trio.Nursery, on_exit: ExitCallback) -> None:
        """Nothing to keep: containers are not our children, so no exit is reported at once
        (`on_exit` stays unused; the crash watcher's `running()` scan sees it)."""

    # --- running commands ---------------------------------------------------------------------
    async def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
        try:
            done = await trio.run_process(
                argv, stdin=b"", capture_stdout=True, capture_stderr=True, check=False
            )
        except FileNotFoundError as e:
            raise Unavailable(
                f"cannot run {argv[0]}: not found (is it installed and on PATH?)"
            ) from e
        except OSError as e:
            raise translate(e, f"cannot run {argv[0]}") from e
        if check and done.returncode != 0:
            raise _failed(argv, done)
        return done

    async def _nc(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return await self._run([self.executable, *args])

    # --- the interface -------------------------------------------------------------------------
    async def create(self, spec: AgentSpec) -> None:
        cname = self._checked(spec.name)
        config_file = self._config_file(spec)
        flags = self._bind_flags(spec, config_file.parent)
        if await self._status(cname) == "gone":
            await self._nc("create", cname, "--config-file", str(config_file))
            log.info("container created name=%s config=%s", cname, config_file)
        await offload(self._write_flags, cname, flags)

    async def start(self, spec: AgentSpec) -> None:
        await self._nc("start", self._checked(spec.name))

    async def stop(self, name: str, graceful: bool = True) -> None:
        cname = self._checked(name)
        state = await self._status(cname)
        if state == "gone" or (state == "down" and not graceful):
            return
        await self._nc("stop" if graceful else "terminate", cname)

    async def kill(self, name: str) -> None:
        cname = self._checked(name)
        if await self._status(cname) != "up":
            raise NotFound(f'agent "{name}" is not running')
        await self._nc("terminate", cname)

    async def destroy(self, name: str) -> None:
        cname = self._checked(name)
        state = await self._status(cname)
        if state == "gone":
            return
        if state == "up":
            await self._nc("stop", cname)
        await self._nc("destroy", cname)
        log.info("container destroyed name=%s", cname)

    async def apply_config(self, spec: AgentSpec) -> None:
        cname = self._checked(spec.name)
        config_file = self._config_file(spec)
        flags = self._bind_flags(spec, config_file.parent)
        await offload(self._write_flags, cname, flags)
        await self._nc("update", cname, "--config-file", str(config_file))

    async def running(self) -> set[str]:
        listed = (await self._nc("list")).stdout.decode("utf-8", "replace").split()
        names = [n[len(PREFIX) :] for n in listed if n.startswith(PREFIX) and _is_ours(n)]
        up: set[str] = set()
        errors: list[Unavailable] = []
        limiter = trio.CapacityLimiter(STATUS_PROBES)

        async def probe(name: str) -> None:
            async with limiter:
                try:
                    if await self._status(container_name(name)) == "up":
                        up.add(name)
                except Unavailable as e:
                    errors.append(e)

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(probe, name)
        if errors:  # one plain WireError, not an exception group, for the callers
            raise errors[0]
        return up

    async def logs(self, name: str, lines: int) -> list[str]:
        cname = self._checked(name)
        if lines < 1:
            return []
        done = await self._run([self.journalctl, "-M", cname, "-n", str(int(lines)), "--no-pager"])
        return done.stdout.decode("utf-8", "replace").splitlines()

    async def close(self) -> None:
        """Stop every running agent container (the daemon is going away); one that will not
        stop is logged, never keeps the others running."""
        try:
            names = await self.running()
        except Unavailable as e:
            log.error("cannot list containers to stop them error=%s", e)
            return

        async def stop_one(name: str) -> None:
            try:
                await self.stop(name)
            except Unavailable as e:
                log.error("cannot stop container name=%s error=%s", container_name(name), e)

        async with trio.open_nursery() as nursery:
            for name in sorted(names):
                nursery.start_soon(stop_one, name)

    # --- helpers -------------------------------------------------------------------------------
    def _checked(self, name: str) -> str:
        return container_name(check_agent_name(name, max_len=self.max_name))

    async def _status(self, cname: str) -> str:
        argv = [self.executable, "status", cname]
        done = await self._run(argv, check=False)
        out = done.stdout.decode("utf-8", "replace").strip()
        if out == "gone":  # printed, with a non-zero exit, for a container that does not exist
            return "gone"
        if done.returncode != 0 or out not in ("up", "down"):
            raise _failed(argv, done)
        return out

    @staticmethod
    def _config_file(spec: AgentSpec) -> Path:
        given = spec.env.get(CONFIG_FILE_ENV)
        if given:
            path = Path(given)
        else:  # state_dir is <state>/agents/<name>/state
            path = spec.state_dir.parents[2] / "applied" / spec.name / CONFIG_FILE_NAME
        if not SAFE_PATH.match(str(path)):
            raise Unavailable(
                f"config file {str(path)!r} is not an absolute path of plain "
                "characters (a-z, 0-9, '._+-'); nixos-container cannot import it"
            )
        if not path.is_file():
            raise Unavailable(f"config file {path} does not exist")
        return path

    @staticmethod
    def _bind_flags(spec: AgentSpec, config_dir: Path) -> list[str]:
        binds = [
            ("--bind", spec.socket.parent, RUN_MOUNT),
            ("--bind", spec.state_dir, STATE_MOUNT),
            ("--bind-ro", config_dir, CONFIG_MOUNT),
        ]
        for _, src, _ in binds:
            if not SAFE_PATH.match(str(src)):
                raise Unavailable(
                    f"cannot bind {str(src)!r} into a container: not an absolute "
                    "path of plain characters (a-z, 0-9, '._+-')"
                )
            if not src.is_dir():
                raise Unavailable(f"cannot bind {src} into a container: not a directory")
        return [f"{flag}={src}:{dst}" for flag, src, dst in binds]

    def _write_flags(self, cname: str, flags: list[str]) -> None:
        """Put our bind flags on the `EXTRA_NSPAWN_FLAGS=` line of the container's conf file,
        keeping any other flag there; atomic (temp file, rename); a symlink is refused."""
        conf = self.conf_dir / f"{cname}.conf"
        try:
            fd = os.open(conf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise Unavailable(f"{conf} is missing: nixos-container did not create {cname}") from e
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise Conflict(
                    f"{conf} is a symlink: {cname} is declared in the host's "
                    "configuration, not a container hive-core manages"
                ) from e
            raise Unavailable(f"cannot read {conf}: {e.strerror or e}") from e
        with os.fdopen(fd, encoding="utf-8") as f:
            old = f.read()
        kept: list[str] = []
        lines: list[str] = []
        at = None  # where the flags line was (it stays there), else it goes last
        for line in old.splitlines():
            if line.startswith(FLAGS_KEY):
                value = line[len(FLAGS_KEY) :].strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                kept += [t for t in value.split() if not _OUR_BIND.match(t)]
                at = len(lines) if at is None else at
            else:
                lines.append(line)
        unsafe = [t for t in kept if _UNSAFE_FLAG_CHARS.search(t)]
        if unsafe:
            raise Unavailable(
                f"{conf}: cannot merge the existing {FLAGS_KEY[:-1]} "
                f"(quotes, '$' or '\\' in {unsafe[0]!r}); fix the file by hand"
            )
        lines.insert(
            len(lines) if at is None else at, FLAGS_KEY + '"' + " ".join(kept + flags) + '"'
        )
        new = "\n".join(lines) + "\n"
        if new == old:
            return
        tmp = conf.with_name(f".{conf.name}.hive-tmp")
        try:
            wfd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
            with os.fdopen(wfd, "w", encoding="utf-8") as f:
                f.write(new)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, conf)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise Unavailable(f"cannot write {conf}: {e.strerror or e}") from e
        log.info("container bind mounts set name=%s", cname)


def _failed(argv: list[str], done: subprocess.CompletedProcess[bytes]) -> Unavailable:
    shown = " ".join([os.path.basename(argv[0]), *argv[1:]])
    why = tail(done.stderr) or tail(done.stdout) or "no output"
    return Unavailable(f"{shown} failed (exit {done.returncode}): {why}")


def _is_ours(container: str) -> bool:
    try:
        check_agent_name(container[len(PREFIX) :], max_len=NixosContainerBackend.max_name)
    except BadRequest:
        return False
    return True

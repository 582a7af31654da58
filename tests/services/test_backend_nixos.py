"""The nixos-container backend against a fake `nixos-container` (and `journalctl`) on PATH.

`tests/fake_bin/nixos-container` records every call's argv (one JSON line to `FAKE_NIXOS_LOG`)
and keeps a fake host in `FAKE_NIXOS_DIR` (`conf/<container>.conf` as the real tool's
configuration directory, `up/<container>` for a running one); `FAKE_NIXOS_FAIL_<ACTION>` makes
an action fail. Every test asserts the exact argv of what the backend ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from hive_core.backends.nixos import NixosContainerBackend
from hive_core.backends.process import AgentSpec, Backend
from hive_core.paths import Paths
from hive_wire.errors import BadRequest, Conflict, NotFound, Unavailable

FAKE_BIN = Path(__file__).resolve().parents[1] / "fake_bin"
NC = "nixos-container"


@attrs.define
class Fake:
    log: Path
    host: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def conf(self) -> Path:
        return self.host / "conf"

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line)["argv"] for line in self.log.read_text().splitlines()]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)

    def fail(self, action: str, code: int, stderr: str) -> None:
        self.monkeypatch.setenv(f"FAKE_NIXOS_FAIL_{action.upper()}", f"{code}:{stderr}")

    def exists(self, container: str, up: bool = False) -> None:
        """A container the fake host already has (created earlier, by us or anyone)."""
        self.conf.mkdir(parents=True, exist_ok=True)
        (self.conf / f"{container}.conf").write_text("PRIVATE_NETWORK=1\nAUTO_START=0\n")
        if up:
            (self.host / "up").mkdir(parents=True, exist_ok=True)
            (self.host / "up" / container).touch()

    def is_up(self, container: str) -> bool:
        return (self.host / "up" / container).exists()

    def flags(self, container: str) -> str:
        for line in (self.conf / f"{container}.conf").read_text().splitlines():
            if line.startswith("EXTRA_NSPAWN_FLAGS="):
                return line
        raise AssertionError(f"no EXTRA_NSPAWN_FLAGS in {container}.conf")


@pytest.fixture
def fake(dirs: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    for exe in ("nixos-container", "journalctl"):
        assert os.access(FAKE_BIN / exe, os.X_OK), f"tests/fake_bin/{exe} must be executable"
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_NIXOS_LOG", str(dirs / "calls.jsonl"))
    monkeypatch.setenv("FAKE_NIXOS_DIR", str(dirs / "host"))
    for key in list(os.environ):
        if key.startswith("FAKE_NIXOS_FAIL_"):
            monkeypatch.delenv(key)
    return Fake(dirs / "calls.jsonl", dirs / "host", monkeypatch)


@pytest.fixture
def paths(dirs: Path) -> Paths:
    return Paths(dirs / "state", dirs / "run")


@pytest.fixture
def backend(fake: Fake) -> NixosContainerBackend:
    return NixosContainerBackend(conf_dir=fake.conf)


def make_spec(paths: Paths, name: str, **env: str) -> AgentSpec:
    """The agent's directories as `Agents` makes them, and its applied config."""
    paths.agent_state(name).mkdir(parents=True, exist_ok=True)
    paths.agent_run_dir(name).mkdir(parents=True, exist_ok=True)
    applied = paths.state / "applied" / name
    applied.mkdir(parents=True, exist_ok=True)
    (applied / "agent.nix").write_text("{ ... }: { }\n")
    return AgentSpec(
        name=name,
        command=["unused"],
        env=env,
        state_dir=paths.agent_state(name),
        socket=paths.agent_socket(name),
        log_file=paths.agent_log(name),
    )


def applied_nix(paths: Paths, name: str) -> str:
    return str(paths.state / "applied" / name / "agent.nix")


def our_binds(paths: Paths, name: str) -> str:
    return (
        f"--bind={paths.agent_run_dir(name)}:/run/hive "
        f"--bind={paths.agent_state(name)}:/state "
        f"--bind-ro={paths.state / 'applied' / name}:/config"
    )


async def created(
    backend: NixosContainerBackend, fake: Fake, spec: AgentSpec, up: bool = False
) -> None:
    await backend.create(spec)
    if up:
        await backend.start(spec)
    fake.clear()


def test_is_a_backend() -> None:
    b: Backend = NixosContainerBackend()
    assert (b.kind, b.max_name) == ("nixos-container", 9)


# --- create -------------------------------------------------------------------------------------
async def test_create_argv_and_bind_mounts(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    await backend.create(make_spec(paths, "alice"))
    assert fake.calls() == [
        [NC, "status", "h-alice"],
        [NC, "create", "h-alice", "--config-file", applied_nix(paths, "alice")],
    ]
    assert fake.flags("h-alice") == f'EXTRA_NSPAWN_FLAGS="{our_binds(paths, "alice")}"'
    conf = (fake.conf / "h-alice.conf").read_text()
    assert conf.startswith("PRIVATE_NETWORK=1\n")  # what nixos-container wrote is kept
    assert not list(fake.conf.glob(".*"))  # no temp file left behind


async def test_create_of_existing_container_only_refreshes_binds(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    """The daemon calls create for every agent at start-up; containers outlive it."""
    fake.exists("h-alice")
    conf = fake.conf / "h-alice.conf"
    conf.write_text(
        'PRIVATE_NETWORK=1\nEXTRA_NSPAWN_FLAGS="--private-users=pick '
        '--bind=/old/run:/run/hive --bind-ro=/old/cfg:/config"\nAUTO_START=0\n'
    )
    spec = make_spec(paths, "alice")
    await backend.create(spec)
    assert fake.calls() == [[NC, "status", "h-alice"]]
    assert fake.flags("h-alice") == (
        f'EXTRA_NSPAWN_FLAGS="--private-users=pick {our_binds(paths, "alice")}"'
    )
    assert conf.read_text().splitlines()[0] == "PRIVATE_NETWORK=1"
    assert conf.read_text().splitlines()[2] == "AUTO_START=0"  # the line kept its place
    before = conf.stat().st_mtime_ns, conf.read_text()
    await backend.create(spec)  # nothing changed: the file is not rewritten
    assert (conf.stat().st_mtime_ns, conf.read_text()) == before


async def test_create_takes_config_file_from_spec_env(
    backend: NixosContainerBackend, fake: Fake, paths: Paths, dirs: Path
) -> None:
    other = dirs / "cfg" / "alice"
    other.mkdir(parents=True)
    (other / "custom.nix").write_text("{ ... }: { }\n")
    await backend.create(make_spec(paths, "alice", HIVE_CONFIG_FILE=str(other / "custom.nix")))
    assert fake.calls()[-1] == [NC, "create", "h-alice", "--config-file", str(other / "custom.nix")]
    assert f"--bind-ro={other}:/config" in fake.flags("h-alice")


@pytest.mark.parametrize(
    "bad",
    [
        "relative/agent.nix",
        "/tmp/with space/agent.nix",
        "/tmp/a;b/agent.nix",
        "/tmp/nowhere-at-all/agent.nix",
    ],
)
async def test_create_refuses_an_unusable_config_file_before_any_command(
    backend: NixosContainerBackend, fake: Fake, paths: Paths, bad: str
) -> None:
    with pytest.raises(Unavailable, match="config file"):
        await backend.create(make_spec(paths, "alice", HIVE_CONFIG_FILE=bad))
    assert fake.calls() == []


async def test_create_refuses_a_declarative_container(
    backend: NixosContainerBackend, fake: Fake, paths: Paths, dirs: Path
) -> None:
    """A conf file that is a symlink (into /etc/static) belongs to the host's configuration."""
    target = dirs / "static.conf"
    target.write_text("PRIVATE_NETWORK=0\n")
    fake.conf.mkdir(parents=True)
    (fake.conf / "h-alice.conf").symlink_to(target)
    with pytest.raises(Conflict, match="declared in the host"):
        await backend.create(make_spec(paths, "alice"))
    assert target.read_text() == "PRIVATE_NETWORK=0\n"
    assert fake.calls() == [[NC, "status", "h-alice"]]


async def test_create_refuses_existing_flags_it_cannot_merge(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    fake.exists("h-alice")
    conf = fake.conf / "h-alice.conf"
    conf.write_text('EXTRA_NSPAWN_FLAGS="--setenv=A=$B"\n')
    with pytest.raises(Unavailable, match="cannot merge"):
        await backend.create(make_spec(paths, "alice"))
    assert conf.read_text() == 'EXTRA_NSPAWN_FLAGS="--setenv=A=$B"\n'


# --- start, stop, kill, destroy, update ---------------------------------------------------------
async def test_start_argv(backend: NixosContainerBackend, fake: Fake, paths: Paths) -> None:
    spec = make_spec(paths, "alice")
    await created(backend, fake, spec)
    await backend.start(spec)
    assert fake.calls() == [[NC, "start", "h-alice"]]
    assert fake.is_up("h-alice")


async def test_stop_graceful_argv(backend: NixosContainerBackend, fake: Fake, paths: Paths) -> None:
    await created(backend, fake, make_spec(paths, "alice"), up=True)
    await backend.stop("alice", graceful=True)
    assert fake.calls() == [[NC, "status", "h-alice"], [NC, "stop", "h-alice"]]
    assert not fake.is_up("h-alice")


async def test_stop_not_graceful_terminates(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    await created(backend, fake, make_spec(paths, "alice"), up=True)
    await backend.stop("alice", graceful=False)
    assert fake.calls() == [[NC, "status", "h-alice"], [NC, "terminate", "h-alice"]]
    assert not fake.is_up("h-alice")


async def test_stop_of_a_stopped_or_missing_container(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    await created(backend, fake, make_spec(paths, "alice"))
    await backend.stop("alice", graceful=False)  # terminate would fail on a stopped container
    await backend.stop("bob")
    assert fake.calls() == [[NC, "status", "h-alice"], [NC, "status", "h-bob"]]


async def test_kill_argv_and_not_running(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    await created(backend, fake, make_spec(paths, "alice"), up=True)
    await backend.kill("alice")
    assert fake.calls() == [[NC, "status", "h-alice"], [NC, "terminate", "h-alice"]]
    fake.clear()
    with pytest.raises(NotFound, match="not running"):
        await backend.kill("alice")
    assert fake.calls() == [[NC, "status", "h-alice"]]


async def test_destroy_argv(backend: NixosContainerBackend, fake: Fake, paths: Paths) -> None:
    await created(backend, fake, make_spec(paths, "alice"), up=True)
    await backend.destroy("alice")
    assert fake.calls() == [
        [NC, "status", "h-alice"],
        [NC, "stop", "h-alice"],
        [NC, "destroy", "h-alice"],
    ]
    assert not (fake.conf / "h-alice.conf").exists()


async def test_destroy_of_a_stopped_or_missing_container(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    """A failed spawn destroys what may not exist: that is no error."""
    await created(backend, fake, make_spec(paths, "alice"))
    await backend.destroy("alice")
    await backend.destroy("alice")
    assert fake.calls() == [
        [NC, "status", "h-alice"],
        [NC, "destroy", "h-alice"],
        [NC, "status", "h-alice"],
    ]


async def test_apply_config_argv(backend: NixosContainerBackend, fake: Fake, paths: Paths) -> None:
    spec = make_spec(paths, "alice")
    await created(backend, fake, spec, up=True)
    await backend.apply_config(spec)
    assert fake.calls() == [
        [NC, "update", "h-alice", "--config-file", applied_nix(paths, "alice")],
    ]
    assert fake.flags("h-alice") == f'EXTRA_NSPAWN_FLAGS="{our_binds(paths, "alice")}"'


# --- running, logs, close -----------------------------------------------------------------------
async def test_running_parses_list_and_status(backend: NixosContainerBackend, fake: Fake) -> None:
    fake.exists("h-alice", up=True)
    fake.exists("h-bob")  # down
    fake.exists("h-carol", up=True)
    fake.exists("web", up=True)  # not ours
    fake.exists("-x", up=True)  # would read as an option
    fake.exists("h--x", up=True)  # agent "-x": not a valid name
    fake.exists("h-Upper", up=True)
    fake.exists("h-toolongname", up=True)  # over 9 characters
    fake.exists("h-", up=True)
    assert await backend.running() == {"alice", "carol"}
    calls = fake.calls()
    assert calls[0] == [NC, "list"]
    assert sorted(calls[1:]) == [
        [NC, "status", "h-alice"],
        [NC, "status", "h-bob"],
        [NC, "status", "h-carol"],
    ]


async def test_running_with_no_containers(backend: NixosContainerBackend, fake: Fake) -> None:
    assert await backend.running() == set()
    assert fake.calls() == [[NC, "list"]]


async def test_logs_argv(backend: NixosContainerBackend, fake: Fake) -> None:
    (fake.host / "journal").mkdir(parents=True)
    (fake.host / "journal" / "h-alice").write_text("".join(f"line {i}\n" for i in range(5)))
    assert await backend.logs("alice", 3) == ["line 2", "line 3", "line 4"]
    assert fake.calls() == [["journalctl", "-M", "h-alice", "-n", "3", "--no-pager"]]
    assert await backend.logs("alice", 0) == []
    assert len(fake.calls()) == 1


async def test_close_stops_every_running_agent(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    await created(backend, fake, make_spec(paths, "alice"), up=True)
    await created(backend, fake, make_spec(paths, "bob"), up=True)
    fake.exists("web", up=True)
    await backend.close()
    assert not fake.is_up("h-alice") and not fake.is_up("h-bob") and fake.is_up("web")
    stops = sorted(c for c in fake.calls() if c[1] == "stop")
    assert stops == [[NC, "stop", "h-alice"], [NC, "stop", "h-bob"]]


async def test_close_survives_a_container_that_will_not_stop(
    backend: NixosContainerBackend, fake: Fake, paths: Paths, caplog: pytest.LogCaptureFixture
) -> None:
    await created(backend, fake, make_spec(paths, "alice"), up=True)
    fake.fail("stop", 1, "failed to stop container")
    await backend.close()
    assert "cannot stop container name=h-alice" in caplog.text


async def test_full_lifecycle_passes_only_prefixed_names(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    """Every container name the backend passes starts `h-`: never an option to the tool."""
    spec = make_spec(paths, "a")
    await backend.create(spec)
    await backend.start(spec)
    await backend.running()
    await backend.apply_config(spec)
    await backend.logs("a", 10)
    await backend.stop("a", graceful=False)
    await backend.start(spec)
    await backend.kill("a")
    await backend.destroy("a")
    calls = fake.calls()
    assert len(calls) == 14
    for argv in calls:
        if argv[0] == "journalctl":
            assert argv[1] == "-M" and argv[2] == "h-a"
        elif argv[1] != "list":
            assert argv[2] == "h-a", argv
            assert all(not a.startswith("-") or a == "--config-file" for a in argv[1:]), argv


# --- refusals before any command ----------------------------------------------------------------
async def test_ten_character_name_refused_before_any_command(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    with pytest.raises(BadRequest, match="longer than 9"):
        await backend.create(make_spec(paths, "abcdefghij"))
    assert fake.calls() == []
    await backend.create(make_spec(paths, "abcdefghi"))  # 9 is fine: h-abcdefghi is 11
    assert fake.calls()[-1][2] == "h-abcdefghi"


@pytest.mark.parametrize("name", ["-rf", "--help", "-M", "Alice", "a b", "manager", ""])
async def test_bad_names_never_reach_a_command(
    backend: NixosContainerBackend, fake: Fake, paths: Paths, dirs: Path, name: str
) -> None:
    spec = AgentSpec(
        name=name,
        command=["unused"],
        state_dir=dirs / "s",
        socket=dirs / "r/s",
        log_file=dirs / "l",
    )
    for verb in (
        backend.create(spec),
        backend.start(spec),
        backend.stop(name),
        backend.stop(name, graceful=False),
        backend.kill(name),
        backend.destroy(name),
        backend.apply_config(spec),
        backend.logs(name, 10),
    ):
        with pytest.raises(BadRequest):
            await verb
    assert fake.calls() == []


# --- failures -----------------------------------------------------------------------------------
async def test_failing_command_is_unavailable_with_its_stderr(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    spec = make_spec(paths, "alice")
    await created(backend, fake, spec)
    fake.fail("start", 1, "Job for container@h-alice.service failed.")
    with pytest.raises(Unavailable) as err:
        await backend.start(spec)
    assert str(err.value) == (
        "nixos-container start h-alice failed (exit 1): Job for container@h-alice.service failed."
    )


async def test_failing_create_is_unavailable(
    backend: NixosContainerBackend, fake: Fake, paths: Paths
) -> None:
    fake.fail("create", 1, "error: undefined variable 'foo'\nfailed to build initial config")
    with pytest.raises(
        Unavailable,
        match=r"nixos-container create h-alice --config-file \S+ "
        r"failed \(exit 1\): error: undefined variable 'foo' "
        r"\| failed to build initial config",
    ):
        await backend.create(make_spec(paths, "alice"))


async def test_stderr_tail_is_bounded(backend: NixosContainerBackend, fake: Fake) -> None:
    fake.fail("list", 2, "x" * 5000 + " the end")
    with pytest.raises(Unavailable) as err:
        await backend.running()
    message = str(err.value)
    assert message.endswith(" the end")
    assert len(message) < 600


async def test_failing_status_is_unavailable(backend: NixosContainerBackend, fake: Fake) -> None:
    fake.exists("h-alice", up=True)
    fake.fail("status", 1, "Failed to connect to bus: No such file or directory")
    with pytest.raises(Unavailable, match="status h-alice failed .*connect to bus"):
        await backend.running()  # a plain Unavailable, not an exception group
    with pytest.raises(Unavailable, match="connect to bus"):
        await backend.stop("alice")


async def test_failing_journalctl_is_unavailable(
    backend: NixosContainerBackend, fake: Fake
) -> None:
    fake.fail("journalctl", 1, "No machine 'h-alice' known")
    with pytest.raises(
        Unavailable,
        match=r"journalctl -M h-alice -n 5 --no-pager failed "
        r"\(exit 1\): No machine 'h-alice' known",
    ):
        await backend.logs("alice", 5)


async def test_missing_executable_is_unavailable(fake: Fake, paths: Paths, dirs: Path) -> None:
    empty = dirs / "empty-bin"
    empty.mkdir()
    fake.monkeypatch.setenv("PATH", str(empty))
    backend = NixosContainerBackend(conf_dir=fake.conf)
    with pytest.raises(Unavailable, match="cannot run nixos-container: not found"):
        await backend.running()
    with pytest.raises(Unavailable, match="cannot run journalctl: not found"):
        await backend.logs("alice", 5)
    absent = NixosContainerBackend(executable=str(dirs / "no-such-tool"), conf_dir=fake.conf)
    with pytest.raises(Unavailable, match="no-such-tool: not found"):
        await absent.start(make_spec(paths, "alice"))

"""Security (quality.md "Security", and the planted symlinks of "Bad input and abuse").

Covered elsewhere, not repeated here: the modes once the daemon is up and a symlinked agent dir at
spawn (test_daemon.py), a symlinked tombstone (test_lifecycle.py), a stale host socket after
kill -9 and a second daemon on the same paths (test_cli.py), a client refused by the socket
file's mode (test_cli.py).

Here:
- modes from the first moment: with the daemon's umask at 0, every socket file and the run dir
  already have their mode when they appear (recorded just before the daemon's own `chmod`);
- peer credentials: a client running as `nobody` that gets past the file mode (host socket made
  0666) is refused with `forbidden` by the `SO_PEERCRED` check, logged with its uid, and changes
  nothing; a member of the admin group (config `admin_group`, a group created for the test) or a
  client whose own group is it is served, through the socket's real 0660 mode;
- sockets: a stale socket at an agent's path is reclaimed at spawn; a live listener there is
  refused and left alone; a symlink at the host or manager socket path stops the start without
  being followed; a symlink at an agent's socket path, at spawn or planted while the daemon was
  down, is refused (or replaced) without being followed and without taking the daemon down;
- state dirs: a symlink planted in an existing agent's state dir (the agent dir, `state/`,
  `agent.log`, `agent.pid`) is never followed when the agent is restarted.
Running as another user needs root and `setpriv`; those tests skip, saying why, without them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.app import Hive
from hive_core.daemon import serve
from hive_wire.blocking import call_sync
from hive_wire.errors import Conflict
from tests.helpers import SLEEPER, Daemon, agent_sock, call, make_config, spawn_idle
from tests.procs import agent_pids

TIMEOUT = 20
NOBODY = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a client as another user",
)

# A stdlib-only client: one request, then a second on the same connection; prints what happened.
CLIENT = r"""
import json, socket, sys
path = sys.argv[1]
out = {"answers": [], "closed": False}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    print(json.dumps({"connect_errno": e.errno}))
    sys.exit(0)
buf = b""
for line in sys.argv[2:]:
    try:
        s.sendall(line.encode() + b"\n")
    except OSError:
        pass  # the daemon may have answered and closed already: read what it said
    try:
        while b"\n" not in buf:
            data = s.recv(65536)
            if not data:
                break
            buf += data
    except ConnectionResetError:
        pass
    if b"\n" not in buf:
        out["closed"] = True
        break
    first, buf = buf.split(b"\n", 1)
    out["answers"].append(json.loads(first))
print(json.dumps(out))
"""


async def run_as(ids: list[str], path: str, *requests: dict[str, Any]) -> dict[str, Any]:
    """The client above as another user (`setpriv` options), off the loop the daemon runs on."""
    cmd = [
        "setpriv",
        *ids,
        sys.executable,
        "-I",
        "-c",
        CLIENT,
        path,
        *(json.dumps(r) for r in requests),
    ]
    proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def db_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("agents", "messages", "approvals", "questions", "reminders")
        }
    finally:
        conn.close()


def traversable(base: Path) -> None:
    """The temp dir is 0700 (mkdtemp): let another user reach the run dir (0751) inside it."""
    os.chmod(base, 0o755)


# --- modes from the first moment ---------------------------------------------------------------
async def test_sockets_and_run_dir_have_their_mode_before_the_chmod(
    dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chmod` after `bind` would leave a window with the umask's mode: the mode must already be
    right when the file appears. With the umask at 0 (the widest), record each path's mode at
    the moment the daemon calls `chmod` on it."""
    seen: dict[str, int] = {}
    real_chmod = os.chmod

    def spy(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        try:
            seen.setdefault(os.fspath(path), stat.S_IMODE(os.lstat(path).st_mode))
        except (OSError, TypeError):
            pass
        real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", spy)
    old = os.umask(0)
    try:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                hive: Hive = await nursery.start(serve, make_config(dirs))
                assert (
                    await call(
                        str(hive.paths.host_socket),
                        {"cmd": "spawn", "name": "alice", "command": SLEEPER},
                    )
                )["ok"]
                hive.shutdown()
    finally:
        os.umask(old)
    run = dirs / "run"
    sockets = [
        run / "host.sock",
        run / "manager" / "mcp.sock",
        run / "agents" / "alice" / "mcp.sock",
    ]
    for path in sockets:
        assert seen.get(str(path)) == 0o660, (path, oct(seen.get(str(path), 0)))
    assert seen.get(str(run)) == 0o751, oct(seen.get(str(run), 0))
    assert seen.get(str(run / "agents" / "alice"), 0o750) == 0o750


# --- peer credentials --------------------------------------------------------------------------
@needs_root
async def test_nobody_is_refused_by_peer_credentials(
    hive: Hive, host: str, dirs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        traversable(dirs)
        os.chmod(host, 0o666)  # past the file mode: only SO_PEERCRED stands in the way
        before = db_counts(hive.paths.database)
        nobody = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        for request in (
            {"cmd": "list"},
            {"cmd": "spawn", "name": "mallory"},
            {"cmd": "send", "to": "alice", "body": "from nobody"},
            {"cmd": "stop", "scope": {"agents": True}},
        ):
            got = await run_as(nobody, host, request, {"cmd": "list"})
            assert got["answers"] == [
                {
                    "version": 1,
                    "ok": False,
                    "error": "permission denied: the host socket is for root and the hive-admin group",
                    "code": "forbidden",
                }
            ], got
            assert got["closed"] is True, got  # nothing further is read on that connection
        # nothing changed, and the daemon serves its own user as before
        assert db_counts(hive.paths.database) == before
        assert (await call(host, {"cmd": "list"}))["agents"] == ["alice"]
        rows = (await call(host, {"cmd": "agent_status"}))["agent_statuses"]
        assert rows[0]["running"] is True
        assert not hive.paths.agent_dir("mallory").exists()
        # the other sockets keep their 0660 root:root: nobody cannot even connect
        got = await run_as(nobody, agent_sock(hive, "alice"), {"cmd": "whoami"})
        assert got == {"connect_errno": 13}, got
    refusals = [r.getMessage() for r in caplog.records if "refused peer" in r.getMessage()]
    assert len(refusals) == 4 and all(f"uid={NOBODY}" in m for m in refusals), refusals


@pytest.fixture
def admin_group() -> Any:
    """A fresh group with `nobody` as a member (in /etc/group), removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("groupadd") or not shutil.which("setpriv"):
        pytest.skip("needs root, groupadd and setpriv to make an admin group and run as nobody")
    name = f"hcadm{secrets.token_hex(4)}"
    r = subprocess.run(["groupadd", "--users", "nobody", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"groupadd failed: {r.stderr.strip()}")
    try:
        import grp

        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.mark.parametrize("how", ["member", "primary group"])
async def test_admin_group_is_served_through_the_real_socket_mode(
    dirs: Path, admin_group: tuple[str, int], how: str
) -> None:
    name, gid = admin_group
    ids = {
        # nobody, listed in /etc/group, with the group among its supplementary groups
        "member": [f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={gid}"],
        # a user whose own (primary) group is the admin group
        "primary group": [f"--reuid={NOBODY}", f"--regid={gid}", "--clear-groups"],
    }[how]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            hive: Hive = await nursery.start(serve, make_config(dirs, admin_group=name))
            host = str(hive.paths.host_socket)
            traversable(dirs)
            st = os.stat(host)
            assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)  # no chmod here
            got = await run_as(
                ids, host, {"cmd": "list"}, {"cmd": "send", "to": "operator", "body": "hello"}
            )
            assert got == {
                "answers": [
                    {"version": 1, "ok": True, "agents": []},
                    {"version": 1, "ok": True, "id": 1},
                ],
                "closed": False,
            }, got
            # without the group: refused by the file mode before any credential check
            got = await run_as(
                [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"], host, {"cmd": "list"}
            )
            assert got == {"connect_errno": 13}, got
            hive.shutdown()


@needs_root
async def test_admin_group_counts_only_when_the_peer_holds_it(
    dirs: Path, admin_group: tuple[str, int]
) -> None:
    """`nobody` is listed in the admin group, but a process of it that dropped its groups is
    refused once past the file mode (SO_PEERGROUPS, not /etc/group); one holding the group is
    served."""
    name, gid = admin_group
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            hive: Hive = await nursery.start(serve, make_config(dirs, admin_group=name))
            host = str(hive.paths.host_socket)
            traversable(dirs)
            os.chmod(host, 0o666)  # past the file mode: only the credential check stands
            dropped = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
            got = await run_as(dropped, host, {"cmd": "list"})
            assert got["answers"][0]["code"] == "forbidden", got
            holding = [f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={gid}"]
            got = await run_as(holding, host, {"cmd": "list"})
            assert got["answers"] == [{"version": 1, "ok": True, "agents": []}], got
            hive.shutdown()


# --- socket paths ------------------------------------------------------------------------------
async def test_stale_socket_at_an_agent_path_is_reclaimed_at_spawn(hive: Hive, host: str) -> None:
    with trio.fail_after(TIMEOUT):
        path = hive.paths.agent_socket("carol")
        path.parent.mkdir(mode=0o750)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(path))  # bound, never listening: what a killed daemon leaves
        await spawn_idle(hive, "carol")
        assert await call(str(path), {"cmd": "whoami"}) == {
            "version": 1,
            "ok": True,
            "name": "carol",
            "role": "agent",
        }


async def test_live_listener_at_an_agent_path_is_refused_and_left_alone(
    hive: Hive, host: str
) -> None:
    with trio.fail_after(TIMEOUT):
        path = hive.paths.agent_socket("dave")
        path.parent.mkdir(mode=0o750)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen()
            before = db_counts(hive.paths.database)
            answer = await call(host, {"cmd": "spawn", "name": "dave", "command": SLEEPER})
            assert answer["ok"] is False, answer
            assert answer["code"] in ("conflict", "forbidden", "unavailable"), answer
            assert db_counts(hive.paths.database) == before
            assert (await call(host, {"cmd": "list"}))["agents"] == []
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))  # still the listener's
            assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_a_listener_that_never_accepts_does_not_hang_the_daemon(daemon: Daemon) -> None:
    """A socket listening at an agent's path with its backlog full (what an agent could plant
    in its own run dir) is a live one: refused at once, and the daemon goes on serving."""
    daemon.start()  # the fixture kills it afterwards; no agent is ever started here
    path = daemon.base / "run" / "agents" / "dave" / "mcp.sock"
    path.parent.mkdir(mode=0o750)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(0)
        queued = []
        try:
            while True:  # fill the backlog: the next connect would block
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.setblocking(False)
                queued.append(client)
                client.connect(str(path))
        except BlockingIOError:
            pass
        try:
            with pytest.raises(Conflict, match="served by a running daemon"):
                call_sync(
                    daemon.host, {"cmd": "spawn", "name": "dave", "command": SLEEPER}, timeout=10
                )
            assert call_sync(daemon.host, {"cmd": "list"}, timeout=10)["agents"] == []
        finally:
            for client in queued:
                client.close()


def _plant(at: Path, kind: str, dirs: Path) -> Path:
    """A symlink at `at` to a target outside: missing, a file with content, or a live socket."""
    target = dirs / f"target-{kind}"
    if kind == "file":
        target.write_text("precious\n")
    at.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, at)
    return target


@pytest.mark.parametrize("where", ["host.sock", "manager/mcp.sock"])
@pytest.mark.parametrize("kind", ["missing", "file", "socket"])
def test_symlink_at_a_daemon_socket_path_stops_the_start_unfollowed(
    dirs: Path, where: str, kind: str
) -> None:
    at = dirs / "run" / where
    target = _plant(at, kind, dirs)
    listener = None
    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(target))
        listener.listen()
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "hive_core",
                "serve",
                "--state-dir",
                str(dirs / "state"),
                "--run-dir",
                str(dirs / "run"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("HIVE_")},
        )
        assert r.returncode != 0, r
        assert str(at) in r.stderr and "refusing" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert os.path.islink(at) and os.readlink(at) == str(target)  # left as found
        if kind == "missing":
            assert not os.path.lexists(target)
        elif kind == "file":
            assert target.read_text() == "precious\n"
        else:
            assert stat.S_ISSOCK(os.lstat(target).st_mode)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(target))  # still the listener's
    finally:
        if listener is not None:
            listener.close()


@pytest.mark.parametrize("kind", ["missing", "file", "socket"])
async def test_symlink_at_an_agent_socket_path_is_refused_at_spawn(
    hive: Hive, host: str, dirs: Path, kind: str
) -> None:
    at = hive.paths.agent_socket("carol")
    target = _plant(at, kind, dirs)
    listener = None
    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(target))
        listener.listen()
    try:
        with trio.fail_after(TIMEOUT):
            before = db_counts(hive.paths.database)
            answer = await call(host, {"cmd": "spawn", "name": "carol", "command": SLEEPER})
            assert answer["ok"] is False and answer["code"] == "forbidden", answer
            assert db_counts(hive.paths.database) == before
            assert (await call(host, {"cmd": "list"}))["agents"] == []
            assert not hive.paths.agent_dir("carol").exists()  # nothing left behind
        assert os.path.islink(at) and os.readlink(at) == str(target)
        if kind == "missing":
            assert not os.path.lexists(target)
        elif kind == "file":
            assert target.read_text() == "precious\n"
    finally:
        if listener is not None:
            listener.close()


def test_symlink_planted_at_an_agent_socket_while_down_does_not_stop_the_daemon(
    dirs: Path, daemon: Daemon
) -> None:
    """The agent's run dir is what its container sees as /run/hive/: an agent can plant a link at
    its own socket path. On the next start that agent's socket is refused (or replaced), never
    followed, and every other socket is served."""
    daemon.start()
    for name in ("alice", "bob"):
        call_sync(daemon.host, {"cmd": "spawn", "name": name, "command": SLEEPER}, TIMEOUT)
    assert daemon.stop() == 0
    at = dirs / "run" / "agents" / "alice" / "mcp.sock"
    target = _plant(at, "missing", dirs)
    daemon.start()
    assert call_sync(daemon.host, {"cmd": "list"}, TIMEOUT)["agents"] == ["alice", "bob"]
    bob = str(dirs / "run" / "agents" / "bob" / "mcp.sock")
    assert call_sync(bob, {"cmd": "whoami"}, TIMEOUT)["name"] == "bob"
    assert not os.path.lexists(target)
    assert os.path.islink(at) or stat.S_ISSOCK(os.lstat(at).st_mode)
    assert daemon.stop() == 0


# --- state dirs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("planted", ["agent dir", "state", "agent.log", "agent.pid"])
async def test_symlink_planted_in_an_agents_state_is_not_followed_on_restart(
    hive: Hive, host: str, dirs: Path, planted: str
) -> None:
    """test_daemon.py covers a link at the agent dir before spawn; this is an existing agent's
    directories, tampered with while it runs, then restarted."""
    with trio.fail_after(TIMEOUT):
        await spawn_idle(hive, "alice")
        agent_dir = hive.paths.agent_dir("alice")
        outside = dirs / "outside"
        (outside / "state").mkdir(parents=True)  # what an agent dir holds, so a start could go on
        (outside / "agent.pid").write_text("precious\n")
        (outside / "agent.log").write_text("precious\n")
        at = {
            "agent dir": agent_dir,
            "state": agent_dir / "state",
            "agent.log": agent_dir / "agent.log",
            "agent.pid": agent_dir / "agent.pid",
        }[planted]
        target = outside if planted in ("agent dir", "state") else outside / planted
        os.rename(at, dirs / "moved-away")
        os.symlink(target, at)
        before = _tree(outside)

        answer = await call(host, {"cmd": "restart", "name": "alice"})
        # refused (forbidden, or unavailable: the agent cannot start), or done without the link;
        # never `internal`
        assert answer["ok"] or answer["code"] in ("forbidden", "unavailable"), answer
        after = _tree(outside)
        assert after == before, f"the daemon wrote through the link at {planted}: {after}"
        if answer["ok"]:  # replaced, not followed: the agent does not run in the target
            for pid in agent_pids(hive.paths.run, "alice"):
                assert os.path.realpath(f"/proc/{pid}/cwd") != str(outside)
        assert (await call(host, {"cmd": "list"}))["agents"] == ["alice"]  # still serving


def _tree(root: Path) -> list[tuple[str, str]]:
    """Every file and dir under `root` with its content."""
    out = []
    for d, dnames, fnames in os.walk(root):
        out += [(os.path.join(d, n), "<dir>") for n in dnames]
        out += [(os.path.join(d, n), Path(d, n).read_text()) for n in fnames]
    return sorted(out)

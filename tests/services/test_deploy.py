"""Config as git through the sockets: the manager commits to the proposed repo, requests the
commit, the operator approves or denies; tags, main and the running agent are where the spec
says (lifecycle.md, Config as git)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from hive_core.app import Hive
from hive_wire.client import Connection
from tests.helpers import SLEEPER, call, ok
from tests.procs import agent_pids

GIT_ENV = {
    "GIT_AUTHOR_NAME": "manager",
    "GIT_AUTHOR_EMAIL": "m@hive",
    "GIT_COMMITTER_NAME": "manager",
    "GIT_COMMITTER_EMAIL": "m@hive",
    "HOME": "/tmp",
    "PATH": "/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def announcing(mark: str) -> str:
    """agent.toml of an agent that tells the operator `mark` (from its env), then idles."""
    script = f'{sys.executable} -m hive_core agent send operator "$MARK"; exec sleep 3600'
    return (
        f"command = {json.dumps(['/bin/sh', '-c', script])}\n\n[env]\nMARK = {json.dumps(mark)}\n"
    )


async def propose(hive: Hive, name: str, toml: str, message: str) -> str:
    proposed = hive.paths.agent_dir(name) / "config"
    (proposed / "agent.toml").write_text(toml)
    git(proposed, "commit", "-qam", message)
    return git(proposed, "rev-parse", "HEAD")


async def spawn_announcing(hive: Hive, host: str, name: str, mark: str) -> None:
    script = f"{sys.executable} -m hive_core agent send operator {mark}; exec sleep 3600"
    await ok(host, {"cmd": "spawn", "name": name, "command": ["/bin/sh", "-c", script]})
    got = await ok(host, {"cmd": "inbox", "wait_seconds": 30})
    assert [m["body"] for m in got["messages"]] == [mark]


async def test_approve_deploys_and_restarts_with_the_new_config(
    hive: Hive, host: str, manager: str
) -> None:
    await spawn_announcing(hive, host, "alice", "v1")
    applied = hive.paths.state / "applied" / "alice"
    first = git(applied, "rev-parse", "main")
    row = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"][0]
    assert row["deployed_sha"] == first[:12]

    sha = await propose(hive, "alice", announcing("v2"), "say v2")
    rid = (
        await ok(
            manager,
            {
                "cmd": "request_apply_commit",
                "agent": "alice",
                "commit_ref": sha[:10],
                "description": "v2",
            },
        )
    )["id"]
    pending = (await ok(host, {"cmd": "pending"}))["approvals"][-1]
    assert (pending["kind"], pending["fetched_sha"], pending["status"]) == (
        "apply_commit",
        sha,
        "pending",
    )
    await ok(host, {"cmd": "approve", "id": rid})
    got = await ok(host, {"cmd": "inbox", "wait_seconds": 30})
    assert [m["body"] for m in got["messages"]] == ["v2"]  # restarted with the new env
    assert git(applied, "rev-parse", "main") == sha
    tags = git(applied, "tag", "--points-at", sha).split()
    assert {f"proposal/{rid}", f"approved/{rid}", f"building/{rid}", f"deployed/{rid}"} <= set(tags)
    row = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"][0]
    assert row["deployed_sha"] == sha[:12] and row["running"] is True
    events = [
        json.loads(m["body"]) for m in (await ok(manager, {"cmd": "recv", "max": 32}))["messages"]
    ]
    resolved = [e for e in events if e["event"] == "approval_resolved"]
    assert resolved == [
        {
            "event": "approval_resolved",
            "id": rid,
            "agent": "alice",
            "status": "approved",
            "sha": sha,
            "tag": f"deployed/{rid}",
        }
    ]


async def test_broken_config_fails_and_the_old_one_keeps_running(
    hive: Hive, host: str, manager: str
) -> None:
    await spawn_announcing(hive, host, "bob", "v1")
    applied = hive.paths.state / "applied" / "bob"
    before = git(applied, "rev-parse", "main")
    sha = await propose(hive, "bob", 'command = "not a list"\n', "broken")
    rid = (await ok(manager, {"cmd": "request_apply_commit", "agent": "bob", "commit_ref": sha}))[
        "id"
    ]
    await ok(host, {"cmd": "approve", "id": rid})
    row = next(r for r in (await ok(host, {"cmd": "pending"}))["approvals"] if r["id"] == rid)
    assert row["status"] == "failed" and "command" in row["note"]
    assert git(applied, "rev-parse", "main") == before
    assert "command" in git(applied, "tag", "-n5", "-l", f"failed/{rid}")
    status = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"][0]
    assert status["running"] is True and status["deployed_sha"] == before[:12]


async def test_deny_leaves_an_annotated_tag(hive: Hive, host: str, manager: str) -> None:
    await spawn_announcing(hive, host, "carl", "v1")
    sha = await propose(hive, "carl", announcing("nope"), "unwanted")
    rid = (await ok(manager, {"cmd": "request_apply_commit", "agent": "carl", "commit_ref": sha}))[
        "id"
    ]
    await ok(host, {"cmd": "deny", "id": rid, "note": "not this week"})
    applied = hive.paths.state / "applied" / "carl"
    assert "not this week" in git(applied, "tag", "-n5", "-l", f"denied/{rid}")
    assert git(applied, "rev-parse", "main") != sha


async def test_refused_refs_create_nothing(hive: Hive, host: str, manager: str) -> None:
    await spawn_announcing(hive, host, "dora", "v1")
    for ref in ["HEAD", "main", "--upload-pack=x", "abcdef", "a" * 41, "a" * 40]:
        answer = await call(
            manager, {"cmd": "request_apply_commit", "agent": "dora", "commit_ref": ref}
        )
        assert answer["ok"] is False, (ref, answer)
        assert answer["code"] == ("not_found" if ref == "a" * 40 else "bad_request"), answer
    await ok(host, {"cmd": "pending"})
    assert (await ok(host, {"cmd": "pending"}))["approvals"] == []
    answer = await call(
        manager, {"cmd": "request_apply_commit", "agent": "ghost", "commit_ref": "a" * 40}
    )
    assert answer["code"] == "not_found"


async def test_diff_and_pending_show_the_proposal(hive: Hive, host: str, manager: str) -> None:
    await spawn_announcing(hive, host, "erin", "v1")
    sha = await propose(hive, "erin", announcing("v3"), "say v3 instead")
    rid = (await ok(manager, {"cmd": "request_apply_commit", "agent": "erin", "commit_ref": sha}))[
        "id"
    ]
    got = await ok(host, {"cmd": "diff", "id": rid})
    assert got["subject"] == "say v3 instead"
    assert "agent.toml" in got["stat"] and '+MARK = "v3"' in got["diff"]
    answer = await call(host, {"cmd": "diff", "id": 999})
    assert answer["code"] == "not_found"


class TestBusyAgent:
    @pytest.fixture
    def hive_config(self) -> dict[str, Any]:
        return {"stop_grace": 1.0}

    async def test_approve_while_busy_stays_pending_then_a_stopped_agent_runs_the_deploy(
        self, hive: Hive, host: str, manager: str
    ) -> None:
        """Approving while the agent is busy (a stop waiting out its grace) answers `conflict`
        and changes nothing: still pending, no tag. Approved once the agent is stopped, the
        deploy runs it on the new config, wanted running like a rebuild."""
        stubborn = [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)",
        ]
        await ok(host, {"cmd": "spawn", "name": "alice", "command": stubborn})
        applied = hive.paths.state / "applied" / "alice"
        sha = await propose(hive, "alice", announcing("v2"), "say v2")
        rid = (
            await ok(manager, {"cmd": "request_apply_commit", "agent": "alice", "commit_ref": sha})
        )["id"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                ok, host, {"cmd": "stop", "scope": {"agent_names": ["alice"]}, "graceful": True}
            )
            await trio.testing.wait_all_tasks_blocked()  # the stop waits out the grace
            busy = await call(host, {"cmd": "approve", "id": rid})
            assert busy["ok"] is False and busy["code"] == "conflict", busy
            assert "busy (stopping)" in busy["error"]
        row = next(r for r in (await ok(host, {"cmd": "pending"}))["approvals"] if r["id"] == rid)
        assert row["status"] == "pending"
        assert git(applied, "tag", "-l", f"approved/{rid}", f"failed/{rid}") == ""

        await ok(host, {"cmd": "approve", "id": rid})
        got = await ok(host, {"cmd": "inbox", "wait_seconds": 30})
        assert [m["body"] for m in got["messages"]] == ["v2"]
        status = (await ok(host, {"cmd": "agent_status"}))["agent_statuses"][0]
        assert status["running"] is True and status["deployed_sha"] == sha[:12]
        assert status["failed"] is False  # wanted running, and running


class TestOwnRestartSetting:
    # The daemon's default: no restart after a crash; a short back-off for the agent that asks.
    @pytest.fixture
    def hive_config(self) -> dict[str, Any]:
        return {"restart_on_crash": False, "restart_backoff": 0.01}

    async def test_an_agent_toml_restart_setting_restarts_it_after_a_real_crash(
        self, hive: Hive, host: str, manager: str
    ) -> None:
        """alice's deployed agent.toml says `[lifecycle] restart = "on-crash"`, bob has none:
        both killed with SIGKILL, alice runs again (a new process), bob stays down, as the
        daemon's default says."""
        for name in ("alice", "bob"):
            await ok(host, {"cmd": "spawn", "name": name, "command": SLEEPER})
        toml = f'command = {json.dumps(SLEEPER)}\n\n[lifecycle]\nrestart = "on-crash"\n'
        sha = await propose(hive, "alice", toml, "restart on crash")
        rid = (
            await ok(manager, {"cmd": "request_apply_commit", "agent": "alice", "commit_ref": sha})
        )["id"]
        await ok(host, {"cmd": "approve", "id": rid})
        before = {n: agent_pids(hive.paths.run, n) for n in ("alice", "bob")}
        assert all(len(pids) == 1 for pids in before.values()), before
        async with await Connection.open(host) as feed:
            await feed.call({"cmd": "subscribe_events"})
            for (pid,) in before.values():
                os.kill(pid, signal.SIGKILL)
            notes: dict[str, str] = {}
            back = False  # alice running again after her crash
            with trio.fail_after(30):
                while len(notes) < 2 or not back:
                    e = (await feed.read())["event"]
                    if e["kind"] == "container_crash":
                        notes[e["agent"]] = e["note"]
                    elif e["kind"] == "container_state_changed" and "alice" in notes:
                        back = back or (e["agent"] == "alice" and e["row"]["running"])
        assert notes == {"alice": "killed by SIGKILL", "bob": "killed by SIGKILL"}
        got = (await ok(manager, {"cmd": "recv", "max": 32}))["messages"]
        said = {
            b["agent"]: b["note"]
            for b in map(json.loads, (m["body"] for m in got))
            if b["event"] == "container_crash"
        }
        assert said == {
            "alice": "killed by SIGKILL; restarting in 0.01 s",
            "bob": "killed by SIGKILL",
        }
        after = agent_pids(hive.paths.run, "alice")
        assert len(after) == 1 and after != before["alice"]
        assert agent_pids(hive.paths.run, "bob") == []

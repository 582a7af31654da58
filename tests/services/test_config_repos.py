"""Config as git on real repos: seeding, proposals, approve/deny tags, a hostile proposed repo,
`agent.toml` validation and the forge mirror (file:// bare repo, a 401-answering HTTP forge, a
forge that is down).

The manager's side is played with plain git (`REAL_GIT`, no hardening) the way a manager would.
For the mirror tests a `git` shim first on PATH records the argv of every git the module starts
and turns on `GIT_TRACE` for everything below it (transport helpers, credential helpers), so the
token can be looked for in every command line.
"""

from __future__ import annotations

import base64
import http.server
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from hive_core.config_repos.git import Git
from hive_core.config_repos.repos import DEFAULT_COMMAND, ConfigRepos, parse_config
from hive_wire.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge, Unavailable

REAL_GIT = shutil.which("git") or "git"
TOKEN = "s3cr3t-T0KEN-7f2c9a"
MANAGER_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "manager",
    "GIT_AUTHOR_EMAIL": "manager@hive",
    "GIT_COMMITTER_NAME": "manager",
    "GIT_COMMITTER_EMAIL": "manager@hive",
}
HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "post-index-change",
    "fsmonitor-watchman",
)


def git(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(
        [REAL_GIT, "-C", str(repo), *args],
        env=env or MANAGER_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {args} failed: {done.stderr}")
    return done.stdout.strip()


def manager_commit(
    repos: ConfigRepos, name: str, files: dict[str, str | bytes], message: str = "manager change"
) -> str:
    repo = repos.proposed_path(name)
    for file, text in files.items():
        path = repo / file
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def tags(repos: ConfigRepos, name: str) -> dict[str, str]:
    out = git(
        repos.applied_path(name),
        "for-each-ref",
        "--format=%(refname:lstrip=2) %(objecttype) %(*objectname) %(objectname)",
        "refs/tags/",
    )
    result = {}
    for line in out.splitlines():
        tag, kind, *shas = line.split()
        result[tag] = f"{kind}:{shas[0]}"
    return result


class Recorder:
    def __init__(self, repos: ConfigRepos, name: str, error: Exception | None = None) -> None:
        self.repos, self.name, self.error = repos, name, error
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, sha: str) -> None:
        # What a backend reading <applied>/agent.toml during the build sees.
        self.calls.append((sha, (self.repos.applied_path(self.name) / "agent.toml").read_text()))
        if self.error is not None:
            raise self.error


@pytest.fixture
def repos(dirs: Path) -> ConfigRepos:
    return ConfigRepos(dirs / "state")


async def main_of(repos: ConfigRepos, name: str) -> str:
    """The full sha of `name`'s applied main."""
    found = await repos.main_config(name)
    assert found is not None
    return found[0]


@pytest.fixture
async def alice(repos: ConfigRepos) -> ConfigRepos:
    assert await repos.seed("alice", "process") is True
    return repos


NEW_TOML = 'command = ["/bin/sleep", "60"]\n\n[env]\nMODE = "test"\n'


# --- seeding ----------------------------------------------------------------------------------
async def test_seed_creates_both_repos(alice: ConfigRepos) -> None:
    applied, proposed = alice.applied_path("alice"), alice.proposed_path("alice")
    main = git(applied, "rev-parse", "main")
    assert git(applied, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert tags(alice, "alice") == {"deployed/0": f"commit:{main}"}
    assert git(applied, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "hive-core <hive-core@localhost>|hive-core <hive-core@localhost>"
    )
    assert await alice.config_at("alice", main) == {"command": DEFAULT_COMMAND, "env": {}}
    assert await alice.deployed_sha("alice") == main[:12]
    assert await main_of(alice, "alice") == main
    # The manager's repo is a clone on the same commit, with no remote pointing at the host.
    assert git(proposed, "rev-parse", "HEAD") == main
    assert git(proposed, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(proposed, "remote") == ""
    assert not (proposed / ".git" / "hooks").exists()
    # Idempotent: an existing pair is kept as is.
    assert await alice.seed("alice", "process", ["/bin/other"]) is False
    assert git(applied, "rev-parse", "main") == main


async def test_seed_command_round_trips(repos: ConfigRepos) -> None:
    argv = [
        "/usr/bin/env",
        'quote"s',
        "back\\slash",
        "new\nline",
        "tab\t",
        "del\x7f",
        "é ✓ 😀",
        "[x] = 'y'",
    ]
    await repos.seed("bob", "process", argv)
    main = await main_of(repos, "bob")
    assert await repos.config_at("bob", main) == {"command": argv, "env": {}}


async def test_seed_nixos_container(repos: ConfigRepos) -> None:
    await repos.seed("nix", "nixos-container")
    nix = repos.applied_path("nix") / "agent.nix"
    assert "system.stateVersion" in nix.read_text()
    assert (repos.proposed_path("nix") / "agent.nix").read_text() == nix.read_text()
    if shutil.which("nix-instantiate"):
        subprocess.run(["nix-instantiate", "--parse", str(nix)], check=True, capture_output=True)
    with pytest.raises(BadRequest, match="not a command"):
        await repos.seed("nix2", "nixos-container", ["/bin/true"])
    with pytest.raises(BadRequest, match="unknown kind"):
        await repos.seed("x", "docker")
    with pytest.raises(BadRequest, match="command"):
        await repos.seed("y", "process", [])


async def test_seed_refuses_symlinks(repos: ConfigRepos, dirs: Path) -> None:
    elsewhere = dirs / "elsewhere"
    elsewhere.mkdir()
    (repos.state / "applied").mkdir(parents=True)
    (repos.state / "applied" / "eve").symlink_to(elsewhere)
    with pytest.raises(Forbidden, match="symlink"):
        await repos.seed("eve", "process")
    (repos.state / "agents" / "mal").mkdir(parents=True)
    (repos.state / "agents" / "mal" / "config").symlink_to(elsewhere)
    with pytest.raises(Forbidden, match="symlink"):
        await repos.seed("mal", "process")
    assert list(elsewhere.iterdir()) == []


async def test_seed_restores_missing_proposed_refuses_orphan(alice: ConfigRepos) -> None:
    shutil.rmtree(alice.proposed_path("alice"))
    assert await alice.seed("alice", "process") is True
    assert git(alice.proposed_path("alice"), "rev-parse", "HEAD") == await main_of(alice, "alice")
    await alice.purge("alice")
    assert not alice.applied_path("alice").exists()
    with pytest.raises(Conflict, match="no applied one"):
        await alice.seed("alice", "process")


# --- proposals and approvals ------------------------------------------------------------------
async def test_propose_approve_deploys(alice: ConfigRepos) -> None:
    applied = alice.applied_path("alice")
    old = await main_of(alice, "alice")
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML}, "sleep instead of echo")
    assert await alice.propose("alice", 7, sha[:7]) == sha
    assert await alice.config_at("alice", sha) == {
        "command": ["/bin/sleep", "60"],
        "env": {"MODE": "test"},
    }
    assert await alice.subject_and_stat("alice", sha) == (
        "sleep instead of echo",
        "agent.toml | 5 ++---\n 1 file changed, 2 insertions(+), 3 deletions(-)",
    )
    diff = await alice.diff("alice", sha)
    assert '+command = ["/bin/sleep", "60"]' in diff and "-command" in diff
    assert await main_of(alice, "alice") == old  # proposing moves nothing

    apply = Recorder(alice, "alice")
    assert await alice.approve("alice", 7, apply, expected_sha=sha[:12]) == {
        "sha": sha,
        "tag": "deployed/7",
    }
    assert apply.calls == [(sha, NEW_TOML)]  # the candidate was checked out during the build
    t = tags(alice, "alice")
    for tag in ("proposal/7", "approved/7", "building/7", "deployed/7"):
        assert t[tag] == f"commit:{sha}", tag
    assert git(applied, "rev-parse", "main") == sha
    assert git(applied, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(applied, "status", "--porcelain") == ""
    assert await alice.deployed_sha("alice") == sha[:12]
    # Resolved once: neither approve nor deny again.
    with pytest.raises(Conflict, match="already deployed"):
        await alice.approve("alice", 7, apply)
    with pytest.raises(Conflict, match="already deployed"):
        await alice.deny("alice", 7, "late")
    with pytest.raises(NotFound, match="proposal/8"):
        await alice.approve("alice", 8, apply)


async def test_apply_failure_tags_failed_and_keeps_main(alice: ConfigRepos) -> None:
    applied = alice.applied_path("alice")
    old = git(applied, "rev-parse", "main")
    old_toml = (applied / "agent.toml").read_text()
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    await alice.propose("alice", 3, sha)
    apply = Recorder(alice, "alice", Unavailable("nixos-container update failed: boom"))
    with pytest.raises(Unavailable, match="boom"):
        await alice.approve("alice", 3, apply)
    assert len(apply.calls) == 1
    t = tags(alice, "alice")
    assert t["failed/3"] == f"tag:{sha}"  # annotated
    assert "deployed/3" not in t
    assert git(applied, "tag", "-l", "--format=%(contents)", "failed/3") == (
        "nixos-container update failed: boom"
    )
    assert git(applied, "rev-parse", "main") == old
    assert git(applied, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert (applied / "agent.toml").read_text() == old_toml
    assert await alice.deployed_sha("alice") == old[:12]
    with pytest.raises(Conflict, match="already failed"):
        await alice.approve("alice", 3, Recorder(alice, "alice"))


async def test_apply_internal_error_and_cancellation(alice: ConfigRepos) -> None:
    import trio

    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    await alice.propose("alice", 1, sha)
    with pytest.raises(RuntimeError):
        await alice.approve("alice", 1, Recorder(alice, "alice", RuntimeError("x")))
    assert git(alice.applied_path("alice"), "tag", "-l", "--format=%(contents)", "failed/1") == (
        "internal error: RuntimeError"
    )

    await alice.propose("alice", 2, sha)

    async def hang(sha: str) -> None:
        await trio.sleep_forever()

    with trio.move_on_after(0.5):
        await alice.approve("alice", 2, hang)
    # Cancelled mid-build: still pending (no outcome tag), HEAD back on main, may be retried.
    assert "failed/2" not in tags(alice, "alice")
    assert git(alice.applied_path("alice"), "symbolic-ref", "HEAD") == "refs/heads/main"
    assert (await alice.approve("alice", 2, Recorder(alice, "alice")))["tag"] == "deployed/2"


async def test_not_a_fast_forward_fails_without_building(alice: ConfigRepos) -> None:
    proposed = alice.proposed_path("alice")
    first = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    git(proposed, "checkout", "-q", "-b", "other", "HEAD~1")
    second = manager_commit(alice, "alice", {"notes.md": "x\n"})
    await alice.propose("alice", 1, first)
    await alice.propose("alice", 2, second)
    await alice.approve("alice", 1, Recorder(alice, "alice"))
    apply = Recorder(alice, "alice")
    with pytest.raises(Conflict, match="not a fast-forward"):
        await alice.approve("alice", 2, apply)
    assert apply.calls == []
    t = tags(alice, "alice")
    assert t["failed/2"] == f"tag:{second}" and "building/2" not in t
    assert git(alice.applied_path("alice"), "rev-parse", "main") == first


async def test_deny_tags_annotated_note(alice: ConfigRepos) -> None:
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    await alice.propose("alice", 4, sha)
    assert await alice.deny("alice", 4, "too risky\nsecond line") == {"sha": sha, "tag": "denied/4"}
    assert tags(alice, "alice")["denied/4"] == f"tag:{sha}"
    assert git(alice.applied_path("alice"), "tag", "-l", "--format=%(contents)", "denied/4") == (
        "too risky\nsecond line"
    )
    with pytest.raises(Conflict, match="already denied"):
        await alice.approve("alice", 4, Recorder(alice, "alice"))
    await alice.propose("alice", 5, sha)
    await alice.deny("alice", 5, None)
    assert git(alice.applied_path("alice"), "tag", "-l", "--format=%(contents)", "denied/5") == (
        "denied"
    )


@pytest.mark.parametrize(
    "ref",
    [
        "HEAD",
        "main",
        "--upload-pack=x",
        "abcdef",
        "a" * 41,
        "ABCDEF1",
        "deployed/0",
        "abcdef1^{tree}",
        "",
        " abcdef1",
    ],
)
async def test_refused_refs(alice: ConfigRepos, ref: str) -> None:
    with pytest.raises(BadRequest, match="7 to 40"):
        await alice.propose("alice", 1, ref)
    with pytest.raises(BadRequest):
        await alice.config_at("alice", ref)
    assert "proposal/1" not in tags(alice, "alice")


async def test_unknown_and_unreachable_commits(alice: ConfigRepos) -> None:
    proposed = alice.proposed_path("alice")
    with pytest.raises(NotFound, match="not in"):
        await alice.propose("alice", 1, "0123456789abcdef0123456789abcdef01234567")
    # A branch named like hex digits does not make a name acceptable.
    git(proposed, "branch", "cafe1234")
    with pytest.raises(NotFound):
        await alice.propose("alice", 1, "cafe1234")
    # A commit fetched once, then dropped from every branch, is no longer proposable.
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    assert await alice.propose("alice", 1, sha) == sha
    git(proposed, "reset", "-q", "--hard", "HEAD~1")
    git(proposed, "branch", "-D", "cafe1234")
    with pytest.raises(NotFound, match="not on any branch"):
        await alice.propose("alice", 2, sha)
    assert await alice.config_at("alice", sha)  # still readable in the applied repo


async def test_proposed_gitdir_redirects_refused(alice: ConfigRepos, dirs: Path) -> None:
    gitdir = alice.proposed_path("alice") / ".git"
    sha = git(gitdir.parent, "rev-parse", "HEAD")
    alternates = gitdir / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(str(alice.applied_path("alice") / ".git" / "objects") + "\n")
    with pytest.raises(Forbidden, match="alternates"):
        await alice.propose("alice", 1, sha)
    alternates.unlink()
    (gitdir / "commondir").write_text(str(dirs) + "\n")
    with pytest.raises(Forbidden, match="commondir"):
        await alice.propose("alice", 1, sha)
    (gitdir / "commondir").unlink()
    gitdir.rename(dirs / "moved.git")
    gitdir.write_text(f"gitdir: {dirs / 'moved.git'}\n")
    with pytest.raises(Forbidden, match="not a directory"):
        await alice.propose("alice", 1, sha)
    gitdir.unlink()
    gitdir.symlink_to(dirs / "moved.git")
    with pytest.raises(Forbidden, match="symlink"):
        await alice.propose("alice", 1, sha)


async def test_hostile_proposed_repo_runs_nothing(alice: ConfigRepos, dirs: Path) -> None:
    """Hooks, fsmonitor and configured commands planted in the proposed repo never run during
    propose, diff, approve (with its checkout and fast-forward) or deny."""
    markers = dirs / "markers"
    markers.mkdir()
    proposed = alice.proposed_path("alice")
    gitdir = proposed / ".git"
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    sha2 = manager_commit(alice, "alice", {"agent.toml": NEW_TOML + "# more\n"})

    hookdirs = [gitdir / "hooks", dirs / "planted-hooks"]
    for hookdir in hookdirs:
        hookdir.mkdir(exist_ok=True)
        for hook in HOOKS:
            path = hookdir / hook
            path.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(markers / hook))}\n")
            path.chmod(0o755)

    def cmd(tag: str) -> str:
        return f"touch {shlex.quote(str(markers / tag))}; false"

    planted = {
        "core.hooksPath": str(dirs / "planted-hooks"),
        "core.fsmonitor": cmd("fsmonitor"),
        "core.sshCommand": cmd("sshCommand"),
        "core.gitProxy": cmd("gitProxy"),
        "core.alternateRefsCommand": cmd("alternateRefsCommand"),
        "core.pager": cmd("pager"),
        "uploadpack.packObjectsHook": cmd("packObjectsHook"),
        "diff.external": cmd("diffExternal"),
        "credential.helper": "!" + cmd("credentialHelper"),
        "remote.origin.url": "ssh://evil.example/x",
    }
    for key, value in planted.items():
        git(proposed, "config", key, value)

    assert await alice.propose("alice", 1, sha) == sha
    assert await alice.propose("alice", 2, sha2) == sha2
    await alice.diff("alice", sha)
    await alice.subject_and_stat("alice", sha)
    await alice.config_at("alice", sha)
    await alice.approve("alice", 1, Recorder(alice, "alice"))
    await alice.deny("alice", 2, "no")
    assert sorted(p.name for p in markers.iterdir()) == []

    # Positive controls: the same planted hooks and commands do run under plain git...
    git(proposed, "update-ref", "refs/heads/control", "HEAD")
    assert (markers / "reference-transaction").exists()
    git(proposed, "status", "--porcelain", check=False)
    assert (markers / "fsmonitor").exists()
    # ...and packObjectsHook runs from protected (global) config, never from the repo's own.
    plain = dirs / "plain"
    git(dirs, "init", "-q", str(plain))
    git(plain, "fetch", "-q", str(proposed), "+refs/heads/*:refs/remotes/p/*")
    assert not (markers / "packObjectsHook").exists()
    global_cfg = dirs / "global.gitconfig"
    global_cfg.write_text(f'[uploadpack]\n\tpackObjectsHook = "{cmd("packObjectsHook")}"\n')
    git(dirs, "init", "-q", str(dirs / "plain2"))
    git(
        dirs / "plain2",
        "fetch",
        "-q",
        str(proposed),
        "+refs/heads/*:refs/remotes/p/*",
        env={**MANAGER_ENV, "GIT_CONFIG_GLOBAL": str(global_cfg)},
        check=False,
    )
    assert (markers / "packObjectsHook").exists()


async def test_global_config_and_environment_are_ignored(
    alice: ConfigRepos, dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's own environment cannot switch hooks or config back on for git."""
    markers = dirs / "markers"
    markers.mkdir()
    hookdir = dirs / "env-hooks"
    hookdir.mkdir()
    for hook in HOOKS:
        (hookdir / hook).write_text(f"#!/bin/sh\ntouch {shlex.quote(str(markers / hook))}\n")
        (hookdir / hook).chmod(0o755)
    cfg = dirs / "evil.gitconfig"
    cfg.write_text(f"[core]\n\thooksPath = {hookdir}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.hooksPath")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(hookdir))
    monkeypatch.setenv("HOME", str(dirs))
    (dirs / ".gitconfig").write_text(cfg.read_text())
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    await alice.propose("alice", 1, sha)
    await alice.approve("alice", 1, Recorder(alice, "alice"))
    assert list(markers.iterdir()) == []


async def test_an_oversized_proposed_repo_is_refused_and_leaves_nothing(dirs: Path) -> None:
    """A fetch from the proposed repo may not write a file past `fetch_max_bytes` (its pack):
    an oversized commit answers `too_large`, leaves no ref and no partial pack in the applied
    repo, and a normal proposal goes through after it."""
    repos = ConfigRepos(dirs / "state", fetch_max_bytes=200_000)
    await repos.seed("alice", "process")
    applied = repos.applied_path("alice")
    pack_dir = applied / ".git" / "objects" / "pack"
    before = sorted(p.name for p in pack_dir.iterdir())
    big = manager_commit(repos, "alice", {"blob.bin": os.urandom(600_000)})
    with pytest.raises(TooLarge, match="over 200000 bytes"):
        await repos.propose("alice", 1, big)
    assert git(applied, "for-each-ref", "refs/remotes/") == ""
    assert sorted(p.name for p in pack_dir.iterdir()) == before
    assert git(applied, "cat-file", "-t", big, check=False) != "commit"
    git(repos.proposed_path("alice"), "reset", "-q", "--hard", "HEAD~1")
    small = manager_commit(repos, "alice", {"agent.toml": NEW_TOML})
    assert await repos.propose("alice", 2, small) == small


def _fake_git(tmp: Path, body: str) -> str:
    """A stand-in for git: what a crafted repo could make git do."""
    exe = tmp / "git"
    exe.write_text(f"#!{sys.executable}\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


async def test_an_untrusted_fetch_is_stopped_at_its_deadline(
    dirs: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A fetch that does not end (a crafted repo, a hung upload-pack) is killed at its deadline
    and answers `unavailable`, saying so."""
    g = Git(dirs / "state")
    g.exe = _fake_git(dirs, "import time; time.sleep(3600)")
    with pytest.raises(Unavailable, match="took longer than 120 s"):
        await g.run("fetch", max_file=1 << 20, max_seconds=120)


async def test_an_untrusted_fetch_runs_under_a_memory_cap(dirs: Path) -> None:
    """What git may allocate on an untrusted fetch is capped: a run that would take more fails
    (and a trusted one is not capped)."""
    g = Git(dirs / "state")
    g.exe = _fake_git(dirs, "x = bytearray(1 << 30); print(len(x))")
    with pytest.raises(Unavailable, match="MemoryError"):
        await g.run("fetch", max_file=1 << 20, max_memory=512 << 20)
    assert (await g.run("fetch")).stdout.strip() == str(1 << 30).encode()


# --- agent.toml -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("command = [", "invalid TOML"),
        ("[env]\n", "command: missing"),
        ("command = []\n", "command: must be a list of 1 to 256 strings"),
        ('command = "/bin/true"\n', "command: must be a list"),
        ('command = ["/bin/true", 3]\n', "command: must be a list"),
        ('command = ["/bin/\\u0000true"]\n', "NUL"),
        ('command = ["/bin/true"]\nenv = "x"\n', "env: must be a table"),
        ('command = ["/bin/true"]\n[env]\nA = 1\n', "env.A: must be a string"),
        ('command = ["/bin/true"]\n[env]\n"A=B" = "1"\n', "not a usable variable"),
        ('command = ["/bin/true"]\n[env]\nA = "\\u0000"\n', "not a usable variable"),
        ('command = ["/bin/true"]\n[env.A]\nB = "1"\n', "env.A: must be a string"),
        ('command = ["/bin/true"]\nshell = true\n', "unknown key 'shell'"),
        (b'command = ["\xff"]\n', "not UTF-8"),
    ],
)
async def test_config_at_validation(alice: ConfigRepos, text: str | bytes, error: str) -> None:
    sha = manager_commit(alice, "alice", {"agent.toml": text})
    await alice.propose("alice", 1, sha)
    with pytest.raises(BadRequest, match=f"agent.toml at {sha[:12]}: .*{error}"):
        await alice.config_at("alice", sha)


async def test_config_at_file_shapes(alice: ConfigRepos) -> None:
    proposed = alice.proposed_path("alice")
    (proposed / "agent.toml").unlink()
    (proposed / "agent.toml").symlink_to("/etc/passwd")
    symlink = manager_commit(alice, "alice", {})
    git(proposed, "rm", "-q", "agent.toml")
    git(proposed, "commit", "-q", "-m", "gone")
    missing = git(proposed, "rev-parse", "HEAD")
    big = manager_commit(alice, "alice", {"agent.toml": 'command = ["x"]\n' + "#" * 70000})
    await alice.propose("alice", 1, big)
    with pytest.raises(BadRequest, match="not a regular file"):
        await alice.config_at("alice", symlink)
    with pytest.raises(BadRequest, match="missing"):
        await alice.config_at("alice", missing)
    with pytest.raises(BadRequest, match="larger than"):
        await alice.config_at("alice", big)
    with pytest.raises(NotFound):
        await alice.config_at("alice", "0123456789abcdef0123456789abcdef01234567")
    # A proposal carrying a symlink is checked out as a plain file, never a link.
    await alice.propose("alice", 2, symlink)
    seen: list[tuple[bool, str]] = []

    async def apply(sha: str) -> None:
        path = alice.applied_path("alice") / "agent.toml"
        seen.append((path.is_symlink(), path.read_text()))

    await alice.approve("alice", 2, apply)
    assert seen == [(False, "/etc/passwd")]
    assert parse_config(b'command = ["x"]', "t") == {"command": ["x"], "env": {}}


async def test_diff_escapes_terminal_controls(alice: ConfigRepos) -> None:
    sha = manager_commit(
        alice, "alice", {"notes.md": "ok\x1b[2K\rhidden \u202egnp.exe\n"}, "subject \x1b[31mred"
    )
    await alice.propose("alice", 1, sha)
    diff = await alice.diff("alice", sha)
    assert "\x1b" not in diff and "\u202e" not in diff and "\r" not in diff
    assert "\\u001b[2K\\u000dhidden \\u202egnp.exe" in diff
    subject, _ = await alice.subject_and_stat("alice", sha)
    assert subject == "subject \\u001b[31mred"


async def test_deployed_sha_is_newest_by_number(alice: ConfigRepos) -> None:
    first = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    await alice.propose("alice", 2, first)
    await alice.approve("alice", 2, Recorder(alice, "alice"))
    second = manager_commit(alice, "alice", {"notes.md": "x\n"})
    await alice.propose("alice", 10, second)  # "10" sorts before "2" as text
    await alice.approve("alice", 10, Recorder(alice, "alice"))
    assert await alice.deployed_sha("alice") == second[:12]
    assert await ConfigRepos(alice.state).deployed_sha("alice") == second[:12]
    assert await alice.deployed_sha("nobody") is None


async def test_main_config_is_main_and_its_config(alice: ConfigRepos) -> None:
    """One git process at start-up gives main's sha and what `config_at` gives for it."""
    applied = alice.applied_path("alice")
    main = git(applied, "rev-parse", "main")
    assert await alice.main_config("alice") == (main, await alice.config_at("alice", main))
    assert await alice.main_config("nobody") is None
    # main moved (as a deploy moves it): the new commit and its config.
    sha = manager_commit(alice, "alice", {"agent.toml": NEW_TOML})
    await alice.propose("alice", 1, sha)
    git(applied, "reset", "-q", "--hard", sha)
    assert await alice.main_config("alice") == (
        sha,
        {"command": ["/bin/sleep", "60"], "env": {"MODE": "test"}},
    )
    # A main without agent.toml, or with a broken one, is refused with the reason.
    git(applied, "rm", "-q", "agent.toml")
    git(applied, "commit", "-q", "-m", "gone")
    with pytest.raises(BadRequest, match="agent.toml on alice's main: missing"):
        await alice.main_config("alice")
    (applied / "agent.toml").write_text("command = [")
    git(applied, "add", "agent.toml")
    git(applied, "commit", "-q", "-m", "broken")
    with pytest.raises(BadRequest, match="invalid TOML"):
        await alice.main_config("alice")


async def test_recover_puts_head_back_on_main(alice: ConfigRepos) -> None:
    applied = alice.applied_path("alice")
    assert await alice.recover("alice") is False
    git(applied, "checkout", "-q", "--detach", "HEAD")
    (applied / "agent.toml").write_text("scribbled")
    assert await alice.recover("alice") is True
    assert git(applied, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(applied, "status", "--porcelain") == ""


# --- the forge mirror -------------------------------------------------------------------------
@attrs.define
class Shim:
    argv_log: Path
    trace_log: Path

    def text(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in (self.argv_log, self.trace_log) if p.exists()
        )


@pytest.fixture
def shim(dirs: Path, monkeypatch: pytest.MonkeyPatch) -> Shim:
    """A `git` first on PATH: logs its argv, then execs the real git with GIT_TRACE on."""
    bindir = dirs / "bin"
    bindir.mkdir()
    s = Shim(dirs / "argv.log", dirs / "trace.log")
    (bindir / "git").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$0 $*" >> {shlex.quote(str(s.argv_log))}\n'
        f'GIT_TRACE={shlex.quote(str(s.trace_log))} exec {shlex.quote(REAL_GIT)} "$@"\n'
    )
    (bindir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return s


@pytest.fixture
def token_file(dirs: Path) -> Path:
    path = dirs / "forge-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def assert_token_nowhere(
    repos: ConfigRepos, shim: Shim, caplog: pytest.LogCaptureFixture, *more: Path
) -> None:
    assert shim.argv_log.exists() and shim.trace_log.exists()
    assert TOKEN not in shim.text()
    assert TOKEN not in caplog.text
    for root in (repos.state, *more):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert TOKEN.encode() not in path.read_bytes(), path


async def test_mirror_to_file_forge(
    dirs: Path, shim: Shim, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hive_core.config_repos")
    forge = dirs / "forge"
    bare = forge / "agent-configs" / "alice.git"
    git(dirs, "init", "-q", "--bare", str(bare))
    repos = ConfigRepos(dirs / "state", f"file://{forge}/", token_file)
    await repos.seed("alice", "process")
    main = await main_of(repos, "alice")
    assert git(bare, "rev-parse", "refs/heads/main", "refs/tags/deployed/0").split() == [main, main]

    sha = manager_commit(repos, "alice", {"agent.toml": NEW_TOML})
    await repos.propose("alice", 1, sha)
    assert git(bare, "rev-parse", "refs/tags/proposal/1") == sha
    await repos.approve("alice", 1, Recorder(repos, "alice"))
    bad = manager_commit(repos, "alice", {"notes.md": "x\n"})
    await repos.propose("alice", 2, bad)
    with pytest.raises(Unavailable):
        await repos.approve("alice", 2, Recorder(repos, "alice", Unavailable("no")))
    await repos.propose("alice", 3, bad)
    await repos.deny("alice", 3, "nope")

    assert git(bare, "rev-parse", "refs/heads/main") == sha
    forge_tags = git(bare, "tag", "-l").split()
    assert sorted(forge_tags) == sorted(tags(repos, "alice"))
    assert {"deployed/1", "failed/2", "denied/3", "proposal/3"} <= set(forge_tags)
    assert "forge mirror pushed name=alice" in caplog.text
    argv = shim.argv_log.read_text()
    assert "credential.helper=" in argv  # the helper was configured
    assert "upload-pack --strict" in argv  # the proposed repo was read by our upload-pack only
    assert git(repos.applied_path("alice"), "remote") == ""  # no remote stored
    assert_token_nowhere(repos, shim, caplog, forge)


class AuthForge(http.server.BaseHTTPRequestHandler):
    """A forge that wants credentials and never accepts them; records what it was sent."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        AuthForge.seen.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="forge"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def auth_forge() -> Iterator[str]:
    AuthForge.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthForge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_mirror_token_reaches_git_only_through_the_helper(
    dirs: Path, shim: Shim, token_file: Path, auth_forge: str, caplog: pytest.LogCaptureFixture
) -> None:
    repos = ConfigRepos(dirs / "state", auth_forge, token_file)
    await repos.seed("alice", "process")  # the mirror is refused; the seed is not
    expected = "Basic " + base64.b64encode(f"hive-core:{TOKEN}".encode()).decode()
    assert expected in AuthForge.seen  # git got the token, from the environment
    assert 'echo "password=$HIVE_FORGE_TOKEN"; }; f get' in shim.trace_log.read_text()
    assert "forge mirror failed name=alice" in caplog.text
    assert not (repos.state / "git-home" / ".git-credentials").exists()
    assert_token_nowhere(repos, shim, caplog)


async def test_forge_down_never_blocks_a_deploy(
    dirs: Path, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}", f"file://{dirs}/no-forge"):
        caplog.clear()
        repos = ConfigRepos(dirs / "state" / url[:4], url, token_file)
        await repos.seed("alice", "process")
        sha = manager_commit(repos, "alice", {"agent.toml": NEW_TOML})
        await repos.propose("alice", 1, sha)
        assert (await repos.approve("alice", 1, Recorder(repos, "alice")))["tag"] == "deployed/1"
        assert await repos.mirror("alice") is False
        assert "forge mirror failed name=alice" in caplog.text
        assert TOKEN not in caplog.text
    # A missing token file is a warning too.
    repos = ConfigRepos(dirs / "state" / "http", f"file://{dirs}/x", dirs / "absent")
    assert await repos.mirror("alice") is False
    assert "No such file" in caplog.text


async def test_background_mirror_and_bad_forge_urls(dirs: Path) -> None:
    import trio

    forge = dirs / "forge"
    bare = forge / "agent-configs" / "alice.git"
    git(dirs, "init", "-q", "--bare", str(bare))
    repos = ConfigRepos(dirs / "state", str(forge))  # a plain path, no token
    async with trio.open_nursery() as nursery:
        repos.attach(nursery)
        await repos.seed("alice", "process")
        sha = manager_commit(repos, "alice", {"agent.toml": NEW_TOML})
        await repos.propose("alice", 1, sha)
        await repos.approve("alice", 1, Recorder(repos, "alice"))
    assert git(bare, "rev-parse", "refs/heads/main", "refs/tags/deployed/1").split() == [sha, sha]
    with pytest.raises(BadRequest, match="password") as refused:
        ConfigRepos(dirs, "https://hive:" + TOKEN + "@forge.example")
    assert TOKEN not in str(refused.value)
    for url in ("ext::sh -c touch% /tmp/x", "ext://x", "fd::3"):
        with pytest.raises(BadRequest, match="forge url"):
            ConfigRepos(dirs, url)
    assert ConfigRepos(dirs, "git@forge.example:hive").forge._scheme == "ssh"
    assert ConfigRepos(dirs).forge.forge_url is None
    assert await ConfigRepos(dirs).mirror("alice") is False


def test_git_is_never_run_through_a_shell() -> None:
    package = Path(sys.modules[ConfigRepos.__module__].__file__ or "").parent
    for module in package.glob("*.py"):
        source = module.read_text()
        assert "shell=True" not in source and "os.system" not in source, module

"""Config as git: each agent's proposed repo (the manager's) and applied repo (the daemon's).

`<state>/agents/<name>/config` is the *proposed* repo: the manager writes it, so it is hostile.
`<state>/applied/<name>` is the *applied* repo: only this module writes it; its `main` is what
runs, and its working tree is what the nixos-container backend builds (`agent.nix`).

Rules kept here:
- git runs through `trio.run_process` with an argv list, never a shell, output captured; a
  failure is `Unavailable` with a short stderr tail (control characters removed, the forge token
  scrubbed); the caller's bad input is `BadRequest` or `NotFound`;
- every git call gets `HARDENED` (hooks to /dev/null, no fsmonitor, no transport but local files,
  no auto-gc, fsck on fetch, no symlinks checked out) and an environment that reads no system or
  global config (`HOME` is the daemon's own `<state>/git-home`), never prompts and never fetches
  lazily; inherited `GIT_*` variables are dropped;
- git never runs *in* the proposed repo after it is seeded. Its objects come over by
  `fetch` run in the applied repo, whose only contact with the proposed repo is the
  `git upload-pack` it starts there: that command is ours (`--upload-pack`), with its own
  `-c` hardening (a local transport clears `GIT_CONFIG_PARAMETERS`, so the fetch's own `-c`
  would not reach it), `--strict` (no `.git` file redirect), and no transport allowed at all (a
  planted promisor remote cannot make it fetch). Before each fetch the proposed gitdir must be a
  plain directory without `commondir` or alternates (no reading another repo's objects);
- a proposal pins one immutable commit: 7 to 40 lowercase hex digits, resolved in the applied
  repo, which must start with what was given and be reachable from a fetched head;
- tags, per approval id: `proposal/`, `approved/`, `building/`, `deployed/` (lightweight) and
  `failed/`, `denied/` (annotated: the error, the note). `main` moves only together with
  `deployed/<id>` (one `update-ref` transaction, old value checked: a fast-forward or nothing);
- while a proposal is built the applied working tree holds it (HEAD detached at the sha), so a
  backend reading `<applied>/agent.nix` builds the candidate; success or failure puts HEAD back
  on `main`; `recover` does it after a crash;
- one lock per agent serialises every change to an agent's repos;
- the forge mirror pushes main and all tags after every ref change, best-effort: failures are a
  warning, never an exception. The token is read from its file at each push and reaches git only
  as `HIVE_FORGE_TOKEN` in the child's environment, through a credential helper whose text holds
  no secret: never argv, never a git config file, never a log line or an error.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from hive_core.clock import deadline, offload
from hive_core.paths import ensure_dir
from hive_wire.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooLarge,
    Unavailable,
    WireError,
)
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)

COMMIT_REF = re.compile(r"[0-9a-f]{7,40}\Z")
DEFAULT_COMMAND = [sys.executable, "-m", "hive_core", "agent", "echo"]  # the bundled echo agent
MAX_ARGV = 256
TOML_FILE = "agent.toml"
NIX_FILE = "agent.nix"
CONFIG_MAX = 64 * 1024
DIFF_MAX = 256 * 1024
TAIL_MAX = 500
MIRROR_TIMEOUT = 120.0
BRANCH = "main"
IDENTITY = ("hive-core", "hive-core@localhost")
TOKEN_ENV = "HIVE_FORGE_TOKEN"
# The helper's text is public: the secret is expanded by its shell from the environment.
CREDENTIAL_HELPER = ('!f() { test "$1" = get || exit 0; echo username=hive-core; '
                     'echo "password=$' + TOKEN_ENV + '"; }; f')
PROPOSAL_REFS = "refs/remotes/proposal-src/"
OUTCOMES = ("deployed", "failed", "denied")
FORGE_SCHEMES = ("https", "http", "ssh", "git", "file")

HARDENED = [
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "protocol.allow=never",
    "-c", "protocol.file.allow=always",
    "-c", "core.symlinks=false",
    "-c", "submodule.recurse=false",
    "-c", "transfer.fsckObjects=true",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "advice.detachedHead=false",
]
# A fetch from a proposed repo (untrusted) keeps what it takes as one pack (`unpackLimit=1`)
# and runs under RLIMIT_FSIZE, so an oversized repo makes git fail ("File too large") instead of
# filling the disk. The limit is set by a Python trampoline that then execs git: no preexec_fn
# in a threaded daemon.
FETCH_MAX_BYTES = 64 << 20
_FSIZE_EXEC = ("import os, resource, sys; n = int(sys.argv[1]); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])")
# The upload-pack started in the proposed repo: no transport at all, not even local files.
UPLOAD_PACK_CONFIG = ["core.hooksPath=/dev/null", "core.fsmonitor=false", "protocol.allow=never",
                      "safe.directory=*"]
_DROP_ENV = {"SSH_ASKPASS", "XDG_CONFIG_HOME", "EMAIL", TOKEN_ENV}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# What a hostile diff could use to hide lines from a terminal: controls (but tab and newline),
# C1 controls, bidi overrides and isolates.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

Apply = Callable[[str], Awaitable[None]]

AGENT_NIX = """\
# The agent's container configuration (hive-core): a NixOS module imported into the container
# h-<name>. The daemon binds the agent's socket directory at /run/hive, its state dir at /state
# and this config (read-only) at /config.
{ config, lib, pkgs, ... }:

{
  system.stateVersion = "24.05";
}
"""


def check_ref(ref: object, field: str = "commit_ref") -> str:
    if not isinstance(ref, str) or not COMMIT_REF.match(ref):
        raise BadRequest(f"{field}: must be 7 to 40 lowercase hex digits (a commit id; branch "
                         "and tag names are refused)")
    return ref


def _check_id(approval_id: object) -> int:
    if type(approval_id) is not int or approval_id < 0:
        raise BadRequest("approval id: expected a non-negative integer")
    return approval_id


def tail(data: bytes, secret: str | None = None, limit: int = TAIL_MAX) -> str:
    """The last `limit` characters of a command's output on one line, `secret` scrubbed."""
    text = data.decode("utf-8", "replace")
    if secret:
        text = text.replace(secret, "***")
    text = _CONTROL.sub(" ", text)
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def visible(text: str) -> str:
    """`text` with every character that could rewrite a terminal shown as an escape."""
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _toml_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _check_command(command: object) -> list[str]:
    if (not isinstance(command, list) or not 1 <= len(command) <= MAX_ARGV
            or not all(isinstance(a, str) for a in command)):
        raise BadRequest(f"command: must be a list of 1 to {MAX_ARGV} strings")
    for a in command:
        if "\x00" in a:
            raise BadRequest("command: arguments must not contain NUL")
        try:
            a.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadRequest("command: arguments must be valid UTF-8") from e
    return command


def template(backend_kind: str, command: list[str] | None) -> dict[str, str]:
    """The files of a new agent's first commit."""
    if backend_kind == "process":
        argv = _check_command(DEFAULT_COMMAND if command is None else command)
        return {TOML_FILE: (
            "# The agent's configuration (hive-core). The process backend runs `command` (an\n"
            "# argv list, no shell) with `env` added to its environment.\n"
            f"command = [{', '.join(_toml_string(a) for a in argv)}]\n\n[env]\n")}
    if backend_kind == "nixos-container":
        if command is not None:
            raise BadRequest("command: a nixos-container agent runs its agent.nix, not a command")
        return {NIX_FILE: AGENT_NIX}
    raise BadRequest(f"backend: unknown kind {backend_kind!r}")


def parse_config(text: bytes, where: str) -> dict[str, Any]:
    """`agent.toml` checked: `command` a non-empty argv, `env` a table of strings."""
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadRequest(f"{where}: not UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise BadRequest(f"{where}: invalid TOML: {e}") from e
    unknown = sorted(set(data) - {"command", "env"})
    if unknown:
        raise BadRequest(f"{where}: unknown key {unknown[0]!r} (expected command, env)")
    if "command" not in data:
        raise BadRequest(f"{where}: command: missing")
    try:
        command = _check_command(data["command"])
    except BadRequest as e:
        raise BadRequest(f"{where}: {e.message}") from None
    env = data.get("env", {})
    if not isinstance(env, dict):
        raise BadRequest(f"{where}: env: must be a table of strings")
    for key, value in env.items():
        if not isinstance(value, str):
            raise BadRequest(f"{where}: env.{key}: must be a string")
        if not key or "=" in key or "\x00" in key or "\x00" in value:
            raise BadRequest(f"{where}: env: {key!r} is not a usable variable (empty, '=' or NUL)")
    return {"command": list(command), "env": dict(env)}


def _head_file(repo: Path) -> str | None:
    """The first line of a daemon-owned repo's `.git/HEAD` (None if it cannot be read)."""
    try:
        fd = os.open(repo / ".git" / "HEAD", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(256).split(b"\n", 1)[0].decode("utf-8", "replace")


def _remove_tmp_packs(repo: Path) -> None:
    """What a fetch cut short leaves in the applied repo's pack dir."""
    pack = repo / ".git" / "objects" / "pack"
    for leftover in pack.glob("tmp_*"):
        leftover.unlink(missing_ok=True)


def _plain_dir(path: Path) -> bool:
    """True if `path` is a real directory, False if absent; anything else is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise Forbidden(f"{path} is {kind}; refusing to use it")
    return True


def _check_proposed_gitdir(gitdir: Path) -> None:
    """The proposed repo's gitdir must not send git to read another repository."""
    for sub in ("", "objects", "refs"):
        if not _plain_dir(gitdir / sub if sub else gitdir):
            raise BadRequest(f"{gitdir / sub}: missing; the proposed repo is not a git repository")
    for sub in ("commondir", "objects/info/alternates", "objects/info/http-alternates"):
        if os.path.lexists(gitdir / sub):
            raise Forbidden(f"the proposed repo has {sub}: refusing to read other repositories")


def _remove_tree(path: Path) -> None:
    if _plain_dir(path):
        shutil.rmtree(path)


class ConfigRepos:
    def __init__(self, state_dir: Path, forge_url: str | None = None,
                 forge_token_file: Path | None = None, *,
                 fetch_max_bytes: int = FETCH_MAX_BYTES) -> None:
        self.state = Path(state_dir).absolute()
        self.fetch_max_bytes = fetch_max_bytes
        self.git = shutil.which("git") or "git"
        self.forge_url = forge_url.rstrip("/") if forge_url else None
        self.forge_token_file = forge_token_file
        self._scheme = _scheme(self.forge_url) if self.forge_url else ""
        self._locks: dict[str, trio.Lock] = {}
        self._deployed: dict[str, str | None] = {}
        self._generation: dict[str, int] = {}
        self._home: Path | None = None
        self._nursery: trio.Nursery | None = None
        self._mirroring: set[str] = set()
        self._mirror_again: set[str] = set()

    def attach(self, nursery: trio.Nursery) -> None:
        """Mirror in the background from now on (coalesced per agent) instead of inline."""
        self._nursery = nursery

    # --- paths ----------------------------------------------------------------------------------
    def proposed_path(self, name: str) -> Path:
        return self.state / "agents" / check_agent_name(name) / "config"

    def applied_path(self, name: str) -> Path:
        return self.state / "applied" / check_agent_name(name)

    def _lock(self, name: str) -> trio.Lock:
        return self._locks.setdefault(name, trio.Lock())

    def _applied(self, name: str) -> Path:
        applied = self.applied_path(name)
        if not _plain_dir(applied):
            raise NotFound(f'agent "{name}" has no applied config repo')
        return applied

    # --- running git ----------------------------------------------------------------------------
    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        if self._home is None:
            self._home = ensure_dir(self.state, "git-home", mode=0o700)
        home = self._home
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GIT_") and k not in _DROP_ENV}
        env.update(
            HOME=str(home), LC_ALL="C", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
            GIT_TERMINAL_PROMPT="0", GIT_NO_LAZY_FETCH="1",
            GIT_AUTHOR_NAME=IDENTITY[0], GIT_AUTHOR_EMAIL=IDENTITY[1],
            GIT_COMMITTER_NAME=IDENTITY[0], GIT_COMMITTER_EMAIL=IDENTITY[1],
        )
        env.update(extra or {})
        return env

    async def _git(self, *args: str, cwd: Path | None = None, stdin: bytes = b"",
                   ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None,
                   secret: str | None = None, max_file: int | None = None,
                   ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.git, *HARDENED, *(["-C", str(cwd)] if cwd else []), *args]
        if max_file is not None:
            argv = [sys.executable, "-c", _FSIZE_EXEC, str(max_file), *argv]
        try:
            done = await trio.run_process(argv, stdin=stdin, capture_stdout=True,
                                          capture_stderr=True, check=False, env=self._env(env))
        except OSError as e:
            raise Unavailable(f"cannot run git: {e.strerror or e}") from e
        if done.returncode not in ok:
            raise Unavailable(f"git {_verb(args)} failed: {tail(done.stderr, secret)}")
        return done

    async def _out(self, *args: str, cwd: Path) -> str:
        return (await self._git(*args, cwd=cwd)).stdout.decode("utf-8", "replace").strip()

    async def _rev(self, repo: Path, spec: str) -> str | None:
        """The full sha `spec` names, None if it names nothing (or, abbreviated, several)."""
        done = await self._git("rev-parse", "--verify", "--quiet", spec, cwd=repo, ok=(0, 1))
        return done.stdout.decode().strip() if done.returncode == 0 else None

    async def _tag_target(self, repo: Path, tag: str) -> str:
        sha = await self._rev(repo, f"refs/tags/{tag}^{{commit}}")
        if sha is None:
            raise NotFound(f"no tag {tag}")
        return sha

    async def _create_tag(self, repo: Path, tag: str, sha: str) -> None:
        """A lightweight tag; the same tag on the same commit again is a no-op."""
        current = await self._rev(repo, f"refs/tags/{tag}")
        if current == sha:
            return
        if current is not None:
            raise Conflict(f"tag {tag} already exists on another commit")
        await self._git("update-ref", f"refs/tags/{tag}", sha, "", cwd=repo)

    async def _annotated_tag(self, repo: Path, tag: str, sha: str, message: str) -> None:
        if await self._rev(repo, f"refs/tags/{tag}") is not None:
            raise Conflict(f"tag {tag} already exists")
        text = message.rstrip("\n") + "\n"
        await self._git("tag", "-a", "--cleanup=verbatim", "-F", "-", tag, sha, cwd=repo,
                        stdin=text.encode("utf-8", "replace"))

    async def _refuse_resolved(self, repo: Path, approval_id: int) -> None:
        for outcome in OUTCOMES:
            if await self._rev(repo, f"refs/tags/{outcome}/{approval_id}") is not None:
                raise Conflict(f"approval {approval_id} is already {outcome} "
                               f"(tag {outcome}/{approval_id})")

    # --- seeding --------------------------------------------------------------------------------
    async def seed(self, name: str, backend_kind: str, command: list[str] | None = None) -> bool:
        """Create both repos from the template (commit on `main`, tag `deployed/0`); an existing
        pair (a tombstone being restored) is kept as is. True if anything was created."""
        files = template(backend_kind, command)
        async with self._lock(name):
            proposed, applied = self.proposed_path(name), self.applied_path(name)
            ensure_dir(self.state, "agents", name)
            ensure_dir(self.state, "applied")
            have_applied, have_proposed = _plain_dir(applied), _plain_dir(proposed)
            if have_applied and have_proposed:
                return False
            if have_proposed:
                raise Conflict(f'agent "{name}" has a proposed config repo but no applied one: '
                               f"remove {proposed} to seed afresh")
            if not have_applied:
                await self._create_applied(name, applied, files)
            await self._create_proposed(applied, proposed)
            log.info("config repos seeded name=%s", name)
        await self._changed(name)
        return True

    async def _create_applied(self, name: str, applied: Path, files: dict[str, str]) -> None:
        work = applied.parent / f".{name}.seeding"  # names never start with "."
        await offload(_remove_tree, work)
        await self._git("init", "-q", "--template=", "-b", BRANCH, str(work))

        def write() -> None:
            for file, text in files.items():
                (work / file).write_text(text, encoding="utf-8")

        await offload(write)
        await self._git("add", "--", *files, cwd=work)
        await self._git("commit", "-q", "--no-verify", "-m", "Initial config (hive-core template)",
                        cwd=work)
        await self._git("update-ref", "refs/tags/deployed/0", "HEAD", "", cwd=work)
        await offload(os.rename, work, applied)

    async def _create_proposed(self, applied: Path, proposed: Path) -> None:
        work = proposed.parent / ".config.seeding"
        await offload(_remove_tree, work)
        await self._git("clone", "-q", "--template=", "--no-hardlinks", "--no-tags",
                        "--single-branch", "--branch", BRANCH, "--", str(applied), str(work))
        await self._git("remote", "remove", "origin", cwd=work)  # no host path left behind
        await offload(os.rename, work, proposed)

    async def recover(self, name: str) -> bool:
        """Put the applied repo's HEAD and working tree back on `main` (after a crash during a
        build). True if it was elsewhere."""
        async with self._lock(name):
            applied = self._applied(name)
            if _head_file(applied) == f"ref: refs/heads/{BRANCH}":
                return False  # the common case, read without a git process (start-up)
            head = await self._git("symbolic-ref", "-q", "HEAD", cwd=applied, ok=(0, 1))
            if head.stdout.decode().strip() == f"refs/heads/{BRANCH}":
                return False
            await self._git("checkout", "-q", "-f", BRANCH, cwd=applied)
            log.warning("applied config repo was off main; restored name=%s", name)
            return True

    async def purge(self, name: str) -> None:
        """Delete the applied repo (the proposed one goes with the agent's state dir)."""
        async with self._lock(name):
            await offload(_remove_tree, self.applied_path(name))
            self._forget(name)

    # --- proposals ------------------------------------------------------------------------------
    async def resolve(self, name: str, commit_ref: str) -> str:
        """Fetch the proposed repo's heads into the applied repo and return the full sha of
        `commit_ref`, which must be reachable from one of them."""
        check_ref(commit_ref)
        async with self._lock(name):
            return await self._fetch_and_resolve(name, commit_ref)

    async def tag_proposal(self, name: str, approval_id: int, sha: str) -> None:
        _check_id(approval_id)
        check_ref(sha, "sha")
        async with self._lock(name):
            applied = self._applied(name)
            full = await self._rev(applied, f"{sha}^{{commit}}")
            if full is None or not full.startswith(sha):
                raise NotFound(f"commit {sha} is not in the applied repo (resolve it first)")
            await self._create_tag(applied, f"proposal/{approval_id}", full)
        await self._changed(name)

    async def propose(self, name: str, approval_id: int, commit_ref: str) -> str:
        """`resolve`, then tag the commit `proposal/<approval_id>`; the full sha."""
        _check_id(approval_id)
        check_ref(commit_ref)
        async with self._lock(name):
            sha = await self._fetch_and_resolve(name, commit_ref)
            await self._create_tag(self._applied(name), f"proposal/{approval_id}", sha)
        await self._changed(name)
        return sha

    async def _fetch_and_resolve(self, name: str, commit_ref: str) -> str:
        applied = self._applied(name)
        proposed = self.proposed_path(name)
        if not _plain_dir(proposed):
            raise NotFound(f'agent "{name}" has no proposed config repo')
        gitdir = proposed / ".git"
        _check_proposed_gitdir(gitdir)
        upload_pack = shlex.join([self.git, *(a for c in UPLOAD_PACK_CONFIG for a in ("-c", c)),
                                  "upload-pack", "--strict"])
        try:
            await self._git("-c", "fetch.unpackLimit=1", "fetch", "--quiet", "--no-tags",
                            "--prune", "--no-recurse-submodules", "--no-write-fetch-head",
                            "--upload-pack", upload_pack, "--", str(gitdir),
                            f"+refs/heads/*:{PROPOSAL_REFS}*", cwd=applied,
                            max_file=self.fetch_max_bytes)
        except Unavailable as e:
            await offload(_remove_tmp_packs, applied)
            if "File too large" in str(e):
                raise TooLarge(f"{name}'s proposed repo needs a pack over "
                               f"{self.fetch_max_bytes} bytes; not fetched") from None
            raise
        sha = await self._rev(applied, f"{commit_ref}^{{commit}}")
        # A ref named like hex digits could shadow an abbreviated id: the sha must match.
        if sha is None or not sha.startswith(commit_ref):
            raise NotFound(f"commit {commit_ref} is not in {name}'s proposed repo (or is "
                           "ambiguous: give more digits)")
        heads = await self._out("for-each-ref", "--count=1", "--contains", sha,
                                "--format=%(refname)", PROPOSAL_REFS, cwd=applied)
        if not heads:
            raise NotFound(f"commit {commit_ref} is not on any branch of {name}'s proposed repo")
        return sha

    # --- reading --------------------------------------------------------------------------------
    async def config_at(self, name: str, sha: str) -> dict[str, Any]:
        """`agent.toml` at a commit of the applied repo, checked: {"command": [...], "env": {}}."""
        check_ref(sha, "sha")
        applied = self._applied(name)
        full = await self._rev(applied, f"{sha}^{{commit}}")
        if full is None:
            raise NotFound(f"commit {sha} is not in {name}'s applied repo")
        where = f"{TOML_FILE} at {full[:12]}"
        entry = await self._out("ls-tree", "-l", full, "--", TOML_FILE, cwd=applied)
        if not entry:
            raise BadRequest(f"{where}: missing")
        mode, kind, oid, size = entry.split("\t", 1)[0].split()
        if kind != "blob" or mode not in ("100644", "100755"):
            raise BadRequest(f"{where}: not a regular file (mode {mode})")
        if int(size) > CONFIG_MAX:
            raise BadRequest(f"{where}: larger than {CONFIG_MAX} bytes")
        blob = (await self._git("cat-file", "blob", oid, cwd=applied)).stdout
        return parse_config(blob, where)

    async def main_config(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """The full sha of the applied repo's main and `agent.toml` there, from one git process
        (start-up reads it for every agent). None without a repo. Only the seed and commits
        that passed `config_at`'s checks on approval are ever put on main, so its tree entry is
        not looked at again; the content is parsed and checked as ever."""
        applied = self.applied_path(name)
        if not _plain_dir(applied):
            return None
        main = f"refs/heads/{BRANCH}"
        done = await self._git("cat-file", "--batch", cwd=applied,
                               stdin=f"{main}\n{main}:{TOML_FILE}\n".encode())
        out = done.stdout
        objects = []
        for _ in range(2):
            header, _, out = out.partition(b"\n")
            fields = header.split()
            if len(fields) != 3:  # "<name> missing"
                raise BadRequest(f"{TOML_FILE} on {name}'s main: missing")
            size = int(fields[2])
            objects.append((fields[0].decode(), fields[1], out[:size]))
            out = out[size + 1 :]
        (sha, kind, _), (_, blob_kind, blob) = objects
        where = f"{TOML_FILE} at {sha[:12]}"
        if kind != b"commit":
            raise BadRequest(f"{name}'s main is a {kind.decode()}, not a commit")
        if blob_kind != b"blob":
            raise BadRequest(f"{where}: not a file")
        if len(blob) > CONFIG_MAX:
            raise BadRequest(f"{where}: larger than {CONFIG_MAX} bytes")
        return sha, parse_config(blob, where)

    async def deployed_sha(self, name: str) -> str | None:
        """12 characters of the commit of the newest `deployed/<n>` tag (by number); cached
        until this object changes the repo again. None without a repo or a tag."""
        if name in self._deployed:
            return self._deployed[name]
        generation = self._generation.get(name, 0)
        full = await self._deployed_full(name)
        short = full[:12] if full else None
        if self._generation.get(name, 0) == generation:  # nothing changed while we read
            self._deployed[name] = short
        return short

    def _forget(self, name: str) -> None:
        self._deployed.pop(name, None)
        self._generation[name] = self._generation.get(name, 0) + 1

    async def _deployed_full(self, name: str) -> str | None:
        applied = self.applied_path(name)
        if not _plain_dir(applied):
            return None
        out = await self._out("for-each-ref", "--format=%(refname:lstrip=3) %(objectname) "
                              "%(*objectname)", "refs/tags/deployed/", cwd=applied)
        best: tuple[int, str] | None = None
        for line in out.splitlines():
            number, *shas = line.split()
            if number.isdigit() and shas and (best is None or int(number) > best[0]):
                best = (int(number), shas[-1])
        return best[1] if best else None

    async def _base(self, applied: Path, name: str) -> str:
        base = await self._deployed_full(name) or await self._rev(applied, f"refs/heads/{BRANCH}")
        if base is None:
            raise NotFound(f'agent "{name}" has nothing deployed')
        return base

    async def _commit(self, applied: Path, name: str, sha: str) -> str:
        check_ref(sha, "sha")
        full = await self._rev(applied, f"{sha}^{{commit}}")
        if full is None:
            raise NotFound(f"commit {sha} is not in {name}'s applied repo")
        return full

    async def diff(self, name: str, sha: str) -> str:
        """The proposal against the last deployed commit, terminal controls escaped, at most
        `DIFF_MAX` bytes."""
        applied = self._applied(name)
        full = await self._commit(applied, name, sha)
        base = await self._base(applied, name)
        out = (await self._git("diff", "--no-ext-diff", "--no-textconv", "--no-color", base, full,
                               "--", cwd=applied)).stdout
        note = ""
        if len(out) > DIFF_MAX:
            out, note = out[:DIFF_MAX], f"\n[diff truncated at {DIFF_MAX} bytes]\n"
        return visible(out.decode("utf-8", "replace")) + note

    async def subject_and_stat(self, name: str, sha: str) -> tuple[str, str]:
        """The commit's subject line and the `--stat` of it against the last deployed commit."""
        applied = self._applied(name)
        full = await self._commit(applied, name, sha)
        base = await self._base(applied, name)
        subject = await self._out("log", "-1", "--no-show-signature", "--format=%s", full,
                                  "--", cwd=applied)
        diffstat = await self._out("diff", "--stat", "--no-ext-diff", "--no-color", base, full,
                                   "--", cwd=applied)
        return visible(subject), visible(diffstat)

    # --- approving ------------------------------------------------------------------------------
    async def approve(self, name: str, approval_id: int, apply: Apply,
                      expected_sha: str | None = None) -> dict[str, str]:
        """Tag `approved/<id>` and `building/<id>`, check the proposal out, `await apply(sha)`;
        then `deployed/<id>` and main fast-forwarded together. On failure: annotated
        `failed/<id>` with the error, main untouched, the error re-raised."""
        _check_id(approval_id)
        async with self._lock(name):
            applied = self._applied(name)
            sha = await self._tag_target(applied, f"proposal/{approval_id}")
            if expected_sha is not None and not sha.startswith(expected_sha):
                raise Conflict(f"proposal/{approval_id} is {sha[:12]}, not {expected_sha}")
            await self._refuse_resolved(applied, approval_id)
            await self._create_tag(applied, f"approved/{approval_id}", sha)
            try:
                old = await self._rev(applied, f"refs/heads/{BRANCH}")
                if old is None or not await self._is_ancestor(applied, old, sha):
                    raise Conflict(f"{sha[:12]} is not a fast-forward of main ({(old or '')[:12]})"
                                   ": rebase the proposal on the deployed config")
                await self._create_tag(applied, f"building/{approval_id}", sha)
                await self._git("checkout", "-q", "-f", "--detach", sha, cwd=applied)
                await apply(sha)
                await self._git("update-ref", "--stdin", cwd=applied, stdin=(
                    f"update refs/heads/{BRANCH} {sha} {old}\n"
                    f"create refs/tags/deployed/{approval_id} {sha}\n").encode())
                self._forget(name)
                await self._git("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}", cwd=applied)
            except trio.Cancelled:
                with trio.CancelScope(shield=True):  # still pending: may be approved again
                    await self._back_to_main(applied)
                raise
            except Exception as e:
                message = e.message if isinstance(e, WireError) else (
                    f"internal error: {type(e).__name__}")
                with trio.CancelScope(shield=True):
                    await self._back_to_main(applied)
                    try:
                        await self._annotated_tag(applied, f"failed/{approval_id}", sha, message)
                    except WireError as tag_error:
                        log.warning("cannot tag failed/%d name=%s: %s", approval_id, name,
                                    tag_error.message)
                await self._changed(name)
                log.info("config apply failed name=%s id=%d sha=%s: %s", name, approval_id,
                         sha[:12], message)
                raise
            log.info("config deployed name=%s id=%d sha=%s", name, approval_id, sha[:12])
        await self._changed(name)
        return {"sha": sha, "tag": f"deployed/{approval_id}"}

    async def _is_ancestor(self, repo: Path, old: str, new: str) -> bool:
        done = await self._git("merge-base", "--is-ancestor", old, new, cwd=repo, ok=(0, 1))
        return done.returncode == 0

    async def _back_to_main(self, applied: Path) -> None:
        try:
            await self._git("checkout", "-q", "-f", BRANCH, cwd=applied)
        except WireError as e:
            log.warning("cannot restore the applied working tree %s: %s", applied, e.message)

    async def deny(self, name: str, approval_id: int, note: str | None) -> dict[str, str]:
        """Annotated tag `denied/<id>` with the note on the proposal."""
        _check_id(approval_id)
        async with self._lock(name):
            applied = self._applied(name)
            sha = await self._tag_target(applied, f"proposal/{approval_id}")
            await self._refuse_resolved(applied, approval_id)
            await self._annotated_tag(applied, f"denied/{approval_id}", sha, note or "denied")
        await self._changed(name)
        return {"sha": sha, "tag": f"denied/{approval_id}"}

    # --- the forge mirror -----------------------------------------------------------------------
    async def sync_forge(self, name: str) -> None:
        """Mirror `name` to the forge (in the background once attached): the daemon calls it at
        start-up; ref changes made here call it themselves."""
        await self._changed(name)

    async def _changed(self, name: str) -> None:
        self._forget(name)
        if not self.forge_url:
            return
        if self._nursery is None:
            await self.mirror(name)
        elif name in self._mirroring:
            self._mirror_again.add(name)
        else:
            self._mirroring.add(name)
            self._nursery.start_soon(self._mirror_loop, name)

    async def _mirror_loop(self, name: str) -> None:
        try:
            while True:
                self._mirror_again.discard(name)
                await self.mirror(name)
                if name not in self._mirror_again:
                    return
        finally:
            self._mirroring.discard(name)

    async def mirror(self, name: str) -> bool:
        """Push main and every tag to `<forge>/agent-configs/<name>.git`. Never raises: a
        failure is a warning. True if the push succeeded."""
        if not self.forge_url:
            return False
        url = f"{self.forge_url}/agent-configs/{name}.git"
        token: str | None = None
        try:
            check_agent_name(name)
            applied = self._applied(name)
            env: dict[str, str] = {}
            args = ["-c", f"protocol.{self._scheme}.allow=always",
                    "-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=30"]
            if self.forge_token_file is not None:
                token = (await offload(self.forge_token_file.read_text)).strip()
                if not token or "\n" in token:
                    raise Unavailable(f"token file {self.forge_token_file}: empty or more than "
                                      "one line")
                env[TOKEN_ENV] = token
                args += ["-c", "credential.helper=", "-c", f"credential.helper={CREDENTIAL_HELPER}"]
            with deadline(MIRROR_TIMEOUT) as scope:
                await self._git(*args, "push", "--quiet", "--force", url,
                                f"+refs/heads/{BRANCH}:refs/heads/{BRANCH}",
                                "+refs/tags/*:refs/tags/*", cwd=applied, env=env, secret=token)
            if scope.cancelled_caught:
                raise Unavailable(f"no answer within {MIRROR_TIMEOUT:g} seconds")
        except Exception as e:  # best-effort: whatever went wrong is a warning
            if isinstance(e, WireError):
                text = e.message
            elif isinstance(e, OSError):
                text = f"{e.strerror or type(e).__name__}"
            else:
                text = f"internal error: {type(e).__name__}"
            if token:
                text = text.replace(token, "***")
            log.warning("forge mirror failed name=%s url=%s: %s", name, url, text)
            return False
        log.info("forge mirror pushed name=%s url=%s", name, url)
        return True


def _verb(args: tuple[str, ...]) -> str:
    it = iter(args)
    for a in it:
        if a == "-c":
            next(it, None)
        elif not a.startswith("-"):
            return a
    return "?"


def _scheme(url: str) -> str:
    """The git transport a forge URL uses (for `protocol.<name>.allow`); no credentials in it."""
    if "://" not in url:
        if "::" in url:  # `ext::cmd` and other remote helpers
            raise BadRequest("forge url: expected https://, http://, ssh://, git://, file://, "
                             "a path or user@host:path")
        return "file" if url.startswith("/") else "ssh"  # a path, or scp-like user@host:path
    parts = urlsplit(url)
    if parts.password is not None:
        raise BadRequest("forge url: must not carry a password; use the token file")
    scheme = parts.scheme.lower()
    scheme = "ssh" if scheme in ("git+ssh", "ssh+git") else scheme
    if scheme not in FORGE_SCHEMES:
        raise BadRequest(f"forge url: unsupported scheme {scheme!r}")
    return scheme

"""Config as git: each agent's proposed repo (the manager's) and applied repo (the daemon's).

`<state>/agents/<name>/config` is the *proposed* repo: the manager writes it, so it is hostile.
`<state>/applied/<name>` is the *applied* repo: only this module writes it; its `main` is what
runs, and its working tree is what the nixos-container backend builds (`agent.nix`).

Rules kept here (the git runner's own rules are in `git.py`, the mirror's in `forge.py`):
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
- one lock per agent serialises every change to an agent's repos; every ref change is mirrored
  to the forge (best-effort).
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from hive_core.clock import offload
from hive_core.config_repos import tags
from hive_core.config_repos.agent_toml import (  # noqa: F401 (MAX_ARGV, DEFAULT_COMMAND: re-exported)
    CONFIG_MAX,
    DEFAULT_COMMAND,
    MAX_ARGV,
    NIX_FILE,
    TOML_FILE,
    parse_config,
    template,
)
from hive_core.config_repos.forge import BRANCH, ForgeMirror
from hive_core.config_repos.git import (
    FETCH_MAX_BYTES,
    FETCH_MAX_SECONDS,
    UPLOAD_PACK_CONFIG,
    Git,
    check_proposed_gitdir,
    head_file,
    plain_dir,
    remove_tmp_packs,
    remove_tree,
)
from hive_core.config_repos.reading import Reading
from hive_core.paths import ensure_dir
from hive_wire.errors import (
    Conflict,
    NotFound,
    TooLarge,
    Unavailable,
    WireError,
)

log = logging.getLogger(__name__)

PROPOSAL_REFS = "refs/remotes/proposal-src/"

Apply = Callable[[str], Awaitable[None]]


class ConfigRepos(Reading):
    def __init__(
        self,
        state_dir: Path,
        forge_url: str | None = None,
        forge_token_file: Path | None = None,
        *,
        fetch_max_bytes: int = FETCH_MAX_BYTES,
        fetch_max_seconds: float = FETCH_MAX_SECONDS,
    ) -> None:
        self.state = Path(state_dir).absolute()
        self.fetch_max_bytes = fetch_max_bytes
        self.fetch_max_seconds = fetch_max_seconds
        self.git = Git(self.state)
        self.forge = ForgeMirror(self.git, forge_url, forge_token_file, self._applied)
        self._locks: dict[str, trio.Lock] = {}
        self._deployed: dict[str, str | None] = {}
        self._generation: dict[str, int] = {}

    def attach(self, nursery: trio.Nursery) -> None:
        """Mirror in the background from now on (coalesced per agent) instead of inline."""
        self.forge.attach(nursery)

    # --- seeding --------------------------------------------------------------------------------
    async def seed(self, name: str, backend_kind: str, command: list[str] | None = None) -> bool:
        """Create both repos from the template (commit on `main`, tag `deployed/0`); an existing
        pair (a tombstone being restored) is kept as is. True if anything was created."""
        files = template(backend_kind, command)
        async with self._lock(name):
            proposed, applied = self.proposed_path(name), self.applied_path(name)
            ensure_dir(self.state, "agents", name)
            ensure_dir(self.state, "applied")
            have_applied, have_proposed = plain_dir(applied), plain_dir(proposed)
            if have_applied and have_proposed:
                return False
            if have_proposed:
                raise Conflict(
                    f'agent "{name}" has a proposed config repo but no applied one: '
                    f"remove {proposed} to seed afresh"
                )
            if not have_applied:
                await self._create_applied(name, applied, files)
            await self._create_proposed(applied, proposed)
            log.info("config repos seeded name=%s", name)
        await self._changed(name)
        return True

    async def _create_applied(self, name: str, applied: Path, files: dict[str, str]) -> None:
        work = applied.parent / f".{name}.seeding"  # names never start with "."
        await offload(remove_tree, work)
        await self.git.run("init", "-q", "--template=", "-b", BRANCH, str(work))

        def write() -> None:
            for file, text in files.items():
                (work / file).write_text(text, encoding="utf-8")

        await offload(write)
        await self.git.run("add", "--", *files, cwd=work)
        await self.git.run(
            "commit", "-q", "--no-verify", "-m", "Initial config (hive-core template)", cwd=work
        )
        await self.git.run("update-ref", "refs/tags/deployed/0", "HEAD", "", cwd=work)
        await offload(os.rename, work, applied)

    async def _create_proposed(self, applied: Path, proposed: Path) -> None:
        work = proposed.parent / ".config.seeding"
        await offload(remove_tree, work)
        await self.git.run(
            "clone",
            "-q",
            "--template=",
            "--no-hardlinks",
            "--no-tags",
            "--single-branch",
            "--branch",
            BRANCH,
            "--",
            str(applied),
            str(work),
        )
        await self.git.run("remote", "remove", "origin", cwd=work)  # no host path left behind
        await offload(os.rename, work, proposed)

    async def recover(self, name: str) -> bool:
        """Put the applied repo's HEAD and working tree back on `main` (after a crash during a
        build). True if it was elsewhere."""
        async with self._lock(name):
            applied = self._applied(name)
            if head_file(applied) == f"ref: refs/heads/{BRANCH}":
                return False  # the common case, read without a git process (start-up)
            head = await self.git.run("symbolic-ref", "-q", "HEAD", cwd=applied, ok=(0, 1))
            if head.stdout.decode().strip() == f"refs/heads/{BRANCH}":
                return False
            await self.git.run("checkout", "-q", "-f", BRANCH, cwd=applied)
            log.warning("applied config repo was off main; restored name=%s", name)
            return True

    async def purge(self, name: str) -> None:
        """Delete the applied repo (the proposed one goes with the agent's state dir)."""
        async with self._lock(name):
            await offload(remove_tree, self.applied_path(name))
            self._forget(name)

    # --- proposals ------------------------------------------------------------------------------
    async def resolve(self, name: str, commit_ref: str) -> str:
        """Fetch the proposed repo's heads into the applied repo and return the full sha of
        `commit_ref`, which must be reachable from one of them."""
        tags.check_ref(commit_ref)
        async with self._lock(name):
            return await self._fetch_and_resolve(name, commit_ref)

    async def tag_proposal(self, name: str, approval_id: int, sha: str) -> None:
        tags.check_id(approval_id)
        tags.check_ref(sha, "sha")
        async with self._lock(name):
            applied = self._applied(name)
            full = await self.git.rev(applied, f"{sha}^{{commit}}")
            if full is None or not full.startswith(sha):
                raise NotFound(f"commit {sha} is not in the applied repo (resolve it first)")
            await tags.create_tag(self.git, applied, f"proposal/{approval_id}", full)
        await self._changed(name)

    async def propose(self, name: str, approval_id: int, commit_ref: str) -> str:
        """`resolve`, then tag the commit `proposal/<approval_id>`; the full sha."""
        tags.check_id(approval_id)
        tags.check_ref(commit_ref)
        async with self._lock(name):
            sha = await self._fetch_and_resolve(name, commit_ref)
            await tags.create_tag(self.git, self._applied(name), f"proposal/{approval_id}", sha)
        await self._changed(name)
        return sha

    async def _fetch_and_resolve(self, name: str, commit_ref: str) -> str:
        applied = self._applied(name)
        proposed = self.proposed_path(name)
        if not plain_dir(proposed):
            raise NotFound(f'agent "{name}" has no proposed config repo')
        gitdir = proposed / ".git"
        check_proposed_gitdir(gitdir)
        upload_pack = shlex.join(
            [
                self.git.exe,
                *(a for c in UPLOAD_PACK_CONFIG for a in ("-c", c)),
                "upload-pack",
                "--strict",
            ]
        )
        try:
            await self.git.run(
                "-c",
                "fetch.unpackLimit=1",
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "--no-recurse-submodules",
                "--no-write-fetch-head",
                "--upload-pack",
                upload_pack,
                "--",
                str(gitdir),
                f"+refs/heads/*:{PROPOSAL_REFS}*",
                cwd=applied,
                max_file=self.fetch_max_bytes,
                max_seconds=self.fetch_max_seconds,
            )
        except Unavailable as e:
            await offload(remove_tmp_packs, applied)
            if "File too large" in str(e):
                raise TooLarge(
                    f"{name}'s proposed repo needs a pack over "
                    f"{self.fetch_max_bytes} bytes; not fetched"
                ) from None
            raise
        sha = await self.git.rev(applied, f"{commit_ref}^{{commit}}")
        # A ref named like hex digits could shadow an abbreviated id: the sha must match.
        if sha is None or not sha.startswith(commit_ref):
            raise NotFound(
                f"commit {commit_ref} is not in {name}'s proposed repo (or is "
                "ambiguous: give more digits)"
            )
        heads = await self.git.out(
            "for-each-ref",
            "--count=1",
            "--contains",
            sha,
            "--format=%(refname)",
            PROPOSAL_REFS,
            cwd=applied,
        )
        if not heads:
            raise NotFound(f"commit {commit_ref} is not on any branch of {name}'s proposed repo")
        return sha

    # --- approving ------------------------------------------------------------------------------
    async def approve(
        self, name: str, approval_id: int, apply: Apply, expected_sha: str | None = None
    ) -> dict[str, str]:
        """Tag `approved/<id>` and `building/<id>`, check the proposal out, `await apply(sha)`;
        then `deployed/<id>` and main fast-forwarded together. On failure: annotated
        `failed/<id>` with the error, main untouched, the error re-raised."""
        tags.check_id(approval_id)
        async with self._lock(name):
            applied = self._applied(name)
            sha = await tags.tag_target(self.git, applied, f"proposal/{approval_id}")
            if expected_sha is not None and not sha.startswith(expected_sha):
                raise Conflict(f"proposal/{approval_id} is {sha[:12]}, not {expected_sha}")
            await tags.refuse_resolved(self.git, applied, approval_id)
            await tags.create_tag(self.git, applied, f"approved/{approval_id}", sha)
            try:
                old = await self.git.rev(applied, f"refs/heads/{BRANCH}")
                if old is None or not await tags.is_ancestor(self.git, applied, old, sha):
                    raise Conflict(
                        f"{sha[:12]} is not a fast-forward of main ({(old or '')[:12]})"
                        ": rebase the proposal on the deployed config"
                    )
                await tags.create_tag(self.git, applied, f"building/{approval_id}", sha)
                await self.git.run("checkout", "-q", "-f", "--detach", sha, cwd=applied)
                await apply(sha)
                await self.git.run(
                    "update-ref",
                    "--stdin",
                    cwd=applied,
                    stdin=(
                        f"update refs/heads/{BRANCH} {sha} {old}\n"
                        f"create refs/tags/deployed/{approval_id} {sha}\n"
                    ).encode(),
                )
                self._forget(name)
                await self.git.run("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}", cwd=applied)
            except trio.Cancelled:
                with trio.CancelScope(shield=True):  # still pending: may be approved again
                    await tags.back_to_main(self.git, applied)
                raise
            except Exception as e:
                message = (
                    e.message
                    if isinstance(e, WireError)
                    else (f"internal error: {type(e).__name__}")
                )
                with trio.CancelScope(shield=True):
                    await tags.back_to_main(self.git, applied)
                    try:
                        await tags.annotated_tag(
                            self.git, applied, f"failed/{approval_id}", sha, message
                        )
                    except WireError as tag_error:
                        log.warning(
                            "cannot tag failed/%d name=%s: %s", approval_id, name, tag_error.message
                        )
                await self._changed(name)
                log.info(
                    "config apply failed name=%s id=%d sha=%s: %s",
                    name,
                    approval_id,
                    sha[:12],
                    message,
                )
                raise
            log.info("config deployed name=%s id=%d sha=%s", name, approval_id, sha[:12])
        await self._changed(name)
        return {"sha": sha, "tag": f"deployed/{approval_id}"}

    async def deny(self, name: str, approval_id: int, note: str | None) -> dict[str, str]:
        """Annotated tag `denied/<id>` with the note on the proposal."""
        tags.check_id(approval_id)
        async with self._lock(name):
            applied = self._applied(name)
            sha = await tags.tag_target(self.git, applied, f"proposal/{approval_id}")
            await tags.refuse_resolved(self.git, applied, approval_id)
            await tags.annotated_tag(
                self.git, applied, f"denied/{approval_id}", sha, note or "denied"
            )
        await self._changed(name)
        return {"sha": sha, "tag": f"denied/{approval_id}"}

    # --- the forge mirror -----------------------------------------------------------------------
    async def sync_forge(self, name: str) -> None:
        """Mirror `name` to the forge (in the background once attached): the daemon calls it at
        start-up; ref changes made here call it themselves."""
        await self._changed(name)

    async def _changed(self, name: str) -> None:
        self._forget(name)
        await self.forge.changed(name)

    async def mirror(self, name: str) -> bool:
        return await self.forge.mirror(name)

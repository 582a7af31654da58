"""Reading an agent's applied repo: paths, the deployed config and sha, diffs of a proposal.
Mixed into `ConfigRepos` (repos.py), which owns the writes.

Rules kept here:
- every path is built from a checked agent name; a repo that is not a plain directory is
  refused, never followed;
- `agent.toml` is read from a commit's tree (never the working tree), capped in size, checked;
- what was read of main and of a commit is cached; a write calls `_forget`;
- a diff shows terminal controls escaped and is capped (`DIFF_MAX`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from hive_core.config_repos import tags
from hive_core.config_repos.agent_toml import CONFIG_MAX, TOML_FILE, parse_config
from hive_core.config_repos.forge import BRANCH
from hive_core.config_repos.git import Git, plain_dir, visible
from hive_wire.errors import BadRequest, NotFound
from hive_wire.names import check_agent_name

DIFF_MAX = 256 * 1024


class Reading:
    state: Path
    git: Git
    _locks: dict[str, trio.Lock]
    _deployed: dict[str, str | None]
    _generation: dict[str, int]

    # --- paths ----------------------------------------------------------------------------------
    def proposed_path(self, name: str) -> Path:
        return self.state / "agents" / check_agent_name(name) / "config"

    def applied_path(self, name: str) -> Path:
        return self.state / "applied" / check_agent_name(name)

    def _lock(self, name: str) -> trio.Lock:
        return self._locks.setdefault(name, trio.Lock())

    def _applied(self, name: str) -> Path:
        applied = self.applied_path(name)
        if not plain_dir(applied):
            raise NotFound(f'agent "{name}" has no applied config repo')
        return applied

    # --- reading --------------------------------------------------------------------------------
    async def config_at(self, name: str, sha: str) -> dict[str, Any]:
        """`agent.toml` at a commit of the applied repo, checked: {"command": [...], "env": {}}."""
        tags.check_ref(sha, "sha")
        applied = self._applied(name)
        full = await self.git.rev(applied, f"{sha}^{{commit}}")
        if full is None:
            raise NotFound(f"commit {sha} is not in {name}'s applied repo")
        where = f"{TOML_FILE} at {full[:12]}"
        entry = await self.git.out("ls-tree", "-l", full, "--", TOML_FILE, cwd=applied)
        if not entry:
            raise BadRequest(f"{where}: missing")
        mode, kind, oid, size = entry.split("\t", 1)[0].split()
        if kind != "blob" or mode not in ("100644", "100755"):
            raise BadRequest(f"{where}: not a regular file (mode {mode})")
        if int(size) > CONFIG_MAX:
            raise BadRequest(f"{where}: larger than {CONFIG_MAX} bytes")
        blob = (await self.git.run("cat-file", "blob", oid, cwd=applied)).stdout
        return parse_config(blob, where)

    async def main_config(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """The full sha of the applied repo's main and `agent.toml` there, from one git process
        (start-up reads it for every agent). None without a repo. Only the seed and commits
        that passed `config_at`'s checks on approval are ever put on main, so its tree entry is
        not looked at again; the content is parsed and checked as ever."""
        applied = self.applied_path(name)
        if not plain_dir(applied):
            return None
        main = f"refs/heads/{BRANCH}"
        done = await self.git.run(
            "cat-file", "--batch", cwd=applied, stdin=f"{main}\n{main}:{TOML_FILE}\n".encode()
        )
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
        if not plain_dir(applied):
            return None
        out = await self.git.out(
            "for-each-ref",
            "--format=%(refname:lstrip=3) %(objectname) %(*objectname)",
            "refs/tags/deployed/",
            cwd=applied,
        )
        best: tuple[int, str] | None = None
        for line in out.splitlines():
            number, *shas = line.split()
            if number.isdigit() and shas and (best is None or int(number) > best[0]):
                best = (int(number), shas[-1])
        return best[1] if best else None

    async def _base(self, applied: Path, name: str) -> str:
        base = await self._deployed_full(name) or await self.git.rev(
            applied, f"refs/heads/{BRANCH}"
        )
        if base is None:
            raise NotFound(f'agent "{name}" has nothing deployed')
        return base

    async def _commit(self, applied: Path, name: str, sha: str) -> str:
        tags.check_ref(sha, "sha")
        full = await self.git.rev(applied, f"{sha}^{{commit}}")
        if full is None:
            raise NotFound(f"commit {sha} is not in {name}'s applied repo")
        return full

    async def diff(self, name: str, sha: str) -> str:
        """The proposal against the last deployed commit, terminal controls escaped, at most
        `DIFF_MAX` bytes."""
        applied = self._applied(name)
        full = await self._commit(applied, name, sha)
        base = await self._base(applied, name)
        out = (
            await self.git.run(
                "diff",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                base,
                full,
                "--",
                cwd=applied,
            )
        ).stdout
        note = ""
        if len(out) > DIFF_MAX:
            out, note = out[:DIFF_MAX], f"\n[diff truncated at {DIFF_MAX} bytes]\n"
        return visible(out.decode("utf-8", "replace")) + note

    async def subject_and_stat(self, name: str, sha: str) -> tuple[str, str]:
        """The commit's subject line and the `--stat` of it against the last deployed commit."""
        applied = self._applied(name)
        full = await self._commit(applied, name, sha)
        base = await self._base(applied, name)
        subject = await self.git.out(
            "log", "-1", "--no-show-signature", "--format=%s", full, "--", cwd=applied
        )
        diffstat = await self.git.out(
            "diff", "--stat", "--no-ext-diff", "--no-color", base, full, "--", cwd=applied
        )
        return visible(subject), visible(diffstat)

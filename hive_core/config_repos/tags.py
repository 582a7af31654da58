"""The applied repo's tags and refs, one small step each (approval ids, outcomes).

Rules kept here:
- a proposal pins one immutable commit: 7 to 40 lowercase hex digits (`check_ref`);
- a lightweight tag set again on the same commit is a no-op, on another commit a `conflict`;
- an approval already `deployed/`, `failed/` or `denied/` is refused (`conflict`), never acted
  on twice;
- putting the working tree back on `main` never raises (a warning at worst).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from hive_core.config_repos.forge import BRANCH
from hive_core.config_repos.git import Git
from hive_wire.errors import BadRequest, Conflict, NotFound, WireError

log = logging.getLogger(__name__)

COMMIT_REF = re.compile(r"[0-9a-f]{7,40}\Z")
OUTCOMES = ("deployed", "failed", "denied")


def check_ref(ref: object, field: str = "commit_ref") -> str:
    if not isinstance(ref, str) or not COMMIT_REF.match(ref):
        raise BadRequest(
            f"{field}: must be 7 to 40 lowercase hex digits (a commit id; branch "
            "and tag names are refused)"
        )
    return ref


def check_id(approval_id: object) -> int:
    if type(approval_id) is not int or approval_id < 0:
        raise BadRequest("approval id: expected a non-negative integer")
    return approval_id


async def tag_target(git: Git, repo: Path, tag: str) -> str:
    sha = await git.rev(repo, f"refs/tags/{tag}^{{commit}}")
    if sha is None:
        raise NotFound(f"no tag {tag}")
    return sha


async def create_tag(git: Git, repo: Path, tag: str, sha: str) -> None:
    """A lightweight tag; the same tag on the same commit again is a no-op."""
    current = await git.rev(repo, f"refs/tags/{tag}")
    if current == sha:
        return
    if current is not None:
        raise Conflict(f"tag {tag} already exists on another commit")
    await git.run("update-ref", f"refs/tags/{tag}", sha, "", cwd=repo)


async def annotated_tag(git: Git, repo: Path, tag: str, sha: str, message: str) -> None:
    if await git.rev(repo, f"refs/tags/{tag}") is not None:
        raise Conflict(f"tag {tag} already exists")
    text = message.rstrip("\n") + "\n"
    await git.run(
        "tag",
        "-a",
        "--cleanup=verbatim",
        "-F",
        "-",
        tag,
        sha,
        cwd=repo,
        stdin=text.encode("utf-8", "replace"),
    )


async def refuse_resolved(git: Git, repo: Path, approval_id: int) -> None:
    for outcome in OUTCOMES:
        if await git.rev(repo, f"refs/tags/{outcome}/{approval_id}") is not None:
            raise Conflict(
                f"approval {approval_id} is already {outcome} (tag {outcome}/{approval_id})"
            )


async def is_ancestor(git: Git, repo: Path, old: str, new: str) -> bool:
    done = await git.run("merge-base", "--is-ancestor", old, new, cwd=repo, ok=(0, 1))
    return done.returncode == 0


async def back_to_main(git: Git, applied: Path) -> None:
    try:
        await git.run("checkout", "-q", "-f", BRANCH, cwd=applied)
    except WireError as e:
        log.warning("cannot restore the applied working tree %s: %s", applied, e.message)

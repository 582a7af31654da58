"""Config as git, the lifecycle's part: proposing a commit, deploying an approved one, refusing a
denied one (lifecycle.md, "Config as git").

Rules kept here:
- a proposal pins the manager's commit in the applied repo, tags it `proposal/<id>` and queues
  the approval; a bad ref never creates a row;
- a deploy runs the agent on the new config, as `rebuild` does (wanted running), under the
  `rebuilding` transient for its whole duration; an agent busy with another action is `NotNow`
  before any tag is written (the approval stays pending);
- on any failure the agent goes back to what it ran and the repo records `failed/<id>`.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from hive_core.services.approvals import NotNow
from hive_core.services.lifecycle_parts import LifecycleParts
from hive_core.store import agents as agents_sql
from hive_wire.errors import BadRequest

log = logging.getLogger(__name__)


class Deploys:
    def __init__(self, lifecycle: LifecycleParts) -> None:
        self.lc = lifecycle

    async def propose(self, agent: str, commit_ref: str, by: str, description: str | None) -> int:
        """`request_apply_commit`: pin the manager's commit in the applied repo, tag it
        `proposal/<id>` and queue the approval."""
        lc = self.lc
        lc.agents.require(agent)
        sha = await lc.agents.repos.resolve(agent, commit_ref)
        row = await lc.approvals.request(
            "apply_commit",
            agent,
            by,
            commit_ref=commit_ref,
            fetched_sha=sha,
            description=description,
        )
        await lc.agents.repos.tag_proposal(agent, row.id, sha)
        return row.id

    async def deploy(self, row: Any) -> dict[str, str]:
        """The `apply_commit` approval's action: apply the commit through the backend."""
        lc = self.lc
        name = row.agent
        lc.may_run(name)
        if name in lc.transients:  # before any tag: the approval stays pending
            raise NotNow(
                f'agent "{name}" is busy ({lc.transients[name]}); approve again once it is done'
            )

        async def apply(sha: str) -> None:
            new = await lc.agents.spec(name, sha)  # validates agent.toml before anything stops
            await lc.agents.store.run(agents_sql.set_wanted, name, True)
            try:
                await lc.backend.apply_config(new)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await lc.backend.stop(name, True)
                    try:
                        await lc.backend.start(await lc.agents.spec(name))
                    except Exception as e:
                        log.error("could not restore the old config name=%s error=%s", name, e)
                raise
            await lc.kick(name, "rebuilt with a new config")

        try:
            async with lc.transient(name, "rebuilding"):
                result = await lc.agents.repos.approve(
                    name, row.id, apply, expected_sha=row.fetched_sha
                )
        finally:
            lc.agents.forget(name)
        await lc.changed(name)
        return result

    async def diff(self, approval_id: int) -> tuple[str, str, str]:
        """(subject, diffstat, diff) of an `apply_commit` approval against the deployed config."""
        row = await self.lc.approvals.get(approval_id)
        if row.kind != "apply_commit" or not row.fetched_sha:
            raise BadRequest(f"approval {approval_id} is not an apply_commit")
        repos = self.lc.agents.repos
        subject, stat = await repos.subject_and_stat(row.agent, row.fetched_sha)
        return subject, stat, await repos.diff(row.agent, row.fetched_sha)

    async def refuse(self, row: Any) -> None:
        """The `apply_commit` approval was denied: record `denied/<id>` in the applied repo."""
        await self.lc.agents.repos.deny(row.agent, row.id, row.note)

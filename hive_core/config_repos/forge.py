"""The forge mirror: after every ref change, the applied repo (main and every tag) is pushed to
`<forge>/agent-configs/<name>.git`.

Rules kept here:
- best-effort: a failure is a warning, never an exception, never blocks a deploy;
- pushes are coalesced per agent (one running, at most one more queued) in the background once
  attached to a nursery;
- the token is read from its file at each push and reaches git only as `HIVE_FORGE_TOKEN` in the
  child's environment, through a credential helper whose text holds no secret: never argv, never
  a git config file, never a log line or an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import trio

from hive_core.clock import deadline, offload
from hive_core.config_repos.git import TOKEN_ENV, Git
from hive_wire.errors import BadRequest, Unavailable, WireError
from hive_wire.names import check_agent_name

log = logging.getLogger(__name__)

MIRROR_TIMEOUT = 120.0
BRANCH = "main"
FORGE_SCHEMES = ("https", "http", "ssh", "git", "file")
# The helper's text is public: the secret is expanded by its shell from the environment.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=hive-core; '
    'echo "password=$' + TOKEN_ENV + '"; }; f'
)


class ForgeMirror:
    def __init__(
        self, git: Git, url: str | None, token_file: Path | None, applied: Callable[[str], Path]
    ) -> None:
        self.git = git
        self.forge_url = url.rstrip("/") if url else None
        self.forge_token_file = token_file
        self._scheme = _scheme(self.forge_url) if self.forge_url else ""
        self._applied = applied
        self._nursery: trio.Nursery | None = None
        self._mirroring: set[str] = set()
        self._mirror_again: set[str] = set()

    def attach(self, nursery: trio.Nursery) -> None:
        """Mirror in the background from now on (coalesced per agent) instead of inline."""
        self._nursery = nursery

    async def changed(self, name: str) -> None:
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
            args = [
                "-c",
                f"protocol.{self._scheme}.allow=always",
                "-c",
                "http.lowSpeedLimit=1",
                "-c",
                "http.lowSpeedTime=30",
            ]
            if self.forge_token_file is not None:
                token = (await offload(self.forge_token_file.read_text)).strip()
                if not token or "\n" in token:
                    raise Unavailable(
                        f"token file {self.forge_token_file}: empty or more than one line"
                    )
                env[TOKEN_ENV] = token
                args += ["-c", "credential.helper=", "-c", f"credential.helper={CREDENTIAL_HELPER}"]
            with deadline(MIRROR_TIMEOUT) as scope:
                await self.git.run(
                    *args,
                    "push",
                    "--quiet",
                    "--force",
                    url,
                    f"+refs/heads/{BRANCH}:refs/heads/{BRANCH}",
                    "+refs/tags/*:refs/tags/*",
                    cwd=applied,
                    env=env,
                    secret=token,
                )
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


def _scheme(url: str) -> str:
    """The git transport a forge URL uses (for `protocol.<name>.allow`); no credentials in it."""
    if "://" not in url:
        if "::" in url:  # `ext::cmd` and other remote helpers
            raise BadRequest(
                "forge url: expected https://, http://, ssh://, git://, file://, "
                "a path or user@host:path"
            )
        return "file" if url.startswith("/") else "ssh"  # a path, or scp-like user@host:path
    parts = urlsplit(url)
    if parts.password is not None:
        raise BadRequest("forge url: must not carry a password; use the token file")
    scheme = parts.scheme.lower()
    scheme = "ssh" if scheme in ("git+ssh", "ssh+git") else scheme
    if scheme not in FORGE_SCHEMES:
        raise BadRequest(f"forge url: unsupported scheme {scheme!r}")
    return scheme

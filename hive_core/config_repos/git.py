"""The hostile-repo-safe git runner and the file checks around it.

Rules kept here:
- git runs through `trio.run_process` with an argv list, never a shell, output captured; a
  failure is `Unavailable` with a short stderr tail (control characters removed, a secret
  scrubbed);
- every call gets `HARDENED` (hooks to /dev/null, no fsmonitor, no transport but local files, no
  auto-gc, fsck on fetch, no symlinks checked out) and an environment that reads no system or
  global config (`HOME` is the daemon's own `<state>/git-home`), never prompts and never fetches
  lazily; inherited `GIT_*` variables are dropped;
- a fetch from an untrusted repo may run under limits (`max_file`): RLIMIT_FSIZE at that many
  bytes, RLIMIT_AS and RLIMIT_CPU (`UNTRUSTED_MEMORY`, `UNTRUSTED_CPU_SECONDS`), set by a Python
  trampoline that execs git (no preexec_fn in a threaded daemon), and a wall-clock deadline
  (`max_seconds`) after which it is killed;
- a proposed gitdir must be a plain directory without `commondir` or alternates.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import trio

from hive_core.errors import translated
from hive_core.paths import ensure_dir
from hive_wire.errors import BadRequest, Forbidden, Unavailable

TAIL_MAX = 500
IDENTITY = ("hive-core", "hive-core@localhost")
TOKEN_ENV = "HIVE_FORGE_TOKEN"

HARDENED = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.file.allow=always",
    "-c",
    "core.symlinks=false",
    "-c",
    "submodule.recurse=false",
    "-c",
    "transfer.fsckObjects=true",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "advice.detachedHead=false",
]
# A fetch from a proposed repo (untrusted) keeps what it takes as one pack (`unpackLimit=1`)
# and runs under RLIMIT_FSIZE, so an oversized repo makes git fail ("File too large") instead of
# filling the disk. The limit is set by a Python trampoline that then execs git: no preexec_fn
# in a threaded daemon.
FETCH_MAX_BYTES = 64 << 20
# Memory and CPU time a fetch from an untrusted repo may take (git and its upload-pack child),
# and how long it may run at all: a crafted repo (deep delta chains, huge trees) fails instead
# of holding the daemon's memory or a deploy forever.
UNTRUSTED_MEMORY = 2 << 30  # address space, bytes
UNTRUSTED_CPU_SECONDS = 60
FETCH_MAX_SECONDS = 120.0
_LIMITS_EXEC = (
    "import os, resource, sys; f, m, c = map(int, sys.argv[1:4]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (f, f)); "
    "resource.setrlimit(resource.RLIMIT_AS, (m, m)); "
    "resource.setrlimit(resource.RLIMIT_CPU, (c, c)); os.execvp(sys.argv[4], sys.argv[4:])"
)
# The upload-pack started in the proposed repo: no transport at all, not even local files.
UPLOAD_PACK_CONFIG = [
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "protocol.allow=never",
    "safe.directory=*",
]
_DROP_ENV = {"SSH_ASKPASS", "XDG_CONFIG_HOME", "EMAIL", TOKEN_ENV}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# What a hostile diff could use to hide lines from a terminal: controls (but tab and newline),
# C1 controls, bidi overrides and isolates.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def tail(data: bytes, secret: str | None = None, limit: int = TAIL_MAX) -> str:
    """The last `limit` characters of a command's output on one line, `secret` scrubbed."""
    text = data.decode("utf-8", "replace")
    if secret:
        text = text.replace(secret, "***")
    text = _CONTROL.sub(" ", text)
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def visible(text: str) -> str:
    """`text` with every character that could rewrite a terminal shown as an escape."""
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def head_file(repo: Path) -> str | None:
    """The first line of a daemon-owned repo's `.git/HEAD` (None if it cannot be read)."""
    try:
        fd = os.open(repo / ".git" / "HEAD", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(256).split(b"\n", 1)[0].decode("utf-8", "replace")


def remove_tmp_packs(repo: Path) -> None:
    """What a fetch cut short leaves in the applied repo's pack dir."""
    pack = repo / ".git" / "objects" / "pack"
    for leftover in pack.glob("tmp_*"):
        leftover.unlink(missing_ok=True)


def plain_dir(path: Path) -> bool:
    """True if `path` is a real directory, False if absent; anything else is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise Forbidden(f"{path} is {kind}; refusing to use it")
    return True


def check_proposed_gitdir(gitdir: Path) -> None:
    """The proposed repo's gitdir must not send git to read another repository."""
    for sub in ("", "objects", "refs"):
        if not plain_dir(gitdir / sub if sub else gitdir):
            raise BadRequest(f"{gitdir / sub}: missing; the proposed repo is not a git repository")
    for sub in ("commondir", "objects/info/alternates", "objects/info/http-alternates"):
        if os.path.lexists(gitdir / sub):
            raise Forbidden(f"the proposed repo has {sub}: refusing to read other repositories")


def remove_tree(path: Path) -> None:
    if plain_dir(path):
        shutil.rmtree(path)


def _verb(args: tuple[str, ...]) -> str:
    it = iter(args)
    for a in it:
        if a == "-c":
            next(it, None)
        elif not a.startswith("-"):
            return a
    return "?"


class Git:
    """git for the daemon's repos under `state` (its HOME is `<state>/git-home`)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.exe = shutil.which("git") or "git"
        self._home: Path | None = None

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        if self._home is None:
            self._home = ensure_dir(self.state, "git-home", mode=0o700)
        home = self._home
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in _DROP_ENV
        }
        env.update(
            HOME=str(home),
            LC_ALL="C",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL="/dev/null",
            GIT_TERMINAL_PROMPT="0",
            GIT_NO_LAZY_FETCH="1",
            GIT_AUTHOR_NAME=IDENTITY[0],
            GIT_AUTHOR_EMAIL=IDENTITY[1],
            GIT_COMMITTER_NAME=IDENTITY[0],
            GIT_COMMITTER_EMAIL=IDENTITY[1],
        )
        env.update(extra or {})
        return env

    async def run(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes = b"",
        ok: tuple[int, ...] = (0,),
        env: dict[str, str] | None = None,
        secret: str | None = None,
        max_file: int | None = None,
        max_seconds: float = math.inf,
        max_memory: int = UNTRUSTED_MEMORY,
    ) -> subprocess.CompletedProcess[bytes]:
        """git `args`; with `max_file` (an untrusted repo), under the limits above and killed
        after `max_seconds`."""
        argv = [self.exe, *HARDENED, *(["-C", str(cwd)] if cwd else []), *args]
        if max_file is not None:
            limits = [str(max_file), str(max_memory), str(UNTRUSTED_CPU_SECONDS)]
            argv = [sys.executable, "-c", _LIMITS_EXEC, *limits, *argv]
        done: subprocess.CompletedProcess[bytes] | None = None
        with translated("cannot run git", forbidden=False), trio.move_on_after(max_seconds):
            done = await trio.run_process(
                argv,
                stdin=stdin,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=self.env(env),
            )
        if done is None:
            raise Unavailable(f"git {_verb(args)} took longer than {max_seconds:g} s: stopped")
        if done.returncode not in ok:
            raise Unavailable(f"git {_verb(args)} failed: {tail(done.stderr, secret)}")
        return done

    async def out(self, *args: str, cwd: Path) -> str:
        return (await self.run(*args, cwd=cwd)).stdout.decode("utf-8", "replace").strip()

    async def rev(self, repo: Path, spec: str) -> str | None:
        """The full sha `spec` names, None if it names nothing (or, abbreviated, several)."""
        done = await self.run("rev-parse", "--verify", "--quiet", spec, cwd=repo, ok=(0, 1))
        return done.stdout.decode().strip() if done.returncode == 0 else None

"""Every path the daemon touches, built from validated names and checked not to leave its roots.

Rules kept here:
- a path is only ever built from a root and names that passed `check_agent_name`;
- directories are created one component at a time and a component that exists as a symlink (or
  as anything but a directory) is refused: nothing planted in a state or run dir is followed;
- paths are checked again after resolving symlinks (`inside`), for callers that read files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

from hive_wire.errors import Forbidden


@attrs.frozen
class Paths:
    state: Path
    run: Path

    @property
    def database(self) -> Path:
        return self.state / "hive.sqlite"

    @property
    def host_socket(self) -> Path:
        return self.run / "host.sock"

    @property
    def manager_socket(self) -> Path:
        return self.run / "manager" / "mcp.sock"

    def agent_run_dir(self, name: str) -> Path:
        return self.run / "agents" / name

    def agent_socket(self, name: str) -> Path:
        return self.agent_run_dir(name) / "mcp.sock"

    def agent_dir(self, name: str) -> Path:
        return self.state / "agents" / name

    def agent_state(self, name: str) -> Path:
        return self.agent_dir(name) / "state"

    def agent_log(self, name: str) -> Path:
        return self.agent_dir(name) / "agent.log"


def ensure_dir(root: Path, *parts: str, mode: int = 0o750) -> Path:
    """Create `root/parts...` (root itself must exist or is created plainly), refusing any
    existing component that is not a real directory."""
    root.mkdir(parents=True, exist_ok=True)
    path = root
    for part in parts:
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                st = os.lstat(path)
            else:
                os.chmod(path, mode)
                continue
        if not stat.S_ISDIR(st.st_mode):
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise Forbidden(f"{path} is {kind}; refusing to use it")
    return path


def inside(root: Path, path: Path) -> bool:
    """True if `path`, with every symlink resolved, is `root` or below it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)

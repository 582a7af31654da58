"""`agent.toml` (and `agent.nix`): a new agent's first files, and the checks on what a deployed
config holds.

Rules kept here:
- `command` is a non-empty argv list (at most 256 strings, no NUL, valid UTF-8), never a shell
  line; `env` is a table of strings with usable names; `[budget]` as hive_core/budget.py says;
- unknown keys are refused with the key named, so a typo never silently does nothing;
- `[lifecycle] restart` is `"on-crash"` or `"never"` (returned as `restart`).
"""

from __future__ import annotations

import sys
import tomllib
from typing import Any

from hive_core import budget
from hive_wire.errors import BadRequest

DEFAULT_COMMAND = [sys.executable, "-m", "hive_core", "agent", "echo"]  # the bundled echo agent
MAX_ARGV = 256
TOML_FILE = "agent.toml"
NIX_FILE = "agent.nix"
CONFIG_MAX = 64 * 1024

AGENT_NIX = """\
# The agent's container configuration (hive-core): a NixOS module imported into the container
# h-<name>. The daemon binds the agent's socket directory at /run/hive, its state dir at /state
# and this config (read-only) at /config.
{ config, lib, pkgs, ... }:

{
  system.stateVersion = "24.05";
}
"""


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
    if (
        not isinstance(command, list)
        or not 1 <= len(command) <= MAX_ARGV
        or not all(isinstance(a, str) for a in command)
    ):
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
        return {
            TOML_FILE: (
                "# The agent's configuration (hive-core). The process backend runs `command` (an\n"
                "# argv list, no shell) with `env` added to its environment.\n"
                f"command = [{', '.join(_toml_string(a) for a in argv)}]\n\n[env]\n"
            )
        }
    if backend_kind == "nixos-container":
        if command is not None:
            raise BadRequest("command: a nixos-container agent runs its agent.nix, not a command")
        return {NIX_FILE: AGENT_NIX}
    raise BadRequest(f"backend: unknown kind {backend_kind!r}")


def parse_config(text: bytes, where: str) -> dict[str, Any]:
    """`agent.toml` checked: `command` a non-empty argv, `env` a table of strings, `budget` (if
    given) the agent's budget (hive_core/budget.py)."""
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadRequest(f"{where}: not UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise BadRequest(f"{where}: invalid TOML: {e}") from e
    unknown = sorted(set(data) - {"command", "env", "budget", "lifecycle"})
    if unknown:
        raise BadRequest(
            f"{where}: unknown key {unknown[0]!r} (expected command, env, budget, lifecycle)"
        )
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
    out: dict[str, Any] = {"command": list(command), "env": dict(env)}
    if "budget" in data:
        try:
            out["budget"] = budget.check(data["budget"], "budget")
        except ValueError as e:
            raise BadRequest(f"{where}: {e}") from None
    if "lifecycle" in data:
        out["restart"] = _check_lifecycle(data["lifecycle"], where)
    return out


RESTART_SETTINGS = ("on-crash", "never")


def _check_lifecycle(table: object, where: str) -> str:
    """`[lifecycle] restart = "on-crash" | "never"`: this agent's restart policy after a crash
    (the daemon's `restart_on_crash` when absent)."""
    if not isinstance(table, dict):
        raise BadRequest(f"{where}: lifecycle: must be a table")
    unknown = sorted(set(table) - {"restart"})
    if unknown:
        raise BadRequest(f"{where}: lifecycle: unknown key {unknown[0]!r} (expected restart)")
    value = table.get("restart")
    if value not in RESTART_SETTINGS:
        raise BadRequest(
            f"{where}: lifecycle.restart: must be one of {', '.join(RESTART_SETTINGS)}"
        )
    return str(value)

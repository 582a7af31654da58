"""Configuration: embedded defaults, a TOML file, environment variables, flags (in rising order
of precedence), and where the state and run directories live.

TOML keys (all optional):
    state_dir, run_dir, backend ("process" | "nixos-container"), admin_group,
    line_limit, body_limit, lease_timeout, max_deliveries, stop_grace,
    retention_days (acked messages, delivered reminders), resolved_retention_days (approvals,
    questions), events_retention_days, turn_stats_retention_days (per-agent SQLite files),
    stop_agents_on_exit, crash_scan (seconds between crash-watcher scans),
    restart_on_crash, restart_max_crashes, restart_window, restart_backoff, restart_backoff_max
    (the restart policy: off by default; back-off doubles from restart_backoff up to its max;
    more than restart_max_crashes crashes within restart_window seconds and it gives up),
    max_connections (the host socket's cap, and the cap of all agent and manager sockets
    together), max_connections_per_agent (each agent's or the manager's socket),
    read_deadline (seconds to finish a started request line),
    database_max_bytes (a cap on hive.sqlite, 0 = none: past it writes answer `unavailable`
    and everything else keeps working; SQLite's `max_page_count`),
    nixos_container, journalctl, nixos_container_conf_dir (the nixos-container backend),
    manager_command ([argv]),
    claude_command (a shell-style command line: the `claude` that Claude agents run, passed to
    the agents this daemon starts as `HIVE_CLAUDE_COMMAND`; default `claude` on their PATH),
    dashboard_listen ("HOST:PORT" or "off"; env HIVE_DASHBOARD, flag --dashboard; port 0 picks
    a free port, logged and answered by `urls`), dashboard_hosts (names besides the bind address
    and localhost that the dashboard accepts in `Host`: behind a proxy of one's own),
    [urls] domain, home, forge, matrix
    [forge] url, token_file (the optional mirror of the applied config repos)
    [budget] usd_per_day, usd_per_month, tokens_per_day (every agent's default budget; an
    agent's `agent.toml` `[budget]` overrides it key by key; none by default)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import attrs

from hive_core import budget

BACKENDS = ("process", "nixos-container")
SOCKET_PATH_MAX = 107


@attrs.define(kw_only=True)
class Config:
    state_dir: Path
    run_dir: Path
    backend: str = "process"
    admin_group: str = "hive-admin"
    line_limit: int = 1 << 20
    body_limit: int = 256 * 1024
    lease_timeout: float = 30 * 60.0
    max_deliveries: int = 5
    retention_days: float = 30.0
    resolved_retention_days: float = 90.0
    events_retention_days: float = 7.0
    turn_stats_retention_days: float = 90.0
    stop_grace: float = 10.0
    crash_scan: float = 10.0
    restart_on_crash: bool = False
    restart_max_crashes: int = 5
    restart_window: float = 600.0
    restart_backoff: float = 1.0
    restart_backoff_max: float = 60.0
    max_connections: int = 2048
    max_connections_per_agent: int = 64
    nixos_container: str = "nixos-container"
    journalctl: str = "journalctl"
    nixos_container_conf_dir: str = "/etc/nixos-containers"  # /etc/containers before 22.05
    read_deadline: float = 30.0
    database_max_bytes: int = 0
    stop_agents_on_exit: bool = True
    # Store jobs and blocking work in the trio thread, no child-process deadlines: for tests
    # under trio's mock clock (an autojumping clock would jump while another thread works).
    inline_io: bool = False
    manager_command: list[str] | None = None
    claude_command: str | None = None
    dashboard_listen: str = "127.0.0.1:7777"
    dashboard_hosts: list[str] = attrs.Factory(list)
    urls: dict[str, str] = attrs.Factory(dict)
    forge: dict[str, str] = attrs.Factory(dict)
    budget: dict[str, float] = attrs.Factory(dict)

    def socket_path_check(self) -> None:
        longest = self.run_dir / "agents" / ("x" * 63) / "mcp.sock"
        if len(os.fsencode(longest)) > SOCKET_PATH_MAX:
            raise ValueError(
                f"run dir {self.run_dir} is too long: agent socket paths would exceed "
                f"{SOCKET_PATH_MAX} bytes (unix socket limit); choose a shorter --run-dir"
            )


def dashboard_address(listen: str) -> tuple[str, int] | None:
    """`HOST:PORT` (`[v6]:PORT` for IPv6) as (host, port); None for `off`."""
    if listen == "off":
        return None
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"dashboard_listen must be HOST:PORT or off, not {listen!r}")
    return host, int(port)


def default_state_dir() -> Path:
    if os.geteuid() == 0 and os.environ.get("INVOCATION_ID"):  # root under systemd
        return Path("/var/lib/hyperhive")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "hive-core"


def default_run_dir() -> Path:
    if os.geteuid() == 0 and os.environ.get("INVOCATION_ID"):
        return Path("/run/hyperhive")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "hive-core"
    return Path(f"/tmp/hive-core-{os.getuid()}")


def host_socket_path(flag: str | None = None) -> str:
    """Where clients find the host socket: flag, `HIVE_HOST_SOCKET`, `HIVE_RUN_DIR`, default."""
    if flag:
        return flag
    if os.environ.get("HIVE_HOST_SOCKET"):
        return os.environ["HIVE_HOST_SOCKET"]
    run = os.environ.get("HIVE_RUN_DIR")
    return str((Path(run) if run else default_run_dir()) / "host.sock")


_FIELDS = {a.name: a for a in attrs.fields(Config)}


def load(
    config_file: str | None = None,
    state_dir: str | None = None,
    run_dir: str | None = None,
    **overrides: Any,
) -> Config:
    config_file = config_file or os.environ.get("HIVE_CONFIG")
    values: dict[str, Any] = {}
    if config_file:
        with open(config_file, "rb") as f:
            try:
                values = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:  # its text names the line and column
                raise ValueError(f"{config_file}: not valid TOML: {e}") from None
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise ValueError(f"{config_file}: unknown keys {sorted(unknown)}")
    state = state_dir or os.environ.get("HIVE_STATE_DIR") or values.pop("state_dir", None)
    run = run_dir or os.environ.get("HIVE_RUN_DIR") or values.pop("run_dir", None)
    values.pop("state_dir", None)
    values.pop("run_dir", None)
    if os.environ.get("HIVE_DASHBOARD"):
        values["dashboard_listen"] = os.environ["HIVE_DASHBOARD"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = Config(
        state_dir=Path(state).absolute() if state else default_state_dir(),
        run_dir=Path(run).absolute() if run else default_run_dir(),
        **values,
    )
    cfg.budget = budget.check(cfg.budget, "budget")
    if cfg.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {cfg.backend!r}")
    cfg.socket_path_check()
    dashboard_address(cfg.dashboard_listen)
    return cfg

"""`hive-core serve` (the daemon in the foreground) and `hive-core systemd-unit`.

Rules kept here:
- a configuration error (a bad key, a TOML syntax error: file and line) exits 2 before anything
  starts; a start-up failure (a live daemon on the run dir, a refused path) exits 1 with its
  first cause, never a traceback;
- the unit is printed only if it can start where it points (`systemd_unit.render` refuses an
  executable its sandbox hides).
"""

from __future__ import annotations

import click

from hive_core.surfaces.cli.common import EXIT_REFUSED, EXIT_USAGE, die
from hive_wire.errors import WireError


@click.command()
@click.option("--state-dir", envvar="HIVE_STATE_DIR", help="State directory (database, agents).")
@click.option("--run-dir", envvar="HIVE_RUN_DIR", help="Run directory (sockets).")
@click.option("--config", "config_file", envvar="HIVE_CONFIG", help="TOML configuration file.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option("--log-json", is_flag=True, help="Log JSON lines instead of key=value.")
@click.option(
    "--dashboard",
    envvar="HIVE_DASHBOARD",
    default=None,
    help="Where the dashboard listens, HOST:PORT (port 0: any free one), or off "
    "(default: dashboard_listen, 127.0.0.1:7777).",
)
def serve(
    state_dir: str | None,
    run_dir: str | None,
    config_file: str | None,
    log_level: str,
    log_json: bool,
    dashboard: str | None,
) -> None:
    """Run the daemon in the foreground (until SIGTERM or SIGINT)."""
    import trio

    from hive_core import config as config_mod
    from hive_core import logs
    from hive_core.daemon import run

    logs.setup(log_level, log_json)
    try:
        cfg = config_mod.load(config_file, state_dir, run_dir, dashboard_listen=dashboard)
    except OSError as e:
        die(EXIT_USAGE, f"configuration: {e.filename or config_file}: {e.strerror or e}")
    except (ValueError, TypeError) as e:
        die(EXIT_USAGE, f"configuration: {e}")
    try:
        trio.run(run, cfg)
    except* (OSError, WireError) as group:
        leaf = _first_leaf(group)
        text = leaf.strerror if isinstance(leaf, OSError) and leaf.strerror else str(leaf)
        if isinstance(leaf, OSError) and leaf.filename and str(leaf.filename) not in text:
            text = f"{leaf.filename}: {text}"
        die(EXIT_REFUSED, f"cannot start: {text}")


def _first_leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


@click.command("systemd-unit")
@click.option(
    "--executable",
    default=None,
    help="The hive-core to run (default: this installation's; it must not be under "
    "/home, /root or /tmp, which the unit's sandbox hides).",
)
@click.option(
    "--state-dir",
    default="/var/lib/hyperhive",
    show_default=True,
    help="State directory the unit passes to serve.",
)
@click.option(
    "--run-dir",
    default="/run/hyperhive",
    show_default=True,
    help="Run directory the unit passes to serve.",
)
@click.option("--config", "config_file", default=None, help="TOML config file for serve.")
@click.option(
    "--group",
    default="hive-admin",
    show_default=True,
    help="Admin group of the host socket (another one needs --config with admin_group).",
)
@click.option(
    "--watchdog-sec",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="WatchdogSec= of the unit.",
)
@click.option(
    "--dashboard",
    default=None,
    help="The dashboard's HOST:PORT or off, passed to serve (default: its config's).",
)
def systemd_unit(
    executable: str | None,
    state_dir: str,
    run_dir: str,
    config_file: str | None,
    group: str,
    watchdog_sec: int,
    dashboard: str | None,
) -> None:
    """Print the systemd unit of `hive-core serve` (for hosts without Nix)."""
    from hive_core.surfaces.cli.systemd_unit import default_executable, render

    try:
        click.echo(
            render(
                executable or default_executable(),
                state_dir,
                run_dir,
                config_file,
                group,
                watchdog_sec,
                dashboard,
            ),
            nl=False,
        )
    except ValueError as e:
        die(EXIT_USAGE, str(e))


def register(group: click.Group) -> None:
    group.add_command(serve)
    group.add_command(systemd_unit)

"""`hive-core systemd-unit`: the systemd unit of `hive-core serve`, for hosts without Nix.

Rules kept here:
- the unit is the service of `nix/module.nix` (same `[Service]` directives, same values); the
  module adds only what needs Nix itself (the `path`, `NIX_PATH`, a cache dir for nix, the
  config file with the nixos-container settings). A change here is a change there:
  `tests/test_packaging.py` evaluates the module and compares the two directive by directive;
- every choice carries its reason as a comment in the unit text, so an operator reading
  `systemctl cat hive-core` sees why a hardening option is on or off;
- the arguments are checked before anything is rendered (absolute paths, no control characters,
  socket paths within the unix limit, an executable the sandbox does not hide: not under /home,
  /root, /run/user, /tmp or /var/tmp, resolved through symlinks): a bad value is a `ValueError`, never a unit that
  `systemd-analyze verify` or the daemon rejects later.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from hive_core.config import Config, dashboard_address

DEFAULT_STATE_DIR = "/var/lib/hyperhive"
DEFAULT_RUN_DIR = "/run/hyperhive"
DEFAULT_GROUP = "hive-admin"  # `Config.admin_group`'s default: the daemon's, not ours to change
TIMEOUT_START = "10min"
TIMEOUT_STOP = "2min"

# Paths the sandbox below makes read-only (ProtectSystem=full) or inaccessible (ProtectHome=yes).
_SANDBOXED = ("/usr", "/boot", "/efi", "/etc", "/home", "/root", "/run/user")
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")
_PLAIN_ARG = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# Where the unit's sandbox hides files from the service, and the directive that does it: an
# ExecStart= there fails with 203/EXEC.
_HIDDEN = {
    "/home": "ProtectHome=yes",
    "/root": "ProtectHome=yes",
    "/run/user": "ProtectHome=yes",
    "/tmp": "PrivateTmp=yes",
    "/var/tmp": "PrivateTmp=yes",
}


def _hidden_by(path: str) -> tuple[str, str, str] | None:
    """(the path or where it leads, the root, the directive) if the unit's sandbox hides it."""
    for p in dict.fromkeys([path, os.path.realpath(path)]):
        for root, directive in _HIDDEN.items():
            if p == root or p.startswith(root + "/"):
                return p, root, directive
    return None


def _runnable(executable: str, what: str = "the executable") -> str:
    """Refuse an executable the service could not see (a venv in a home or in /tmp, as a
    checkout's `.venv` is): the unit would fail at once with 203/EXEC."""
    hidden = _hidden_by(executable)
    if hidden is not None:
        raise ValueError(
            f"{what} {hidden[0]} is under {hidden[1]}, which the unit hides from the "
            f"service ({hidden[2]}): it would fail to start (203/EXEC). Install "
            "hive-core where a service can run it, e.g. `python3 -m venv /opt/hive-core "
            "&& /opt/hive-core/bin/pip install <checkout>`, then run "
            "`/opt/hive-core/bin/hive-core systemd-unit` (or pass --executable)"
        )
    return executable


def _readable(config: str) -> None:
    """Refuse a config file the service could not see (in a home, or in /tmp, which the
    service gets an empty one of): `serve --config` would fail at every start."""
    hidden = _hidden_by(config)
    if hidden is not None:
        raise ValueError(
            f"the config file {hidden[0]} is under {hidden[1]}, which the unit hides from the "
            f"service ({hidden[2]}): the daemon could not read it. Put it where a "
            "service can, e.g. /etc/hive-core/config.toml"
        )


def default_executable(check: bool = True) -> str:
    """The `hive-core` script of the running installation (venv first, then `$PATH`); with
    `check`, refused when the service could not run it (tests of the unit's text pass False:
    a checkout may live anywhere)."""
    import hive_core

    # An editable install (`pip install -e`) runs the checkout's code: it must be visible too.
    if check:
        _runnable(str(Path(hive_core.__file__).parent), "this installation's hive_core package")
    beside = Path(sys.executable).parent / "hive-core"
    if beside.is_file():
        return str(beside)
    found = shutil.which("hive-core")
    if found:
        return str(Path(found).absolute())
    raise ValueError("cannot find the hive-core executable; give its absolute path")


def _absolute(what: str, value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} contains control characters")
    if not value.startswith("/"):
        raise ValueError(f"{what} must be an absolute path, not {value!r}")
    return value


def _sandboxed_dir(what: str, value: str) -> str:
    _absolute(what, value)
    for root in _SANDBOXED:
        if value == root or value.startswith(root + "/"):
            raise ValueError(
                f"{what} {value} is under {root}, which the unit's sandbox makes "
                "read-only or inaccessible"
            )
    return value


def _exec_arg(arg: str) -> str:
    """One ExecStart= word: `%` and `$` doubled (no specifier or variable expansion), quoted
    when it holds anything but plain path characters."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.match(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _managed_dir(path: str, base: str) -> str | None:
    """The name systemd's StateDirectory=/RuntimeDirectory= take (relative to `base`), if the
    directory is directly where systemd can manage it."""
    rel = path.rstrip("/").removeprefix(base + "/")
    if rel != path.rstrip("/") and rel and ".." not in rel.split("/"):
        return rel
    return None


def render(
    executable: str,
    state_dir: str = DEFAULT_STATE_DIR,
    run_dir: str = DEFAULT_RUN_DIR,
    config: str | None = None,
    group: str = DEFAULT_GROUP,
    watchdog_sec: int = 30,
    dashboard: str | None = None,
    check: bool = True,
) -> str:
    """The unit file text (`hive-core.service`) for `executable serve ...`; with `check`, an
    executable the unit's sandbox would hide is refused.

    `group` is the admin group the host socket is given to. The daemon reads it from its config
    file only (`admin_group`, default `hive-admin`), so another group needs `config`."""
    _absolute("executable", executable)
    if check:
        _runnable(executable)
    _sandboxed_dir("state dir", state_dir)
    _sandboxed_dir("run dir", run_dir)
    if config is not None:
        _absolute("config file", config)
        if check:
            _readable(config)
    if not _GROUP_NAME.match(group):
        raise ValueError(f"group {group!r} is not a valid group name")
    if group != DEFAULT_GROUP and config is None:
        raise ValueError(
            f"the daemon reads the admin group from its config file only: pass a "
            f'config file with admin_group = "{group}"'
        )
    if not isinstance(watchdog_sec, int) or isinstance(watchdog_sec, bool) or watchdog_sec < 1:
        raise ValueError(f"watchdog_sec must be a positive integer, not {watchdog_sec!r}")
    Config(state_dir=Path(state_dir), run_dir=Path(run_dir)).socket_path_check()

    argv = [executable, "serve", "--state-dir", state_dir, "--run-dir", run_dir]
    if config is not None:
        argv += ["--config", config]
    if dashboard is not None:
        dashboard_address(dashboard)  # HOST:PORT or off, or ValueError
        argv += ["--dashboard", dashboard]
    exec_start = " ".join(_exec_arg(a) for a in argv)

    state_name = _managed_dir(state_dir, "/var/lib")
    run_name = _managed_dir(run_dir, "/run")
    if state_name is not None:
        state_lines = f"""\
# systemd creates the state dir (root-owned, 0750: the daemon's own mode) before the start.
StateDirectory={state_name}
StateDirectoryMode=0750"""
    else:
        state_lines = f"""\
# The state dir {state_dir} is outside /var/lib: the daemon creates it itself (0750)."""
    if run_name is not None:
        run_lines = f"""\
# systemd creates the run dir (0751: clients traverse it to reach host.sock, never list it).
RuntimeDirectory={run_name}
RuntimeDirectoryMode=0751
# Kept across a restart (automatic or `systemctl restart`), removed on a real stop: a container
# that outlives a crashed daemon has <run>/agents/<name> bind-mounted at /run/hive, and a
# re-created directory would be a different inode the container cannot see. The daemon reclaims
# stale sockets itself.
RuntimeDirectoryPreserve=restart"""
    else:
        run_lines = f"""\
# The run dir {run_dir} is outside /run: the daemon creates it itself (0751)."""

    return f"""\
# hive-core.service: rendered by `hive-core systemd-unit` (hive_core/surfaces/cli/systemd_unit.py).
# The same service as the NixOS module nix/module.nix, for hosts without Nix.
# Install: save as /etc/systemd/system/hive-core.service, then
#   systemctl daemon-reload && systemctl enable --now hive-core
# Admin group: {group}. The daemon runs as root and gives <run>/host.sock (mode 0660) to that
# group itself when the group exists (groupadd --system {group}; add operators to it).

[Unit]
Description=hive-core: host daemon of the agent swarm
After=network.target

[Service]
# READY=1 is sent only once the database is migrated and every socket is bound, so units
# ordered after this one find the host socket answering.
Type=notify
# Only the daemon itself may report READY/STATUS/WATCHDOG; the agents it starts share the
# cgroup and must not be able to.
NotifyAccess=main
ExecStart={exec_start}
# A crash, a failed start or a missed watchdog ping brings it back; a clean exit (SIGTERM,
# `systemctl stop`) does not.
Restart=on-failure
RestartSec=2s
# The daemon pings WATCHDOG=1 at half this period; a hung event loop is restarted.
WatchdogSec={watchdog_sec}s
# Start-up starts every agent that should run (containers may take a while) before READY=1.
TimeoutStartSec={TIMEOUT_START}
# SIGTERM goes to the daemon alone: it stops its agents itself (stop_grace each, in parallel),
# closes the database and removes its sockets. Whatever is left when TimeoutStopSec runs out
# is killed with the rest of the cgroup. With the default (control-group) every agent would get
# SIGTERM at once, racing the daemon's own orderly stop.
KillMode=mixed
TimeoutStopSec={TIMEOUT_STOP}
{state_lines}
{run_lines}

# Hardening that still lets a root daemon drive nixos-container (which calls nix-env,
# systemctl and machinectl; the containers themselves run in container@<name>.service).
# No User=/Group=/SupplementaryGroups=: the daemon must be root (nixos-container), and as root
# it chowns host.sock to the admin group itself; Group= would also hand the state dir and the
# database to that group.
# /usr, /boot, /efi and /etc read-only; not `strict`, which would make /var and /nix read-only
# too (nixos-container writes /var/lib/nixos-containers and /nix/var/nix/profiles).
ProtectSystem=full
# ...except the container conf files: nixos-container writes <name>.conf there and the daemon
# adds its bind mounts to it ("-": absent on hosts without nixos-container).
ReadWritePaths=-/etc/nixos-containers
# Nothing of ours lives in /home, /root or /run/user.
ProtectHome=yes
# A private /tmp for the daemon and its process-backend agents.
PrivateTmp=yes
# Root already; nothing it runs needs to gain more (setuid) privileges.
NoNewPrivileges=yes
# /proc/sys and /sys read-only, no module loading, no kernel log: container networking (veth,
# bridges, modules) is set up by container@.service, not here.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
# Off: systemd-nspawn run from here (by the daemon or by an agent) needs a writable cgroup
# tree. (nixos-container's own nspawn runs in container@<name>.service and would not.)
ProtectControlGroups=no
# Unix sockets (ours, sd_notify, D-Bus), IP (agents, the dashboard), netlink (ip, machinectl).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# No execution-domain changes (personality(2)) and no realtime scheduling: nothing here or in
# an agent needs them, and a realtime agent could starve the host.
LockPersonality=yes
RestrictRealtime=yes
# Builds go to nix-daemon (NIX_REMOTE below), outside this sandbox, so nothing here needs
# another architecture's system calls (or the sandbox's limits on them).
SystemCallArchitectures=native
Environment=NIX_REMOTE=daemon
# Not set, on purpose: PrivateDevices (agents may need /dev/fuse, /dev/kvm, a tty),
# MemoryDenyWriteExecute (agents run JITs such as node), RestrictNamespaces (nsenter for
# `nixos-container run`, sandboxed agents), PrivateNetwork (agents reach the network).

[Install]
WantedBy=multi-user.target
"""

"""Packaging: the systemd unit (`hive_core.systemd_unit`), the NixOS module and the flake.

- the rendered unit parses as a unit file with the expected directives, and
  `systemd-analyze verify` accepts it;
- every .nix file parses (`nix-instantiate --parse`). The module is also evaluated, against
  `STUB`: a stand-in for the few nixpkgs `lib`/`pkgs`/`utils` functions it calls, with nixpkgs'
  semantics (this checks the module's own logic and its agreement with the unit and with
  config.py, not nixpkgs itself). The flake is evaluated against a stand-in nixpkgs the same way;
- the daemon, started with the unit's ExecStart and the TOML the module renders by default,
  reports READY=1 on a NOTIFY_SOCKET (as under systemd), answers `list`, and exits 0 on SIGTERM.

A check that needs a missing tool skips with the reason (nix-instantiate: Debian's `nix-bin`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from hive_core.config import Config
from hive_core.surfaces.cli import systemd_unit
from hive_core.surfaces.cli.systemd_unit import default_executable, render

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "nix" / "module.nix"
FLAKE = REPO / "flake.nix"
FAKE_BIN = Path(__file__).resolve().parents[1] / "fake_bin"
STORE = "/nix/store/00000000000000000000000000000000-"

# --- reading unit files ------------------------------------------------------------------------
Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections → key → values (a key may repeat); comments and blank lines skipped. Strict: a
    line that is neither a section header, a comment nor `Key=value` fails the test."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", stripped)
        if header:
            assert header[1] not in unit, f"line {n}: section [{header[1]}] twice"
            section = unit.setdefault(header[1], {})
            continue
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", line)
        assert m and section is not None, f"line {n} is not Key=value in a section: {line!r}"
        assert not line.endswith("\\"), f"line {n}: no continuation lines expected"
        section.setdefault(m[1], []).append(m[2])
    return unit


def single(unit: Unit, section: str) -> dict[str, str]:
    """The section's directives, each set once (the rendered unit never repeats one)."""
    out = {}
    for key, values in unit[section].items():
        assert len(values) == 1, f"{key} set {len(values)} times"
        out[key] = values[0]
    return out


EXPECTED_SERVICE = {
    "Type": "notify",
    "NotifyAccess": "main",
    "Restart": "on-failure",
    "RestartSec": "2s",
    "WatchdogSec": "30s",
    "TimeoutStartSec": "10min",
    "KillMode": "mixed",
    "TimeoutStopSec": "2min",
    "StateDirectory": "hyperhive",
    "StateDirectoryMode": "0750",
    "RuntimeDirectory": "hyperhive",
    "RuntimeDirectoryMode": "0751",
    "RuntimeDirectoryPreserve": "restart",
    "ProtectSystem": "full",
    "ReadWritePaths": "-/etc/nixos-containers",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "no",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "SystemCallArchitectures": "native",
    "Environment": "NIX_REMOTE=daemon",
}


# --- render() --------------------------------------------------------------------------------
def test_rendered_unit_has_the_expected_directives() -> None:
    unit = parse_unit(render("/usr/bin/hive-core"))
    assert list(unit) == ["Unit", "Service", "Install"]
    service = single(unit, "Service")
    assert service.pop("ExecStart") == (
        "/usr/bin/hive-core serve --state-dir /var/lib/hyperhive --run-dir /run/hyperhive"
    )
    assert service == EXPECTED_SERVICE
    assert single(unit, "Install") == {"WantedBy": "multi-user.target"}
    assert single(unit, "Unit")["After"] == "network.target"
    for absent in ("User", "Group", "SupplementaryGroups", "DynamicUser"):
        assert absent not in service  # root; the daemon chowns host.sock itself


# A directive may share the comment of the one before it when they belong together.
SHARES_COMMENT = {
    "RestartSec": "Restart",
    "TimeoutStopSec": "KillMode",
    "StateDirectoryMode": "StateDirectory",
    "RuntimeDirectoryMode": "RuntimeDirectory",
    "ProtectKernelModules": "ProtectKernelTunables",
    "ProtectKernelLogs": "ProtectKernelModules",
    "RestrictRealtime": "LockPersonality",
    "Environment": "SystemCallArchitectures",
}


def test_every_choice_is_explained() -> None:
    """In [Service], each directive comes right after a comment, or right after the directive
    whose comment it shares (ExecStart explains itself)."""
    text = render("/usr/bin/hive-core")
    service = text.split("[Service]\n", 1)[1].split("\n[Install]", 1)[0]
    previous = "#"
    unexplained = []
    for line in service.splitlines():
        if not line:
            continue
        key = line.split("=", 1)[0] if not line.startswith("#") else "#"
        if (
            key not in ("#", "ExecStart")
            and previous != "#"
            and SHARES_COMMENT.get(key) != previous
        ):
            unexplained.append(key)
        previous = key
    assert unexplained == []


def test_exec_start_with_a_config_file_and_other_dirs() -> None:
    text = render(
        "/opt/hive/bin/hive-core",
        state_dir="/srv/hive",
        run_dir="/run/h",
        config="/etc/hive-core.toml",
        group="ops",
        watchdog_sec=60,
    )
    service = parse_unit(text)["Service"]
    assert shlex.split(service["ExecStart"][0]) == [
        "/opt/hive/bin/hive-core",
        "serve",
        "--state-dir",
        "/srv/hive",
        "--run-dir",
        "/run/h",
        "--config",
        "/etc/hive-core.toml",
    ]
    assert service["WatchdogSec"] == ["60s"]
    assert "StateDirectory" not in service  # /srv is not below /var/lib: the daemon creates it
    assert service["RuntimeDirectory"] == ["h"]
    assert "Admin group: ops." in text


def test_exec_start_passes_the_dashboard_through() -> None:
    service = parse_unit(render("/usr/bin/hive-core", dashboard="[::1]:8080"))["Service"]
    assert shlex.split(service["ExecStart"][0])[-2:] == ["--dashboard", "[::1]:8080"]
    off = parse_unit(render("/usr/bin/hive-core", dashboard="off"))["Service"]
    assert shlex.split(off["ExecStart"][0])[-2:] == ["--dashboard", "off"]
    with pytest.raises(ValueError, match="HOST:PORT"):
        render("/usr/bin/hive-core", dashboard="8080")


def test_exec_start_arguments_are_escaped_for_systemd() -> None:
    text = render("/opt/hive core/hive-core", state_dir="/var/lib/a%b", run_dir="/run/x$y")
    line = parse_unit(text)["Service"]["ExecStart"][0]
    assert line == '"/opt/hive core/hive-core" serve --state-dir /var/lib/a%%b --run-dir /run/x$$y'


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"executable": "hive-core"}, "absolute"),
        ({"executable": "/bin/hive\ncore"}, "control characters"),
        ({"state_dir": "var/lib/hyperhive"}, "absolute"),
        ({"state_dir": "/home/me/hive"}, "/home"),
        ({"run_dir": "/etc/hive"}, "/etc"),
        ({"run_dir": "/run/" + "r" * 40}, "too long"),
        ({"config": "hive.toml"}, "absolute"),
        ({"group": "ops"}, "config file"),
        ({"group": "bad group", "config": "/etc/h.toml"}, "not a valid group name"),
        ({"watchdog_sec": 0}, "positive"),
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"executable": "/usr/bin/hive-core", **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        render(**args)


def test_default_executable_is_this_installation() -> None:
    exe = Path(default_executable(check=False))
    assert exe.is_absolute() and os.access(exe, os.X_OK)


# --- systemd-analyze verify --------------------------------------------------------------------
@pytest.fixture
def systemd_analyze(tmp_path: Path) -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    probe = tmp_path / "probe.service"
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    done = subprocess.run([exe, "verify", str(probe)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()[:300]}")
    return exe


def verify(exe: str, unit_file: Path) -> None:
    done = subprocess.run(
        [exe, "verify", str(unit_file)], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in done.stderr.splitlines() if unit_file.name in line]
    assert done.returncode == 0 and not ours, done.stderr


def test_systemd_analyze_verifies_the_unit(systemd_analyze: str, tmp_path: Path) -> None:
    unit_file = tmp_path / "hive-core.service"
    unit_file.write_text(
        render(default_executable(check=False), config=str(tmp_path / "hive.toml"), check=False)
    )
    verify(systemd_analyze, unit_file)


def test_systemd_analyze_catches_a_broken_unit(systemd_analyze: str, tmp_path: Path) -> None:
    """The check above would see a mistake: an unknown directive is reported."""
    unit_file = tmp_path / "broken.service"
    unit_file.write_text(
        render(default_executable(check=False), check=False).replace(
            "KillMode=mixed", "KillMode=mixed\nProtectEverything=yes"
        )
    )
    done = subprocess.run(
        [systemd_analyze, "verify", str(unit_file)], capture_output=True, text=True, timeout=60
    )
    assert "ProtectEverything" in done.stderr


# --- Nix ---------------------------------------------------------------------------------------
def nix_files() -> list[Path]:
    skip = {".git", ".venv", "node_modules", "build"}
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.endswith(".egg-info"))
        found += [Path(root) / f for f in sorted(files) if f.endswith(".nix")]
    return found


@pytest.fixture
def nix_instantiate() -> str:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate is not installed (Debian: apt-get install nix-bin)")
    return exe


def test_the_nix_files_are_there() -> None:
    assert {MODULE, FLAKE} <= set(nix_files())


def test_every_nix_file_parses(nix_instantiate: str) -> None:
    for path in nix_files():
        done = subprocess.run(
            [nix_instantiate, "--parse", str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{path.relative_to(REPO)}: {done.stderr}"


# Only what nix/module.nix and flake.nix call, with nixpkgs' semantics. `mkIf` and `mkOption`
# return markers the evaluation below reads; the config is the options' defaults (a fixed point,
# as in the module system) with `enable = true` and the test's overrides.
STUB = r"""
{ module, flake, overrides, stateVersion }:
let
  drv = name: { inherit name; type = "derivation"; outPath = "@STORE@${name}"; };
  lib = rec {
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: a: if c then a else { };
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    inherit (builtins) filter elem attrNames stringLength concatStringsSep;
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    removePrefix = p: s:
      if hasPrefix p s
      then builtins.substring (builtins.stringLength p) (builtins.stringLength s) s
      else s;
    versionAtLeast = a: b: builtins.compareVersions a b >= 0;
    mkOption = o: o // { _type = "option"; };
    mkEnableOption = n: mkOption { type = types.bool; default = false; };
    mkIf = c: x: { _type = "if"; condition = c; content = x; };
    mkDefault = x: { _type = "override"; priority = 1000; content = x; };
    literalExpression = t: { _type = "literalExpression"; text = t; };
    literalMD = t: { _type = "literalMD"; text = t; };
    types = { bool = "bool"; str = "str"; path = "path"; package = "package";
              enum = vs: { enum = vs; }; };
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    cleanSource = p: p;
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };
  pkgs = {
    formats.toml = { }: {
      type = "toml value";
      generate = name: value: drv name // { inherit value; };
    };
    nixos-container = drv "nixos-container" // {
      override = args: drv "nixos-container" // { overridden = args; };
    };
    gitMinimal = drv "git-minimal";
    util-linux = drv "util-linux";
    e2fsprogs = drv "e2fsprogs";
  };
  # nixos/lib/utils.nix: each argument as a JSON string, `%` and `$` doubled.
  utils.escapeSystemdExecArgs = args: builtins.concatStringsSep " " (map (a:
    builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON a)) args);

  over = builtins.fromJSON overrides;
  m = import module { inherit lib pkgs utils config; };
  opts = m.options.services.hive-core;
  defaultOf = o: if (o._type or null) == "option" then o.default else builtins.mapAttrs (_: defaultOf) o;
  defaults = builtins.mapAttrs (_: defaultOf) opts;
  config = {
    services.hive-core = defaults // { enable = true; package = drv "hive-core"; }
      // builtins.removeAttrs over [ "dashboard" ]
      // { dashboard = defaults.dashboard // (over.dashboard or { }); };
    system.stateVersion = stateVersion;
    systemd.package = drv "systemd";
    boot.enableContainers = over.enableContainers or true;
    nix.package = drv "nix";
    nix.nixPath = [ "nixpkgs=flake:nixpkgs" "/nix/var/nix/profiles/per-user/root/channels" ];
  };
  c = m.config.content;
  s = c.systemd.services.hive-core;
  names = map (p: p.name);

  f = import flake;
  systems = [ "x86_64-linux" "aarch64-linux" ];
  python3Packages = {
    buildPythonApplication = a: a // { type = "derivation"; outPath = "@STORE@hive-core"; };
  } // lib.genAttrs [ "setuptools" "trio" "attrs" "cattrs" "orjson" "click" "sqlite-utils" "hypercorn" "starlette" "mcp" ] drv;
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems (system: { inherit python3Packages; });
  };
  out = f.outputs { self = out; inherit nixpkgs; };
  nixosModule = out.nixosModules.default {
    inherit lib;
    pkgs.stdenv.hostPlatform.system = "aarch64-linux";
  };
  pkgSummary = p: {
    inherit (p) pname version format doCheck pythonImportsCheck;
    build = names p.nativeBuildInputs;
    deps = names p.propagatedBuildInputs;
    mainProgram = p.meta.mainProgram;
  };
in
{
  module = {
    options = builtins.attrNames opts;
    defaults = builtins.removeAttrs defaults [ "package" "configFile" ];
    enabledBy = (m.config.condition == config.services.hive-core.enable);
    failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
    groups = builtins.attrNames c.users.groups;
    systemPackages = names c.environment.systemPackages;
    variables = c.environment.variables;
    tmpfiles = c.systemd.tmpfiles.rules;
    settings = config.services.hive-core.configFile.value;
    configFile = "${config.services.hive-core.configFile}";
    ncOverride = let found = builtins.filter (p: p.name == "nixos-container") s.path;
      in if found == [ ] then null else (builtins.head found).overridden;
    service = {
      inherit (s) description wantedBy after wants stopIfChanged environment serviceConfig;
      path = names s.path;
    };
  };
  flake = {
    inherit (f) description;
    nixpkgsUrl = f.inputs.nixpkgs.url;
    outputArgs = builtins.functionArgs f.outputs;
    systems = builtins.attrNames out.packages;
    packages = builtins.mapAttrs (_: ps: builtins.mapAttrs (_: pkgSummary) ps) out.packages;
    moduleArgs = builtins.functionArgs out.nixosModules.default;
    moduleImports = map toString nixosModule.imports;
    modulePackage = let p = nixosModule.services.hive-core.package; in {
      inherit (p) _type;
      pname = p.content.pname;
    };
    moduleNames = builtins.attrNames out.nixosModules;
  };
}
"""


def nix_eval(
    exe: str,
    tmp: Path,
    part: str,
    overrides: dict[str, Any] | None = None,
    state_version: str = "25.05",
) -> Any:
    stub = tmp / "stub.nix"
    stub.write_text(STUB.replace("@STORE@", STORE))
    done = subprocess.run(
        [
            exe,
            "--eval",
            "--strict",
            "--json",
            "--readonly-mode",
            str(stub),
            "-A",
            part,
            "--arg",
            "module",
            str(MODULE),
            "--arg",
            "flake",
            str(FLAKE),
            "--argstr",
            "overrides",
            json.dumps(overrides or {}),
            "--argstr",
            "stateVersion",
            state_version,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def module_unit(service: dict[str, Any]) -> dict[str, str]:
    """The module's serviceConfig and environment as unit directives (lists joined, booleans
    as yes/no: how the unit spells them)."""
    out = {}
    for key, value in service["serviceConfig"].items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, list):
            value = " ".join(value)
        out[key] = str(value)
    env = service["environment"]
    out["Environment"] = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    return out


def test_module_options_and_defaults(nix_instantiate: str, tmp_path: Path) -> None:
    m = nix_eval(nix_instantiate, tmp_path, "module")
    assert m["options"] == sorted(
        [
            "enable",
            "package",
            "stateDir",
            "runDir",
            "adminGroup",
            "backend",
            "dashboard",
            "settings",
            "configFile",
        ]
    )
    assert m["defaults"] == {
        "enable": False,
        "stateDir": "/var/lib/hyperhive",
        "runDir": "/run/hyperhive",
        "adminGroup": "hive-admin",
        "backend": "nixos-container",
        "dashboard": {"listen": "127.0.0.1:7777"},
        "settings": {},
    }
    assert m["enabledBy"] and m["failed"] == []
    assert m["groups"] == ["hive-admin"]
    assert m["systemPackages"] == ["hive-core"]
    assert m["variables"] == {"HIVE_HOST_SOCKET": "/run/hyperhive/host.sock"}
    assert m["tmpfiles"] == [
        "d /var/lib/hyperhive 0750 root root - -",
        "d /run/hyperhive 0751 root root - -",
        "d /etc/nixos-containers 0755 root root - -",
    ]
    assert m["ncOverride"] == {
        "configurationDirectory": "/etc/nixos-containers",
        "stateDirectory": "/var/lib/nixos-containers",
    }


def test_module_service_is_the_rendered_unit(nix_instantiate: str, tmp_path: Path) -> None:
    """Directive by directive: what the module adds is only what needs Nix."""
    service = nix_eval(nix_instantiate, tmp_path, "module")["service"]
    ours = module_unit(service)
    rendered = single(parse_unit(render("/usr/bin/hive-core", config="/etc/h.toml")), "Service")
    module_argv = shlex.split(ours.pop("ExecStart"))
    unit_argv = shlex.split(rendered.pop("ExecStart"))
    assert module_argv[0] == STORE + "hive-core/bin/hive-core"
    assert module_argv[-1] == STORE + "hive-core.toml"
    assert module_argv[1:-1] == unit_argv[1:-1]
    assert ours.pop("CacheDirectory") == "hyperhive"  # nix's cache, ProtectHome hides /root
    assert ours.pop("Environment") == (
        "NIX_PATH=nixpkgs=flake:nixpkgs:/nix/var/nix/profiles/per-user/root/channels "
        "NIX_REMOTE=daemon XDG_CACHE_HOME=/var/cache/hyperhive"
    )
    assert rendered.pop("Environment") == "NIX_REMOTE=daemon"
    assert ours == rendered
    assert service["description"] == single(parse_unit(render("/x")), "Unit")["Description"]
    assert service["wantedBy"] == ["multi-user.target"]
    assert service["after"] == ["network.target", "nix-daemon.socket"]
    assert service["wants"] == ["nix-daemon.socket"]
    assert service["stopIfChanged"] is False  # a switch restarts: the run dir is kept
    assert service["path"] == ["git-minimal", "nixos-container", "nix", "util-linux", "e2fsprogs"]


def test_module_default_settings_are_the_handwritten_toml(
    nix_instantiate: str, tmp_path: Path
) -> None:
    m = nix_eval(nix_instantiate, tmp_path, "module")
    assert m["settings"] == default_settings(
        STORE + "nixos-container/bin/nixos-container",
        STORE + "systemd/bin/journalctl",
        "/etc/nixos-containers",
    )
    assert set(m["settings"]) <= {a.name for a in attrs.fields(Config)}


def test_module_process_backend_and_other_dirs(nix_instantiate: str, tmp_path: Path) -> None:
    m = nix_eval(
        nix_instantiate,
        tmp_path,
        "module",
        {
            "backend": "process",
            "stateDir": "/srv/hive",
            "adminGroup": "ops",
            "settings": {"restart_on_crash": True, "urls": {"domain": "hive.example.org"}},
        },
        state_version="21.11",
    )
    assert m["failed"] == []
    assert m["settings"] == {
        "backend": "process",
        "admin_group": "ops",
        "restart_on_crash": True,
        "urls": {"domain": "hive.example.org"},
        "dashboard_listen": "127.0.0.1:7777",  # the `dashboard.listen` option's default
    }
    service = m["service"]
    assert service["path"] == ["git-minimal"]
    assert service["environment"] == {"NIX_REMOTE": "daemon"}
    config = service["serviceConfig"]
    assert "StateDirectory" not in config and "CacheDirectory" not in config
    assert config["RuntimeDirectory"] == "hyperhive"
    assert config["ReadWritePaths"] == ["-/etc/containers"]  # stateVersion < 22.05
    assert m["groups"] == ["ops"]
    assert m["tmpfiles"] == [
        "d /srv/hive 0750 root root - -",
        "d /run/hyperhive 0751 root root - -",
    ]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"settings": {"zzz": "x", "bogus": 1}}, "unknown keys bogus, zzz"),
        ({"settings": {"backend": "process"}}, "set backend through"),
        ({"settings": {"dashboard_listen": "0.0.0.0:80"}}, "set dashboard_listen through"),
        ({"runDir": "/run/" + "r" * 40}, "too long"),
        ({"stateDir": "var/lib/h"}, "absolute"),
        ({"enableContainers": False}, "boot.enableContainers"),
    ],
)
def test_module_assertions(
    nix_instantiate: str, tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    failed = nix_eval(nix_instantiate, tmp_path, "module", overrides)["failed"]
    assert len(failed) == 1 and message in failed[0], failed


def test_module_known_keys_are_config_py_keys() -> None:
    """The module refuses what the daemon refuses: its `knownKeys` are Config's fields."""
    text = MODULE.read_text()
    block = re.search(r"knownKeys = \[(.*?)\];", text, re.S)
    assert block
    assert re.findall(r'"([a-z_]+)"', block[1]) == [a.name for a in attrs.fields(Config)]


def test_module_unit_passes_systemd_analyze(
    nix_instantiate: str, systemd_analyze: str, tmp_path: Path
) -> None:
    """The module's serviceConfig written as NixOS writes it (a list value: one line each) with
    ExecStart pointed at this installation, through `systemd-analyze verify`."""
    service = nix_eval(nix_instantiate, tmp_path, "module")["service"]
    lines = [
        "[Unit]",
        f"Description={service['description']}",
        f"After={' '.join(service['after'])}",
        "",
        "[Service]",
    ]
    for key, value in service["serviceConfig"].items():
        if key == "ExecStart":
            value = f"{default_executable(check=False)} serve --state-dir /var/lib/hyperhive"
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{key}={str(v).lower() if isinstance(v, bool) else v}")
    lines += [f'Environment="{k}={v}"' for k, v in service["environment"].items()]
    lines += ["", "[Install]", f"WantedBy={' '.join(service['wantedBy'])}", ""]
    unit_file = tmp_path / "hive-core-nixos.service"
    unit_file.write_text("\n".join(lines))
    verify(systemd_analyze, unit_file)


def test_flake_builds_the_package_from_pyproject(nix_instantiate: str, tmp_path: Path) -> None:
    f = nix_eval(nix_instantiate, tmp_path, "flake")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f["nixpkgsUrl"].startswith("github:NixOS/nixpkgs/")
    assert f["outputArgs"] == {"self": False, "nixpkgs": False}
    assert f["systems"] == ["aarch64-linux", "x86_64-linux"]
    deps = sorted(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in project["dependencies"])
    for system in f["systems"]:
        packages = f["packages"][system]
        assert packages["default"] == packages["hive-core"]
        pkg = packages["default"]
        assert (pkg["pname"], pkg["version"]) == (project["name"], project["version"])
        assert pkg["format"] == "pyproject" and pkg["build"] == ["setuptools"]
        assert sorted(pkg["deps"]) == deps
        assert pkg["mainProgram"] == "hive-core" == next(iter(project["scripts"]))
    assert f["moduleImports"] == [str(MODULE)]
    # mkDefault: a package the user sets wins over the flake's
    assert f["modulePackage"] == {"_type": "override", "pname": "hive-core"}
    assert f["moduleNames"] == ["default", "hive-core"]


# --- the daemon with the module's default TOML ------------------------------------------------
def default_settings(nixos_container: str, journalctl: str, conf_dir: str) -> dict[str, Any]:
    """What the module renders with no `settings` (backend nixos-container)."""
    return {
        "backend": "nixos-container",
        "admin_group": "hive-admin",
        "dashboard_listen": "127.0.0.1:7777",
        "nixos_container": nixos_container,
        "journalctl": journalctl,
        "nixos_container_conf_dir": conf_dir,
    }


def toml(settings: dict[str, Any]) -> str:
    """Top-level strings only, as `default_settings` has (json's quoting is valid TOML)."""
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())


@pytest.fixture
def notify_socket(dirs: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(dirs / "notify.sock"))
        sock.settimeout(30)  # each recv: bounded, event-driven (no sleeping until it is up)
        yield sock


def test_daemon_starts_from_the_unit_with_the_module_toml(
    dirs: Path, notify_socket: socket.socket
) -> None:
    fake = dirs / "fake"
    settings = default_settings(
        str(FAKE_BIN / "nixos-container"), str(FAKE_BIN / "journalctl"), str(fake / "conf")
    )
    config_file = dirs / "hive-core.toml"
    config_file.write_text(toml(settings))
    assert tomllib.loads(config_file.read_text()) == settings
    state, run = dirs / "state", dirs / "run"
    unit = parse_unit(
        render(
            default_executable(check=False),
            state_dir=str(state),
            run_dir=str(run),
            config=str(config_file),
            check=False,
        )
    )
    argv = shlex.split(unit["Service"]["ExecStart"][0])
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(dirs / "notify.sock"),
        "FAKE_NIXOS_LOG": str(dirs / "nixos.log"),
        "FAKE_NIXOS_DIR": str(fake),
    }
    for key in ("HIVE_CONFIG", "HIVE_STATE_DIR", "HIVE_RUN_DIR", "HIVE_HOST_SOCKET"):
        env.pop(key, None)
    log = dirs / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        seen: list[str] = []
        while "READY=1" not in seen:
            try:
                seen += notify_socket.recv(4096).decode().split("\n")
            except TimeoutError:
                pytest.fail(f"no READY=1 (exit {proc.poll()}): {log.read_text()}")
        host = str(run / "host.sock")
        listed = subprocess.run(
            [argv[0], "list", "--json", "--socket", host],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["agents"] == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.exists(host)
    text = log.read_text()
    assert "backend=nixos-container" in text and "unknown keys" not in text
    calls = [json.loads(line)["argv"] for line in (dirs / "nixos.log").read_text().splitlines()]
    assert ["nixos-container", "list"] in calls  # the configured executable was the one used


def test_module_defaults_match_the_package_defaults() -> None:
    """The unit's defaults are the daemon's root-under-systemd defaults and admin group."""
    assert systemd_unit.DEFAULT_STATE_DIR == "/var/lib/hyperhive"
    assert systemd_unit.DEFAULT_RUN_DIR == "/run/hyperhive"
    assert systemd_unit.DEFAULT_GROUP == attrs.fields(Config).admin_group.default

# services.hive-core: the hive-core daemon (`hive-core serve`) as a systemd service.
#
# The service is the unit `hive-core systemd-unit` prints (hive_core/surfaces/cli/systemd_unit.py): the same
# directives with the same values, each with its reason there (tests/test_packaging.py checks
# that every directive of that unit appears below with the same value). Added here, because
# they need Nix: the `path` (nixos-container, nix, git), NIX_PATH (nixos-container evaluates
# `<nixpkgs/nixos>`), a cache dir for nix (ProtectHome hides /root/.cache), the conf dir of
# nixos-container, and the config file.
#
# The config file is `settings` rendered to TOML, plus `backend` and `admin_group` from the
# options of the same meaning. The daemon refuses keys it does not know, so `settings` is
# checked against `knownKeys` (hive_core/config.py's keys) when the system is evaluated.
{ config, lib, pkgs, utils, ... }:

let
  cfg = config.services.hive-core;
  settingsFormat = pkgs.formats.toml { };
  containers = cfg.backend == "nixos-container";

  # hive_core/config.py's TOML keys, exactly (tests/test_packaging.py compares the lists).
  knownKeys = [
    "state_dir" "run_dir" "backend" "admin_group" "line_limit" "body_limit" "lease_timeout"
    "max_deliveries" "retention_days" "resolved_retention_days" "events_retention_days"
    "turn_stats_retention_days" "stop_grace" "crash_scan" "restart_on_crash"
    "restart_max_crashes" "restart_window" "restart_backoff" "restart_backoff_max"
    "max_connections" "max_connections_per_agent" "nixos_container" "journalctl" "nixos_container_conf_dir"
    "read_deadline" "database_max_bytes" "stop_agents_on_exit" "inline_io" "manager_command"
    "claude_command"
    "dashboard_listen" "dashboard_hosts" "urls" "forge" "budget"
  ];
  # Keys set from the options (one place for each value); the directories go on the command line.
  ownedKeys = [ "state_dir" "run_dir" "backend" "admin_group" "dashboard_listen" ];
  unknownKeys = lib.filter (k: !(lib.elem k knownKeys)) (lib.attrNames cfg.settings);
  clashingKeys = lib.filter (k: lib.elem k ownedKeys) (lib.attrNames cfg.settings);

  # nixos-container's directories, as nixos/modules/virtualisation/nixos-containers.nix has them
  # (/etc/containers before system.stateVersion 22.05).
  containerPrefix =
    lib.optionalString (lib.versionAtLeast config.system.stateVersion "22.05") "nixos-";
  containerConfDir = "/etc/${containerPrefix}containers";
  nixosContainer = pkgs.nixos-container.override {
    configurationDirectory = containerConfDir;
    stateDirectory = "/var/lib/${containerPrefix}containers";
  };

  settings =
    lib.optionalAttrs containers {
      nixos_container = "${nixosContainer}/bin/nixos-container";
      journalctl = "${config.systemd.package}/bin/journalctl";
      nixos_container_conf_dir = containerConfDir;
    }
    // cfg.settings
    // {
      backend = cfg.backend;
      admin_group = cfg.adminGroup;
      dashboard_listen = cfg.dashboard.listen;
    };

  # StateDirectory=/RuntimeDirectory= take a name below /var/lib and /run; a directory elsewhere
  # is created by the daemon itself (and by the tmpfiles rules below).
  managedName = base: path:
    let rel = lib.removePrefix "${base}/" path;
    in if rel != path && rel != "" then rel else null;
  stateName = managedName "/var/lib" cfg.stateDir;
  runName = managedName "/run" cfg.runDir;

  # The unix socket limit (107 bytes) for the longest agent socket: <run>/agents/<63>/mcp.sock.
  longestSocket = lib.stringLength cfg.runDir + lib.stringLength "/agents/" + 63
    + lib.stringLength "/mcp.sock";
in
{
  options.services.hive-core = {
    enable = lib.mkEnableOption "hive-core, the host daemon of an agent swarm";

    package = lib.mkOption {
      type = lib.types.package;
      description = ''
        The hive-core package. The flake's `nixosModules.default` sets it to the flake's
        `packages.<system>.default`; set it yourself when importing this file directly.
      '';
    };

    stateDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/hyperhive";
      description = "State directory: the database, the agents' state and config repos.";
    };

    runDir = lib.mkOption {
      type = lib.types.str;
      default = "/run/hyperhive";
      description = ''
        Run directory: `host.sock` (the operator's socket), the manager's and one per agent.
        Socket paths must fit the unix limit of 107 bytes, so keep it short.
      '';
    };

    adminGroup = lib.mkOption {
      type = lib.types.str;
      default = "hive-admin";
      description = ''
        The group given the host socket (mode 0660): its members may run `hive-core` client
        commands. The group is declared here; add operators with `users.users.<name>.extraGroups`.
      '';
    };

    backend = lib.mkOption {
      type = lib.types.enum [ "process" "nixos-container" ];
      default = "nixos-container";
      description = ''
        How agents run: `nixos-container` (one imperative container `h-<name>` per agent;
        needs `boot.enableContainers`) or `process` (plain child processes of the daemon).
      '';
    };

    dashboard.listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:7777";
      description = ''
        Where the dashboard listens (host:port, `[v6]:port`), or "off"; the daemon's
        `dashboard_listen`. Loopback by default: a remote operator uses an SSH tunnel or a proxy
        of their own (and names it in `settings.dashboard_hosts`).
      '';
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      example = lib.literalExpression ''
        {
          restart_on_crash = true;
          retention_days = 14;
          urls.domain = "hive.example.org";
        }
      '';
      description = ''
        Further keys of the TOML config file (see hive_core/config.py for the list). `backend`
        and `admin_group` come from their options, the directories from `stateDir`/`runDir`.
      '';
    };

    configFile = lib.mkOption {
      type = lib.types.path;
      readOnly = true;
      default = settingsFormat.generate "hive-core.toml" settings;
      defaultText = lib.literalMD "`settings`, `backend` and `adminGroup` rendered to TOML";
      description = "The config file the daemon is started with (generated; for reference).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = unknownKeys == [ ];
        message = "services.hive-core.settings: hive-core refuses unknown keys "
          + lib.concatStringsSep ", " unknownKeys;
      }
      {
        assertion = clashingKeys == [ ];
        message = "services.hive-core.settings: set "
          + lib.concatStringsSep ", " clashingKeys
          + " through services.hive-core.{backend,adminGroup,stateDir,runDir,dashboard.listen}"
          + " instead";
      }
      {
        assertion = lib.hasPrefix "/" cfg.stateDir && lib.hasPrefix "/" cfg.runDir;
        message = "services.hive-core.stateDir and runDir must be absolute paths";
      }
      {
        assertion = longestSocket <= 107;
        message = "services.hive-core.runDir ${cfg.runDir} is too long: agent socket paths "
          + "would exceed 107 bytes (the unix socket limit)";
      }
      {
        assertion = !containers || config.boot.enableContainers;
        message = ''services.hive-core.backend = "nixos-container" needs boot.enableContainers'';
      }
    ];

    users.groups.${cfg.adminGroup} = { };

    # The client commands, and where they find the daemon (their own default is per user).
    environment.systemPackages = [ cfg.package ];
    environment.variables.HIVE_HOST_SOCKET = "${cfg.runDir}/host.sock";

    systemd.tmpfiles.rules = [
      "d ${cfg.stateDir} 0750 root root - -"
      "d ${cfg.runDir} 0751 root root - -"
    ]
    # ProtectSystem=full makes /etc read-only, and nixos-container creates this directory only
    # on first use: it must exist before the service starts.
    ++ lib.optional containers "d ${containerConfDir} 0755 root root - -";

    systemd.services.hive-core = {
      description = "hive-core: host daemon of the agent swarm";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ] ++ lib.optional containers "nix-daemon.socket";
      wants = lib.optional containers "nix-daemon.socket";
      # A switch restarts it in one step (`systemctl restart`), which keeps the run dir
      # (RuntimeDirectoryPreserve=restart): containers left running keep their socket dirs.
      stopIfChanged = false;

      # Besides the default path (coreutils, findutils, grep, sed, systemd: systemctl,
      # machinectl): git for config repos; what nixos-container runs (nix-env, mountpoint and
      # umount, chattr) for the container backend.
      path = [ pkgs.gitMinimal ]
        ++ lib.optionals containers [
          nixosContainer
          config.nix.package
          pkgs.util-linux
          pkgs.e2fsprogs
        ];

      environment = {
        # Builds and store writes go to nix-daemon, outside this sandbox.
        NIX_REMOTE = "daemon";
      }
      // lib.optionalAttrs containers {
        # nixos-container builds a container from `<nixpkgs/nixos>`.
        NIX_PATH = lib.concatStringsSep ":" config.nix.nixPath;
        # ProtectHome=yes hides /root/.cache, where nix keeps its caches otherwise.
        XDG_CACHE_HOME = "/var/cache/hyperhive";
      };

      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = utils.escapeSystemdExecArgs [
          "${cfg.package}/bin/hive-core"
          "serve"
          "--state-dir"
          cfg.stateDir
          "--run-dir"
          cfg.runDir
          "--config"
          "${cfg.configFile}"
        ];
        Restart = "on-failure";
        RestartSec = "2s";
        WatchdogSec = "30s";
        TimeoutStartSec = "10min";
        KillMode = "mixed";
        TimeoutStopSec = "2min";

        # Hardening that still lets a root daemon drive nixos-container; the reason for each
        # line is in hive_core/surfaces/cli/systemd_unit.py.
        ProtectSystem = "full";
        ReadWritePaths = [ "-${containerConfDir}" ];
        ProtectHome = true;
        PrivateTmp = true;
        NoNewPrivileges = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = false;
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
      }
      // lib.optionalAttrs (stateName != null) {
        StateDirectory = stateName;
        StateDirectoryMode = "0750";
      }
      // lib.optionalAttrs (runName != null) {
        RuntimeDirectory = runName;
        RuntimeDirectoryMode = "0751";
        RuntimeDirectoryPreserve = "restart";
      }
      // lib.optionalAttrs containers {
        CacheDirectory = "hyperhive";
      };
    };
  };
}

# The 1-second snapshotter: read-only BTRFS snapshots of a source subvolume,
# each recorded as a block of a hash chain in SQLite, with a D-Bus API
# (org.ghostbridge.Snapshotter) on the system bus.
# Its settings are the daemon's own JSON keys (nixpkgs' `settings` pattern):
# the daemon defines their defaults and rules, and checks the rendered file
# at build time (`ghostbridge-snapshotter check-config`).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkPackageOption
    mkIf
    types
    optional
    literalExpression
    ;
  cfg = config.services.ghostbridge;
  snap = cfg.snapshotter;
  settings = snap.settings;
  dbDir = dirOf settings.database;
  json = pkgs.formats.json { };

  # Only root may own the name; anyone may call it, read its properties and
  # receive its signals. The file is the one the D-Bus tests check.
  dbusPolicy = pkgs.writeTextDir "share/dbus-1/system.d/org.ghostbridge.Snapshotter.conf" (
    builtins.readFile ../src/bus/org.ghostbridge.Snapshotter.conf
  );
  hardening = import ./lib/hardening.nix;
  escape = import ./lib/escape.nix { inherit lib; };
  # Where systemd hands the chain's key to the service (LoadCredential).
  hmacKeyCredential = "/run/credentials/ghostbridge-snapshotter.service/chain-hmac-key";

  # An ExecStartPre= line creating a folder owned by root: "+" (a prefix of the
  # quoted program) runs it outside the sandbox; after "--" no path reads as an
  # option.
  installDir =
    mode: group: dir:
    "+"
    + utils.escapeSystemdExecArgs [
      "${pkgs.coreutils}/bin/install"
      "-d"
      "-m"
      mode
      "-o"
      "root"
      "-g"
      group
      "--"
      dir
    ];

  # A required path the unit also uses (mounts, writable folders); no default.
  path =
    description:
    mkOption {
      type = types.str;
      inherit description;
    };
in
{
  options.services.ghostbridge.snapshotter = {
    enable = mkEnableOption "the GhostBridge snapshotter (BTRFS snapshot chain in SQLite, D-Bus API)";

    package = mkPackageOption pkgs "ghostbridge-snapshotter" { };

    settings = mkOption {
      type = types.submodule {
        freeformType = json.type;
        options = {
          source = path "Mount point of the BTRFS subvolume that is snapshotted every `interval`. The unit waits for its mount.";
          snapshot_dir = path "Folder, on the same BTRFS file system as `source`, that receives the read-only snapshots. The unit waits for its mount, creates it (mode 0750) and may write there.";
          database = path ''
            SQLite database of the chain. The unit waits for the mount of its folder and
            creates the folder, setgid group `ghostbridge` (mode 2770): the Qdrant sync keeps
            its cursor in the same database.
          '';
          metrics_dir = import ./lib/metrics-dir.nix { inherit lib config; } "the snapshotter";

          hmac_key_file = mkOption {
            type = types.nullOr (types.strMatching "/.+");
            default = null;
            example = "/run/keys/chain-hmac-key";
            description = ''
              File on the host holding the key that seals every block (HMAC-SHA256 of its
              hash), so that a chain rewritten without the key fails
              `ghostbridge-snapshotter verify --hmac-key`. Never in the Nix store. systemd
              hands it to the service with `LoadCredential`, so it may be readable by root
              only; the rendered file names the credential (`${hmacKeyCredential}`).
            '';
          };
        };
      };
      default = { };
      example = literalExpression ''
        {
          source = "/var/lib/overlay";
          snapshot_dir = "/var/lib/blockchain-timing/snapshots";
          database = "/var/lib/blockchain-timing/chain.db";
          interval = "1s";
          retention = "1m";
        }
      '';
      description = ''
        The snapshotter's configuration, rendered as the JSON file that
        `ghostbridge-snapshotter run --config` reads. The keys are the daemon's own
        (README, *Snapshotter*, *Config*): `source`, `snapshot_dir` and `database`
        are required; a key left out takes the daemon's default (`interval`,
        `retention`, `dbus`). The daemon validates the file at build time
        ({option}`services.ghostbridge.snapshotter.checkConfig`).
      '';
    };

    inherit
      (import ./lib/daemon-options.nix { inherit lib pkgs; } {
        name = "ghostbridge-snapshotter";
        path = "services.ghostbridge.snapshotter";
        cfg = snap;
        verb = "run";
        # A key file left out is not rendered (the daemon's default: no key).
        settings =
          builtins.removeAttrs settings [ "hmac_key_file" ]
          // lib.optionalAttrs (settings.hmac_key_file != null) { hmac_key_file = hmacKeyCredential; };
        settingsChange = "with `hmac_key_file` naming the systemd credential";
      })
      checkConfig
      configFile
      ;
  };

  config = mkIf (cfg.enable && snap.enable) {
    users.groups.ghostbridge = { };
    environment.systemPackages = [ snap.package ];
    services.dbus.packages = [ dbusPolicy ];

    systemd.services.ghostbridge-snapshotter = {
      description = "GhostBridge snapshotter (BTRFS snapshot chain)";
      wantedBy = [ "multi-user.target" ];
      after = [
        "local-fs.target"
        "dbus.service"
      ];
      unitConfig.RequiresMountsFor = map escape.unitPath [
        settings.source
        settings.snapshot_dir
        dbDir
      ];
      serviceConfig = hardening // {
        Type = "notify";
        NotifyAccess = "main";
        # Outside the sandbox, so that the read-write paths exist even when the
        # file system was mounted after systemd-tmpfiles ran.
        ExecStartPre = [
          (installDir "2770" "ghostbridge" dbDir)
          (installDir "0750" "root" settings.snapshot_dir)
        ];
        ExecStart = utils.escapeSystemdExecArgs [
          "${snap.package}/bin/ghostbridge-snapshotter"
          "run"
          "--config"
          "${snap.configFile}"
        ];
        WatchdogSec = "10s";
        # Real-time priority 1: ticks stay on time on a loaded machine (p99
        # lateness 0.2 ms instead of 56 ms with two busy processes; see README).
        CPUSchedulingPolicy = "fifo";
        CPUSchedulingPriority = 1;
        RestrictRealtime = false;
        Restart = "always";
        RestartSec = "1s";
        LoadCredential = lib.optionals (settings.hmac_key_file != null) [
          "chain-hmac-key:${escape.unitCredentialPath settings.hmac_key_file}"
        ];
        # Root (BTRFS snapshot create/delete ioctls), but only with the capabilities they need.
        User = "root";
        Group = "ghostbridge";
        # The database and its -wal/-shm files stay writable for the group (the Qdrant sync).
        UMask = "0007";
        CapabilityBoundingSet = [
          "CAP_SYS_ADMIN"
          "CAP_DAC_OVERRIDE"
          "CAP_DAC_READ_SEARCH"
          "CAP_FOWNER"
        ];
        ReadWritePaths = map escape.unitPath (
          [
            settings.snapshot_dir
            dbDir
          ]
          ++ optional (settings.metrics_dir != null) settings.metrics_dir
        );
        PrivateDevices = true;
        PrivateNetwork = true;
        ProtectKernelTunables = true;
        ProtectHostname = true;
        RestrictNamespaces = true;
        MemoryDenyWriteExecute = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        SystemCallFilter = [ "@system-service" ];
      };
    };
  };
}

# The 1-second snapshotter: read-only BTRFS snapshots of a source subvolume,
# each recorded as a block of a hash chain in SQLite, with a D-Bus API
# (org.ghostbridge.Snapshotter) on the system bus.
{
  config,
  lib,
  pkgs,
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
    hasPrefix
    ;
  cfg = config.services.ghostbridge;
  snap = cfg.snapshotter;
  duration = types.strMatching "[1-9][0-9]*(ms|s|m|h|d)";
  metricsDir = if cfg.monitoring.enable then cfg.monitoring.textfileDir else null;
  dbDir = dirOf snap.database;

  # Milliseconds of a duration string, for the retention >= interval check.
  toMillis =
    d:
    let
      m = builtins.match "([0-9]+)(ms|s|m|h|d)" d;
      n = lib.toInt (builtins.head m);
      unit = builtins.elemAt m 1;
      scale = {
        ms = 1;
        s = 1000;
        m = 60000;
        h = 3600000;
        d = 86400000;
      };
    in
    n * scale.${unit};

  # The daemon's JSON config (contract: snake_case keys, unknown keys rejected).
  settings = {
    source = snap.source;
    snapshot_dir = snap.snapshotDir;
    database = snap.database;
    interval = snap.interval;
    retention = snap.retention;
    metrics_dir = metricsDir;
    dbus = true;
  };
  configFile = (pkgs.formats.json { }).generate "ghostbridge-snapshotter.json" settings;

  # Only root may own the name; anyone may call it, read its properties and
  # receive its signals. The file is the one the D-Bus tests check.
  dbusPolicy = pkgs.writeTextDir "share/dbus-1/system.d/org.ghostbridge.Snapshotter.conf" (
    builtins.readFile ../src/bus/org.ghostbridge.Snapshotter.conf
  );
  hardening = import ./lib/hardening.nix;
in
{
  options.services.ghostbridge.snapshotter = {
    enable = mkEnableOption "the GhostBridge snapshotter (BTRFS snapshot chain in SQLite, D-Bus API)";

    package = mkPackageOption pkgs "ghostbridge-snapshotter" { };

    source = mkOption {
      type = types.str;
      default = "/var/lib/overlay";
      description = "BTRFS subvolume that is snapshotted every interval.";
    };

    snapshotDir = mkOption {
      type = types.str;
      default = "/var/lib/blockchain-timing/snapshots";
      description = "Directory, on the same BTRFS file system as the source, that receives the read-only snapshots.";
    };

    database = mkOption {
      type = types.str;
      default = "/var/lib/blockchain-timing/chain.db";
      description = ''
        SQLite database holding the chain. Its folder is shared with the Qdrant sync
        (group `ghostbridge`), which keeps its cursor in the same database.
        It must not live inside the snapshotted source.
      '';
    };

    interval = mkOption {
      type = duration;
      default = "1s";
      example = "500ms";
      description = "Time between snapshots: a whole number and a unit (ms, s, m, h, d).";
    };

    retention = mkOption {
      type = duration;
      default = "1m";
      example = "14d";
      description = "Snapshots older than this are deleted; their blocks stay in the chain, marked pruned.";
    };
  };

  config = mkIf (cfg.enable && snap.enable) {
    assertions = [
      {
        assertion = hasPrefix "/" snap.source && hasPrefix "/" snap.snapshotDir && hasPrefix "/" snap.database;
        message = "services.ghostbridge.snapshotter: source, snapshotDir and database must be absolute paths.";
      }
      {
        assertion = !(hasPrefix "${snap.source}/" snap.database) && !(hasPrefix "${snap.source}/" snap.snapshotDir);
        message = "services.ghostbridge.snapshotter: database (${snap.database}) and snapshotDir (${snap.snapshotDir}) must not live inside the snapshotted source ${snap.source}; put them on another subvolume such as /var/lib/blockchain-timing.";
      }
      {
        assertion = toMillis snap.retention >= toMillis snap.interval;
        message = "services.ghostbridge.snapshotter.retention (${snap.retention}) is shorter than interval (${snap.interval}): every snapshot would be pruned at once; raise retention to at least the interval.";
      }
    ];

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
      unitConfig.RequiresMountsFor = [
        snap.source
        snap.snapshotDir
        dbDir
      ];
      serviceConfig = hardening // {
        Type = "notify";
        NotifyAccess = "main";
        # "+": outside the sandbox, so that the read-write paths exist even when
        # the file system was mounted after systemd-tmpfiles ran.
        ExecStartPre = [
          "+${pkgs.coreutils}/bin/install -d -m 2770 -o root -g ghostbridge ${dbDir}"
          "+${pkgs.coreutils}/bin/install -d -m 0750 -o root -g root ${snap.snapshotDir}"
        ];
        ExecStart = "${snap.package}/bin/ghostbridge-snapshotter run --config ${configFile}";
        WatchdogSec = "10s";
        # Real-time priority 1: ticks stay on time on a loaded machine (p99
        # lateness 0.2 ms instead of 56 ms with two busy processes; see README).
        CPUSchedulingPolicy = "fifo";
        CPUSchedulingPriority = 1;
        RestrictRealtime = false;
        Restart = "always";
        RestartSec = "1s";
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
        ReadWritePaths = [
          snap.snapshotDir
          dbDir
        ] ++ optional (metricsDir != null) metricsDir;
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

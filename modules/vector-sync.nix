# The Qdrant sync: mirrors every block of the snapshot chain into a Qdrant
# collection, and (by default) runs nixpkgs' Qdrant on loopback for it.
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
    mkMerge
    types
    optional
    optionals
    ;
  cfg = config.services.ghostbridge;
  sync = cfg.vectorSync;
  duration = types.strMatching "[1-9][0-9]*(ms|s|m|h|d)";
  metricsDir = if cfg.monitoring.enable then cfg.monitoring.textfileDir else null;
  dbDir = dirOf sync.database;
  # Where systemd hands the API key to the service (LoadCredential), readable by the dynamic user only.
  apiKeyCredential = "/run/credentials/ghostbridge-qdrant-sync.service/qdrant-api-key";
  # "http://127.0.0.1:6333/..." -> [ "127.0.0.1" "6333" ]
  urlParts = builtins.match "http://([^/:]+):([0-9]+)(/.*)?" sync.url;
  loopbackHosts = [
    "127.0.0.1"
    "localhost"
    "[::1]"
  ];

  # The daemon's JSON config (contract: snake_case keys, unknown keys rejected).
  settings = {
    database = sync.database;
    url = sync.url;
    collection = sync.collection;
    dimension = sync.dimension;
    distance = sync.distance;
    batch = sync.batch;
    interval = sync.interval;
    api_key_file = if sync.apiKeyFile == null then null else apiKeyCredential;
    metrics_dir = metricsDir;
  };
  configFile = (pkgs.formats.json { }).generate "ghostbridge-qdrant-sync.json" settings;
  hardening = import ./lib/hardening.nix;
in
{
  options.services.ghostbridge.vectorSync = {
    enable = mkEnableOption "the GhostBridge Qdrant sync (every block of the snapshot chain as a Qdrant point)";

    package = mkPackageOption pkgs "ghostbridge-qdrant-sync" { };

    url = mkOption {
      type = types.str;
      default = "http://127.0.0.1:6333";
      description = "Base URL of Qdrant's REST API.";
    };

    collection = mkOption {
      type = types.str;
      default = "ghostbridge-blocks";
      description = "Qdrant collection that receives one point per block; created when missing.";
    };

    dimension = mkOption {
      type = types.ints.positive;
      default = 384;
      description = "Vector dimension of the collection (and of the embedding).";
    };

    distance = mkOption {
      type = types.enum [
        "Cosine"
        "Euclid"
        "Dot"
        "Manhattan"
      ];
      default = "Cosine";
      description = "Distance function of the collection.";
    };

    batch = mkOption {
      type = types.ints.positive;
      default = 100;
      description = "At most this many points per upsert request.";
    };

    interval = mkOption {
      type = duration;
      default = "1s";
      description = "Time between sync rounds: a whole number and a unit (ms, s, m, h, d).";
    };

    apiKeyFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/qdrant-api-key";
      description = ''
        File holding the Qdrant API key (never put the key itself in the Nix store).
        Handed to the service with systemd's `LoadCredential`, so it may be readable by root only.
      '';
    };

    database = mkOption {
      type = types.str;
      default = cfg.snapshotter.database;
      defaultText = lib.literalExpression "config.services.ghostbridge.snapshotter.database";
      description = "The snapshot chain's SQLite database; the sync keeps its cursor in it.";
    };

    localQdrant = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether to run nixpkgs' {option}`services.qdrant` on this host, bound to 127.0.0.1
        on the port of {option}`services.ghostbridge.vectorSync.url`.
      '';
    };
  };

  config = mkIf (cfg.enable && sync.enable) (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.snapshotter.enable;
          message = "services.ghostbridge.vectorSync.enable mirrors the snapshot chain, which nothing writes: set services.ghostbridge.snapshotter.enable = true (or disable vectorSync).";
        }
        {
          assertion = !sync.localQdrant || (urlParts != null && lib.elem (builtins.head urlParts) loopbackHosts);
          message = "services.ghostbridge.vectorSync.localQdrant runs Qdrant on loopback, but vectorSync.url is ${sync.url}: set url to \"http://127.0.0.1:6333\" (any port), or set localQdrant = false to use a remote Qdrant.";
        }
      ];

      users.groups.ghostbridge = { };
      environment.systemPackages = [ sync.package ];

      systemd.services.ghostbridge-qdrant-sync = {
        description = "GhostBridge Qdrant sync";
        wantedBy = [ "multi-user.target" ];
        after = [
          "network.target"
          "ghostbridge-snapshotter.service"
        ] ++ optional sync.localQdrant "qdrant.service";
        wants = [ "ghostbridge-snapshotter.service" ] ++ optional sync.localQdrant "qdrant.service";
        unitConfig.RequiresMountsFor = [ dbDir ];
        serviceConfig = hardening // {
          Type = "notify";
          NotifyAccess = "main";
          ExecStart = "${sync.package}/bin/ghostbridge-qdrant-sync run --config ${configFile}";
          WatchdogSec = "30s";
          Restart = "always";
          RestartSec = "2s";
          # The sync writes its cursor into the chain database (SQLite in WAL mode:
          # the database, its -wal and -shm files and their folder must be writable).
          # A dynamic user keeps it unprivileged; the static group `ghostbridge`
          # (the snapshotter's group, umask 0007, setgid folder) gives it exactly
          # that folder and the metrics folder, and nothing else of the snapshotter.
          DynamicUser = true;
          SupplementaryGroups = [ "ghostbridge" ];
          UMask = "0007";
          ReadWritePaths = [ dbDir ] ++ optional (metricsDir != null) metricsDir;
          LoadCredential = optionals (sync.apiKeyFile != null) [ "qdrant-api-key:${toString sync.apiKeyFile}" ];
          CapabilityBoundingSet = [ "" ];
          PrivateDevices = true;
          ProtectKernelTunables = true;
          ProtectHostname = true;
          RestrictNamespaces = true;
          MemoryDenyWriteExecute = true;
          RestrictAddressFamilies = [
            "AF_UNIX"
            "AF_INET"
            "AF_INET6"
          ];
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
          ];
        };
      };
    }

    (mkIf sync.localQdrant {
      services.qdrant.enable = true;
      services.qdrant.settings.service = {
        host = "127.0.0.1";
      }
      // lib.optionalAttrs (urlParts != null) {
        http_port = lib.toInt (builtins.elemAt urlParts 1);
      };
    })
  ]);
}

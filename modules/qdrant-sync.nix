# The Qdrant sync: mirrors every block of the snapshot chain into a Qdrant
# collection, and (by default) runs nixpkgs' Qdrant on loopback for it.
# Its settings are the daemon's own JSON keys (nixpkgs' `settings` pattern):
# the daemon defines their defaults and rules, and checks the rendered file
# at build time (`ghostbridge-qdrant-sync check-config`).
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
    mkMerge
    mkDefault
    mkForce
    mkOverride
    types
    optional
    optionals
    literalExpression
    ;
  cfg = config.services.ghostbridge;
  sync = cfg.qdrant_sync;
  settings = sync.settings;
  json = pkgs.formats.json { };
  dbDir = dirOf settings.database;
  dataDir = sync.localQdrantDataDir;
  # Where systemd hands the API key to the service (LoadCredential), readable by the dynamic user only.
  apiKeyCredential = "/run/credentials/ghostbridge-qdrant-sync.service/qdrant-api-key";
  hardening = import ./lib/hardening.nix;
  escape = import ./lib/escape.nix { inherit lib; };
in
{
  options.services.ghostbridge.qdrant_sync = {
    enable = mkEnableOption "the GhostBridge Qdrant sync (every block of the snapshot chain as a Qdrant point)";

    package = mkPackageOption pkgs "ghostbridge-qdrant-sync" { };

    settings = mkOption {
      type = types.submodule {
        freeformType = json.type;
        options = {
          database = mkOption {
            type = types.str;
            default = cfg.snapshotter.settings.database;
            defaultText = literalExpression "config.services.ghostbridge.snapshotter.settings.database";
            description = ''
              The snapshot chain's SQLite database; the sync keeps its cursor in it. The unit
              may write its folder (group `ghostbridge`) and waits for its mount.
            '';
          };

          api_key_file = mkOption {
            type = types.nullOr (types.strMatching "/.+");
            default = null;
            example = "/run/secrets/qdrant-api-key";
            description = ''
              File on the host holding the Qdrant API key (never put the key itself in the
              Nix store). systemd hands it to the service with `LoadCredential`, so it may be
              readable by root only; the rendered file names the credential
              (`${apiKeyCredential}`), not this path.
            '';
          };

          metrics_dir = import ./lib/metrics-dir.nix { inherit lib config; } "the Qdrant sync";
        };
      };
      default = { };
      example = literalExpression ''
        {
          url = "http://127.0.0.1:6333";
          collection = "ghostbridge-blocks";
          dimension = 384;
          batch = 100;
        }
      '';
      description = ''
        The Qdrant sync's configuration, rendered as the JSON file that
        `ghostbridge-qdrant-sync run --config` reads. The keys are the daemon's own
        (README, *Qdrant sync*, *Configuration*); a key left out takes the daemon's
        default. With {option}`services.ghostbridge.qdrant_sync.localQdrant`, `url`
        defaults to the local Qdrant. The daemon validates the file at build time
        ({option}`services.ghostbridge.qdrant_sync.checkConfig`).
      '';
    };

    localQdrant = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether to run nixpkgs' {option}`services.qdrant` on this host (loopback by
        nixpkgs' default) and point `settings.url` at its REST port
        ({option}`services.qdrant.settings.service.http_port`) unless `settings.url` is set.
        `false`: use a Qdrant elsewhere, named by `settings.url`.
      '';
    };

    localQdrantDataDir = mkOption {
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/var/lib/blockchain-vectors";
      description = ''
        Folder of the local Qdrant's data (typically the mount point of its own
        subvolume): {option}`services.qdrant.settings` `storage.storage_path` becomes
        `DIR/storage` and `storage.snapshots_path` `DIR/snapshots` (at priority 900: over
        nixpkgs' `mkDefault` under /var/lib/qdrant, under a plain definition). nixpkgs'
        Qdrant runs with `DynamicUser`, whose files outside its `StateDirectory` would keep
        a UID that may not be its next one; with this folder it runs as the static system
        user `qdrant` instead, under `ProtectSystem=strict` with only this folder (and
        its StateDirectory) writable, after the folder's mount (`RequiresMountsFor`), and
        tmpfiles creates the three folders `0750 qdrant:qdrant`. `null`: nixpkgs' default
        (/var/lib/qdrant). Only with {option}`services.ghostbridge.qdrant_sync.localQdrant`.
      '';
    };

    inherit
      (import ./lib/daemon-options.nix { inherit lib pkgs; } {
        name = "ghostbridge-qdrant-sync";
        path = "services.ghostbridge.qdrant_sync";
        cfg = sync;
        verb = "run";
        settings = settings // {
          api_key_file = if settings.api_key_file == null then null else apiKeyCredential;
        };
        settingsChange = "with `api_key_file` naming the systemd credential";
      })
      checkConfig
      configFile
      ;
  };

  config = mkIf (cfg.enable && sync.enable) (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.snapshotter.enable;
          message = "services.ghostbridge.qdrant_sync.enable mirrors the snapshot chain, which nothing writes: set services.ghostbridge.snapshotter.enable = true (or disable qdrant_sync).";
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
        ]
        ++ optional sync.localQdrant "qdrant.service";
        wants = [ "ghostbridge-snapshotter.service" ] ++ optional sync.localQdrant "qdrant.service";
        unitConfig.RequiresMountsFor = [ (escape.unitPath dbDir) ];
        serviceConfig = hardening // {
          Type = "notify";
          NotifyAccess = "main";
          ExecStart = utils.escapeSystemdExecArgs [
            "${sync.package}/bin/ghostbridge-qdrant-sync"
            "run"
            "--config"
            "${sync.configFile}"
          ];
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
          ReadWritePaths = map escape.unitPath (
            [ dbDir ] ++ optional (settings.metrics_dir != null) settings.metrics_dir
          );
          LoadCredential = optionals (settings.api_key_file != null) [
            "qdrant-api-key:${escape.unitCredentialPath settings.api_key_file}"
          ];
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
      # nixpkgs' Qdrant listens on 127.0.0.1 (its default service.host).
      services.qdrant.enable = true;
      services.ghostbridge.qdrant_sync.settings.url = mkDefault "http://127.0.0.1:${toString config.services.qdrant.settings.service.http_port}";
    })

    (mkIf (sync.localQdrant && dataDir != null) {
      services.qdrant.settings.storage = {
        storage_path = mkOverride 900 "${dataDir}/storage";
        snapshots_path = mkOverride 900 "${dataDir}/snapshots";
      };

      users.users.qdrant = {
        isSystemUser = true;
        group = "qdrant";
        description = "Qdrant vector database";
      };
      users.groups.qdrant = { };

      systemd.tmpfiles.rules = map (dir: "d ${escape.tmpfilesPath dir} 0750 qdrant qdrant -") [
        dataDir
        "${dataDir}/storage"
        "${dataDir}/snapshots"
      ];

      systemd.services.qdrant = {
        unitConfig.RequiresMountsFor = [ (escape.unitPath dataDir) ];
        serviceConfig = {
          # nixpkgs sets DynamicUser = true, which also implies ProtectSystem=strict.
          DynamicUser = mkForce false;
          User = "qdrant";
          Group = "qdrant";
          ProtectSystem = "strict";
          ReadWritePaths = [ (escape.unitPath dataDir) ];
        };
      };
    })
  ]);
}

# Monitoring: Prometheus scraping node exporter, whose textfile collector
# reads the metrics files the GhostBridge daemons write, and Grafana with a
# provisioned Prometheus data source and a GhostBridge dashboard.
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
    mkIf
    mkMerge
    mkDefault
    types
    ;
  cfg = config.services.ghostbridge;
  mon = cfg.monitoring;

  escape = import ./lib/escape.nix { inherit lib; };

  dashboards = pkgs.runCommand "ghostbridge-grafana-dashboards" { } ''
    mkdir -p "$out"
    cp ${lib.escapeShellArg "${./grafana/ghostbridge.json}"} "$out/ghostbridge.json"
  '';
  grafanaSecretKey = "${config.services.grafana.dataDir}/ghostbridge-secret-key";
in
{
  options.services.ghostbridge.monitoring = {
    enable = mkEnableOption "Prometheus with node exporter (textfile collector for the GhostBridge daemons)";

    prometheus.port = mkOption {
      type = types.port;
      default = 9090;
      description = "Port of Prometheus (bound to 127.0.0.1).";
    };

    nodeExporter.port = mkOption {
      type = types.port;
      default = 9100;
      description = "Port of node exporter (bound to 127.0.0.1).";
    };

    textfileDir = mkOption {
      type = types.str;
      default = "/var/lib/prometheus-node-exporter-text";
      description = ''
        Node exporter's textfile collector directory. The GhostBridge daemons write
        their `*.prom` files here (it is passed to them as `metrics_dir`).
      '';
    };

    grafana = {
      enable = mkEnableOption "Grafana with a Prometheus data source and the GhostBridge dashboard";

      port = mkOption {
        type = types.port;
        default = 3000;
        description = "Port of Grafana (bound to 127.0.0.1; reach it through an SSH tunnel or a reverse proxy).";
      };
    };
  };

  config = mkIf (cfg.enable && mon.enable) (mkMerge [
    {
      assertions = [
        {
          assertion = lib.hasPrefix "/" mon.textfileDir;
          message = "services.ghostbridge.monitoring.textfileDir must be an absolute path; got ${mon.textfileDir}.";
        }
        {
          assertion = mon.prometheus.port != mon.nodeExporter.port;
          message = "services.ghostbridge.monitoring.prometheus.port and nodeExporter.port are both ${toString mon.prometheus.port}: give them different ports.";
        }
      ];

      users.groups.ghostbridge = { };
      # Written by the daemons (root, or the group ghostbridge), read by node exporter.
      # (Not systemd.tmpfiles.settings: nixpkgs writes its paths in single quotes
      # without escaping them.)
      systemd.tmpfiles.rules = [ "d ${escape.tmpfilesPath mon.textfileDir} 2775 root ghostbridge -" ];

      services.prometheus = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = mon.prometheus.port;
        globalConfig.scrape_interval = "15s";
        scrapeConfigs = [
          {
            job_name = "node";
            static_configs = [ { targets = [ "127.0.0.1:${toString mon.nodeExporter.port}" ]; } ];
          }
        ];
      };

      services.prometheus.exporters.node = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = mon.nodeExporter.port;
        enabledCollectors = [
          "systemd"
          "textfile"
        ];
        # nixpkgs appends extraFlags to ExecStart= as they are.
        extraFlags = [ (utils.escapeSystemdExecArg "--collector.textfile.directory=${mon.textfileDir}") ];
      };
    }

    (mkIf mon.grafana.enable {
      assertions = [
        {
          assertion = !(lib.elem mon.grafana.port [
            mon.prometheus.port
            mon.nodeExporter.port
          ]);
          message = "services.ghostbridge.monitoring.grafana.port (${toString mon.grafana.port}) collides with the Prometheus or node exporter port: choose another.";
        }
      ];

      services.grafana = {
        enable = true;
        settings = {
          server = {
            http_addr = "127.0.0.1";
            http_port = mon.grafana.port;
          };
          analytics.reporting_enabled = false;
          # A per-host key, generated on first start and never stored in the Nix store.
          security.secret_key = mkDefault "$__file{${grafanaSecretKey}}";
        };
        provision = {
          enable = true;
          datasources.settings = {
            apiVersion = 1;
            datasources = [
              {
                name = "Prometheus";
                type = "prometheus";
                uid = "ghostbridge-prometheus";
                access = "proxy";
                url = "http://127.0.0.1:${toString mon.prometheus.port}";
                isDefault = true;
              }
            ];
          };
          dashboards.settings = {
            apiVersion = 1;
            providers = [
              {
                name = "ghostbridge";
                options.path = dashboards;
              }
            ];
          };
        };
      };

      systemd.services.grafana.preStart = lib.mkBefore ''
        if [ ! -s ${lib.escapeShellArg grafanaSecretKey} ]; then
          (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > ${lib.escapeShellArg grafanaSecretKey})
        fi
      '';
    })
  ]);
}

# `ghostbridge-doctor`: checks, on demand, that the host runs as its spec
# promised (units active, no OVS drift, a valid chain, Qdrant lag, free disk,
# SSH). Not a service: the program is on PATH and reads
# /etc/ghostbridge/doctor.json, which this module renders from what the host
# enables. Its settings are the doctor's own JSON keys (nixpkgs' `settings`
# pattern): the module fills `units`, the daemons' config files and
# `ssh_port` (each mkDefault, so a host's plain definition wins); the bounds
# (`max_sync_lag`, `min_free_bytes`, `max_live_snapshots`) keep the program's
# defaults unless the host sets them. The file is checked at build time
# (`ghostbridge-doctor check-config`).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkPackageOption
    mkIf
    mkDefault
    types
    optional
    optionals
    literalExpression
    ;
  cfg = config.services.ghostbridge;
  doc = cfg.doctor;
  ssh = config.services.openssh;
  virt = cfg.virtualization;
  op = cfg.opDbus;
  json = pkgs.formats.json { };

  daemonOptions = import ./lib/daemon-options.nix { inherit lib pkgs; } {
    name = "ghostbridge-doctor";
    path = "services.ghostbridge.doctor";
    cfg = doc;
    # Only for configFile's description, which is replaced below: no unit runs the doctor.
    verb = "check-config";
    catches = "a relative config path, a malformed unit name";
  };

  # The units the GhostBridge modules start on this host and that stay active
  # (the host VM check waits for the same ones, checks/host.nix): the
  # daemons, the nixpkgs services the modules turn on for them, SSH.
  units =
    optionals cfg.ovs.enable [
      # nixpkgs' virtualisation/openvswitch.nix
      "ovsdb.service"
      "ovs-vswitchd.service"
      "ghostbridge-ovs.service"
    ]
    ++ [ "systemd-networkd.service" ]
    ++ optional ssh.enable "sshd.service"
    ++ optional cfg.snapshotter.enable "ghostbridge-snapshotter.service"
    ++ optionals cfg.qdrant_sync.enable (
      [ "ghostbridge-qdrant-sync.service" ] ++ optional cfg.qdrant_sync.localQdrant "qdrant.service"
    )
    ++ optionals cfg.monitoring.enable [
      "prometheus.service"
      "prometheus-node-exporter.service"
    ]
    ++ optional (cfg.monitoring.enable && cfg.monitoring.grafana.enable) "grafana.service"
    # nixpkgs socket-activates libvirtd, whose service exits when idle.
    ++ optional virt.libvirt.enable "libvirtd.socket"
    ++ optional (
      virt.libvirt.enable && virt.libvirt.ovsNetworks != { }
    ) "ghostbridge-libvirt-networks.service"
    ++ optional virt.docker.enable "docker.service"
    ++ optional virt.novnc.enable "ghostbridge-novnc.service"
    ++ optionals (op.enable && op.package != null) (
      [ "op-dbus.service" ]
      ++ optional op.mcp.enable "op-dbus-mcp.service"
      ++ optional op.web.enable "op-dbus-web.service"
    );

  # A daemon's rendered (and checked) config file, when the daemon runs here.
  daemonConfig = daemon: mkIf cfg.${daemon}.enable (mkDefault "${cfg.${daemon}.configFile}");
in
{
  options.services.ghostbridge.doctor = {
    enable = mkOption {
      type = types.bool;
      default = cfg.enable;
      defaultText = literalExpression "config.services.ghostbridge.enable";
      example = false;
      description = ''
        Whether to put `ghostbridge-doctor` on PATH with its config in
        {file}`/etc/ghostbridge/doctor.json` (the file it reads by default), so that
        `ghostbridge-doctor` checks the host against what its spec enables.
      '';
    };

    package = mkPackageOption pkgs "ghostbridge-doctor" { };

    settings = mkOption {
      type = types.submodule { freeformType = json.type; };
      default = { };
      example = literalExpression ''
        {
          max_sync_lag = 100;
          min_free_bytes = 10 * 1024 * 1024 * 1024;
        }
      '';
      description = ''
        The doctor's configuration, rendered as {file}`/etc/ghostbridge/doctor.json`.
        The keys are the program's own. The module sets, each with `mkDefault`:
        `units` (the units the GhostBridge modules start here, e.g.
        `ghostbridge-snapshotter.service`, `qdrant.service` with the local Qdrant,
        `sshd.service`), `snapshotter`, `ovs` and `qdrant_sync` (the
        {option}`configFile` of each daemon that is enabled; left out otherwise) and
        `ssh_port` (the first of {option}`services.openssh.ports`) and `tcp_ports`
        (the firewall's {option}`networking.firewall.allowedTCPPorts`). A key left out
        takes the program's default (`max_sync_lag`, `min_free_bytes`,
        `max_live_snapshots`). The program validates the file at build time
        ({option}`services.ghostbridge.doctor.checkConfig`).
      '';
    };

    inherit (daemonOptions) checkConfig;

    configFile = daemonOptions.configFile // {
      description = "The file installed as {file}`/etc/ghostbridge/doctor.json`, which `ghostbridge-doctor` reads by default; read-only, for checks and tools.";
    };
  };

  config = mkIf (cfg.enable && doc.enable) {
    services.ghostbridge.doctor.settings = {
      units = mkDefault units;
      snapshotter = daemonConfig "snapshotter";
      ovs = daemonConfig "ovs";
      qdrant_sync = daemonConfig "qdrant_sync";
      ssh_port = mkIf (ssh.enable && ssh.ports != [ ]) (mkDefault (lib.head ssh.ports));
      # Exactly what the firewall opens on every interface.
      tcp_ports = mkIf config.networking.firewall.enable (
        mkDefault (lib.unique config.networking.firewall.allowedTCPPorts)
      );
    };

    environment.etc."ghostbridge/doctor.json".source = doc.configFile;
    environment.systemPackages = [ doc.package ];
  };
}

# The OVS reconciler: a oneshot that converges Open vSwitch to the bridges in
# `services.ghostbridge.network.bridges` after ovsdb and ovs-vswitchd are up
# and before systemd-networkd configures the bridges' interfaces.
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
    types
    mapAttrsToList
    optional
    ;
  cfg = config.services.ghostbridge;
  ovs = cfg.ovs;
  metricsDir = if cfg.monitoring.enable then cfg.monitoring.textfileDir else null;

  # The reconciler's JSON config (contract: snake_case keys, unknown keys rejected).
  settings = {
    db = "unix:/run/openvswitch/db.sock";
    metrics_dir = metricsDir;
    bridges = mapAttrsToList (name: b: {
      inherit name;
      datapath_type = b.datapathType;
      uplink = b.uplink;
      ports = b.ports;
      internal_ports = b.internalPorts;
      drop_uplink_broadcast = b.dropUplinkBroadcast;
      extra_flows = b.extraFlows;
    }) cfg.network.bridges;
  };
  configFile = (pkgs.formats.json { }).generate "ghostbridge-ovs.json" settings;
  hardening = import ./lib/hardening.nix;
in
{
  options.services.ghostbridge.ovs = {
    enable = mkOption {
      type = types.bool;
      default = cfg.network.bridges != { };
      defaultText = lib.literalExpression "config.services.ghostbridge.network.bridges != { }";
      description = ''
        Whether to run Open vSwitch and the GhostBridge OVS reconciler
        (`ghostbridge-ovs apply`) for {option}`services.ghostbridge.network.bridges`.
      '';
    };

    package = mkPackageOption pkgs "ghostbridge-ovs" { };
  };

  config = mkIf (cfg.enable && ovs.enable) {
    assertions = [
      {
        assertion = cfg.network.bridges != { };
        message = "services.ghostbridge.ovs.enable is true but services.ghostbridge.network.bridges is empty: declare at least one bridge, or set services.ghostbridge.ovs.enable = false.";
      }
    ];

    virtualisation.vswitch.enable = true;
    environment.systemPackages = [ ovs.package ];

    systemd.services.ghostbridge-ovs = {
      description = "GhostBridge Open vSwitch reconciler";
      # Unit names from nixpkgs' virtualisation/openvswitch.nix.
      after = [
        "ovsdb.service"
        "ovs-vswitchd.service"
      ];
      requires = [
        "ovsdb.service"
        "ovs-vswitchd.service"
      ];
      before = [ "systemd-networkd.service" ];
      wantedBy = [
        "network.target"
        "multi-user.target"
      ];
      # ovs-ofctl for the flow tables.
      path = [ config.virtualisation.vswitch.package ];
      serviceConfig = hardening // {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${ovs.package}/bin/ghostbridge-ovs apply --config ${configFile}";
        # Root for the OVSDB socket; CAP_NET_ADMIN for the ethtool offload settings.
        CapabilityBoundingSet = [
          "CAP_NET_ADMIN"
          "CAP_NET_RAW"
        ];
        ReadWritePaths = [ "/run/openvswitch" ] ++ optional (metricsDir != null) metricsDir;
        ProtectHostname = true;
        RestrictNamespaces = true;
        MemoryDenyWriteExecute = true;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_NETLINK"
          "AF_INET"
          "AF_INET6"
        ];
        SystemCallFilter = [ "@system-service" ];
      };
    };
  };
}

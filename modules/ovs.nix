# The OVS reconciler: a oneshot that converges Open vSwitch to
# `services.ghostbridge.ovs.settings.bridges` after ovsdb and ovs-vswitchd
# are up and before systemd-networkd configures the bridges' interfaces.
# Its settings are the daemon's own JSON keys (nixpkgs' `settings` pattern):
# the daemon defines their defaults and rules, and checks the rendered file
# at build time (`ghostbridge-ovs check-config`).
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
    mkPackageOption
    mkIf
    types
    optional
    literalExpression
    ;
  cfg = config.services.ghostbridge;
  ovs = cfg.ovs;
  settings = ovs.settings;
  json = pkgs.formats.json { };
  hardening = import ./lib/hardening.nix;
  escape = import ./lib/escape.nix { inherit lib; };

  # One element of `bridges`: the daemon's keys; only `name` is read here
  # (network.nix and virtualization.nix read the others with `or`, absence
  # meaning the daemon's default).
  bridgeModule = {
    freeformType = json.type;
    options.name = mkOption {
      type = types.str;
      example = "ovsbr0";
      description = ''
        Name of the bridge, which is also the name of its own internal interface
        (the one {option}`services.ghostbridge.network.bridges` addresses).
      '';
    };
  };
in
{
  options.services.ghostbridge.ovs = {
    enable = mkOption {
      type = types.bool;
      default = settings.bridges != [ ];
      defaultText = literalExpression "config.services.ghostbridge.ovs.settings.bridges != [ ]";
      description = ''
        Whether to run Open vSwitch and the GhostBridge OVS reconciler
        (`ghostbridge-ovs apply`) for {option}`services.ghostbridge.ovs.settings.bridges`.
      '';
    };

    package = mkPackageOption pkgs "ghostbridge-ovs" { };

    settings = mkOption {
      type = types.submodule {
        freeformType = json.type;
        options = {
          bridges = mkOption {
            type = types.listOf (types.submodule bridgeModule);
            default = [ ];
            example = literalExpression ''
              [
                { name = "ovsbr0"; uplink = "enp1s0"; ports = [ "vnet0" ]; internal_ports = [ "ovsbr0-mgmt" ]; }
                { name = "ovsbr1"; drop_uplink_broadcast = false; }
              ]
            '';
            description = ''
              The Open vSwitch bridges, with the daemon's keys (README, *Open vSwitch
              reconciler*, *Config*): `name`, `datapath_type`, `uplink`, `ports`,
              `internal_ports`, `drop_uplink_broadcast`, `extra_flows`; a key left out
              takes the daemon's default. systemd-networkd keeps the uplink and the ports
              up without addresses; {option}`services.ghostbridge.network.bridges`
              addresses the bridge's own interface.
            '';
          };
          metrics_dir = import ./lib/metrics-dir.nix { inherit lib config; } "the OVS reconciler";
        };
      };
      default = { };
      description = ''
        The OVS reconciler's configuration, rendered as the JSON file that
        `ghostbridge-ovs apply --config` reads. The keys are the daemon's own; a key
        left out takes the daemon's default (e.g. `ovsdb`, the OVSDB socket of
        nixpkgs' Open vSwitch). The daemon validates the file at build time
        ({option}`services.ghostbridge.ovs.checkConfig`).
      '';
    };

    inherit
      (import ./lib/daemon-options.nix { inherit lib pkgs; } {
        name = "ghostbridge-ovs";
        path = "services.ghostbridge.ovs";
        cfg = ovs;
        verb = "apply";
        catches = "a duplicate or too long interface name, an uplink also listed in ports, a malformed flow";
        tools = [ "status" ];
      })
      checkConfig
      configFile
      ;
  };

  config = mkIf (cfg.enable && ovs.enable) {
    assertions = [
      {
        assertion = settings.bridges != [ ];
        message = "services.ghostbridge.ovs.enable is true but services.ghostbridge.ovs.settings.bridges is empty: declare at least one bridge, or set services.ghostbridge.ovs.enable = false.";
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
        ExecStart = utils.escapeSystemdExecArgs [
          "${ovs.package}/bin/ghostbridge-ovs"
          "apply"
          "--config"
          "${ovs.configFile}"
        ];
        # Root for the OVSDB socket; CAP_NET_ADMIN for the ethtool offload settings.
        CapabilityBoundingSet = [
          "CAP_NET_ADMIN"
          "CAP_NET_RAW"
        ];
        ReadWritePaths = map escape.unitPath (
          [ "/run/openvswitch" ] ++ optional (settings.metrics_dir != null) settings.metrics_dir
        );
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

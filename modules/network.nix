# Open vSwitch bridges and their addresses. The bridges themselves are created
# by the OVS reconciler (ovs.nix); systemd-networkd only addresses each
# bridge's own internal interface (which carries the bridge's name) and keeps
# the uplink and the other ports up without any IP configuration.
{
  config,
  lib,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    types
    optional
    concatMap
    mapAttrsToList
    listToAttrs
    nameValuePair
    ;
  cfg = config.services.ghostbridge;
  bridges = cfg.network.bridges;

  bridgeModule =
    { name, ... }:
    {
      options = {
        datapathType = mkOption {
          type = types.enum [
            "system"
            "netdev"
          ];
          default = "system";
          description = ''
            OVS datapath of bridge `${name}`: `system` is the kernel datapath (hosts),
            `netdev` the userspace datapath (where the openvswitch kernel module is unavailable).
          '';
        };

        uplink = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "enp1s0";
          description = ''
            Physical NIC that connects bridge `${name}` to the outside network. It gets no IP
            configuration of its own, its hardware offloads are turned off, and (with
            `dropUplinkBroadcast`) broadcast and multicast arriving on it are dropped.
            `null` makes an internal-only bridge.
          '';
        };

        ports = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "vnet0" ];
          description = "Other existing interfaces added to bridge `${name}` as ports (not the uplink).";
        };

        internalPorts = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "${name}-mgmt" ];
          description = "Extra OVS internal ports created on bridge `${name}` (the bridge's own internal interface always exists).";
        };

        dhcp = mkOption {
          type = types.bool;
          default = false;
          description = "Whether the bridge's own interface `${name}` takes its address by DHCP.";
        };

        addresses = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "10.10.0.1/24" ];
          description = "Static addresses in CIDR form on the bridge's own interface `${name}`.";
        };

        gateway = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "203.0.113.1";
          description = "Default gateway reached through bridge `${name}`.";
        };

        dns = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "9.9.9.9" ];
          description = "DNS servers used through bridge `${name}`.";
        };

        dropUplinkBroadcast = mkOption {
          type = types.bool;
          default = true;
          description = "Whether to install OpenFlow rules on `${name}` that drop Ethernet broadcast and multicast arriving on the uplink.";
        };

        extraFlows = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "priority=100,ip,nw_dst=10.10.0.0/24,actions=normal" ];
          description = "`ovs-ofctl` flow strings added to bridge `${name}` after the generated flows.";
        };
      };
    };

  # Interfaces enslaved to a bridge: no addresses, no link-local, no RA, just up.
  portInterfaces = b: optional (b.uplink != null) b.uplink ++ b.ports ++ b.internalPorts;
  allPorts = concatMap portInterfaces (lib.attrValues bridges);
  allNames = lib.attrNames bridges ++ allPorts;
  duplicates = lib.unique (lib.filter (n: lib.count (m: m == n) allNames > 1) allNames);
  tooLong = lib.filter (n: lib.stringLength n > 15) allNames;

  bridgeNetworks = mapAttrsToList (
    name: b:
    nameValuePair "30-ghostbridge-${name}" {
      matchConfig.Name = name;
      address = b.addresses;
      gateway = optional (b.gateway != null) b.gateway;
      dns = b.dns;
      networkConfig = {
        DHCP = if b.dhcp then "yes" else "no";
        IPv6AcceptRA = b.dhcp;
      };
      linkConfig.RequiredForOnline = if b.dhcp || b.addresses != [ ] then "routable" else "no";
    }
  ) bridges;

  portNetworks = concatMap (
    b:
    map (
      iface:
      nameValuePair "20-ghostbridge-port-${iface}" {
        matchConfig.Name = iface;
        networkConfig = {
          DHCP = "no";
          LinkLocalAddressing = "no";
          IPv6AcceptRA = false;
        };
        linkConfig = {
          ActivationPolicy = "up";
          RequiredForOnline = "no";
        };
      }
    ) (portInterfaces b)
  ) (lib.attrValues bridges);
in
{
  options.services.ghostbridge.network.bridges = mkOption {
    type = types.attrsOf (types.submodule bridgeModule);
    default = { };
    example = lib.literalExpression ''
      {
        ovsbr0 = { uplink = "enp1s0"; dhcp = true; };
        ovsbr1 = { addresses = [ "10.10.0.1/24" ]; dropUplinkBroadcast = false; };
      }
    '';
    description = ''
      Open vSwitch bridges, by name (at most 15 bytes). The OVS reconciler creates them,
      with their uplink, ports, internal ports and flows; systemd-networkd addresses the
      bridge's own internal interface.
    '';
  };

  config = mkIf (cfg.enable && bridges != { }) {
    assertions =
      mapAttrsToList (name: b: {
        assertion = b.uplink == null || !(lib.elem b.uplink b.ports);
        message = "services.ghostbridge.network.bridges.${name}: the uplink \"${toString b.uplink}\" is also listed in ports; remove it from ports (the uplink is always a port).";
      }) bridges
      ++ mapAttrsToList (name: b: {
        assertion = lib.all (a: builtins.match "[^/]+/[0-9]+" a != null) b.addresses;
        message = "services.ghostbridge.network.bridges.${name}.addresses must be in CIDR form like \"10.10.0.1/24\"; got ${builtins.toJSON b.addresses}.";
      }) bridges
      ++ mapAttrsToList (name: b: {
        assertion = b.gateway == null || b.dhcp || b.addresses != [ ];
        message = "services.ghostbridge.network.bridges.${name}.gateway is set but the bridge has no address: add an address in CIDR form to addresses, or set dhcp = true.";
      }) bridges
      ++ [
        {
          assertion = duplicates == [ ];
          message = "services.ghostbridge.network.bridges: ${lib.concatStringsSep ", " duplicates} used more than once; each bridge, uplink, port and internal port must appear exactly once.";
        }
        {
          assertion = tooLong == [ ];
          message = "services.ghostbridge.network.bridges: interface names longer than 15 bytes: ${lib.concatStringsSep ", " tooLong}; Linux refuses them, shorten them.";
        }
      ];

    systemd.network.networks = listToAttrs (bridgeNetworks ++ portNetworks);
  };
}

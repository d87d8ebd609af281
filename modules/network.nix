# systemd-networkd for the Open vSwitch bridges and plain interfaces. The
# bridges themselves, with their uplink, ports and flows, are
# `services.ghostbridge.ovs.settings.bridges` (created by the OVS reconciler,
# ovs.nix); here systemd-networkd addresses each bridge's own internal
# interface (which carries the bridge's name), keeps the uplink and the other
# ports up without any IP configuration, and addresses the plain interfaces
# (NICs outside Open vSwitch) of `network.interfaces`.
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
  addressing = cfg.network.bridges;
  plain = cfg.network.interfaces;
  ovsBridges = cfg.ovs.settings.bridges;
  ovsNames = map (b: b.name) ovsBridges;
  # networkd reads these settings verbatim to the end of the line.
  escape = import ./lib/escape.nix { inherit lib; };
  networkd = escape.line "a systemd-networkd setting";

  # The IP configuration of one link (a bridge's own interface or a plain NIC).
  linkModule =
    { name, ... }:
    {
      options = {
        dhcp = mkOption {
          type = types.bool;
          default = false;
          description = "Whether interface `${name}` takes its address by DHCP (IPv4, and IPv6 router advertisements).";
        };

        addresses = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "10.10.0.1/24" ];
          description = "Static addresses in CIDR form on interface `${name}`.";
        };

        gateway = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "203.0.113.1"
            "fe80::1"
          ];
          description = "Default gateways reached through interface `${name}`: at most one IPv4 and one IPv6 address (a link-local IPv6 one such as `fe80::1` is reached on the link).";
        };

        dns = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "9.9.9.9" ];
          description = "DNS servers used through interface `${name}`.";
        };
      };
    };

  # What networkd does with an addressed link.
  linkNetwork = name: b: {
    matchConfig.Name = networkd name;
    address = map networkd b.addresses;
    # Each gateway as a route marked on-link: a Hetzner-style /32 address has
    # its IPv4 gateway outside its subnet, and an in-subnet gateway loses nothing.
    routes = map (gw: {
      Gateway = networkd gw;
      GatewayOnLink = true;
    }) b.gateway;
    dns = map networkd b.dns;
    networkConfig = {
      DHCP = if b.dhcp then "yes" else "no";
      IPv6AcceptRA = b.dhcp;
    };
    linkConfig.RequiredForOnline = if b.dhcp || b.addresses != [ ] then "routable" else "no";
  };

  # Addresses must be CIDRs, for networkd's Address=.
  cidrAssertions =
    kind: links:
    mapAttrsToList (name: b: {
      assertion = lib.all (a: builtins.match "[^/]+/[0-9]+" a != null) b.addresses;
      message = "services.ghostbridge.network.${kind}.${name}.addresses must be in CIDR form like \"10.10.0.1/24\"; got ${builtins.toJSON b.addresses}.";
    }) links;

  plainNetworks = mapAttrsToList (name: b: nameValuePair "40-ghostbridge-if-${name}" (linkNetwork name b)) plain;

  # Every interface Open vSwitch holds: bridges and their ports.
  ovsInterfaces = ovsNames ++ concatMap portInterfaces ovsBridges;

  # A bridge without an entry in network.bridges: up, without addresses.
  unaddressed = {
    dhcp = false;
    addresses = [ ];
    gateway = [ ];
    dns = [ ];
  };

  # Interfaces enslaved to a bridge: no addresses, no link-local, no RA, just up.
  # A key the bridge leaves out means none (the daemon's default).
  portInterfaces =
    b:
    let
      uplink = b.uplink or null;
    in
    optional (uplink != null) uplink ++ (b.ports or [ ]) ++ (b.internal_ports or [ ]);

  bridgeNetworks = map (
    bridge:
    let
      name = bridge.name;
      b = addressing.${name} or unaddressed;
    in
    nameValuePair "30-ghostbridge-${name}" (linkNetwork name b)
  ) ovsBridges;

  portNetworks = concatMap (
    b:
    map (
      iface:
      nameValuePair "20-ghostbridge-port-${iface}" {
        matchConfig.Name = networkd iface;
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
  ) ovsBridges;
in
{
  options.services.ghostbridge.network.interfaces = mkOption {
    type = types.attrsOf (types.submodule linkModule);
    default = { };
    example = lib.literalExpression ''
      {
        enp1s0.dhcp = true;
        enp2s0 = {
          addresses = [ "203.0.113.10/32" "2001:db8::2/64" ];
          gateway = [ "203.0.113.1" "fe80::1" ];
        };
      }
    '';
    description = ''
      The IP configuration of plain interfaces (NICs outside Open vSwitch), by interface
      name. An interface that Open vSwitch holds (a bridge, an uplink, a port) cannot be
      here: configure its bridge in {option}`services.ghostbridge.network.bridges`.
    '';
  };

  options.services.ghostbridge.network.bridges = mkOption {
    type = types.attrsOf (types.submodule linkModule);
    default = { };
    example = lib.literalExpression ''
      {
        ovsbr0.dhcp = true;
        ovsbr1.addresses = [ "10.10.0.1/24" ];
      }
    '';
    description = ''
      The IP configuration of each Open vSwitch bridge's own interface, by bridge name:
      what systemd-networkd does with it. The bridges, with their uplink, ports and flows,
      are {option}`services.ghostbridge.ovs.settings.bridges`; every name here must be one
      of them. A bridge without an entry here is up without addresses.
    '';
  };

  config = mkIf cfg.enable {
    assertions =
      mapAttrsToList (name: _: {
        assertion = lib.elem name ovsNames;
        message = "services.ghostbridge.network.bridges.${name} configures the interface of Open vSwitch bridge \"${name}\", which services.ghostbridge.ovs.settings.bridges does not declare: add { name = \"${name}\"; } to it, or remove network.bridges.${name}.";
      }) addressing
      ++ cidrAssertions "bridges" addressing
      ++ cidrAssertions "interfaces" plain
      ++ mapAttrsToList (name: _: {
        assertion = !(cfg.ovs.enable && lib.elem name ovsInterfaces);
        message = "services.ghostbridge.network.interfaces.${name} addresses an interface that Open vSwitch holds (a bridge, an uplink or a port): configure its bridge in services.ghostbridge.network.bridges instead.";
      }) plain;
      # Where a gateway may lie (inside a subnet, any IPv4 one beside a /32
      # address, a link-local IPv6 one anywhere)
      # is `ghostgen check`'s rule, stated once there.

    systemd.network.networks = listToAttrs (
      lib.optionals (cfg.ovs.enable && ovsBridges != [ ]) (bridgeNetworks ++ portNetworks) ++ plainNetworks
    );
  };
}

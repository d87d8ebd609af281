# systemd-networkd for the Open vSwitch bridges. The bridges themselves, with
# their uplink, ports and flows, are `services.ghostbridge.ovs.settings.bridges`
# (created by the OVS reconciler, ovs.nix); here systemd-networkd addresses each
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
  addressing = cfg.network.bridges;
  ovsBridges = cfg.ovs.settings.bridges;
  ovsNames = map (b: b.name) ovsBridges;
  # networkd reads these settings verbatim to the end of the line.
  escape = import ./lib/escape.nix { inherit lib; };
  networkd = escape.line "a systemd-networkd setting";

  bridgeModule =
    { name, ... }:
    {
      options = {
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
          type = types.listOf types.str;
          default = [ ];
          example = [
            "203.0.113.1"
            "fe80::1"
          ];
          description = "Default gateways reached through bridge `${name}`: at most one IPv4 and one IPv6 address (a link-local IPv6 one such as `fe80::1` is reached on the link).";
        };

        dns = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "9.9.9.9" ];
          description = "DNS servers used through bridge `${name}`.";
        };
      };
    };

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
    nameValuePair "30-ghostbridge-${name}" {
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
    }
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
  options.services.ghostbridge.network.bridges = mkOption {
    type = types.attrsOf (types.submodule bridgeModule);
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
      ++ mapAttrsToList (name: b: {
        assertion = lib.all (a: builtins.match "[^/]+/[0-9]+" a != null) b.addresses;
        message = "services.ghostbridge.network.bridges.${name}.addresses must be in CIDR form like \"10.10.0.1/24\"; got ${builtins.toJSON b.addresses}.";
      }) addressing;
      # Where a gateway may lie (inside a subnet, any IPv4 one beside a /32
      # address, a link-local IPv6 one anywhere)
      # is `ghostgen check`'s rule, stated once there.

    systemd.network.networks = mkIf (cfg.ovs.enable && ovsBridges != [ ]) (
      listToAttrs (bridgeNetworks ++ portNetworks)
    );
  };
}

# Virtualization: libvirt/KVM with networks that plug guests into OVS bridges
# (virtualport type openvswitch), LXC, Docker with automatic pruning, and a
# noVNC console served by websockify.
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
    types
    mapAttrsToList
    concatStringsSep
    escapeShellArg
    ;
  cfg = config.services.ghostbridge;
  virt = cfg.virtualization;
  nets = virt.libvirt.ovsNetworks;

  escape = import ./lib/escape.nix { inherit lib; };

  # The file's name does not depend on the network's (a store path name allows
  # only a few characters); its content does.
  networkXml =
    name: bridge:
    pkgs.writeText "ghostbridge-libvirt-network.xml" ''
      <network>
        <name>${escape.xml name}</name>
        <forward mode="bridge"/>
        <bridge name="${escape.xml bridge}"/>
        <virtualport type="openvswitch"/>
      </network>
    '';

  # Define (or redefine) each network, mark it autostart and start it. The
  # name is passed as the value of --network, so that no name reads as an option.
  defineNetworks = concatStringsSep "\n" (
    mapAttrsToList (name: bridge: ''
      virsh net-define --file ${escapeShellArg "${networkXml name bridge}"}
      virsh net-autostart --network ${escapeShellArg name}
      if ! virsh net-info --network ${escapeShellArg name} | grep -q '^Active: *yes'; then
        virsh net-start --network ${escapeShellArg name}
      fi
    '') nets
  );
in
{
  options.services.ghostbridge.virtualization = {
    libvirt = {
      enable = mkEnableOption "libvirt with QEMU/KVM";

      ovsNetworks = mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = {
          public = "ovsbr0";
          internal = "ovsbr1";
        };
        description = ''
          libvirt networks, by name, each plugging guests into the named OVS bridge
          (`<virtualport type="openvswitch"/>`). The bridges must be declared in
          {option}`services.ghostbridge.ovs.settings.bridges`.
        '';
      };
    };

    lxc.enable = mkEnableOption "LXC containers";

    docker = {
      enable = mkEnableOption "Docker";

      autoPrune = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to prune unused Docker data (images, containers, networks) every week.";
      };
    };

    novnc = {
      enable = mkEnableOption "a noVNC web console (websockify) for the first libvirt VNC display (localhost:5900)";

      port = mkOption {
        type = types.port;
        default = 6080;
        description = "TCP port of the noVNC web console (the firewall stays closed unless the port is declared).";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    (mkIf virt.libvirt.enable {
      assertions = mapAttrsToList (name: bridge: {
        assertion = lib.elem bridge (map (b: b.name) cfg.ovs.settings.bridges) && cfg.ovs.enable;
        message = "services.ghostbridge.virtualization.libvirt.ovsNetworks.${name} plugs guests into OVS bridge \"${bridge}\", which is not declared: add { name = \"${bridge}\"; } to services.ghostbridge.ovs.settings.bridges (and keep services.ghostbridge.ovs.enable on).";
      }) nets;

      # libvirt calls ovs-vsctl to plug guest interfaces into OVS bridges; nixpkgs'
      # libvirtd module already puts the vswitch package on its PATH when
      # virtualisation.vswitch is on (which services.ghostbridge.ovs turns on).
      virtualisation.libvirtd.enable = true;

      systemd.services.ghostbridge-libvirt-networks = mkIf (nets != { }) {
        description = "GhostBridge libvirt networks on Open vSwitch bridges";
        wantedBy = [ "multi-user.target" ];
        after = [
          "libvirtd.service"
          "ghostbridge-ovs.service"
        ];
        requires = [ "libvirtd.service" ];
        wants = [ "ghostbridge-ovs.service" ];
        path = [
          pkgs.libvirt
          pkgs.gnugrep
        ];
        script = defineNetworks;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
      };
    })

    (mkIf virt.lxc.enable {
      virtualisation.lxc.enable = true;
      virtualisation.lxc.lxcfs.enable = true;
    })

    (mkIf virt.docker.enable {
      virtualisation.docker.enable = true;
      # nixpkgs' default schedule: weekly.
      virtualisation.docker.autoPrune.enable = virt.docker.autoPrune;
    })

    (mkIf virt.novnc.enable {
      systemd.services.ghostbridge-novnc = {
        description = "noVNC web console";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        serviceConfig = {
          ExecStart = utils.escapeSystemdExecArgs [
            "${pkgs.python3Packages.websockify}/bin/websockify"
            "--web"
            "${pkgs.novnc}/share/webapps/novnc"
            virt.novnc.port
            "localhost:5900"
          ];
          Restart = "on-failure";
          DynamicUser = true;
          CapabilityBoundingSet = [ "" ];
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectControlGroups = true;
          RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
          ];
          SystemCallArchitectures = "native";
        };
      };
    })
  ]);
}

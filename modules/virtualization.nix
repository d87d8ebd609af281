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
  novnc = virt.novnc;

  # Whether websockify's address is this host only (reached through an SSH tunnel).
  loopback = a: a == "localhost" || a == "::1" || lib.hasPrefix "127." a;
  exposed = novnc.openFirewall || !(loopback novnc.listenAddress);
  # websockify reads [HOST:]PORT, an IPv6 address in brackets.
  listenArg =
    let
      host = if lib.hasInfix ":" novnc.listenAddress then "[${novnc.listenAddress}]" else novnc.listenAddress;
    in
    "${host}:${toString novnc.port}";
  # Where systemd hands the VNC password to libvirtd-config.service (LoadCredential).
  vncCredential = "ghostbridge-vnc-password";

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
        description = "TCP port of the noVNC web console.";
      };

      listenAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = ''
          Address websockify listens on. The default, loopback, keeps the console on
          this host: reach it through SSH (`ssh -L 6080:127.0.0.1:6080 HOST`, then
          open <http://127.0.0.1:6080/vnc.html>). Any other address exposes the
          console and requires {option}`services.ghostbridge.virtualization.novnc.passwordFile`.
        '';
      };

      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether to open {option}`services.ghostbridge.virtualization.novnc.port` in the
          firewall. Needs a non-loopback
          {option}`services.ghostbridge.virtualization.novnc.listenAddress` and
          {option}`services.ghostbridge.virtualization.novnc.passwordFile`.
        '';
      };

      passwordFile = mkOption {
        type = types.nullOr (types.strMatching "/.+");
        default = null;
        example = "/run/secrets/vnc-password";
        description = ''
          File on the host holding the VNC password that guards libvirt's VNC displays
          (qemu.conf `vnc_password`, used by every domain whose XML sets no password of its
          own; VNC uses only the first 8 bytes). A path string, not a Nix path, so that it
          never enters the Nix store: systemd hands the file to `libvirtd-config.service`
          (`LoadCredential`), which adds the password to `/var/lib/libvirt/qemu.conf`
          (mode 0600) each time libvirtd starts. One line without a double quote.
          Required when the console is exposed (a non-loopback `listenAddress` or `openFirewall`).
        '';
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

    (mkIf novnc.enable {
      assertions = [
        {
          assertion = virt.libvirt.enable;
          message = "services.ghostbridge.virtualization.novnc shows libvirt's VNC display, but libvirt is off: set services.ghostbridge.virtualization.libvirt.enable = true (or disable novnc).";
        }
        {
          assertion = !exposed || novnc.passwordFile != null;
          message = "services.ghostbridge.virtualization.novnc is exposed beyond this host (listenAddress = \"${novnc.listenAddress}\", openFirewall = ${lib.boolToString novnc.openFirewall}) without a VNC password: set services.ghostbridge.virtualization.novnc.passwordFile to a file on the host holding it (e.g. \"/run/secrets/vnc-password\"), or keep listenAddress = \"127.0.0.1\" and openFirewall = false and use `ssh -L ${toString novnc.port}:127.0.0.1:${toString novnc.port} HOST`.";
        }
        {
          assertion = !(novnc.openFirewall && loopback novnc.listenAddress);
          message = "services.ghostbridge.virtualization.novnc.openFirewall opens port ${toString novnc.port}, but websockify listens on loopback (${novnc.listenAddress}): set services.ghostbridge.virtualization.novnc.listenAddress (e.g. \"0.0.0.0\"), or leave openFirewall off and use an SSH tunnel.";
        }
      ];

      networking.firewall.allowedTCPPorts = lib.optional novnc.openFirewall novnc.port;

      systemd.services.ghostbridge-novnc = {
        description = "noVNC web console";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        serviceConfig = {
          ExecStart = utils.escapeSystemdExecArgs [
            "${pkgs.python3Packages.websockify}/bin/websockify"
            "--web"
            "${pkgs.novnc}/share/webapps/novnc"
            listenArg
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

    # libvirt's default VNC password (qemu.conf `vnc_password`). nixpkgs'
    # libvirtd-config.service copies qemu.conf from the store to
    # /var/lib/libvirt/qemu.conf before every start of libvirtd; right after
    # that copy (mkAfter), the password is read from the systemd credential and
    # appended, so it never enters the store. libvirt reads a "..." string up to
    # the next double quote or line end, with no escapes: a password holding
    # either is refused.
    (mkIf (novnc.enable && virt.libvirt.enable && novnc.passwordFile != null) {
      systemd.services.libvirtd-config = {
        serviceConfig.LoadCredential = [ "${vncCredential}:${escape.unitCredentialPath novnc.passwordFile}" ];
        script = lib.mkAfter ''
          vnc_password=$(cat "$CREDENTIALS_DIRECTORY/${vncCredential}")
          if [ -z "$vnc_password" ] || [[ "$vnc_password" == *[$'"\n\r']* ]]; then
            echo "services.ghostbridge.virtualization.novnc.passwordFile must hold one non-empty line without a double quote" >&2
            exit 1
          fi
          chmod 0600 /var/lib/libvirt/qemu.conf
          printf 'vnc_password = "%s"\n' "$vnc_password" >> /var/lib/libvirt/qemu.conf
        '';
      };
    })
  ]);
}

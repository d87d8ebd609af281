# Base of a GhostBridge host: the master switch, the boot loader (systemd-boot
# on EFI), kernel parameters and modules, IOMMU/VFIO for PCI passthrough,
# sysctl, and systemd-networkd as the only network manager.
{
  config,
  lib,
  ...
}:
let
  inherit (lib) mkEnableOption mkOption mkIf mkDefault types optionals;
  cfg = config.services.ghostbridge;
  boot = cfg.boot;
  remote = cfg.remoteServer;
  escape = import ./lib/escape.nix { inherit lib; };
  iommuParams = {
    intel = [
      "intel_iommu=on"
      "iommu=pt"
    ];
    amd = [
      "amd_iommu=on"
      "iommu=pt"
    ];
  };
  vfioModules = [
    "vfio_pci"
    "vfio"
    "vfio_iommu_type1"
  ];
in
{
  options.services.ghostbridge = {
    enable = mkEnableOption "GhostBridge, a server described by one typed spec (boot, networking, snapshots, virtualization, monitoring)";

    boot = {
      kernelParams = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "kvm.ignore_msrs=1"
          "transparent_hugepage=never"
        ];
        description = "Extra kernel command line parameters, added to {option}`boot.kernelParams`.";
      };

      kernelModules = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "kvm-intel" ];
        description = "Kernel modules loaded at boot, added to {option}`boot.kernelModules`.";
      };

      iommu = mkOption {
        type = types.nullOr (
          types.enum [
            "intel"
            "amd"
          ]
        );
        default = null;
        example = "intel";
        description = ''
          Turn on the IOMMU of this CPU vendor (`intel_iommu=on` or `amd_iommu=on`, with `iommu=pt`).
          Needed for {option}`services.ghostbridge.boot.vfioIds`. `null` leaves the kernel default.
        '';
      };

      vfioIds = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "10de:2204"
          "10de:1aef"
        ];
        description = ''
          PCI vendor:device ids bound to `vfio-pci` at boot, so that the devices
          (typically a GPU and its audio function) can be passed through to a VM.
          Requires {option}`services.ghostbridge.boot.iommu`.
        '';
      };

      sysctl = mkOption {
        type = types.attrsOf (types.either types.int types.str);
        default = { };
        example = {
          "vm.swappiness" = 10;
          "net.core.rmem_max" = 16777216;
        };
        description = "Kernel sysctl settings, added to {option}`boot.kernel.sysctl`.";
      };
    };

    # What nix-community/srvos sets for servers (nixos/server/default.nix,
    # nixos/common/networking.nix, nixos/common/serial.nix), each its own switch;
    # the values are mkDefault (or plain list entries) so that a host can override them.
    remoteServer = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether to apply the defaults for a server that is managed remotely, each of which
          has its own switch below.
        '';
      };

      watchdog = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether systemd drives the hardware watchdog (`mkDefault`):
          {option}`systemd.settings.Manager` `RuntimeWatchdogSec = "15s"` (a hung
          kernel or PID 1 reboots the host), `RebootWatchdogSec = "30s"` (a reboot that
          hangs is forced), `KExecWatchdogSec = "1m"`. Without a watchdog device systemd
          logs it and goes on.
        '';
      };

      disableEmergencyMode = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether to turn off emergency mode ({option}`systemd.enableEmergencyMode` = false,
          `mkDefault`): when a file system fails to mount, boot goes on as far as it can,
          so that SSH may still come up, instead of waiting for a console nobody sits at.
          The initrd is left alone: nixpkgs' {option}`boot.initrd.systemd.emergencyAccess`
          already defaults to false.
        '';
      };

      keepNetworkOnSwitch = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether `nixos-rebuild switch` restarts systemd-networkd and systemd-resolved
          instead of stopping them and starting them later
          ({option}`systemd.services.<name>.stopIfChanged` = false, `mkDefault`), so
          that a deployment over SSH does not take the network down in between.
        '';
      };

      serialConsole = mkOption {
        type = types.nullOr (types.strMatching "[^[:space:]]+");
        default = "ttyS0,115200";
        example = "ttyS1,115200";
        description = ''
          Serial console (IPMI serial-over-LAN, a BMC) beside the screen: the kernel
          command line gets `console=SERIAL console=tty0` (kernel messages on both;
          the last, the screen, is /dev/console). `null`: no console parameters.
        '';
      };

      bootEntries = mkOption {
        type = types.nullOr types.ints.positive;
        default = 10;
        description = ''
          At most this many generations in the boot menu
          ({option}`boot.loader.systemd-boot.configurationLimit`, `mkDefault`), so that
          the ESP does not fill up. `null`: no limit.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = boot.vfioIds == [ ] || boot.iommu != null;
        message = "services.ghostbridge.boot.vfioIds binds devices to vfio-pci, which needs the IOMMU: set services.ghostbridge.boot.iommu to \"intel\" or \"amd\".";
      }
      {
        assertion = lib.all (id: builtins.match "[0-9a-fA-F]{4}:[0-9a-fA-F]{4}" id != null) boot.vfioIds;
        message = "services.ghostbridge.boot.vfioIds must hold PCI ids written vendor:device in hex, like \"10de:2204\" (see `lspci -nn`); got ${builtins.toJSON boot.vfioIds}.";
      }
    ];

    boot.loader.systemd-boot.enable = mkDefault true;
    boot.loader.efi.canTouchEfiVariables = mkDefault true;
    boot.loader.systemd-boot.configurationLimit = mkIf (remote.enable && remote.bootEntries != null) (
      mkDefault remote.bootEntries
    );

    # NixOS writes these into line-based files (the boot loader entry's
    # `options` line, modules-load.d, sysctl.d) without quoting: no line breaks.
    boot.kernelParams =
      map (escape.line "the kernel command line") boot.kernelParams
      ++ optionals (boot.iommu != null) iommuParams.${boot.iommu}
      ++ optionals (boot.vfioIds != [ ]) [ "vfio-pci.ids=${lib.concatStringsSep "," boot.vfioIds}" ]
      # srvos' order: the serial console first, the screen (tty0) last, which makes it /dev/console.
      ++ optionals (remote.enable && remote.serialConsole != null) [
        "console=${escape.line "the kernel command line" remote.serialConsole}"
        "console=tty0"
      ];
    boot.kernelModules = map (escape.line "modules-load.d") boot.kernelModules ++ optionals (boot.vfioIds != [ ]) vfioModules;
    # vfio-pci must claim the devices before their regular drivers do.
    boot.initrd.kernelModules = optionals (boot.vfioIds != [ ]) vfioModules;
    boot.kernel.sysctl = lib.mapAttrs' (
      key: value:
      lib.nameValuePair (escape.line "sysctl.d" key) (
        if builtins.isString value then escape.line "sysctl.d" value else value
      )
    ) boot.sysctl;

    # systemd-networkd is the only network configuration daemon.
    networking.networkmanager.enable = false;
    networking.useNetworkd = true;
    # DHCP on every physical NIC exactly when GhostBridge configures no network
    # itself (no OVS bridge, no plain interface): such a host must stay reachable. Priority
    # 900 wins over the `mkDefault true` that every nixos-generate-config output
    # (hardware.nix) sets, without a conflict, and yields to a plain definition.
    networking.useDHCP = lib.mkOverride 900 (
      (config.services.ghostbridge.ovs.settings.bridges or [ ]) == [ ]
      && config.services.ghostbridge.network.interfaces == { }
    );
    systemd.network.enable = true;
    networking.firewall.enable = mkDefault true;

    # Remote-server defaults (services.ghostbridge.remoteServer).
    systemd.settings.Manager = mkIf (remote.enable && remote.watchdog) {
      RuntimeWatchdogSec = mkDefault "15s";
      RebootWatchdogSec = mkDefault "30s";
      KExecWatchdogSec = mkDefault "1m";
    };
    systemd.enableEmergencyMode = mkIf (remote.enable && remote.disableEmergencyMode) (mkDefault false);
    systemd.services = mkIf (remote.enable && remote.keepNetworkOnSwitch) {
      systemd-networkd.stopIfChanged = mkDefault false;
      systemd-resolved.stopIfChanged = mkDefault false;
    };
  };
}

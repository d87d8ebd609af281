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

    # NixOS writes these into line-based files (the boot loader entry's
    # `options` line, modules-load.d, sysctl.d) without quoting: no line breaks.
    boot.kernelParams =
      map (escape.line "the kernel command line") boot.kernelParams
      ++ optionals (boot.iommu != null) iommuParams.${boot.iommu}
      ++ optionals (boot.vfioIds != [ ]) [ "vfio-pci.ids=${lib.concatStringsSep "," boot.vfioIds}" ];
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
    # itself (no OVS bridge): a host without bridges must stay reachable. Priority
    # 900 wins over the `mkDefault true` that every nixos-generate-config output
    # (hardware.nix) sets, without a conflict, and yields to a plain definition.
    networking.useDHCP = lib.mkOverride 900 ((config.services.ghostbridge.ovs.settings.bridges or [ ]) == [ ]);
    systemd.network.enable = true;
    networking.firewall.enable = mkDefault true;
  };
}

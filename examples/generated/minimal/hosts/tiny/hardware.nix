# Hardware of tiny. Created once by ghostgen and never overwritten: it is yours.
# Replace it with the full output of `nixos-generate-config --show-hardware-config`
# (file systems included) run on the machine.
# This host has no [disk] layout, so its file systems come from its hardware.nix. Install it by
# `nixos-rebuild switch` on a machine already running NixOS, by nixos-infect, or by
# `nixos-anywhere --phases kexec`, partitioning and mounting /mnt by hand, then
# `nixos-anywhere --phases install,reboot` (its disko phase needs a [disk] layout).
{ lib, ... }:
{
  boot.initrd.availableKernelModules = [
    "nvme"
    "xhci_pci"
    "ahci"
    "virtio_pci"
    "virtio_blk"
    "usbhid"
    "sd_mod"
  ];
  hardware.enableRedistributableFirmware = lib.mkDefault true;
  fileSystems."/" = lib.mkDefault {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  fileSystems."/boot" = lib.mkDefault {
    device = "/dev/disk/by-label/boot";
    fsType = "vfat";
  };
}

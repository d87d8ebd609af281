# Hardware of store1. Created once by ghostgen and never overwritten: it is yours.
# Replace it with the output of `nixos-generate-config --show-hardware-config --no-filesystems`
# run on the machine (or in the installer): disko.nix declares the file systems.
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
}

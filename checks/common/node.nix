# Shared by every VM check: this repository's modules and packages exactly as
# a host gets them (nixosModules.default, with the overlay), and a VM that
# boots without waiting for a network that the test does not provide.
{ self }:
{ lib, ... }:
{
  imports = [ self.nixosModules.default ];
  # No DHCP server and no default route in the test network.
  systemd.network.wait-online.enable = lib.mkDefault false;
  virtualisation.memorySize = lib.mkDefault 2048;
  virtualisation.cores = lib.mkDefault 2;
  # A host may force-load its CPU vendor's KVM module (the reference spec's
  # boot.kernel_modules, or a hardware.nix from nixos-generate-config, list
  # "kvm-intel"). In a VM that module fails on a runner of the other vendor or
  # without nested virtualisation, and no check needs KVM inside the VM:
  # deny-listed, systemd-modules-load skips it ("is deny-listed (by kmod)")
  # instead of failing, and udev does not autoload it either.
  boot.blacklistedKernelModules = [
    "kvm_intel"
    "kvm_amd"
  ];
}

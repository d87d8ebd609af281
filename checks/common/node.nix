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
}

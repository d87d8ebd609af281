# GhostBridge NixOS modules: everything under `services.ghostbridge.*`.
# One file per concern; each declares its own options and maps them onto NixOS.
{
  imports = [
    ./base.nix
    ./network.nix
    ./ovs.nix
    ./snapshotter.nix
    ./qdrant-sync.nix
    ./opdbus.nix
    ./virtualization.nix
    ./monitoring.nix
    ./ssh.nix
    ./nix-settings.nix
    ./doctor.nix
    ./deploy.nix
  ];
}

# Nix on a GhostBridge host: flakes on (the host is deployed from a flake).
# Garbage collection and store optimisation come from the host's spec.
{
  config,
  lib,
  ...
}:
{
  config = lib.mkIf config.services.ghostbridge.enable {
    nix.settings.experimental-features = lib.mkDefault [
      "nix-command"
      "flakes"
    ];
  };
}

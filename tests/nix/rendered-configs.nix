# The daemons' JSON files (and ghostbridge-doctor's) as the modules render
# them for one generated host, evaluated without nixpkgs (mini-eval.nix).
# tests/contract.rs feeds each to its daemon's `check-config`, for every
# example host.
#   nix-instantiate --eval --strict --json tests/nix/rendered-configs.nix --arg host ./hosts/web1/default.nix
{ host }:
let
  b = builtins;
  pkgs = import ./stub-pkgs.nix;
  eval = import ./mini-eval.nix { inherit pkgs; };
  generated = import host {
    config = { };
    lib = { };
    pkgs.stdenv.hostPlatform.system = "x86_64-linux";
    inputs = { };
  };
  # The SSH port too, which ghostbridge-doctor's file names.
  r = eval {
    services = {
      inherit (generated.services) ghostbridge;
    }
    // (if generated.services.openssh.ports or null != null then { openssh.ports = generated.services.openssh.ports; } else { });
  };
  gb = r.config.services.ghostbridge;
  rendered =
    daemon:
    let
      file = gb.${daemon}.configFile;
    in
    if gb.${daemon}.enable then b.fromJSON (file.unchecked or file).value else null;
in
{
  failedAssertions = r.failedAssertions;
  snapshotter = rendered "snapshotter";
  ovs = rendered "ovs";
  qdrant_sync = rendered "qdrant_sync";
  doctor = rendered "doctor";
}

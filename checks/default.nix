# The VM checks of this repository's flake (`nix flake check` runs them all),
# two cheap evaluation checks: the module options' types and what the
# modules compute (both also run without nixpkgs: tests/nix/check.sh), and a
# build check without a VM: an invalid daemon setting fails the build.
{
  pkgs,
  self,
  disko,
  nixpkgs,
}:
let
  lib = pkgs.lib;
  args = {
    inherit pkgs self disko nixpkgs;
    # Settings shared by every VM check (see common/node.nix).
    common = import ./common/node.nix { inherit self; };
    btrfsDisk = ./common/btrfs-disk.nix;
  };
  generatedHost = ../examples/generated/ghostbridge/hosts/ghostbridge/default.nix;

  # Every option of modules/ has the type recorded in tests/nix/expected-option-types.json.
  optionTypes =
    let
      actual = import ../tests/nix/option-types.nix;
      expected = lib.importJSON ../tests/nix/expected-option-types.json;
    in
    assert lib.assertMsg (actual == expected) ''
      The option types of modules/ differ from tests/nix/expected-option-types.json.
      Regenerate it with: nix-instantiate --eval --strict --json tests/nix/option-types.nix | jq -S . > tests/nix/expected-option-types.json
    '';
    pkgs.writeText "ghostbridge-option-types.json" (builtins.toJSON actual);

  # What the modules compute (daemon configs, units, assertions); throws on failure.
  moduleBehaviour = pkgs.writeText "ghostbridge-module-behaviour.json" (
    builtins.toJSON (import ../tests/nix/module-behaviour.nix)
  );
in
{
  option-types = optionTypes;
  module-behaviour = moduleBehaviour;
  config-validation = import ./config-validation.nix args;
  snapshotter = import ./snapshotter.nix args;
  ovs = import ./ovs.nix args;
  qdrant-sync = import ./qdrant-sync.nix args;
}
# The reference host appears once `ghostgen build` output is committed under examples/generated.
// lib.optionalAttrs (builtins.pathExists generatedHost) {
  host-ghostbridge = import ./host.nix (args // { hostModule = generatedHost; });
}

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
  system = pkgs.stdenv.hostPlatform.system;

  # The system a host module pins (`nixpkgs.hostPlatform`, which ghostgen writes
  # from the spec's [host].system), read from the module's own attribute set
  # without evaluating NixOS. It wins over the `nixpkgs.system` the test framework
  # gives a node, so such a host boots as that system whatever the check's
  # system: its VM check belongs to that system's checks only (aarch64-linux must
  # not boot an x86_64 host). A host that pins nothing follows the check.
  hostSystem =
    module:
    let
      f = import module;
      # Only the arguments the module names; their values are never read for this.
      stubArgs = {
        inherit lib pkgs;
        config = { };
        options = { };
      };
      definition =
        if builtins.isFunction f then
          f (builtins.mapAttrs (name: _: stubArgs.${name} or null) (builtins.functionArgs f))
        else
          f;
      platform = definition.nixpkgs.hostPlatform or definition.config.nixpkgs.hostPlatform or system;
    in
    if builtins.isString platform then platform else platform.system;

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
  deploy = import ./deploy.nix args;
}
# The reference host appears once `ghostgen build` output is committed under
# examples/generated, in the checks of the system it is built for.
// lib.optionalAttrs (builtins.pathExists generatedHost && hostSystem generatedHost == system) {
  host-ghostbridge = import ./host.nix (args // { hostModule = generatedHost; });
}

# A stand-in for `import nixpkgs { system; overlays; }`, just enough for
# flake-smoke.nix to evaluate this repository's flake outputs without nixpkgs:
# derivations are plain attribute sets that remember their arguments.
{
  system,
  overlays ? [ ],
}:
let
  b = builtins;
  lib = import ./flake-lib.nix;
  drv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  } // extra;
  base = final: {
    inherit lib system;
    stdenv.hostPlatform.system = system;
    rustPlatform.buildRustPackage = args: drv args.pname { inherit args; meta = args.meta; };
    mkShell = args: drv "shell" { inherit args; };
    writeText = name: text: drv name { inherit text; };
    runCommand = name: env: buildCommand: drv name (env // { inherit buildCommand; });
    testers.runNixOSTest = test: drv "vm-test-run-${test.name}" { inherit test; };
    # nixpkgs: the same derivation, whose builder must fail (its log and exit status become the output).
    testers.testBuildFailure = d: d // { expectsBuildFailure = true; };
  } // lib.genAttrs [
    "cargo"
    "rustc"
    "clippy"
    "rustfmt"
    "cargo-nextest"
    "nix"
    "nixfmt-tree"
    "openvswitch"
    "btrfs-progs"
    "sqlite"
    "dbus"
    "ethtool"
    "iproute2"
    "jq"
  ] (n: drv n { });
  pkgs = b.foldl' (prev: overlay: prev // overlay pkgs prev) (base pkgs) overlays;
in
pkgs

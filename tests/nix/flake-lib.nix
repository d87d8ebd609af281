# stub-lib.nix plus the few `lib` functions flake.nix and checks/ use.
let
  b = builtins;
  stub = import ./stub-lib.nix;
in
stub
// {
  genAttrs = names: f: b.listToAttrs (map (n: stub.nameValuePair n (f n)) names);
  importTOML = path: b.fromTOML (b.readFile path);
  importJSON = path: b.fromJSON (b.readFile path);
  assertMsg = cond: msg: cond || throw msg;
  last = xs: b.elemAt xs (b.length xs - 1);
  splitString = sep: s: b.filter b.isString (b.split sep s);
  fileset = {
    toSource = { root, fileset }: root;
    unions = b.foldl' (acc: x: acc ++ [ x ]) [ ];
    maybeMissing = p: p;
  };
  platforms.linux = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  getExe = pkg: "${pkg}/bin/${pkg.meta.mainProgram}";
  # nixpkgs' flake: a NixOS system from modules. Here: the modules of this
  # repository evaluated by mini-eval.nix with the `services` the given
  # modules define (nixosModules.default stands for modules/ itself).
  nixosSystem =
    { modules, ... }:
    {
      config =
        (import ./mini-eval.nix { pkgs = import ./stub-pkgs.nix; } (
          map (m: { services = m.services or { }; }) (b.filter b.isAttrs modules)
        )).config;
    };
}

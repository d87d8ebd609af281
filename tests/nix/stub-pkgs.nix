# Stand-ins for the packages the modules reference, for mini-eval.nix.
# Derivations are attribute sets with an outPath that keep, as nixpkgs'
# derivations do, the attributes a test reads back: `formats.json`'s
# `generate` keeps the rendered JSON text as `value` (nixpkgs passes it to
# the builder under that name), `runCommand` keeps its build command, its
# environment and its passthru, `writeText` its text (and its path depends on it).
let
  b = builtins;
  lib = import ./stub-lib.nix;
  stubPkg = name: {
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  # nixpkgs' pkgs.formats.json's type: a JSON value, nested attribute sets and lists.
  jsonValue =
    with lib.types;
    nullOr (oneOf [
      bool
      int
      float
      str
      path
      (attrsOf jsonValue)
      (listOf jsonValue)
    ])
    // {
      description = "JSON value";
    };
  pkgs = {
    formats.json = _: {
      type = jsonValue;
      generate = name: value: stubPkg name // { value = b.toJSON value; };
    };
    stdenv = {
      hostPlatform.system = "x86_64-linux";
      buildPlatform.canExecute = platform: platform.system == "x86_64-linux";
    };
    writeTextDir = path: text: stubPkg "dir" // { inherit path text; };
    # Content-addressed, as in nixpkgs: the same name with other text is another path.
    writeText =
      name: text:
      {
        inherit name text;
        outPath = "/nix/store/${b.hashString "md5" text}-${name}";
      };
    runCommand =
      name: env: buildCommand:
      stubPkg name // b.removeAttrs env [ "passthru" ] // env.passthru or { } // { inherit buildCommand; };
    coreutils = stubPkg "coreutils";
    libvirt = stubPkg "libvirt";
    gnugrep = stubPkg "gnugrep";
    novnc = stubPkg "novnc";
    openvswitch = stubPkg "openvswitch";
    python3Packages.websockify = stubPkg "websockify";
    ghostbridge-snapshotter = stubPkg "ghostbridge-snapshotter";
    ghostbridge-ovs = stubPkg "ghostbridge-ovs";
    ghostbridge-qdrant-sync = stubPkg "ghostbridge-qdrant-sync";
    ghostbridge-doctor = stubPkg "ghostbridge-doctor";
    ghostbridge-deploy-agent = stubPkg "ghostbridge-deploy-agent";
    ghostgen = stubPkg "ghostgen";
  };
in
pkgs

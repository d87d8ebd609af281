# Stand-ins for the packages the modules reference, for mini-eval.nix.
# `formats.json` puts the rendered config into the unit's command line
# ("--config json:{...}") so that a test can read it back.
let
  b = builtins;
  stubPkg = name: {
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    formats.json = _: {
      # The rendered config is carried inside the unit's command line, to be read back here.
      generate = name: value: "json:" + b.toJSON value;
    };
    writeTextDir = path: text: stubPkg "dir" // { inherit path text; };
    writeText = name: text: stubPkg name // { inherit text; };
    runCommand = name: _: _: stubPkg name;
    coreutils = stubPkg "coreutils";
    libvirt = stubPkg "libvirt";
    gnugrep = stubPkg "gnugrep";
    novnc = stubPkg "novnc";
    python3Packages.websockify = stubPkg "websockify";
    ghostbridge-snapshotter = stubPkg "ghostbridge-snapshotter";
    ghostbridge-ovs = stubPkg "ghostbridge-ovs";
    ghostbridge-qdrant-sync = stubPkg "ghostbridge-qdrant-sync";
    ghostgen = stubPkg "ghostgen";
  };
in
pkgs

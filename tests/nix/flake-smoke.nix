# Evaluates this repository's flake outputs without nixpkgs (fake-nixpkgs.nix
# stands in for it) and checks their shape: one package per binary built with
# `--bin NAME` from Cargo.lock, the overlay, the NixOS modules, apps, dev shell,
# formatter and checks. It also renders every VM check's test script with the
# node configurations mini-eval.nix computes, so that check.sh can compile the
# Python (a syntax error there would only show on a machine with Nix).
#   nix-instantiate --eval --strict --json tests/nix/flake-smoke.nix
let
  b = builtins;
  lib = import ./flake-lib.nix;
  flake = import ../../flake.nix;
  nixpkgs = {
    inherit lib;
    outPath = ./fake-nixpkgs.nix;
  };
  disko.nixosModules.disko = { };
  self = outputs // {
    outPath = ../..;
  };
  outputs = flake.outputs { inherit self nixpkgs disko; };

  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  binaries = [
    "ghostgen"
    "ghostbridge-snapshotter"
    "ghostbridge-ovs"
    "ghostbridge-qdrant-sync"
    "ghostbridge-doctor"
    "ghostbridge-deploy-agent"
  ];
  vmChecks = [
    "snapshotter"
    "ovs"
    "qdrant-sync"
    "deploy"
  ];

  stubPkgs = import ./stub-pkgs.nix;
  mini = import ./mini-eval.nix { pkgs = stubPkgs; };
  # A node as a test script sees it: options filled by mini-eval, units from the modules.
  fakeNode =
    module:
    let
      m =
        if b.isFunction module then
          module {
            pkgs = stubPkgs;
            inherit lib;
            config = { };
          }
        else
          module;
    in
    nodeFromDefinitions (m.services.ghostbridge or { });
  nodeFromDefinitions =
    definitions:
    let
      r = mini { services.ghostbridge = definitions; };
    in
    r.config
    // {
      inherit (r.result) systemd;
      services = r.result.services // r.config.services;
    };

  perSystem =
    system:
    let
      packages = outputs.packages.${system};
      checks = outputs.checks.${system};
      pkgCheck =
        n:
        packages.${n}.args.cargoBuildFlags == [
          "--bin"
          n
        ]
        && !packages.${n}.args.doCheck
        && packages.${n}.args.cargoLock.lockFile == ../../Cargo.lock
        && packages.${n}.meta.mainProgram == n;
    in
    {
      "packages: one per binary, built with --bin from Cargo.lock" = b.all pkgCheck binaries;
      "packages: default is ghostgen" = packages.default.name == "ghostgen";
      "apps: every binary, default ghostgen" =
        b.all (n: outputs.apps.${system}.${n}.program == "${packages.${n}}/bin/${n}") binaries
        && outputs.apps.${system}.default.program == "${packages.ghostgen}/bin/ghostgen";
      "devShell: cargo, openvswitch, btrfs-progs, sqlite" =
        b.all (n: b.any (p: p.name == n) outputs.devShells.${system}.default.args.packages) [
          "cargo"
          "rustc"
          "openvswitch"
          "btrfs-progs"
          "sqlite"
          "nixfmt-tree"
        ];
      "formatter: nixfmt-tree where nixpkgs has it" = outputs.formatter.${system}.name == "nixfmt-tree";
      "checks: option types, module behaviour, config validation and the VM checks" =
        b.all (n: checks ? ${n}) (
          vmChecks
          ++ [
            "option-types"
            "module-behaviour"
            "config-validation"
          ]
        );
      "checks: config-validation expects check-config to fail the build of retention < interval" =
        let
          c = checks.config-validation;
          # The snapshotter config files it builds, as the modules make them.
          jsonOf = f: b.fromJSON f.unchecked.value;
          checksWithDaemon =
            f: b.match ".*/bin/ghostbridge-snapshotter check-config ${f.unchecked}[[:space:]].*" f.buildCommand != null;
        in
        c.failed.expectsBuildFailure or false
        && !(c.valid.expectsBuildFailure or false)
        && checksWithDaemon c.failed
        && checksWithDaemon c.valid
        && (jsonOf c.failed).retention == "1s"
        && (jsonOf c.failed).interval == "1m"
        && (jsonOf c.valid).retention == "1m"
        && b.match ".*grep -F ': retention: ' \"[$]failed/testBuildFailure.log\".*" c.buildCommand != null;
      "checks: VM checks build their own nixpkgs (the modules set the overlay)" =
        b.all (n: checks.${n}.test.node.pkgsReadOnly == false) vmChecks;
    };

  overlayAttrs = b.attrNames (outputs.overlays.default { } { });
  structure =
    {
      "overlay: one package per binary" = b.sort b.lessThan overlayAttrs == b.sort b.lessThan binaries;
      "nixosModules.default: modules and overlay" =
        outputs.nixosModules.default.imports == [ ../../modules ]
        && b.length outputs.nixosModules.default.nixpkgs.overlays == 1;
      # The generated reference host pins nixpkgs.hostPlatform = "x86_64-linux".
      "checks: the generated host is booted only by the checks of its own system" =
        outputs.checks.x86_64-linux ? host-ghostbridge && !(outputs.checks.aarch64-linux ? host-ghostbridge);
      "checks: VM nodes deny-list the KVM vendor modules (none is force-loaded)" =
        let
          node = import ../../checks/common/node.nix { inherit self; } { inherit lib; };
        in
        b.all (m: b.elem m node.boot.blacklistedKernelModules) [
          "kvm_intel"
          "kvm_amd"
        ];
      # Both read the same host: ghostbridge-doctor checks, on the host, the units the VM check waits for.
      "checks: the host check waits for exactly the units ghostbridge-doctor checks" =
        let
          waited = b.fromJSON (b.elemAt (b.match "(.*\n)?units = ([^\n]*)\n.*" scripts.host-ghostbridge) 1);
          doctor = (mini { services.ghostbridge = import ./reference-host.nix; }).config.services.ghostbridge.doctor.settings.units;
        in
        b.sort b.lessThan waited == b.sort b.lessThan doctor;
      "checks: the host check waits for libvirtd.socket, never the idle-exiting libvirtd.service" =
        let
          script = scripts.host-ghostbridge;
        in
        b.match ".*\"libvirtd[.]socket\".*" script != null && b.match ".*libvirtd[.]service\".*" script == null;
    }
    // b.foldl' (acc: s: acc // lib.mapAttrs' (n: v: lib.nameValuePair "${s}: ${n}" v) (perSystem s)) { } systems;

  # The host check, with the reference server standing in for the generated host.
  hostTest =
    (import ../../checks/host.nix {
      pkgs = import ./fake-nixpkgs.nix { system = "x86_64-linux"; };
      inherit self disko nixpkgs;
      common = { };
      btrfsDisk = { };
      hostModule = { };
    }).test;

  scripts = {
    host-ghostbridge = hostTest.testScript {
      nodes.ghostbridge = nodeFromDefinitions (import ./reference-host.nix);
    };
  }
  // b.listToAttrs (
    map (
      n:
      let
        test = outputs.checks.x86_64-linux.${n}.test;
      in
      lib.nameValuePair n (test.testScript { nodes = b.mapAttrs (_: fakeNode) test.nodes; })
    ) vmChecks
  );
  failures = b.filter (n: !structure.${n}) (b.attrNames structure);
in
if failures != [ ] then
  throw "flake output checks failed:\n  ${b.concatStringsSep "\n  " failures}"
else
  {
    passed = b.attrNames structure;
    inherit scripts;
  }

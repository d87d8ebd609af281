{
  description = "GhostBridge: one typed spec compiled into a reproducible NixOS server, with the modules and daemons that run it";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # Only for the VM check of the generated reference host (its disk layout is a disko module).
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      disko,
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ self.overlays.default ];
        };
      forAllSystems = f: lib.genAttrs systems (system: f (pkgsFor system));

      # The formatter: `nixfmt-tree` (nixfmt over a whole tree) where nixpkgs has
      # it (25.11 and later, where reading the old `nixfmt-rfc-style` alias
      # warns on every evaluation); `nixfmt-rfc-style` on older nixpkgs. Tested
      # with `?`, which reads no attribute and so triggers no alias warning.
      nixfmtFor = pkgs: if pkgs ? nixfmt-tree then pkgs.nixfmt-tree else pkgs.nixfmt-rfc-style;

      cargoToml = lib.importTOML ./Cargo.toml;

      # The crate: only what cargo reads (every declared target must exist).
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./src
          (lib.fileset.maybeMissing ./benches)
          (lib.fileset.maybeMissing ./tests)
          (lib.fileset.maybeMissing ./examples)
          (lib.fileset.maybeMissing ./build.rs)
        ];
      };

      binaries = {
        ghostgen = "Compile a typed GhostBridge spec into a NixOS flake";
        ghostbridge-snapshotter = "Read-only BTRFS snapshots every interval, recorded as a hash chain in SQLite, with a D-Bus API";
        ghostbridge-ovs = "Converge Open vSwitch bridges, ports, flows and uplink offloads to a declared state over OVSDB";
        ghostbridge-qdrant-sync = "Mirror every block of the GhostBridge snapshot chain into a Qdrant collection";
        ghostbridge-doctor = "Check that a GhostBridge host runs as its spec promised: units, OVS drift, chain, Qdrant lag, disk, SSH";
        ghostbridge-deploy-agent = "Activate a NixOS generation live, make it the boot default once confirmed, roll back without a confirmation";
      };

      # One derivation per binary, all from the same Cargo.lock.
      mkBinary =
        pkgs: name: description:
        pkgs.rustPlatform.buildRustPackage {
          pname = name;
          version = cargoToml.package.version;
          inherit src;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [
            "--bin"
            name
          ];
          # The test suite needs root (loop devices, Open vSwitch, namespaces); CI runs it.
          doCheck = false;
          meta = {
            inherit description;
            homepage = "https://github.com/ghostbridge/ghostbridge";
            mainProgram = name;
            platforms = lib.platforms.linux;
          };
        };
    in
    {
      overlays.default = final: _prev: lib.mapAttrs (mkBinary final) binaries;

      packages = forAllSystems (
        pkgs: lib.mapAttrs (name: _: pkgs.${name}) binaries // { default = pkgs.ghostgen; }
      );

      apps = forAllSystems (
        pkgs:
        lib.mapAttrs (name: description: {
          type = "app";
          program = lib.getExe pkgs.${name};
          meta = { inherit description; };
        }) binaries
        // {
          default = {
            type = "app";
            program = lib.getExe pkgs.ghostgen;
            meta.description = binaries.ghostgen;
          };
        }
      );

      # What a host imports: the modules, and the overlay that provides their packages.
      nixosModules.default = {
        _file = ./flake.nix;
        key = "ghostbridge#nixosModules.default";
        imports = [ ./modules ];
        nixpkgs.overlays = [ self.overlays.default ];
      };
      # The modules alone, for a host that brings its own packages (pkgs.ghostbridge-*).
      nixosModules.ghostbridge = ./modules;

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            cargo-nextest
            nix
            (nixfmtFor pkgs)
            openvswitch
            btrfs-progs
            sqlite
            dbus
            ethtool
            iproute2
            jq
          ];
        };
      });

      formatter = forAllSystems nixfmtFor;

      checks = forAllSystems (
        pkgs:
        import ./checks {
          inherit pkgs self disko nixpkgs;
        }
      );
    };
}

# Build-time validation, without a VM: the snapshotter's configFile of a NixOS
# configuration whose retention is shorter than its interval must fail to
# build with the daemon's own message (`ghostbridge-snapshotter check-config`
# exits 2 and names the key), and a valid one must build. The daemon, not a
# module assertion, is what rejects it.
{
  pkgs,
  self,
  nixpkgs,
  ...
}:
let
  # services.ghostbridge.snapshotter.configFile of a NixOS system with these settings.
  snapshotterConfigFile =
    settings:
    (nixpkgs.lib.nixosSystem {
      modules = [
        self.nixosModules.default
        {
          nixpkgs.hostPlatform = pkgs.stdenv.hostPlatform.system;
          services.ghostbridge = {
            enable = true;
            snapshotter = {
              enable = true;
              checkConfig = true;
              inherit settings;
            };
          };
        }
      ];
    }).config.services.ghostbridge.snapshotter.configFile;

  paths = {
    source = "/var/lib/overlay";
    snapshot_dir = "/var/lib/blockchain-timing/snapshots";
    database = "/var/lib/blockchain-timing/chain.db";
  };
in
pkgs.runCommand "ghostbridge-config-validation"
  {
    nativeBuildInputs = [ pkgs.jq ];
    # $failed/testBuildFailure.log and .exit: the failed build's log and exit status.
    failed = pkgs.testers.testBuildFailure (
      snapshotterConfigFile (
        paths
        // {
          interval = "1m";
          retention = "1s";
        }
      )
    );
    valid = snapshotterConfigFile (
      paths
      // {
        interval = "1s";
        retention = "1m";
      }
    );
  }
  ''
    cat "$failed/testBuildFailure.log"
    # check-config's message: "FILE: key.path: message", exit status 2 (invalid).
    grep -F ': retention: ' "$failed/testBuildFailure.log"
    [ "$(cat "$failed/testBuildFailure.exit")" = 2 ]
    jq -e '.interval == "1s" and .retention == "1m"' "$valid"
    touch "$out"
  ''

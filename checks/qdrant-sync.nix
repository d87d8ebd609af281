# Snapshotter, nixpkgs' Qdrant on loopback and the Qdrant sync together: the
# collection gets the configured shape and holds exactly one point per block,
# also after the sync restarts (a replay overwrites, never duplicates).
{
  pkgs,
  common,
  btrfsDisk,
  ...
}:
pkgs.testers.runNixOSTest {
  name = "ghostbridge-qdrant-sync";
  node.pkgsReadOnly = false;

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [
        common
        btrfsDisk
      ];
      virtualisation.memorySize = 3072;
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
      services.ghostbridge = {
        enable = true;
        snapshotter = {
          enable = true;
          settings = {
            source = "/var/lib/overlay";
            snapshot_dir = "/var/lib/blockchain-timing/snapshots";
            database = "/var/lib/blockchain-timing/chain.db";
          };
        };
        # Not the daemon's defaults, so that the collection's shape proves they arrive;
        # url and database come from the modules (local Qdrant, the snapshotter's database).
        qdrant_sync = {
          enable = true;
          settings = {
            collection = "vm-check-blocks";
            dimension = 64;
            distance = "Dot";
            batch = 4;
          };
        };
        # The sync (a dynamic user) and the snapshotter (root) write node exporter's textfile folder.
        monitoring.enable = true;
      };
    };

  testScript =
    { nodes, ... }:
    let
      sync = nodes.machine.services.ghostbridge.qdrant_sync.settings;
      port = toString nodes.machine.services.qdrant.settings.service.http_port;
    in
    ''
      import json

      url = "${sync.url}"
      collection = "${sync.collection}"
      db = "${sync.database}"

      def points():
          out = machine.succeed(
              f"curl -sf -X POST -H 'Content-Type: application/json' -d '{{\"exact\": true}}' "
              f"{url}/collections/{collection}/points/count"
          )
          return json.loads(out)["result"]["count"]

      def blocks():
          return int(machine.succeed(f"sqlite3 {db} 'SELECT COUNT(*) FROM blocks'").strip())

      machine.wait_for_unit("qdrant.service")
      machine.wait_for_unit("ghostbridge-snapshotter.service")
      machine.wait_for_unit("ghostbridge-qdrant-sync.service")

      with subtest("Qdrant listens on loopback only"):
          machine.wait_until_succeeds(f"curl -sf {url}/collections", timeout=60)
          listeners = machine.succeed("ss -tlnH 'sport = :${port}'")
          assert "127.0.0.1:${port}" in listeners and "0.0.0.0:${port}" not in listeners, listeners

      with subtest("the collection has the configured shape"):
          machine.wait_until_succeeds(f"curl -sf {url}/collections/{collection}", timeout=60)
          info = json.loads(machine.succeed(f"curl -sf {url}/collections/{collection}"))
          params = info["result"]["config"]["params"]["vectors"]
          assert params["size"] == ${toString sync.dimension}, params
          assert params["distance"] == "${sync.distance}", params

      with subtest("one point per block"):
          machine.sleep(10)
          machine.succeed("systemctl stop ghostbridge-snapshotter.service")
          n = blocks()
          assert n >= 8, f"only {n} blocks"
          machine.wait_until_succeeds(
              f"test $(curl -sf -X POST -H 'Content-Type: application/json' -d '{{\"exact\": true}}' "
              f"{url}/collections/{collection}/points/count | jq .result.count) -eq {n}",
              timeout=60,
          )
          scroll = json.loads(machine.succeed(
              f"curl -sf -X POST -H 'Content-Type: application/json' "
              f"-d '{{\"limit\": 1, \"with_payload\": true}}' {url}/collections/{collection}/points/scroll"
          ))
          payload = scroll["result"]["points"][0]["payload"]
          assert "height" in payload, payload

      with subtest("a restarted sync replays without duplicates"):
          # The sync Wants= the snapshotter: a plain restart would start it again
          # and the chain would grow past n. Restart the sync alone.
          machine.succeed("systemctl restart --job-mode=ignore-dependencies ghostbridge-qdrant-sync.service")
          machine.wait_for_unit("ghostbridge-qdrant-sync.service")
          machine.sleep(3)
          assert points() == n, f"{points()} points for {n} blocks after a restart"

      with subtest("both daemons' metrics reach node exporter"):
          machine.wait_for_unit("prometheus-node-exporter.service")
          # grep without -q reads to the end: `grep -q` exiting at the first match
          # would make curl fail on the closed pipe (commands run with pipefail).
          machine.wait_until_succeeds("curl -sf http://127.0.0.1:${toString nodes.machine.services.ghostbridge.monitoring.nodeExporter.port}/metrics | grep '^ghostbridge_qdrant_synced_blocks_total' >/dev/null", timeout=60)
          machine.succeed("curl -sf http://127.0.0.1:${toString nodes.machine.services.ghostbridge.monitoring.nodeExporter.port}/metrics | grep '^ghostbridge_snapshotter_height' >/dev/null")

      with subtest("new blocks keep arriving"):
          machine.succeed("systemctl start ghostbridge-snapshotter.service")
          machine.wait_until_succeeds(f"test $(sqlite3 {db} 'SELECT COUNT(*) FROM blocks') -gt {n + 3}")
          machine.wait_until_succeeds(
              f"test $(curl -sf -X POST -H 'Content-Type: application/json' -d '{{\"exact\": true}}' "
              f"{url}/collections/{collection}/points/count | jq .result.count) -gt {n + 2}",
              timeout=60,
          )
    '';
}

# The snapshotter on a real BTRFS disk: at least 8 blocks in 10 s, a chain
# that verifies, snapshots pruned past the retention while their blocks stay,
# and the D-Bus API readable by anyone but ownable by root only.
{
  pkgs,
  common,
  btrfsDisk,
  ...
}:
pkgs.testers.runNixOSTest {
  name = "ghostbridge-snapshotter";
  node.pkgsReadOnly = false;

  nodes.machine = {
    imports = [
      common
      btrfsDisk
    ];
    services.ghostbridge = {
      enable = true;
      snapshotter = {
        enable = true;
        settings = {
          source = "/var/lib/overlay";
          snapshot_dir = "/var/lib/blockchain-timing/snapshots";
          database = "/var/lib/blockchain-timing/chain.db";
          interval = "1s";
          retention = "4s";
        };
      };
    };
  };

  testScript =
    { nodes, ... }:
    let
      snap = nodes.machine.services.ghostbridge.snapshotter.settings;
    in
    ''
      import re

      db = "${snap.database}"
      snapdir = "${snap.snapshot_dir}"

      def sql(query):
          return machine.succeed(f"sqlite3 {db} '{query}'").strip()

      machine.wait_for_unit("ghostbridge-test-btrfs.service")
      machine.wait_for_unit("ghostbridge-snapshotter.service")
      machine.succeed("echo first > ${snap.source}/file")

      with subtest("at least 8 blocks after 10 s"):
          machine.sleep(10)
          blocks = int(sql("SELECT COUNT(*) FROM blocks"))
          assert blocks >= 8, f"only {blocks} blocks after 10 s at a 1 s interval"

      with subtest("the chain verifies"):
          machine.succeed(f"ghostbridge-snapshotter verify --database {db}")

      with subtest("snapshots past the retention are pruned, their blocks kept"):
          pruned = int(sql("SELECT COUNT(*) FROM blocks WHERE pruned_ns IS NOT NULL"))
          assert pruned > 0, "no block is marked pruned after 10 s with a 4 s retention"
          on_disk = int(machine.succeed(f"find {snapdir} -mindepth 1 -maxdepth 1 -type d | wc -l").strip())
          # 4 s of retention at 1 s: about 4 snapshots, a little more around a tick.
          assert 1 <= on_disk <= 7, f"{on_disk} snapshots on disk with a 4 s retention"
          # Every kept block's snapshot exists, no pruned block's snapshot does.
          for name in sql("SELECT snapshot FROM blocks WHERE pruned_ns IS NULL ORDER BY height DESC LIMIT 2").splitlines():
              base = name.split("/")[-1]
              machine.succeed(f"test -d {snapdir}/{base}")
          for name in sql("SELECT snapshot FROM blocks WHERE pruned_ns IS NOT NULL LIMIT 3").splitlines():
              base = name.split("/")[-1]
              machine.fail(f"test -e {snapdir}/{base}")
          # Snapshots are read-only BTRFS subvolumes.
          newest = sql("SELECT snapshot FROM blocks WHERE pruned_ns IS NULL ORDER BY height DESC LIMIT 1").split("/")[-1]
          machine.succeed(f"btrfs property get -ts {snapdir}/{newest} ro | grep -q ro=true")

      with subtest("D-Bus: anyone reads the height, only root owns the name"):
          out = machine.succeed(
              "runuser -u nobody -- busctl --system get-property org.ghostbridge.Snapshotter "
              "/org/ghostbridge/Snapshotter org.ghostbridge.Snapshotter1 Height"
          ).strip()
          m = re.fullmatch(r"t (\d+)", out)
          assert m, f"unexpected busctl output: {out!r}"
          height = int(m.group(1))
          head = int(sql("SELECT MAX(height) FROM blocks"))
          assert 0 < height <= head + 1, f"D-Bus height {height}, database head {head}"
          machine.succeed(
              "busctl --system get-property org.ghostbridge.Snapshotter "
              "/org/ghostbridge/Snapshotter org.ghostbridge.Snapshotter1 HeadHash"
          )
          machine.fail(
              "runuser -u nobody -- busctl --system call org.freedesktop.DBus /org/freedesktop/DBus "
              "org.freedesktop.DBus RequestName su org.ghostbridge.Snapshotter 4"
          )

      with subtest("a restart continues the same chain"):
          before = int(sql("SELECT MAX(height) FROM blocks"))
          machine.succeed("systemctl restart ghostbridge-snapshotter.service")
          machine.wait_for_unit("ghostbridge-snapshotter.service")
          machine.wait_until_succeeds(f"test $(sqlite3 {db} 'SELECT MAX(height) FROM blocks') -gt {before + 2}")
          machine.succeed(f"ghostbridge-snapshotter verify --database {db}")
    '';
}

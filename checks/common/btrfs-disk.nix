# Gives a VM check a real BTRFS file system for the snapshotter: the VM's
# first empty disk is formatted and its subvolumes are mounted at the
# snapshotter's source and at the folders of its snapshots and database,
# before the snapshotter starts (as disko and fileSystems do on a real host).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  snap = config.services.ghostbridge.snapshotter.settings;
  device = "/dev/vdb";
  deviceUnit = "dev-vdb.device";
  dbDir = dirOf snap.database;
  # subvolume -> mount point
  mounts = [
    {
      subvol = "@source";
      where = snap.source;
    }
    {
      subvol = "@chain";
      where = dbDir;
    }
  ]
  ++ lib.optional (!(lib.hasPrefix "${dbDir}/" snap.snapshot_dir)) {
    subvol = "@snapshots";
    where = snap.snapshot_dir;
  };
in
{
  virtualisation.emptyDiskImages = [ 2048 ];
  # The VM's fileSystems are qemu-vm.nix's own (a disko layout is not applied),
  # so nothing else declares BTRFS: this puts btrfs-progs in system.fsPackages,
  # hence in the system PATH the test script runs with (the kernel loads the
  # btrfs module itself on mount).
  boot.supportedFilesystems = [ "btrfs" ];
  environment.systemPackages = [
    pkgs.btrfs-progs
    pkgs.sqlite
  ];

  systemd.services.ghostbridge-test-btrfs = {
    description = "BTRFS disk of the VM check";
    wantedBy = [ "multi-user.target" ];
    requiredBy = [ "ghostbridge-snapshotter.service" ];
    before = [ "ghostbridge-snapshotter.service" ];
    # The disk's device unit: formatted only once udev has announced it.
    requires = [ "${deviceUnit}" ];
    after = [
      "local-fs.target"
      "${deviceUnit}"
    ];
    path = [
      pkgs.btrfs-progs
      pkgs.util-linux
    ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
    };
    script = ''
      if [ "$(blkid -o value -s TYPE ${device} || true)" != btrfs ]; then
        mkfs.btrfs -f ${device}
      fi
      mkdir -p /mnt/btrfs-top
      mountpoint -q /mnt/btrfs-top || mount -t btrfs ${device} /mnt/btrfs-top
    ''
    + lib.concatMapStrings (m: ''
      [ -d /mnt/btrfs-top/${m.subvol} ] || btrfs subvolume create /mnt/btrfs-top/${m.subvol}
      mkdir -p ${m.where}
      mountpoint -q ${m.where} || mount -t btrfs -o subvol=${m.subvol} ${device} ${m.where}
    '') mounts;
  };
}

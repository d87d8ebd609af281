# The test script of a generated VM check. Fixed text: what it checks comes
# from `spec` (JSON, defined just above this line by ghostgen); every value
# that reaches a shell command goes through shlex.quote.
import shlex

q = shlex.quote

machine.start()
machine.wait_for_unit("multi-user.target")
machine.wait_for_unit("sshd.service")
machine.succeed("hostname | grep -x -- " + q(spec["name"]))

if spec["bridges"]:
    machine.wait_for_unit("ghostbridge-ovs.service")
for bridge in spec["bridges"]:
    machine.succeed("ovs-vsctl br-exists " + q(bridge["name"]))
    if bridge["drops_uplink_broadcast"]:
        machine.succeed("ovs-ofctl dump-flows " + q(bridge["name"]) + " | grep actions=drop >/dev/null")

snap = spec["snapshotter"]
if snap is not None:
    # The VM's root is not BTRFS: build the subvolumes on the spare disk. The
    # daemons started at boot without them and kept restarting (Restart=always)
    # until systemd's start limit failed them. Stop them while the subvolumes are
    # made and mounted, then clear their failed state and start-limit counter
    # (reset-failed) before starting them again.
    daemons = ["ghostbridge-snapshotter.service"]
    if spec["qdrant_sync"]:
        daemons.append("ghostbridge-qdrant-sync.service")
    machine.succeed("systemctl stop " + " ".join(reversed(daemons)))
    machine.succeed("mkfs.btrfs -f /dev/vdb", "mkdir -p /mnt/pool", "mount -t btrfs /dev/vdb /mnt/pool")
    for sv in snap["subvolumes"]:
        machine.succeed(
            "btrfs subvolume create " + q("/mnt/pool/" + sv["name"]),
            "mkdir -p -- " + q(sv["mount"]),
            "mount -t btrfs -o subvol=" + q(sv["name"]) + " /dev/vdb " + q(sv["mount"]),
        )
    machine.succeed("systemctl reset-failed " + " ".join(daemons))
    machine.succeed("systemctl start " + " ".join(daemons))
    machine.wait_for_unit("ghostbridge-snapshotter.service")
    machine.sleep(snap["wait_seconds"])
    machine.succeed("ghostbridge-snapshotter verify --database " + q(snap["database"]))
    if snap["index_changes"]:
        # The change index works under the unit's sandbox (BTRFS_IOC_SEND, memfd):
        # a file written into the source is listed as created.
        machine.succeed("echo vm-check > " + q(snap["source"].rstrip("/") + "/.ghostbridge-vm-check"))
        machine.wait_until_succeeds(
            "ghostbridge-snapshotter changes /.ghostbridge-vm-check --database "
            + q(snap["database"])
            + " | grep -F created",
            timeout=30,
        )

if spec["qdrant_sync"]:
    machine.wait_for_unit("ghostbridge-qdrant-sync.service")

mon = spec["monitoring"]
if mon is not None:
    machine.wait_for_unit("prometheus.service")
    machine.wait_for_unit("prometheus-node-exporter.service")
    machine.wait_for_open_port(mon["prometheus_port"])
    if mon["grafana"]:
        machine.wait_for_unit("grafana.service")

if spec["docker"]:
    machine.wait_for_unit("docker.service")
if spec["libvirt"]:
    # nixpkgs socket-activates libvirtd (libvirtd.socket in sockets.target) and
    # runs it with `--timeout 120`: the service exits when idle, the socket stays.
    machine.wait_for_unit("libvirtd.socket")
    machine.succeed("virsh -c qemu:///system list --all")
machine.fail("grep -q '^PasswordAuthentication yes' /etc/ssh/sshd_config")

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
        machine.succeed("ovs-ofctl dump-flows " + q(bridge["name"]) + " | grep -q actions=drop")

snap = spec["snapshotter"]
if snap is not None:
    # The VM's root is not BTRFS: build the subvolumes on the spare disk.
    machine.succeed("mkfs.btrfs -f /dev/vdb", "mkdir -p /mnt/pool", "mount /dev/vdb /mnt/pool")
    for sv in snap["subvolumes"]:
        machine.succeed(
            "btrfs subvolume create " + q("/mnt/pool/" + sv["name"]),
            "mkdir -p -- " + q(sv["mount"]),
            "mount -o subvol=" + q(sv["name"]) + " /dev/vdb " + q(sv["mount"]),
        )
    machine.succeed("systemctl restart ghostbridge-snapshotter.service")
    machine.wait_for_unit("ghostbridge-snapshotter.service")
    machine.sleep(snap["wait_seconds"])
    machine.succeed("ghostbridge-snapshotter verify --database " + q(snap["database"]))

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
    machine.wait_for_unit("libvirtd.service")
machine.fail("grep -q '^PasswordAuthentication yes' /etc/ssh/sshd_config")

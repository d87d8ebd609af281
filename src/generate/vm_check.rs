//! `checks/<host>.nix`: a nixosTest that boots the host in a VM and asserts its
//! services come up. What a VM cannot have is replaced: the uplink NICs become
//! the VM's test NICs, and the BTRFS subvolumes are created on a spare disk.

use crate::nix::{attrs, Expr, Key};
use crate::spec::HostSpec;

/// Python for the test driver, one statement per line.
fn test_script(h: &HostSpec) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line("machine.start()".into());
    line("machine.wait_for_unit(\"multi-user.target\")".into());
    line("machine.wait_for_unit(\"sshd.service\")".into());
    line(format!("machine.succeed(\"hostname | grep -x {}\")", h.name));
    if !h.network.bridges.is_empty() {
        line("machine.wait_for_unit(\"ghostbridge-ovs.service\")".into());
        for b in &h.network.bridges {
            line(format!("machine.succeed(\"ovs-vsctl br-exists {}\")", b.name));
            if b.uplink.is_some() && b.drop_uplink_broadcast {
                line(format!("machine.succeed(\"ovs-ofctl dump-flows {} | grep -q actions=drop\")", b.name));
            }
        }
    }
    if let (Some(snap), Some(disk)) = (&h.snapshots, &h.disk) {
        // The VM's root is not BTRFS: build the subvolumes on the spare disk.
        line("machine.succeed(\"mkfs.btrfs -f /dev/vdb\", \"mkdir -p /mnt/pool\", \"mount /dev/vdb /mnt/pool\")".into());
        for sv in disk.subvolumes.iter().filter(|s| s.mount != "/") {
            line(format!(
                "machine.succeed(\"btrfs subvolume create /mnt/pool/{name}\", \"mkdir -p {mount}\", \"mount -o subvol={name} /dev/vdb {mount}\")",
                name = sv.name,
                mount = sv.mount
            ));
        }
        line("machine.succeed(\"systemctl restart ghostbridge-snapshotter.service\")".into());
        line("machine.wait_for_unit(\"ghostbridge-snapshotter.service\")".into());
        let wait = (snap.interval.as_millis() * 4).div_ceil(1000).max(2);
        line(format!("machine.sleep({wait})"));
        line(format!("machine.succeed(\"ghostbridge-snapshotter verify --db {}\")", snap.database));
    }
    if h.vectors.is_some() && h.snapshots.is_some() {
        line("machine.wait_for_unit(\"ghostbridge-qdrant-sync.service\")".into());
    }
    if let Some(m) = &h.monitoring {
        line("machine.wait_for_unit(\"prometheus.service\")".into());
        line("machine.wait_for_unit(\"prometheus-node-exporter.service\")".into());
        line(format!("machine.wait_for_open_port({})", m.prometheus_port));
        if m.grafana {
            line("machine.wait_for_unit(\"grafana.service\")".into());
        }
    }
    if h.virtualization.docker {
        line("machine.wait_for_unit(\"docker.service\")".into());
    }
    if h.virtualization.libvirt {
        line("machine.wait_for_unit(\"libvirtd.service\")".into());
    }
    line("machine.fail(\"grep -q '^PasswordAuthentication yes' /etc/ssh/sshd_config\")".into());
    s
}

pub fn check(h: &HostSpec) -> Expr {
    let mk_force = |v: Expr| Expr::var("lib").select("mkForce").apply(v);
    let mut node: Vec<(Vec<Key>, Expr)> = vec![
        (
            vec![Key::from("imports")],
            Expr::List(vec![
                Expr::var("inputs").select("disko.nixosModules.disko"),
                Expr::var("inputs").select("ghostbridge.nixosModules.default"),
                Expr::path(&format!("../hosts/{}", h.name)),
            ]),
        ),
        (vec![Key::from("virtualisation"), Key::from("memorySize")], Expr::Int(3072)),
        (vec![Key::from("virtualisation"), Key::from("emptyDiskImages")], Expr::List(vec![Expr::Int(4096)])),
    ];
    // Each uplink becomes one of the VM's test NICs (eth1, eth2, ...).
    let uplinks: Vec<&str> = h.network.bridges.iter().filter_map(|b| b.uplink.as_deref()).collect();
    if !uplinks.is_empty() {
        let vlans: Vec<Expr> = (1..=uplinks.len() as i64).map(Expr::Int).collect();
        node.push((vec![Key::from("virtualisation"), Key::from("vlans")], Expr::List(vlans)));
    }
    let mut nic = 0;
    for b in &h.network.bridges {
        if b.uplink.is_some() {
            nic += 1;
            node.push((
                vec![Key::from("services"), Key::from("ghostbridge"), Key::from("network"), Key::from("bridges"), Key::from(&b.name), Key::from("uplink")],
                mk_force(Expr::str(format!("eth{nic}"))),
            ));
        }
    }
    let node_module = Expr::Lambda { formals: vec!["lib".into()], ellipsis: true, at: None, body: Box::new(Expr::Attrs(node)) };
    let test = Expr::var("pkgs").select("testers.runNixOSTest").apply(attrs([
        ("name", Expr::str(format!("ghostbridge-host-{}", h.name))),
        ("node.specialArgs", attrs([("inputs", Expr::var("inputs"))])),
        // The GhostBridge module adds its overlay, so the node's pkgs may not be read-only.
        ("node.pkgsReadOnly", Expr::Bool(false)),
        ("nodes.machine", node_module),
        ("testScript", Expr::Lines(test_script(h))),
    ]));
    Expr::Lambda { formals: vec!["inputs".into(), "pkgs".into()], ellipsis: false, at: None, body: Box::new(test) }
}

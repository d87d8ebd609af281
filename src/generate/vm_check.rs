//! `checks/<host>.nix`: a nixosTest that boots the host in a VM and asserts its
//! services come up. What a VM cannot have is replaced: the uplink NICs become
//! the VM's test NICs, and the BTRFS subvolumes are created on a spare disk.

use serde_json::json;

use super::{GenerateError, python, settings};
use crate::nix::{Expr, Key, attrs};
use crate::spec::HostSpec;

/// The fixed part of every VM check's test script.
const SCRIPT: &str = include_str!("vm_check.py");

/// What the VM check of `h` checks, as the JSON document its script reads.
fn facts(h: &HostSpec) -> serde_json::Value {
    let bridges: Vec<_> = h
        .network
        .bridges
        .iter()
        .map(|b| json!({"name": b.name, "drops_uplink_broadcast": b.uplink.is_some() && b.drop_uplink_broadcast}))
        .collect();
    let snapshotter = match (&h.snapshotter, &h.disk) {
        (Some(snap), Some(disk)) => {
            let subvolumes: Vec<_> = disk
                .subvolumes
                .iter()
                .filter(|s| s.mount != "/")
                .map(|s| json!({"name": s.name, "mount": s.mount}))
                .collect();
            let wait_seconds = (snap.interval.as_millis() * 4).div_ceil(1000).max(2);
            json!({
                "database": snap.database,
                "source": snap.source,
                "index_changes": snap.index_changes,
                "subvolumes": subvolumes,
                "wait_seconds": wait_seconds,
            })
        }
        _ => serde_json::Value::Null,
    };
    let monitoring = match &h.monitoring {
        Some(m) => json!({"prometheus_port": m.prometheus_port, "grafana": m.grafana}),
        None => serde_json::Value::Null,
    };
    json!({
        "name": h.name,
        "bridges": bridges,
        "snapshotter": snapshotter,
        "qdrant_sync": h.qdrant_sync.is_some() && h.snapshotter.is_some(),
        "monitoring": monitoring,
        "docker": h.virtualization.docker,
        "libvirt": h.virtualization.libvirt,
    })
}

/// Python for the test driver: the facts as data, then the fixed script.
pub fn test_script(h: &HostSpec) -> String {
    let data = facts(h).to_string();
    format!("import json\nspec = json.loads({})\n{SCRIPT}", python::string(&data))
}

pub fn check(h: &HostSpec) -> Result<Expr, GenerateError> {
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
        // qemu-vm.nix replaces disko's fileSystems with the VM's own: BTRFS must
        // be declared for the kernel module and btrfs-progs (in the script's PATH).
        (vec![Key::from("boot"), Key::from("supportedFilesystems")], Expr::strs(["btrfs"])),
        // No KVM inside the VM: a spec's kernel_modules = ["kvm-intel"] would fail
        // systemd-modules-load on AMD or non-nested runners; deny-listed, it is skipped.
        (vec![Key::from("boot"), Key::from("blacklistedKernelModules")], Expr::strs(["kvm_intel", "kvm_amd"])),
    ];
    // Each uplink becomes one of the VM's test NICs (eth1, eth2, ...), without
    // the address `virtualisation.vlans` would give it: it is enslaved to its bridge.
    let uplinks: Vec<&str> = h.network.bridges.iter().filter_map(|b| b.uplink.as_deref()).collect();
    if !uplinks.is_empty() {
        let nics = (1..=uplinks.len() as i64)
            .map(|i| {
                (vec![Key::from(format!("eth{i}"))], attrs([("vlan", Expr::Int(i)), ("assignIP", Expr::Bool(false))]))
            })
            .collect();
        node.push((vec![Key::from("virtualisation"), Key::from("interfaces")], Expr::Attrs(nics)));

        let mut nic = 0;
        let mut ovs = h.ovs_config();
        for b in ovs.bridges.iter_mut().filter(|b| b.uplink.is_some()) {
            nic += 1;
            b.uplink = Some(format!("eth{nic}"));
        }
        node.push((
            ["services", "ghostbridge", "ovs", "settings", "bridges"].into_iter().map(Key::from).collect(),
            mk_force(settings(&ovs.bridges)?),
        ));
    }
    let node_module =
        Expr::Lambda { formals: vec!["lib".into()], ellipsis: true, at: None, body: Box::new(Expr::Attrs(node)) };
    let test = Expr::var("pkgs").select("testers.runNixOSTest").apply(attrs([
        ("name", Expr::str(format!("ghostbridge-host-{}", h.name))),
        ("node.specialArgs", attrs([("inputs", Expr::var("inputs"))])),
        // The GhostBridge module adds its overlay, so the node's pkgs may not be read-only.
        ("node.pkgsReadOnly", Expr::Bool(false)),
        ("nodes.machine", node_module),
        ("testScript", Expr::Lines(test_script(h))),
    ]));
    Ok(Expr::Lambda { formals: vec!["inputs".into(), "pkgs".into()], ellipsis: false, at: None, body: Box::new(test) })
}

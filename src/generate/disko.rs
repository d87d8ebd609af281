//! `hosts/<host>/disko.nix`: the disk layout in disko's format: GPT, an EFI
//! system partition on /boot and one BTRFS file system with the subvolumes.
//! disko uses it both to partition at install time and to mount at boot.

use crate::nix::{Expr, Key, attrs};
use crate::spec::{Discard, Disk, Subvolume};

/// "512MiB" -> "512M" (sgdisk's units are binary).
pub fn sgdisk_size(size: &str) -> String {
    for (ours, theirs) in [("KiB", "K"), ("MiB", "M"), ("GiB", "G"), ("TiB", "T")] {
        if let Some(n) = size.strip_suffix(ours) {
            return format!("{n}{theirs}");
        }
    }
    size.to_string()
}

/// The mount options of a subvolume, in a fixed order.
pub fn mount_options(sv: &Subvolume) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = &sv.compress {
        out.push(format!("compress={c}"));
    }
    if sv.noatime {
        out.push("noatime".into());
    }
    if sv.ssd {
        out.push("ssd".into());
    }
    match sv.discard {
        Some(Discard::Async) => out.push("discard=async".into()),
        Some(Discard::Sync) => out.push("discard".into()),
        None => {}
    }
    if sv.nodatacow {
        out.push("nodatacow".into());
    }
    out
}

pub fn disko(disk: &Disk) -> Expr {
    let subvolumes: Vec<(Vec<Key>, Expr)> = disk
        .subvolumes
        .iter()
        .map(|sv| {
            (
                vec![Key::from(&sv.name)],
                attrs([("mountpoint", Expr::str(&sv.mount)), ("mountOptions", Expr::strs(mount_options(sv)))]),
            )
        })
        .collect();
    let esp = attrs([
        ("size", Expr::str(sgdisk_size(&disk.esp_size))),
        ("type", Expr::str("EF00")),
        (
            "content",
            attrs([
                ("type", Expr::str("filesystem")),
                ("format", Expr::str("vfat")),
                ("mountpoint", Expr::str("/boot")),
                ("mountOptions", Expr::strs(["umask=0077"])),
            ]),
        ),
    ]);
    let root = attrs([
        ("size", Expr::str("100%")),
        (
            "content",
            attrs([
                ("type", Expr::str("btrfs")),
                ("extraArgs", Expr::strs(["-f"])),
                ("subvolumes", Expr::Attrs(subvolumes)),
            ]),
        ),
    ]);
    attrs([(
        "disko.devices.disk.main",
        attrs([
            ("type", Expr::str("disk")),
            ("device", Expr::str(&disk.device)),
            ("content", attrs([("type", Expr::str("gpt")), ("partitions", attrs([("ESP", esp), ("root", root)]))])),
        ]),
    )])
}

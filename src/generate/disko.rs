//! `hosts/<host>/disko.nix`: the disk layout in disko's format: GPT, an EFI
//! system partition on /boot and one BTRFS file system with the subvolumes.
//! disko uses it both to partition at install time and to mount at boot.

use super::shell;
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

/// disko's `postCreateHook` for the BTRFS file system: what BTRFS keeps per
/// subvolume rather than per mount, set on each new subvolume's root so every
/// file inherits it. `nodatacow` is the `+C` attribute; the compression
/// algorithm is the `compression` property (the level is the file system's).
/// `None` when no subvolume needs either.
pub fn post_create_hook(disk: &Disk) -> Option<String> {
    let mut lines = Vec::new();
    for sv in &disk.subvolumes {
        let at = format!("\"$MNTPOINT\"/{}", shell::quote(&sv.name));
        if sv.nodatacow {
            lines.push(format!("  chattr +C {at}"));
        } else if let Some(compress) = &sv.compress {
            let algorithm = compress.split(':').next().unwrap_or(compress);
            lines.push(format!("  btrfs property set {at} compression {}", shell::quote(algorithm)));
        }
    }
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "(\n  MNTPOINT=$(mktemp -d)\n  mount \"$device\" \"$MNTPOINT\" -o subvol=/\n  trap 'umount \"$MNTPOINT\"; rm -rf \"$MNTPOINT\"' EXIT\n{}\n)\n",
        lines.join("\n")
    ))
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
        ("content", {
            let mut fs = vec![
                ("type", Expr::str("btrfs")),
                ("extraArgs", Expr::strs(["-f"])),
                ("subvolumes", Expr::Attrs(subvolumes)),
            ];
            if let Some(hook) = post_create_hook(disk) {
                fs.push(("postCreateHook", Expr::Lines(hook)));
            }
            attrs(fs)
        }),
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

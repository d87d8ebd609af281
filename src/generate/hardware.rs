//! `hosts/<host>/hardware.nix`: a starting point for the machine's hardware
//! settings, written once and then owned by the user.

use crate::nix::{Expr, Key, attrs};

/// How a host without a `[disk]` layout can be installed: nixos-anywhere's
/// disko phase needs a layout, and its root file system must come from
/// hardware.nix. Said by `ghostgen check` and in the generated files.
pub const NO_DISK_INSTALL: &[&str] = &[
    "This host has no [disk] layout, so its file systems come from its hardware.nix. Install it by",
    "`nixos-rebuild switch` on a machine already running NixOS, by nixos-infect, or by",
    "`nixos-anywhere --phases kexec`, partitioning and mounting /mnt by hand, then",
    "`nixos-anywhere --phases install,reboot` (its disko phase needs a [disk] layout).",
];

pub fn header(host: &str, has_disk_layout: bool) -> Vec<String> {
    let mut out = vec![format!("Hardware of {host}. Created once by ghostgen and never overwritten: it is yours.")];
    if has_disk_layout {
        out.push(
            "Replace it with the output of `nixos-generate-config --show-hardware-config --no-filesystems`".into(),
        );
        out.push("run on the machine (or in the installer): disko.nix declares the file systems.".into());
    } else {
        out.push("Replace it with the full output of `nixos-generate-config --show-hardware-config`".into());
        out.push("(file systems included) run on the machine.".into());
        out.extend(NO_DISK_INSTALL.iter().map(|l| l.to_string()));
    }
    out
}

pub fn stub(has_disk_layout: bool) -> Expr {
    let entries = vec![
        (
            "boot.initrd.availableKernelModules",
            Expr::strs(["nvme", "xhci_pci", "ahci", "virtio_pci", "virtio_blk", "usbhid", "sd_mod"]),
        ),
        ("hardware.enableRedistributableFirmware", Expr::var("lib").select("mkDefault").apply(Expr::Bool(true))),
    ];
    let mut body = attrs(entries);
    if !has_disk_layout {
        // Without [disk] in the spec the file systems come from here: the labels
        // the NixOS installer manual uses, as defaults to replace.
        let fs = |device: &str, fs_type: &str| {
            Expr::var("lib")
                .select("mkDefault")
                .apply(attrs([("device", Expr::str(device)), ("fsType", Expr::str(fs_type))]))
        };
        if let Expr::Attrs(entries) = &mut body {
            entries.push((vec![Key::from("fileSystems"), Key::from("/")], fs("/dev/disk/by-label/nixos", "ext4")));
            entries.push((vec![Key::from("fileSystems"), Key::from("/boot")], fs("/dev/disk/by-label/boot", "vfat")));
        }
    }
    Expr::Lambda { formals: vec!["lib".into()], ellipsis: true, at: None, body: Box::new(body) }
}

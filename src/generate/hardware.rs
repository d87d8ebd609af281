//! `hosts/<host>/hardware.nix`: a starting point for the machine's hardware
//! settings, written once and then owned by the user.

use crate::nix::{Expr, Key, attrs};

pub fn header(host: &str) -> Vec<String> {
    vec![
        format!("Hardware of {host}. Created once by ghostgen and never overwritten: it is yours."),
        "Replace it with the output of `nixos-generate-config --show-hardware-config --no-filesystems`".into(),
        "run on the machine (or in the installer).".into(),
    ]
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

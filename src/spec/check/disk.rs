//! Disk layout: device path, subvolume names and mount points unique and
//! absolute, compression levels valid per algorithm, nodatacow without compression.

use std::collections::HashMap;

use super::Ctx;
use crate::spec::model::HostSpec;
use crate::spec_path;

/// Valid compression levels per algorithm (None: the algorithm takes no level).
fn level_range(algorithm: &str) -> Option<(u32, u32)> {
    match algorithm {
        "zstd" => Some((1, 15)),
        "zlib" => Some((1, 9)),
        _ => None,
    }
}

/// Mount points and subvolume names end up in fstab and in systemd unit lines
/// (`RequiresMountsFor=`, mount unit names): the same rule as daemon paths.
fn plain_path(path: &str) -> bool {
    super::destinations::unit_path(path).is_ok()
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    let Some(disk) = &host.disk else { return };
    if !disk.device.starts_with("/dev/") {
        ctx.error(
            spec_path!["disk", "device"],
            format!("disk device {:?} is not a /dev path", disk.device),
            "use a stable path such as \"/dev/disk/by-id/nvme-...\"",
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut mounts: HashMap<&str, usize> = HashMap::new();
    for (i, sv) in disk.subvolumes.iter().enumerate() {
        if sv.name.is_empty() || sv.name.contains('/') || sv.name == "." || sv.name == ".." {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "name"],
                format!("subvolume name {:?} is not a plain name", sv.name),
                "use a name without '/', such as \"@home\"",
            );
        }
        if let Some(first) = names.insert(sv.name.as_str(), i) {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "name"],
                format!("subvolume {:?} is declared twice", sv.name),
                format!("rename it; the first one is [[disk.subvolumes]] entry {}", first + 1),
            );
        }
        if !plain_path(&sv.name) {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "name"],
                format!("subvolume name {:?} has characters other than letters, digits and @._+-", sv.name),
                "rename it, e.g. \"@data\"",
            );
        }
        if !plain_path(&sv.mount) {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "mount"],
                format!("mount point {:?} has characters other than letters, digits and /@._+-", sv.mount),
                "use a plain path such as \"/var/lib/data\"",
            );
        } else if !sv.mount.starts_with('/') {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "mount"],
                format!("mount point {:?} is not absolute", sv.mount),
                format!("write it from the root, e.g. \"/{}\"", sv.mount.trim_start_matches("./")),
            );
        } else if sv.mount.len() > 1 && sv.mount.ends_with('/') {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "mount"],
                format!("mount point {:?} ends with '/'", sv.mount),
                format!("write {:?}", sv.mount.trim_end_matches('/')),
            );
        }
        if let Some(first) = mounts.insert(sv.mount.as_str(), i) {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "mount"],
                format!("mount point {:?} is used twice", sv.mount),
                format!("[[disk.subvolumes]] entry {} already mounts there", first + 1),
            );
        }
        if let Some(compress) = &sv.compress {
            let (algorithm, level) = match compress.split_once(':') {
                Some((a, l)) => (a, Some(l)),
                None => (compress.as_str(), None),
            };
            match (level_range(algorithm), level) {
                (None, Some(_)) => ctx.error(
                    spec_path!["disk", "subvolumes", i, "compress"],
                    format!("{algorithm} takes no compression level"),
                    format!("write compress = \"{algorithm}\""),
                ),
                (Some((lo, hi)), Some(l)) => {
                    let ok = l.parse::<u32>().map(|n| (lo..=hi).contains(&n)).unwrap_or(false);
                    if !ok {
                        ctx.error(
                            spec_path!["disk", "subvolumes", i, "compress"],
                            format!("{algorithm} compression level {l} is out of range"),
                            format!("{algorithm} levels go from {lo} to {hi}, e.g. \"{algorithm}:3\""),
                        );
                    }
                }
                _ => {}
            }
            if sv.nodatacow {
                ctx.error(
                    spec_path!["disk", "subvolumes", i, "nodatacow"],
                    format!("subvolume {:?} sets both nodatacow and compress", sv.name),
                    "BTRFS only compresses copy-on-write data, so nodatacow silently disables compression: remove one of the two",
                );
            }
        }
    }
    if !disk.subvolumes.is_empty() && !disk.subvolumes.iter().any(|s| s.mount == "/") {
        ctx.error(
            spec_path!["disk", "subvolumes"],
            "no subvolume is mounted at \"/\"",
            "add a subvolume such as name = \"@\", mount = \"/\"",
        );
    }
}

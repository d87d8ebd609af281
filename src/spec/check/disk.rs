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

/// The smallest EFI system partition accepted: a few generations of kernels
/// and initrds, with room for FAT32.
const MIN_ESP_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes of a size such as "512MiB" (the schema checked its form).
fn size_bytes(size: &str) -> Option<u64> {
    let digits = size.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = size[..digits].parse().ok()?;
    let unit: u64 = match &size[digits..] {
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(unit)
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    let Some(disk) = &host.disk else { return };
    if !disk.device.starts_with("/dev/") || super::destinations::normalized(&disk.device).is_err() {
        ctx.error(
            spec_path!["disk", "device"],
            format!("disk device {:?} is not a plain /dev path", disk.device),
            "use a stable path such as \"/dev/disk/by-id/nvme-...\" (no '.', '..' or empty steps)",
        );
    }
    if let Some(bytes) = size_bytes(&disk.esp_size)
        && bytes < MIN_ESP_BYTES
    {
        ctx.error(
            spec_path!["disk", "esp_size"],
            format!("an EFI system partition of {} is too small", disk.esp_size),
            "systemd-boot keeps the kernel and initrd of every boot entry there (about 60 MiB each): use at least \"256MiB\"; \"512MiB\" is the default",
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
        } else if sv.mount == "/boot" || sv.mount.starts_with("/boot/") {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "mount"],
                format!("mount point {:?} is where the EFI system partition is mounted", sv.mount),
                "/boot belongs to the ESP (systemd-boot reads it before any subvolume exists): mount the subvolume elsewhere",
            );
        } else if sv.mount.split('/').any(|seg| seg == "." || seg == "..") || sv.mount.contains("//") {
            ctx.error(
                spec_path!["disk", "subvolumes", i, "mount"],
                format!("mount point {:?} is not a normalised path", sv.mount),
                "write it without '.', '..' or '//' steps",
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
    // BTRFS takes the compression level from the first mount ("/") for the whole
    // file system; only the algorithm is per subvolume (the `compression`
    // property disko sets when it creates the subvolume).
    let applied = disk.subvolumes.iter().find(|s| s.mount == "/").and_then(|s| s.compress.as_deref());
    let applied_level = applied.and_then(|c| c.split_once(':')).map(|(_, l)| l);
    for (i, sv) in disk.subvolumes.iter().enumerate().filter(|(_, s)| s.mount != "/") {
        let Some((algorithm, level)) = sv.compress.as_deref().and_then(|c| c.split_once(':')) else { continue };
        if applied_level != Some(level) && level_range(algorithm).is_some() {
            let what = match applied {
                Some(c) => format!("the level of the first mount (\"/\": {c:?})"),
                None => format!("{algorithm}'s default level (\"/\" sets no compress)"),
            };
            ctx.warn(
                spec_path!["disk", "subvolumes", i, "compress"],
                format!("subvolume {:?} gets {algorithm} compression at {what}, not level {level}", sv.name),
                "BTRFS has one compression level per file system; the algorithm is per subvolume. Write the level \"/\" uses, or set it on \"/\"",
            );
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

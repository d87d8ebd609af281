//! How the daemons fit the host (the daemons' own rules are in `daemons.rs`):
//! the snapshotter's source is a declared subvolume and its database lives
//! outside it, the Qdrant sync reads the chain the snapshotter writes, paths
//! that land in unit lines are plain; D-Bus and virtualization wiring.

use std::path::{Component, Path};

use super::Ctx;
use crate::spec::model::HostSpec;
use crate::spec_path;

/// Normalised absolute path components, or None if not absolute / has `..`.
pub(super) fn components(path: &str) -> Option<Vec<String>> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return None;
    }
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn is_under(path: &[String], dir: &[String]) -> bool {
    path.len() >= dir.len() && path[..dir.len()] == *dir
}

/// The mount point (of the declared subvolumes) that holds `path`.
pub(super) fn owning_mount<'a>(host: &'a HostSpec, path: &[String]) -> Option<&'a str> {
    let disk = host.disk.as_ref()?;
    disk.subvolumes
        .iter()
        .filter_map(|s| components(&s.mount).map(|c| (c, s.mount.as_str())))
        .filter(|(c, _)| is_under(path, c))
        .max_by_key(|(c, _)| c.len())
        .map(|(_, m)| m)
}

/// Paths that land in systemd unit lines (`ReadWritePaths=`, `RequiresMountsFor=`,
/// `LoadCredential=`, `ExecStartPre=`), which split on white space and expand
/// `%` and `$`: refused unless plain.
pub(super) fn plain_unit_path(ctx: &mut Ctx, section: &str, key: &str, value: &std::path::Path) -> bool {
    let text = value.to_string_lossy();
    match super::destinations::unit_path(&text).and_then(|()| super::destinations::normalized(&text)) {
        Ok(()) => true,
        Err(why) => {
            ctx.error(
                spec_path![section, key],
                format!("{key} {text:?} is refused: {why}"),
                "use a plain absolute path such as \"/var/lib/ghostbridge\"",
            );
            false
        }
    }
}

/// The most live snapshots a policy should keep: BTRFS operations (snapshot
/// deletion, balance, quota, send) slow down with thousands of subvolumes;
/// btrfs-progs' and snapper's documentation advise staying in the low thousands.
pub const MAX_LIVE_SNAPSHOTS: u64 = 4096;

/// Folders of the standard hierarchy (and the NixOS store) that no daemon may
/// take over: the module gives the database's folder and the snapshot folder
/// their own owner, group and mode (`install -d -m 2770 -g ghostbridge`).
const SYSTEM_FOLDERS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/media",
    "/mnt",
    "/nix",
    "/nix/store",
    "/nix/var",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/db",
    "/var/empty",
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/tmp",
];

/// Why `dir` cannot be a folder of its own for a daemon, if it cannot. (A
/// subvolume mounted there for the chain, as in the reference server, is its
/// own; the snapshotted source is refused by the database-inside-source rule.)
pub(super) fn dedicated_folder(dir: &str) -> Result<(), String> {
    if SYSTEM_FOLDERS.contains(&dir) {
        return Err(format!("{dir} is a system folder"));
    }
    Ok(())
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    if let Some(s) = &host.snapshotter {
        let mut ok = true;
        for (key, value) in [("source", &s.source), ("snapshot_dir", &s.snapshot_dir), ("database", &s.database)] {
            ok &= plain_unit_path(ctx, "snapshotter", key, value);
            ok &= components(&value.to_string_lossy()).is_some();
        }
        if let Some(dir) = &s.metrics_dir {
            plain_unit_path(ctx, "snapshotter", "metrics_dir", dir);
        }
        if let Some(file) = &s.hmac_key_file {
            plain_unit_path(ctx, "snapshotter", "hmac_key_file", file);
        }
        if ok {
            let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
            let (source_text, db_text, dir_text) = (text(&s.source), text(&s.database), text(&s.snapshot_dir));
            let (source, db, dir) = (
                components(&source_text).unwrap_or_default(),
                components(&db_text).unwrap_or_default(),
                components(&dir_text).unwrap_or_default(),
            );
            let source_mount = owning_mount(host, &source);
            if host.disk.is_some() && source_mount != Some(source_text.as_str()) {
                ctx.error(
                    spec_path!["snapshotter", "source"],
                    format!("source {source_text:?} is not the mount point of a declared subvolume"),
                    "snapshots are taken of whole subvolumes: name a `mount` from [[disk.subvolumes]]",
                );
            }
            let db_inside = match (host.disk.is_some(), owning_mount(host, &db)) {
                (true, m) => m == Some(source_text.as_str()),
                (false, _) => is_under(&db, &source),
            };
            if db_inside {
                ctx.error(
                    spec_path!["snapshotter", "database"],
                    format!("the chain database {db_text:?} lives inside the snapshotted subvolume {source_text:?}"),
                    "every snapshot would capture a half-written database and the chain would record itself: put it on another subvolume, e.g. under /var/lib",
                );
            }
            let db_dir =
                std::path::Path::new(&db_text).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            if let Err(why) = dedicated_folder(&db_dir) {
                ctx.error(
                    spec_path!["snapshotter", "database"],
                    format!("the chain database's folder must be its own, but {why}"),
                    "the host gives that folder to the daemons (group ghostbridge, mode 2770): put the database in a folder of its own, e.g. \"/var/lib/blockchain-timing/chain.db\"",
                );
            }
            if let Err(why) = dedicated_folder(&dir_text) {
                ctx.error(
                    spec_path!["snapshotter", "snapshot_dir"],
                    format!("the snapshot folder must be its own, but {why}"),
                    "the host gives that folder to the snapshotter (mode 0750, root): use a folder of its own, e.g. \"/var/lib/blockchain-timing/snapshots\"",
                );
            } else if dir_text == db_dir {
                ctx.error(
                    spec_path!["snapshotter", "snapshot_dir"],
                    "the snapshot folder is the chain database's folder",
                    "they get different owners and modes: give the snapshots a folder of their own, e.g. a `snapshots` folder beside the database",
                );
            }
            if is_under(&dir, &source) && host.disk.is_some() && owning_mount(host, &dir) == Some(source_text.as_str())
            {
                ctx.warn(spec_path!["snapshotter", "snapshot_dir"], "snapshots are stored inside the subvolume they snapshot", "BTRFS does not recurse into nested snapshots, but they are easier to manage elsewhere: use a directory on another subvolume of the same file system");
            }
        }
    }
    if let Some(v) = &host.qdrant_sync {
        match &host.snapshotter {
            None => ctx.error(
                spec_path!["qdrant_sync"],
                "[qdrant_sync] mirrors the snapshot chain, but [snapshotter] is not configured",
                "add a [snapshotter] section, or remove [qdrant_sync]",
            ),
            Some(s) if s.database != v.database => ctx.error(
                spec_path!["qdrant_sync", "database"],
                format!(
                    "the Qdrant sync reads {:?}, but the snapshotter writes its chain to {:?}",
                    v.database.display().to_string(),
                    s.database.display().to_string()
                ),
                "remove `database` from [qdrant_sync]: it defaults to the snapshotter's",
            ),
            Some(_) => {}
        }
        plain_unit_path(ctx, "qdrant_sync", "database", &v.database);
        for (key, value) in [("api_key_file", &v.api_key_file), ("metrics_dir", &v.metrics_dir)] {
            if let Some(value) = value {
                plain_unit_path(ctx, "qdrant_sync", key, value);
            }
        }
    }
    if let Some(d) = &host.dbus
        && d.op_dbus.is_none()
        && (d.mcp.is_some() || d.web.is_some())
    {
        ctx.error(
            spec_path!["dbus"],
            "the MCP server and web UI need op-dbus itself",
            "add op_dbus = { flake = \"...\" } to [dbus]",
        );
    }
    for (net, bridge) in &host.virtualization.ovs_networks {
        if !host.network.bridges.iter().any(|b| &b.name == bridge) {
            ctx.error(
                spec_path!["virtualization", "ovs_networks", net.as_str()],
                format!("libvirt network {net:?} names bridge {bridge:?}, which is not declared"),
                "declare it in [[network.bridges]] or fix the name",
            );
        }
    }
    if !host.virtualization.ovs_networks.is_empty() && !host.virtualization.libvirt {
        ctx.error(
            spec_path!["virtualization", "ovs_networks"],
            "ovs_networks needs libvirt",
            "set libvirt = true in [virtualization]",
        );
    }
    if host.virtualization.novnc_port.is_some() && !host.virtualization.libvirt {
        ctx.error(
            spec_path!["virtualization", "novnc_port"],
            "the noVNC console shows libvirt's VMs, but libvirt is off",
            "set libvirt = true in [virtualization], or remove novnc_port",
        );
    }
    if let Some(s) = &host.snapshotter {
        let live = s.max_live_snapshots();
        if live > MAX_LIVE_SNAPSHOTS {
            ctx.warn(
                spec_path!["snapshotter", "retention"],
                format!(
                    "this policy keeps up to {live} live snapshots; BTRFS slows down past a few thousand (bound: {MAX_LIVE_SNAPSHOTS})"
                ),
                format!("keep retention / interval under {MAX_LIVE_SNAPSHOTS}: shorten retention or lengthen interval"),
            );
        }
    }
    if host.boot.iommu.is_none() && !host.boot.vfio_ids.is_empty() {
        ctx.error(
            spec_path!["boot", "vfio_ids"],
            "vfio_ids needs the IOMMU",
            "set iommu = \"intel\" or \"amd\" in [boot]",
        );
    }
    for (i, id) in host.boot.vfio_ids.iter().enumerate() {
        let ok = id.len() == 9
            && id.as_bytes()[4] == b':'
            && id.chars().enumerate().all(|(n, c)| n == 4 || c.is_ascii_hexdigit());
        if !ok {
            ctx.error(
                spec_path!["boot", "vfio_ids", i],
                format!("{id:?} is not a PCI vendor:device id"),
                "write it as `lspci -nn` shows it, e.g. \"10de:2204\"",
            );
        }
    }
}

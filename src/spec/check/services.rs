//! Snapshots, vectors, D-Bus and virtualization settings: retention against
//! interval, the chain database outside the snapshotted subvolume, a positive
//! vector dimension, OVS networks naming declared bridges.

use std::path::{Component, Path};

use super::Ctx;
use crate::spec::model::HostSpec;
use crate::spec_path;

/// Normalised absolute path components, or None if not absolute / has `..`.
fn components(path: &str) -> Option<Vec<String>> {
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
fn owning_mount<'a>(host: &'a HostSpec, path: &[String]) -> Option<&'a str> {
    let disk = host.disk.as_ref()?;
    disk.subvolumes
        .iter()
        .filter_map(|s| components(&s.mount).map(|c| (c, s.mount.as_str())))
        .filter(|(c, _)| is_under(path, c))
        .max_by_key(|(c, _)| c.len())
        .map(|(_, m)| m)
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    if let Some(s) = &host.snapshots {
        let fields = [("source", &s.source), ("snapshot_dir", &s.snapshot_dir), ("database", &s.database)];
        let mut ok = true;
        for (key, value) in fields {
            if !super::disk::plain_path(value) {
                ok = false;
                ctx.error(spec_path!["snapshots", key], format!("{key} {value:?} has characters other than letters, digits and /@._+-"), "use a plain absolute path such as \"/var/lib/ghostbridge\"");
            } else if components(value).is_none() {
                ok = false;
                ctx.error(spec_path!["snapshots", key], format!("{key} {value:?} is not an absolute path"), "write an absolute path without '..', e.g. \"/var/lib/ghostbridge\"");
            }
        }
        if s.retention.as_millis() < s.interval.as_millis() {
            ctx.error(
                spec_path!["snapshots", "retention"],
                format!("retention {} is shorter than the interval {}", s.retention, s.interval),
                format!("every snapshot would be pruned before the next one exists: set retention to at least \"{}\"", s.interval),
            );
        }
        if ok {
            let (source, db, dir) = (components(&s.source).unwrap_or_default(), components(&s.database).unwrap_or_default(), components(&s.snapshot_dir).unwrap_or_default());
            let source_mount = owning_mount(host, &source);
            if host.disk.is_some() && source_mount != Some(s.source.as_str()) {
                ctx.error(spec_path!["snapshots", "source"], format!("source {:?} is not the mount point of a declared subvolume", s.source), "snapshots are taken of whole subvolumes: name a `mount` from [[disk.subvolumes]]");
            }
            let db_inside = match (host.disk.is_some(), owning_mount(host, &db)) {
                (true, m) => m == Some(s.source.as_str()),
                (false, _) => is_under(&db, &source),
            };
            if db_inside {
                ctx.error(
                    spec_path!["snapshots", "database"],
                    format!("the chain database {:?} lives inside the snapshotted subvolume {:?}", s.database, s.source),
                    "every snapshot would capture a half-written database and the chain would record itself: put it on another subvolume, e.g. under /var/lib",
                );
            }
            if is_under(&dir, &source) && host.disk.is_some() && owning_mount(host, &dir) == Some(s.source.as_str()) {
                ctx.warn(spec_path!["snapshots", "snapshot_dir"], "snapshots are stored inside the subvolume they snapshot", "BTRFS does not recurse into nested snapshots, but they are easier to manage elsewhere: use a directory on another subvolume of the same file system");
            }
        }
    }
    if let Some(v) = &host.vectors {
        if v.dimension <= 0 {
            ctx.error(spec_path!["vectors", "dimension"], format!("vector dimension {} is not positive", v.dimension), "set the embedding size, e.g. dimension = 384");
        }
        if v.batch <= 0 {
            ctx.error(spec_path!["vectors", "batch"], format!("batch size {} is not positive", v.batch), "set how many points go in one request, e.g. batch = 100");
        }
        if host.snapshots.is_none() {
            ctx.error(spec_path!["vectors"], "[vectors] mirrors the snapshot chain, but [snapshots] is not configured", "add a [snapshots] section, or remove [vectors]");
        }
        if !(v.url.starts_with("http://") || v.url.starts_with("https://")) {
            ctx.error(spec_path!["vectors", "url"], format!("Qdrant URL {:?} is not http(s)", v.url), "use the REST endpoint, e.g. \"http://127.0.0.1:6333\"");
        }
    }
    if let Some(d) = &host.dbus {
        if d.op_dbus.is_none() && (d.mcp.is_some() || d.web.is_some()) {
            ctx.error(spec_path!["dbus"], "the MCP server and web UI need op-dbus itself", "add op_dbus = { flake = \"...\" } to [dbus]");
        }
    }
    for (net, bridge) in &host.virtualization.ovs_networks {
        if !host.network.bridges.iter().any(|b| &b.name == bridge) {
            ctx.error(spec_path!["virtualization", "ovs_networks", net.as_str()], format!("libvirt network {net:?} names bridge {bridge:?}, which is not declared"), "declare it in [[network.bridges]] or fix the name");
        }
    }
    if !host.virtualization.ovs_networks.is_empty() && !host.virtualization.libvirt {
        ctx.error(spec_path!["virtualization", "ovs_networks"], "ovs_networks needs libvirt", "set libvirt = true in [virtualization]");
    }
    if host.boot.iommu.is_none() && !host.boot.vfio_ids.is_empty() {
        ctx.error(spec_path!["boot", "vfio_ids"], "vfio_ids needs the IOMMU", "set iommu = \"intel\" or \"amd\" in [boot]");
    }
    for (i, id) in host.boot.vfio_ids.iter().enumerate() {
        let ok = id.len() == 9 && id.as_bytes()[4] == b':' && id.chars().enumerate().all(|(n, c)| n == 4 || c.is_ascii_hexdigit());
        if !ok {
            ctx.error(spec_path!["boot", "vfio_ids", i], format!("{id:?} is not a PCI vendor:device id"), "write it as `lspci -nn` shows it, e.g. \"10de:2204\"");
        }
    }
}

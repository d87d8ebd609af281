//! What the host runs for its operator beside the daemons: where the local
//! Qdrant keeps its data, whether the noVNC console leaves loopback, and the
//! remote-server defaults' values.

use super::Ctx;
use super::services::{components, dedicated_folder, owning_mount, plain_unit_path};
use crate::spec::model::HostSpec;
use crate::spec_path;

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    if let Some(q) = &host.qdrant {
        local_qdrant(host, &q.data_dir, ctx);
    }
    novnc(host, ctx);
    if let Some(console) = host.remote_server.as_ref().and_then(|r| r.serial_console.as_deref())
        && !console.is_empty()
        && let Err(why) = super::destinations::kernel_param(&format!("console={console}"))
    {
        ctx.error(
            spec_path!["remote_server", "serial_console"],
            format!("serial_console {console:?} is refused: {why}"),
            "write the device and speed as the kernel takes them, e.g. \"ttyS0,115200\", or \"\" for none",
        );
    }
}

fn local_qdrant(host: &HostSpec, dir: &str, ctx: &mut Ctx) {
    if host.qdrant_sync.as_ref().and_then(|q| q.local_qdrant()).is_none() {
        ctx.error(
            spec_path!["qdrant", "data_dir"],
            "[qdrant] describes the Qdrant this host runs, but [qdrant_sync] url does not point at this host",
            "set [qdrant_sync] url to a loopback URL such as \"http://127.0.0.1:6333\", or remove [qdrant]",
        );
    }
    if !plain_unit_path(ctx, "qdrant", "data_dir", std::path::Path::new(dir)) {
        return;
    }
    let Some(parts) = components(dir) else {
        ctx.error(
            spec_path!["qdrant", "data_dir"],
            format!("data_dir {dir:?} is not absolute"),
            "write it as \"/var/lib/blockchain-vectors\"",
        );
        return;
    };
    if let Err(why) = dedicated_folder(dir) {
        ctx.error(
            spec_path!["qdrant", "data_dir"],
            format!("Qdrant's folder must be its own, but {why}"),
            "the host gives that folder to the qdrant user: use a folder of its own, e.g. \"/var/lib/blockchain-vectors\"",
        );
    } else if host.disk.is_some() && owning_mount(host, &parts) != Some(dir) {
        ctx.warn(
            spec_path!["qdrant", "data_dir"],
            format!("{dir:?} is not the mount point of a [[disk.subvolumes]] entry; Qdrant's data lands on whichever subvolume holds it"),
            "name the `mount` of the subvolume meant for vectors, e.g. \"/var/lib/blockchain-vectors\"",
        );
    }
}

fn novnc(host: &HostSpec, ctx: &mut Ctx) {
    let v = &host.virtualization;
    let Some(expose) = &v.novnc_expose else {
        if let Some(port) = v.novnc_port
            && host.firewall.allowed_tcp_ports.contains(&port)
        {
            ctx.warn(
                spec_path!["firewall", "allowed_tcp_ports"],
                format!(
                    "port {port} is the noVNC console's, which listens on loopback only: opening it reaches nothing"
                ),
                "remove it and use `ssh -L PORT:127.0.0.1:PORT host`, or set novnc_expose in [virtualization]",
            );
        }
        return;
    };
    if v.novnc_port.is_none() {
        ctx.error(
            spec_path!["virtualization", "novnc_expose"],
            "novnc_expose without a console",
            "set novnc_port in [virtualization], or remove novnc_expose",
        );
    }
    if expose.address.is_loopback() {
        ctx.error(
            spec_path!["virtualization", "novnc_expose", "address"],
            "novnc_expose with a loopback address exposes nothing",
            "remove novnc_expose to keep the console on loopback, or give a public address (\"0.0.0.0\" for all)",
        );
    }
    let file = &expose.password_file;
    if plain_unit_path(ctx, "virtualization", "novnc_expose", std::path::Path::new(file))
        && (components(file).is_none() || file.starts_with("/nix/store/"))
    {
        ctx.error(
            spec_path!["virtualization", "novnc_expose", "password_file"],
            format!("password_file {file:?} must be an absolute path on the host, outside the Nix store"),
            "put the VNC password in a root-only file such as \"/run/keys/vnc-password\" (the store is world-readable)",
        );
    }
}

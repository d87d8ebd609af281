//! Listening ports: no two services on the same TCP port, no port 0.

use super::Ctx;
use crate::spec::model::HostSpec;
use crate::spec::source::PathSeg;
use crate::spec_path;

/// The TCP ports the host's services listen on, with the spec path that sets each
/// (or the section that implies it) and a name for messages.
pub fn tcp_listeners(host: &HostSpec) -> Vec<(u16, Vec<PathSeg>, String)> {
    let mut out = vec![(host.ssh.port, spec_path!["ssh", "port"], "SSH".to_string())];
    if let Some(m) = &host.monitoring {
        out.push((m.prometheus_port, spec_path!["monitoring", "prometheus_port"], "Prometheus".into()));
        out.push((m.node_exporter_port, spec_path!["monitoring", "node_exporter_port"], "node exporter".into()));
        if m.grafana {
            out.push((m.grafana_port, spec_path!["monitoring", "grafana_port"], "Grafana".into()));
        }
    }
    if let Some(p) = host.virtualization.novnc_port {
        out.push((p, spec_path!["virtualization", "novnc_port"], "noVNC".into()));
    }
    if let Some(d) = &host.dbus {
        if let Some(mcp) = &d.mcp {
            out.push((mcp.port, spec_path!["dbus", "mcp", "port"], "the op-dbus MCP server".into()));
        }
        if let Some(web) = &d.web {
            out.push((web.port, spec_path!["dbus", "web", "port"], "the op-dbus web UI".into()));
        }
    }
    if let Some((_, port)) = host.qdrant_sync.as_ref().and_then(|v| v.local_qdrant()) {
        out.push((port, spec_path!["qdrant_sync", "url"], "Qdrant (REST)".into()));
        if let Some(grpc) = port.checked_add(1) {
            out.push((grpc, spec_path!["qdrant_sync", "url"], "Qdrant (gRPC)".into()));
        }
    }
    out
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    // Report a collision at a port the user wrote rather than a default, and of
    // two written ones at the later in the file.
    let mut listeners = tcp_listeners(host);
    listeners.sort_by_key(|(_, path, _)| (ctx.is_set(path), ctx.position(path)));
    for (i, (port, path, who)) in listeners.iter().enumerate() {
        if *port == 0 {
            ctx.error(path.clone(), format!("{who} cannot listen on port 0"), "pick a port from 1 to 65535");
            continue;
        }
        if let Some((_, _, first)) = listeners[..i].iter().find(|(p, _, _)| p == port) {
            ctx.error(
                path.clone(),
                format!("{who} and {first} both use TCP port {port}"),
                format!("give {who} another port"),
            );
        } else if *port < 1024 && who != "SSH" {
            // Only sshd runs as root; the other services' units cannot bind below 1024.
            ctx.error(
                path.clone(),
                format!(
                    "{who} cannot listen on port {port}: its unit runs unprivileged, and ports below 1024 need root"
                ),
                "pick a port from 1024 up",
            );
        }
    }
    for (key, ports) in [
        ("allowed_tcp_ports", &host.firewall.allowed_tcp_ports),
        ("allowed_udp_ports", &host.firewall.allowed_udp_ports),
    ] {
        for (i, p) in ports.iter().enumerate() {
            if *p == 0 {
                ctx.error(spec_path!["firewall", key, i], "port 0 cannot be opened", "remove it");
            } else if ports[..i].contains(p) {
                ctx.warn(spec_path!["firewall", key, i], format!("port {p} is listed twice"), "remove the repeat");
            }
        }
    }
}

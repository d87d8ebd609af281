//! Semantic checks that the schema cannot express: names, addresses, ports,
//! keys, disk layout and the snapshot/vector settings. Each finding points at
//! the value it is about.

mod daemons;
pub mod deploy;
pub mod destinations;
pub mod disk;
pub mod host;
mod network;
pub mod ports;
mod server;
mod services;
pub use services::MAX_LIVE_SNAPSHOTS;
pub mod ssh;

use super::diagnostic::{Diagnostic, HostRef};
use super::model::HostSpec;
use super::source::{Node, PathSeg};

/// Where findings for one host go, with the tree that locates them.
pub struct Ctx<'a> {
    node: &'a Node,
    diags: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    /// An error at the value found at `path`.
    pub fn error(&mut self, path: Vec<PathSeg>, message: impl Into<String>, help: impl Into<String>) {
        let span = self.node.span_of(&path);
        self.diags.push(Diagnostic::error(span, message).help(help));
    }
    /// An error about the key that names the value at `path` (a name the user chose).
    pub fn key_error(&mut self, path: Vec<PathSeg>, message: impl Into<String>, help: impl Into<String>) {
        let span = self.node.key_span_of(&path);
        self.diags.push(Diagnostic::error(span, message).help(help));
    }
    /// Where the value at `path` starts in the file (for ordering findings).
    pub fn position(&self, path: &[PathSeg]) -> usize {
        self.node.span_of(path).start
    }
    /// Whether the spec spells out the value at `path` (rather than a default).
    pub fn is_set(&self, path: &[PathSeg]) -> bool {
        self.node.at(path).is_some()
    }
    /// A warning at the value found at `path`.
    pub fn warn(&mut self, path: Vec<PathSeg>, message: impl Into<String>, help: impl Into<String>) {
        let span = self.node.span_of(&path);
        self.diags.push(Diagnostic::warning(span, message).help(help));
    }
}

/// Whether `name` is a valid host name (an RFC 1123 label), the one rule for it.
pub fn host_label(name: &str) -> bool {
    host::rfc1123_label(name).is_ok()
}

/// The daemons' rules on a host that did not decode as a whole.
pub fn undecoded(node: &Node, diags: &mut Vec<Diagnostic>) {
    daemons::check_undecoded(&mut Ctx { node, diags });
}

/// Notes the fleet host the findings are about (nothing for a single host).
pub fn about(diags: &mut [Diagnostic], host: Option<&HostRef>) {
    if let Some(host) = host {
        for d in diags {
            d.add_host(host.clone());
        }
    }
}

/// Runs every check on every host, plus the fleet-wide ones.
pub fn all(hosts: &[HostSpec], nodes: &[Node], refs: &[Option<HostRef>], diags: &mut Vec<Diagnostic>) {
    for ((host, node), host_ref) in hosts.iter().zip(nodes).zip(refs) {
        let before = diags.len();
        let mut ctx = Ctx { node, diags };
        host::check(host, &mut ctx);
        disk::check(host, &mut ctx);
        network::check(host, &mut ctx);
        daemons::check(host, &mut ctx);
        services::check(host, &mut ctx);
        server::check(host, &mut ctx);
        destinations::check(host, &mut ctx);
        ports::check(host, &mut ctx);
        ssh::check(host, &mut ctx);
        deploy::check(host, &mut ctx);
        about(&mut diags[before..], host_ref.as_ref());
    }
    host::check_fleet(hosts, nodes, diags);
}

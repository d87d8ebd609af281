//! Host identity: RFC 1123 host names, unique across a fleet.

use super::Ctx;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::HostSpec;
use crate::spec::source::{Node, PathSeg};
use crate::spec_path;

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    if let Err(why) = rfc1123_label(&host.name) {
        ctx.error(
            spec_path!["name"],
            format!("host name {:?} is not a valid RFC 1123 label: {why}", host.name),
            "use 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen, e.g. \"ghostbridge\"",
        );
    }
}

/// Why `name` is not an RFC 1123 label, if it is not.
pub fn rfc1123_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 63 {
        return Err("it is longer than 63 bytes");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("it may only hold ASCII letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("it starts or ends with '-'");
    }
    Ok(())
}

pub fn check_fleet(hosts: &[HostSpec], nodes: &[Node], diags: &mut Vec<Diagnostic>) {
    for (i, host) in hosts.iter().enumerate() {
        if let Some(first) = hosts[..i].iter().position(|h| h.name == host.name) {
            let span = nodes[i].span_of(&[PathSeg::from("name")]);
            let first_line = nodes[first].span_of(&[PathSeg::from("name")]);
            diags.push(
                Diagnostic::error(span, format!("host name {:?} is used twice in this fleet", host.name))
                    .help(format!("rename one of them (the first is at byte {})", first_line.start)),
            );
        }
    }
}

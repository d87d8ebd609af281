//! Host identity: RFC 1123 host names, unique across a fleet (host names are
//! case-insensitive); a time zone and a locale NixOS knows.

use super::Ctx;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::model::HostSpec;
use crate::spec::source::{Node, PathSeg};
use crate::spec_path;

/// IANA time zone names (shipped: `src/spec/timezones.txt`).
const TIME_ZONES: &str = include_str!("../timezones.txt");
/// glibc's supported locales (shipped: `src/spec/locales.txt`).
const LOCALES: &str = include_str!("../locales.txt");

fn names(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines().filter(|l| !l.starts_with('#') && !l.is_empty())
}

/// `value` must be one of `list`; otherwise an error that suggests the closest name.
fn known_name(ctx: &mut Ctx, key: &str, value: &str, list: &'static str, what: &str, example: &str) {
    // A NUL is refused on its own; no second finding for the same value.
    if value.contains('\0') || names(list).any(|n| n == value) {
        return;
    }
    let help = match super::super::diagnostic::closest(value, names(list)) {
        Some(best) => format!("did you mean {best:?}?"),
        None => format!("write {example}"),
    };
    ctx.error(spec_path![key], format!("{value:?} is not {what}"), help);
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    known_name(
        ctx,
        "time_zone",
        &host.time_zone,
        TIME_ZONES,
        "a time zone NixOS knows; the host would silently run on UTC",
        "an IANA name such as \"Europe/Berlin\" or \"UTC\"",
    );
    known_name(
        ctx,
        "locale",
        &host.locale,
        LOCALES,
        "a locale glibc supports; NixOS would refuse to build the host",
        "a name such as \"en_US.UTF-8\"",
    );
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
        if let Some(first) = hosts[..i].iter().position(|h| h.name.eq_ignore_ascii_case(&host.name)) {
            let span = nodes[i].span_of(&[PathSeg::from("name")]);
            diags.push(
                Diagnostic::error(
                    span,
                    format!("host name {:?} is used twice in this fleet (host names ignore case)", host.name),
                )
                .help(format!("rename one of them (the first is [[hosts]] entry {})", first + 1)),
            );
        }
    }
}

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

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    // A NUL is refused on its own; no second finding for the same value.
    if !host.time_zone.contains('\0') && !names(TIME_ZONES).any(|z| z == host.time_zone) {
        let d = super::super::diagnostic::closest(&host.time_zone, names(TIME_ZONES));
        ctx.error(
            spec_path!["time_zone"],
            format!("{:?} is not a time zone NixOS knows; the host would silently run on UTC", host.time_zone),
            match d {
                Some(best) => format!("did you mean {best:?}?"),
                None => "write an IANA name such as \"Europe/Berlin\" or \"UTC\"".to_string(),
            },
        );
    }
    if !host.locale.contains('\0') && !names(LOCALES).any(|l| l == host.locale) {
        let d = super::super::diagnostic::closest(&host.locale, names(LOCALES));
        ctx.error(
            spec_path!["locale"],
            format!("{:?} is not a locale glibc supports; NixOS would refuse to build the host", host.locale),
            match d {
                Some(best) => format!("did you mean {best:?}?"),
                None => "write a name such as \"en_US.UTF-8\"".to_string(),
            },
        );
    }
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

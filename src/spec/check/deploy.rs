//! `[deploy]`: what `ghostgen deploy` puts on the `ssh` command line and in
//! `NIX_SSHOPTS` must be one word that ssh reads as a host, user or port,
//! never as an option; and the user must be one who can log in and use sudo
//! on the deployed system, or every deployment would roll back.

use std::net::IpAddr;

use super::Ctx;
use super::host::rfc1123_label;
use super::ssh::user_name;
use crate::spec::model::HostSpec;
use crate::spec_path;

/// Why `address` is not a DNS name or an IP address, if it is not.
pub fn address(address: &str) -> Result<(), String> {
    if address.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if address.is_empty() || address.len() > 253 {
        return Err("it must be 1 to 253 bytes".into());
    }
    for label in address.trim_end_matches('.').split('.') {
        rfc1123_label(label).map_err(|why| format!("label {label:?}: {why}"))?;
    }
    Ok(())
}

/// Why `jump` is not `[user@]host[:port]`, if it is not.
pub fn jump(jump: &str) -> Result<(), String> {
    let (user, rest) = match jump.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, jump),
    };
    if let Some(u) = user.filter(|u| !user_name(u)) {
        return Err(format!("{u:?} is not a valid user name"));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').ok_or("after \"]\" only \":PORT\" may follow")?)),
            None => return Err("a \"[\" without \"]\"".into()),
        },
        None => match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    address(host).map_err(|why| format!("the host {host:?}: {why}"))?;
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!("the port {p:?} is not a number from 1 to 65535"));
    }
    Ok(())
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    let d = &host.deploy;
    if let Some(a) = &d.address
        && let Err(why) = address(a)
    {
        ctx.error(
            spec_path!["deploy", "address"],
            format!("deploy address {a:?} is not a DNS name or an IP address: {why}"),
            "write a name such as \"web1.example.com\" or an address such as \"203.0.113.7\"",
        );
    }
    match (d.user.as_deref(), host.deploy_user()) {
        (Some("root"), _) => ctx.error(
            spec_path!["deploy", "user"],
            "deploy user root cannot log in: this spec disables root login over SSH",
            "use an admin from [[users]] (commands run through sudo), or leave user out to take the first admin",
        ),
        (Some(u), _) if !host.users.iter().any(|x| x.name == u && x.admin && !x.ssh_keys.is_empty()) => ctx.error(
            spec_path!["deploy", "user"],
            format!("deploy user {u:?} is not an admin with an SSH key in [[users]]"),
            "deployments log in with a key and run sudo: name an admin from [[users]] that has ssh_keys",
        ),
        _ => {}
    }
    if d.port == Some(0) {
        ctx.error(spec_path!["deploy", "port"], "deploy port 0 is not a port", "write the SSH port, 1 to 65535");
    }
    if let Some(j) = &d.jump
        && let Err(why) = jump(j)
    {
        ctx.error(
            spec_path!["deploy", "jump"],
            format!("jump host {j:?} is not [user@]host[:port]: {why}"),
            "write e.g. \"ops@bastion.example.com:22\"",
        );
    }
    for (i, tag) in d.tags.iter().enumerate() {
        if let Err(why) = rfc1123_label(tag) {
            ctx.error(
                spec_path!["deploy", "tags", i],
                format!("tag {tag:?} is not a valid name: {why}"),
                "use letters, digits and hyphens, e.g. \"canary\"",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_names_or_ips_never_options() {
        for ok in ["web1", "web1.example.com", "203.0.113.7", "2001:db8::1", "a.b."] {
            assert!(address(ok).is_ok(), "{ok}");
        }
        for bad in ["-oProxyCommand=x", "a b", "", "web_1", "a..b", "x;reboot", "user@host"] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jump_hosts_are_user_host_port() {
        for ok in ["bastion", "ops@bastion.example:22", "[2001:db8::1]:2222", "10.0.0.1:22"] {
            assert!(jump(ok).is_ok(), "{ok}");
        }
        for bad in ["-J", "ops@", "b:0", "b:x", "Ops@b", "[::1", "a,b"] {
            assert!(jump(bad).is_err(), "{bad}");
        }
    }
}

//! What a destination outside Nix cannot hold safely is refused here, with the
//! reason: one rule per destination. The Nix builder escapes every value for
//! Nix; these are the places where the value is read again by something else
//! (systemd unit lines, the kernel command line, modules-load.d and sysctl.d
//! lines, `authorized_keys`, libvirt network names).

use super::Ctx;
use crate::spec::model::{HostSpec, SysctlValue};
use crate::spec_path;

/// A path written into systemd unit lines (`ExecStart=`, `ReadWritePaths=`,
/// `RequiresMountsFor=`, `LoadCredential=`), which split on white space and
/// expand `%` and `$`: letters, digits and `/@._+-` only.
pub fn unit_path(path: &str) -> Result<(), String> {
    match path.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '@' | '+'))) {
        Some(c) => Err(format!(
            "it holds {c:?}; it goes into systemd unit lines, which split on spaces and expand % and $: \
             use letters, digits and /@._+- only"
        )),
        None => Ok(()),
    }
}

/// A path systemd reads as a path (`ReadWritePaths=`, `RequiresMountsFor=`,
/// `LoadCredential=`) must be normalised, or systemd ignores the entry with
/// only a warning (a credential then silently goes missing). That it is
/// absolute is each daemon's own rule.
pub fn normalized(path: &str) -> Result<(), String> {
    if path.len() > 1 && path.ends_with('/') {
        return Err("it ends with '/'".into());
    }
    if path.split('/').skip(1).any(|seg| seg.is_empty() || seg == "." || seg == "..") && path != "/" {
        return Err("it has an empty, '.' or '..' step; systemd ignores paths that are not normalised".into());
    }
    Ok(())
}

/// One kernel command-line parameter (NixOS joins them with spaces into the
/// boot entry's `options` line).
pub fn kernel_param(param: &str) -> Result<(), String> {
    if param.is_empty() {
        return Err("it is empty".into());
    }
    match param.chars().find(|c| c.is_whitespace() || c.is_control() || *c == '"') {
        Some(c) => Err(format!("it holds {c:?}; write one parameter per list item, without spaces or quotes")),
        None => Ok(()),
    }
}

/// A kernel module name (one line of modules-load.d).
pub fn kernel_module(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err("a module name has letters, digits, '_' and '-' only".into());
    }
    Ok(())
}

/// A sysctl key (the left side of one `key = value` line of sysctl.d).
pub fn sysctl_key(key: &str) -> Result<(), String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '*')) {
        return Err("it is not a sysctl name like \"vm.swappiness\"".into());
    }
    if key.starts_with('-') {
        return Err("a leading '-' tells systemd-sysctl to ignore errors for the key".into());
    }
    Ok(())
}

/// A sysctl value (the right side of one sysctl.d line).
pub fn sysctl_value(value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("the value holds {c:?}; a sysctl value is one line")),
        None => Ok(()),
    }
}

/// A libvirt network name (an XML text node, a file name, a `virsh` argument).
pub fn libvirt_network(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("a network name has 1 to 64 letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    for (i, p) in host.boot.kernel_params.iter().enumerate() {
        if let Err(why) = kernel_param(p) {
            ctx.error(
                spec_path!["boot", "kernel_params", i],
                format!("kernel parameter {p:?} is refused: {why}"),
                "e.g. \"intel_iommu=on\"",
            );
        }
    }
    for (i, m) in host.boot.kernel_modules.iter().enumerate() {
        if let Err(why) = kernel_module(m) {
            ctx.error(
                spec_path!["boot", "kernel_modules", i],
                format!("kernel module {m:?} is refused: {why}"),
                "e.g. \"vfio-pci\"",
            );
        }
    }
    for (k, v) in &host.boot.sysctl {
        let value = match v {
            SysctlValue::Int(i) => i.to_string(),
            SysctlValue::Str(s) => s.clone(),
        };
        if let Err(why) = sysctl_key(k) {
            ctx.key_error(
                spec_path!["boot", "sysctl", k.as_str()],
                format!("sysctl {k:?} is refused: {why}"),
                "e.g. \"vm.swappiness\" = 10",
            );
        } else if let Err(why) = sysctl_value(&value) {
            ctx.error(
                spec_path!["boot", "sysctl", k.as_str()],
                format!("sysctl {k:?} is refused: {why}"),
                "write one value, e.g. \"vm.swappiness\" = 10",
            );
        }
    }
    if let Some(d) = &host.dbus
        && let Err(why) = unit_path(&d.state_file)
    {
        ctx.error(
            spec_path!["dbus", "state_file"],
            format!("state_file {:?} is refused: {why}", d.state_file),
            "e.g. \"/var/lib/op-dbus/state.json\"",
        );
    }
    for net in host.virtualization.ovs_networks.keys() {
        if let Err(why) = libvirt_network(net) {
            ctx.key_error(
                spec_path!["virtualization", "ovs_networks", net.as_str()],
                format!("libvirt network name {net:?} is refused: {why}"),
                "e.g. \"ovs-public\"",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_destination_refuses_what_it_would_read_differently() {
        assert!(
            unit_path("/var/lib/a b").is_err()
                && unit_path("/var/lib/%h").is_err()
                && unit_path("/var/lib/$x").is_err()
        );
        assert!(unit_path("/var/lib/op-dbus/state.json").is_ok());
        assert!(kernel_param("a b").is_err() && kernel_param("a\nb").is_err() && kernel_param("iommu=pt").is_ok());
        assert!(kernel_module("kvm\nevil").is_err() && kernel_module("vfio-pci").is_ok());
        assert!(sysctl_value("10\nkernel.x = 1").is_err() && sysctl_key("a b").is_err());
        assert!(sysctl_key("net.ipv4.conf.all.forwarding").is_ok() && sysctl_value("1").is_ok());
        assert!(normalized("/a/./b").is_err() && normalized("/a//b").is_err() && normalized("/a/b/").is_err());
        assert!(normalized("/var/lib/x").is_ok() && sysctl_key("-vm.x").is_err());
        assert!(libvirt_network("a<b").is_err() && libvirt_network("ovs-public").is_ok());
    }
}

//! Network: what systemd-networkd does with each bridge's own interface:
//! addresses and CIDRs that parse, gateways inside their subnet, DNS servers.
//! (Bridge and port names are the OVS reconciler's rules: `daemons.rs`.)

use std::net::IpAddr;

use super::Ctx;
use crate::spec::model::{Gateways, HostSpec, Link};
use crate::spec_path;

/// An address with its prefix length, e.g. `10.0.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = text.split_once('/').ok_or("it has no /prefix length")?;
        let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix.parse().map_err(|_| format!("prefix length {prefix:?} is not a number"))?;
        if prefix > max {
            return Err(format!("prefix length {prefix} is larger than {max}"));
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    let links = host.network.links();
    // One subnet belongs to one link: overlapping ones make routing ambiguous.
    let mut seen: Vec<(&str, usize, Cidr, &str)> = Vec::new();
    for link in &links {
        for (a, text) in link.addresses.iter().enumerate() {
            let Ok(c) = Cidr::parse(text) else { continue };
            if let Some((_, _, _, other)) = seen.iter().find(|(ol, oi, oc, _)| {
                (*ol, *oi) != (link.list, link.index) && (oc.contains(c.addr) || c.contains(oc.addr))
            }) {
                ctx.error(
                    spec_path!["network", link.list, link.index, "addresses", a],
                    format!("subnet {text} overlaps {other}, on another bridge or interface"),
                    "give each bridge and interface its own subnet",
                );
            }
            seen.push((link.list, link.index, c, text));
        }
    }
    for link in &links {
        addressing(link, ctx);
    }
    for (b, bridge) in host.network.bridges.iter().enumerate() {
        if bridge.uplink.is_none() && bridge.drop_uplink_broadcast && bridge.dhcp {
            ctx.warn(
                spec_path!["network", "bridges", b, "dhcp"],
                format!("bridge {:?} uses DHCP but has no uplink", bridge.name),
                "DHCP needs a path to a DHCP server: set `uplink` to the physical NIC",
            );
        }
    }
    plain_interfaces(host, ctx);
}

/// A plain interface is a NIC outside Open vSwitch, named once.
fn plain_interfaces(host: &HostSpec, ctx: &mut Ctx) {
    let ovs = host.ovs_config();
    let held: Vec<String> = ovs
        .bridges
        .iter()
        .flat_map(|b| std::iter::once(b.name.clone()).chain(b.desired_ports().into_iter().map(|p| p.name)))
        .collect();
    for (i, iface) in host.network.interfaces.iter().enumerate() {
        let at = spec_path!["network", "interfaces", i, "name"];
        if let Err(why) = crate::ovs::config::check_ifname(&iface.name) {
            ctx.error(
                at,
                format!("interface name {:?} is invalid: {why}", iface.name),
                "use the NIC's name as `ip link` shows it, e.g. \"enp1s0\"",
            );
        } else if held.contains(&iface.name) {
            ctx.error(
                at,
                format!("interface {:?} is part of Open vSwitch (a bridge, an uplink or a port)", iface.name),
                "address its bridge in [[network.bridges]] instead, or take it out of the bridge",
            );
        } else if host.network.interfaces[..i].iter().any(|o| o.name == iface.name) {
            ctx.error(at, format!("interface {:?} is configured twice", iface.name), "merge the two entries");
        }
    }
}

/// A link's addresses, gateways and DNS servers.
fn addressing(link: &Link<'_>, ctx: &mut Ctx) {
    let (list, b, what, name) = (link.list, link.index, link.what(), link.name);
    let mut cidrs = Vec::new();
    for (a, text) in link.addresses.iter().enumerate() {
        match Cidr::parse(text) {
            Ok(c) => cidrs.push(c),
            Err(why) => ctx.error(
                spec_path!["network", list, b, "addresses", a],
                format!("address {text:?} is not in CIDR form: {why}"),
                "write it as address/prefix, e.g. \"10.0.0.1/24\" or \"2001:db8::1/64\"",
            ),
        }
    }
    let mut families: Vec<bool> = Vec::new();
    for (at, gw) in link.gateway.map(Gateways::each).unwrap_or_default() {
        let path = match at {
            Some(i) => spec_path!["network", list, b, "gateway", i],
            None => spec_path!["network", list, b, "gateway"],
        };
        let ip = match gw.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                ctx.error(
                    path,
                    format!("gateway {gw:?} is not an IP address"),
                    "write a plain address such as \"203.0.113.1\"",
                );
                continue;
            }
        };
        if families.contains(&ip.is_ipv4()) {
            ctx.error(
                path.clone(),
                format!("a second IPv{} gateway {gw} on {what} {name:?}", if ip.is_ipv4() { 4 } else { 6 }),
                format!("a {what} has at most one IPv4 and one IPv6 gateway"),
            );
        }
        families.push(ip.is_ipv4());
        let link_local_v6 = matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        if link_local_v6 {
            // An IPv6 next hop is usually link-local (`fe80::1` at hosters
            // such as Hetzner): reachable on the link whatever the subnets.
        } else if ip.is_ipv4() && cidrs.iter().any(|c| c.addr.is_ipv4() && c.prefix == 32) {
            // A /32 address (Hetzner's routed setup) reaches its gateway
            // on the link: networkd gets the route with GatewayOnLink.
        } else if link.dhcp && cidrs.is_empty() {
            // DHCP supplies the subnet; nothing to compare with.
        } else if cidrs.is_empty() {
            ctx.error(
                path,
                format!("gateway {gw} is set but {what} {name:?} has no address"),
                format!("add the {what}'s address in `addresses`, or set dhcp = true"),
            );
        } else if !cidrs.iter().any(|c| c.contains(ip)) {
            ctx.error(
                path,
                format!("gateway {gw} is outside the {what}'s subnets ({})", link.addresses.join(", ")),
                "a gateway must be reachable directly: fix the address's prefix length or the gateway",
            );
        }
    }
    for (d, dns) in link.dns.iter().enumerate() {
        if dns.parse::<IpAddr>().is_err() {
            ctx.error(
                spec_path!["network", list, b, "dns", d],
                format!("DNS server {dns:?} is not an IP address"),
                "write a plain address such as \"1.1.1.1\"",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_containment() {
        let c = Cidr::parse("203.0.113.10/24").unwrap();
        assert!(c.contains("203.0.113.1".parse().unwrap()));
        assert!(!c.contains("203.0.114.1".parse().unwrap()));
        let c6 = Cidr::parse("2001:db8::1/64").unwrap();
        assert!(c6.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!c6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1/33").is_err());
        assert!(Cidr::parse("10.0.0.1").is_err());
    }
}

//! Network: what systemd-networkd does with each bridge's own interface:
//! addresses and CIDRs that parse, gateways inside their subnet, DNS servers.
//! (Bridge and port names are the OVS reconciler's rules: `daemons.rs`.)

use std::net::IpAddr;

use super::Ctx;
use crate::spec::model::{Gateways, HostSpec};
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
    // One subnet belongs to one bridge: overlapping ones make routing ambiguous.
    let mut seen: Vec<(usize, Cidr, &str)> = Vec::new();
    for (b, bridge) in host.network.bridges.iter().enumerate() {
        for (a, text) in bridge.addresses.iter().enumerate() {
            let Ok(c) = Cidr::parse(text) else { continue };
            if let Some((_, _, other)) =
                seen.iter().find(|(ob, oc, _)| *ob != b && (oc.contains(c.addr) || c.contains(oc.addr)))
            {
                ctx.error(
                    spec_path!["network", "bridges", b, "addresses", a],
                    format!("subnet {text} overlaps {other}, on another bridge"),
                    "give each bridge its own subnet",
                );
            }
            seen.push((b, c, text));
        }
    }
    for (b, bridge) in host.network.bridges.iter().enumerate() {
        let mut cidrs = Vec::new();
        for (a, text) in bridge.addresses.iter().enumerate() {
            match Cidr::parse(text) {
                Ok(c) => cidrs.push(c),
                Err(why) => ctx.error(
                    spec_path!["network", "bridges", b, "addresses", a],
                    format!("address {text:?} is not in CIDR form: {why}"),
                    "write it as address/prefix, e.g. \"10.0.0.1/24\" or \"2001:db8::1/64\"",
                ),
            }
        }
        let mut families: Vec<bool> = Vec::new();
        for (at, gw) in bridge.gateway.as_ref().map(Gateways::each).unwrap_or_default() {
            let path = match at {
                Some(i) => spec_path!["network", "bridges", b, "gateway", i],
                None => spec_path!["network", "bridges", b, "gateway"],
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
                    format!(
                        "a second IPv{} gateway {gw} on bridge {:?}",
                        if ip.is_ipv4() { 4 } else { 6 },
                        bridge.name
                    ),
                    "a bridge has at most one IPv4 and one IPv6 gateway",
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
            } else if bridge.dhcp && cidrs.is_empty() {
                // DHCP supplies the subnet; nothing to compare with.
            } else if cidrs.is_empty() {
                ctx.error(
                    path,
                    format!("gateway {gw} is set but bridge {:?} has no address", bridge.name),
                    "add the bridge's address in `addresses`, or set dhcp = true",
                );
            } else if !cidrs.iter().any(|c| c.contains(ip)) {
                ctx.error(
                    path,
                    format!("gateway {gw} is outside the bridge's subnets ({})", bridge.addresses.join(", ")),
                    "a gateway must be reachable directly: fix the address's prefix length or the gateway",
                );
            }
        }
        for (d, dns) in bridge.dns.iter().enumerate() {
            if dns.parse::<IpAddr>().is_err() {
                ctx.error(
                    spec_path!["network", "bridges", b, "dns", d],
                    format!("DNS server {dns:?} is not an IP address"),
                    "write a plain address such as \"1.1.1.1\"",
                );
            }
        }
        if bridge.uplink.is_none() && bridge.drop_uplink_broadcast && bridge.dhcp {
            ctx.warn(
                spec_path!["network", "bridges", b, "dhcp"],
                format!("bridge {:?} uses DHCP but has no uplink", bridge.name),
                "DHCP needs a path to a DHCP server: set `uplink` to the physical NIC",
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

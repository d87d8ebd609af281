//! MAC addresses on the uplink: the NIC's own, read from the kernel (the bridge
//! takes it as `other_config:hwaddr`, so the switch upstream only ever sees
//! that one for the host), and the spec's allowed ones, in one canonical form.

/// The canonical form (lower-case, colon-separated) of a unicast MAC, if `text` is one.
pub fn parse(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit())) {
        return None;
    }
    let first = u8::from_str_radix(parts[0], 16).ok()?;
    if first & 1 == 1 || parts.iter().all(|p| *p == "00") {
        return None; // multicast/broadcast, or all zero
    }
    Some(text.to_ascii_lowercase())
}

/// The MAC address of system interface `name`, if it exists and has a unicast one.
pub fn of_interface(name: &str) -> Option<String> {
    parse(&super::ethtool::hwaddr(name).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unicast_macs_in_canonical_form() {
        assert_eq!(parse("00:50:56:AB:cd:01").as_deref(), Some("00:50:56:ab:cd:01"));
        for bad in [
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "00:50:56:ab:cd",
            "0:50:56:ab:cd:01",
            "00-50-56-ab-cd-01",
            "00:50:56:ab:cd:0g",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(of_interface("lo"), None, "loopback's all-zero address is no uplink MAC");
    }
}

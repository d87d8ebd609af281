//! The firewall opens exactly the declared TCP ports: read from the rules the
//! NixOS firewall loaded, `iptables -S nixos-fw` (its iptables backend: one
//! `-p tcp --dport N -j nixos-fw-accept` rule per port or range) or, with
//! `networking.nftables.enable`, `nft list chain inet nixos-fw input-allow`
//! (`tcp dport { N, A-B } accept`). Rules for one interface only (`-i`,
//! `iifname`) are not "every interface" and are left out.

use std::collections::BTreeSet;
use std::process::Command;

use super::{Check, State};

/// Compares what the firewall opens with `declared`.
/// `ssh_port`, when given, must be open whatever was declared: a firewall
/// that keeps SSH out locks every operator out of a remote server.
pub fn check(declared: &[u16], ssh_port: Option<u16>) -> Check {
    let what = "firewall";
    let opened = match opened_ports() {
        Ok(Some(ports)) => ports,
        Ok(None) => {
            return Check::new(
                what,
                State::Fail,
                "no NixOS firewall is loaded (no nixos-fw chain): is networking.firewall.enable on, and did the firewall unit start?",
            );
        }
        Err(why) => return Check::new(what, State::Unknown, why),
    };
    if let Some(port) = ssh_port.filter(|p| !opened.contains(p)) {
        return Check::new(
            what,
            State::Fail,
            format!("the SSH port {port} is not open: nobody could log in over the network"),
        );
    }
    let want: BTreeSet<u16> = declared.iter().copied().collect();
    let extra: Vec<String> = opened.difference(&want).map(u16::to_string).collect();
    let missing: Vec<String> = want.difference(&opened).map(u16::to_string).collect();
    if extra.is_empty() && missing.is_empty() {
        return Check::new(what, State::Ok, format!("opens exactly TCP {}", list(&want)));
    }
    let mut why = Vec::new();
    if !extra.is_empty() {
        why.push(format!("open but not declared: {}", extra.join(", ")));
    }
    if !missing.is_empty() {
        why.push(format!("declared but not open: {}", missing.join(", ")));
    }
    Check::new(what, State::Fail, why.join("; "))
}

fn list(ports: &BTreeSet<u16>) -> String {
    if ports.is_empty() { "nothing".into() } else { ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ") }
}

/// The TCP ports open on every interface; `None` when no NixOS firewall is
/// loaded; an error when neither tool can be run.
fn opened_ports() -> Result<Option<BTreeSet<u16>>, String> {
    let iptables = Command::new("iptables").args(["-S", "nixos-fw"]).output();
    if let Ok(out) = &iptables
        && out.status.success()
    {
        return Ok(Some(from_iptables(&String::from_utf8_lossy(&out.stdout))));
    }
    let nft = Command::new("nft").args(["list", "chain", "inet", "nixos-fw", "input-allow"]).output();
    if let Ok(out) = &nft
        && out.status.success()
    {
        return Ok(Some(from_nft(&String::from_utf8_lossy(&out.stdout))));
    }
    match (iptables, nft) {
        (Err(a), Err(b)) => Err(format!("cannot run iptables ({a}) or nft ({b})")),
        _ => Ok(None),
    }
}

/// Ports of `-A nixos-fw -p tcp ... --dport N[:M] -j nixos-fw-accept` without `-i`.
fn from_iptables(rules: &str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for line in rules.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let has = |w: &str| words.contains(&w);
        if !(has("-A") && has("tcp") && has("nixos-fw-accept")) || has("-i") {
            continue;
        }
        if let Some(i) = words.iter().position(|w| *w == "--dport") {
            out.extend(words.get(i + 1).map(|p| ports(p, ':')).unwrap_or_default());
        }
    }
    out
}

/// Ports of `tcp dport N accept` / `tcp dport { N, A-B } accept` without `iifname`.
fn from_nft(chain: &str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for line in chain.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("tcp dport ") else { continue };
        let Some(set) = rest.strip_suffix(" accept") else { continue };
        for item in set.trim_matches(|c| c == '{' || c == '}' || c == ' ').split(',') {
            out.extend(ports(item.trim(), '-'));
        }
    }
    out
}

/// `N` or `A<sep>B` as the ports it covers.
fn ports(text: &str, sep: char) -> Vec<u16> {
    match text.split_once(sep) {
        Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b => (a..=b).collect(),
            _ => Vec::new(),
        },
        None => text.parse::<u16>().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_and_nft_rules_read_alike() {
        let ipt = "-N nixos-fw\n-A nixos-fw -i lo -j nixos-fw-accept\n-A nixos-fw -p tcp -m tcp --dport 22 -j nixos-fw-accept\n\
                   -A nixos-fw -p tcp -m tcp --dport 1000:1002 -j nixos-fw-accept\n\
                   -A nixos-fw -i eth9 -p tcp -m tcp --dport 99 -j nixos-fw-accept\n\
                   -A nixos-fw -p udp -m udp --dport 53 -j nixos-fw-accept\n";
        assert_eq!(from_iptables(ipt), BTreeSet::from([22, 1000, 1001, 1002]));
        let nft = "table inet nixos-fw {\n\tchain input-allow {\n\t\ttcp dport { 22, 1000-1002 } accept\n\
                   \t\ttcp dport 443 accept\n\t\tiifname \"eth9\" tcp dport 99 accept\n\t\tudp dport 53 accept\n\t}\n}\n";
        assert_eq!(from_nft(nft), BTreeSet::from([22, 443, 1000, 1001, 1002]));
    }
}

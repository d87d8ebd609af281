//! The OVS reconciler's settings: the one definition of its keys, defaults and
//! rules. The NixOS module renders `services.ghostbridge.ovs.settings` as this
//! JSON; the spec's `[[network.bridges]]` entries convert to its `bridges`
//! (same keys) and `ghostgen check` runs the same `validate()`. Unknown keys
//! are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{OvsError, Result};
use crate::runtime::config::{self, DaemonConfig, Finding, PathSeg};

/// Default OVSDB address when neither the config nor `--db` names one.
pub const DEFAULT_DB: &str = "unix:/run/openvswitch/db.sock";

/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// `ghostbridge-ovs apply --config FILE`: the bridges Open vSwitch must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// OVSDB address, `unix:/path` or `tcp:host:port` (`db` is its old name).
    #[serde(default = "default_ovsdb", alias = "db")]
    pub ovsdb: String,
    /// node exporter's textfile collector folder; absent = no metrics file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_dir: Option<PathBuf>,
    /// The bridges; a managed bridge missing here is removed.
    #[serde(default)]
    pub bridges: Vec<BridgeSpec>,
}

fn default_ovsdb() -> String {
    DEFAULT_DB.to_string()
}

impl Default for Config {
    fn default() -> Self {
        Config { ovsdb: default_ovsdb(), metrics_dir: None, bridges: vec![] }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatapathType {
    /// The kernel datapath (`openvswitch` module).
    #[default]
    System,
    /// The userspace datapath, for hosts without the kernel module.
    Netdev,
}

impl DatapathType {
    pub fn as_str(self) -> &'static str {
        match self {
            DatapathType::System => "system",
            DatapathType::Netdev => "netdev",
        }
    }
    /// OVSDB stores `system` as the empty string by default; both mean the same.
    pub fn matches(self, db_value: &str) -> bool {
        match self {
            DatapathType::System => db_value.is_empty() || db_value == "system",
            DatapathType::Netdev => db_value == "netdev",
        }
    }
}

/// One bridge. The spec's `[[network.bridges]]` entries carry these keys verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeSpec {
    /// Bridge name (at most 15 bytes); also the name of its own internal interface.
    pub name: String,
    /// `system` (kernel datapath) or `netdev` (userspace, where there is no kernel module).
    #[serde(default)]
    pub datapath_type: DatapathType,
    /// The physical NIC facing the outside: a port, its hardware offloads turned
    /// off, and the one whose broadcasts are dropped.
    #[serde(default)]
    pub uplink: Option<String>,
    /// More existing system interfaces attached as ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Extra ports of type internal (the bridge's own internal interface is implicit).
    #[serde(default)]
    pub internal_ports: Vec<String>,
    /// Drop Ethernet broadcast and multicast arriving on the uplink.
    #[serde(default = "default_drop_uplink_broadcast")]
    pub drop_uplink_broadcast: bool,
    /// Frames from the bridge's other ports leave through the uplink only with
    /// the uplink's own MAC (which the bridge also takes) or one of
    /// `allowed_macs`; others reach the host only. A hoster such as Hetzner
    /// locks a server whose uplink sends foreign MACs.
    #[serde(default = "default_mac_guard")]
    pub mac_guard: bool,
    /// More source MACs that may leave through the uplink (the separate MACs a
    /// hoster assigns to additional IPs, used by VMs on this bridge).
    #[serde(default)]
    pub allowed_macs: Vec<String>,
    /// More OpenFlow rules in ovs-ofctl syntax, added after the generated ones.
    #[serde(default)]
    pub extra_flows: Vec<String>,
}

/// Default of `drop_uplink_broadcast` (also the spec's).
pub fn default_drop_uplink_broadcast() -> bool {
    true
}

/// Default of `mac_guard` (also the spec's).
pub fn default_mac_guard() -> bool {
    true
}

/// What kind of interface a port has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// A system interface that must already exist (OVS interface type "").
    System,
    /// An OVS internal interface that OVS creates (type "internal").
    Internal,
}

impl PortKind {
    pub fn ovs_type(self) -> &'static str {
        match self {
            PortKind::System => "",
            PortKind::Internal => "internal",
        }
    }
}

/// One port the bridge should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub kind: PortKind,
    pub uplink: bool,
}

impl BridgeSpec {
    /// All ports in a fixed order: the bridge's own internal port, internal ports, uplink, system ports.
    pub fn desired_ports(&self) -> Vec<PortSpec> {
        let mut out = vec![PortSpec { name: self.name.clone(), kind: PortKind::Internal, uplink: false }];
        out.extend(self.internal_ports.iter().map(|p| PortSpec {
            name: p.clone(),
            kind: PortKind::Internal,
            uplink: false,
        }));
        if let Some(u) = &self.uplink {
            out.push(PortSpec { name: u.clone(), kind: PortKind::System, uplink: true });
        }
        out.extend(self.ports.iter().map(|p| PortSpec { name: p.clone(), kind: PortKind::System, uplink: false }));
        out
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        config::load(path).map_err(OvsError::from)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        config::parse(text, Path::new(origin)).map_err(OvsError::from)
    }
}

impl DaemonConfig for Config {
    const DAEMON: &'static str = "ovs";

    fn validate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Err(e) = super::jsonrpc::DbAddr::parse(&self.ovsdb) {
            out.push(Finding::new(
                vec![PathSeg::from("ovsdb")],
                e.to_string(),
                "e.g. \"unix:/run/openvswitch/db.sock\"",
            ));
        }
        if let Some(dir) = &self.metrics_dir {
            out.extend(config::absolute("metrics_dir", dir));
        }
        // Every interface name (bridges and ports) must be unique across the config.
        let mut seen: BTreeMap<&str, Vec<PathSeg>> = BTreeMap::new();
        for (i, b) in self.bridges.iter().enumerate() {
            let at = |key: &str| vec![PathSeg::from("bridges"), PathSeg::Index(i), PathSeg::from(key)];
            let at_item = |key: &str, j: usize| {
                vec![PathSeg::from("bridges"), PathSeg::Index(i), PathSeg::from(key), PathSeg::Index(j)]
            };
            let mut names: Vec<(Vec<PathSeg>, &String)> = vec![(at("name"), &b.name)];
            names.extend(b.internal_ports.iter().enumerate().map(|(j, n)| (at_item("internal_ports", j), n)));
            names.extend(b.uplink.iter().map(|n| (at("uplink"), n)));
            names.extend(b.ports.iter().enumerate().map(|(j, n)| (at_item("ports", j), n)));
            for (path, n) in names {
                if let Err(why) = check_ifname(n) {
                    out.push(Finding::new(
                        path,
                        format!("interface name {n:?} is invalid: {why}"),
                        "use a plain name such as \"ovsbr0\" or \"enp1s0\"",
                    ));
                    continue;
                }
                if let Some(first) = seen.get(n.as_str()) {
                    out.push(Finding::new(
                        path,
                        format!("interface name {n:?} is attached to the switch twice"),
                        format!(
                            "each bridge and port exists once; it is already named at {}",
                            config::display_path(first)
                        ),
                    ));
                } else {
                    seen.insert(n, path);
                }
            }
            for (j, mac) in b.allowed_macs.iter().enumerate() {
                if super::mac::parse(mac).is_none() {
                    out.push(Finding::new(
                        at_item("allowed_macs", j),
                        format!("{mac:?} is not a unicast MAC address"),
                        "write six hex pairs with colons, as the hoster lists it, e.g. \"00:50:56:00:12:34\"",
                    ));
                }
            }
            if !b.allowed_macs.is_empty() && (b.uplink.is_none() || !b.mac_guard) {
                out.push(Finding::new(
                    at("allowed_macs"),
                    "allowed_macs only matter with an uplink and mac_guard on",
                    "remove allowed_macs, or give the bridge an uplink and leave mac_guard on",
                ));
            }
            for (j, f) in b.extra_flows.iter().enumerate() {
                if let Err(why) = super::flows::check_extra_flow(f) {
                    out.push(Finding::new(
                        at_item("extra_flows", j),
                        format!("extra flow {f:?} {why}"),
                        "write one ovs-ofctl flow, e.g. \"priority=100,ip,nw_dst=10.0.0.0/24,actions=normal\"",
                    ));
                }
            }
        }
        out
    }
}

/// Why `n` cannot be an interface GhostBridge manages. Linux refuses '/', ':'
/// and white space; ovs-ofctl flows split on ',' and '='; systemd-networkd
/// reads `[Match] Name=` as a glob list, so glob and negation characters
/// would match other interfaces.
pub fn check_ifname(n: &str) -> std::result::Result<(), String> {
    if n.is_empty() {
        return Err("it is empty".into());
    }
    if n.len() > IFNAME_MAX {
        return Err(format!("it is {} bytes long; Linux allows at most {IFNAME_MAX}", n.len()));
    }
    if n == "." || n == ".." {
        return Err("it may not be '.' or '..'".into());
    }
    if let Some(c) = n.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))) {
        return Err(format!("it holds {c:?}; use letters, digits, '-', '_', '.' and '@'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_defaults_apply() {
        let c = Config::parse(include_str!("../../examples/ovs.json"), "examples/ovs.json").unwrap();
        assert_eq!(c.bridges.len(), 2);
        let c = Config::parse(r#"{"bridges":[{"name":"br0"}]}"#, "t").unwrap();
        assert_eq!(c.ovsdb, DEFAULT_DB);
        assert!(c.bridges[0].drop_uplink_broadcast);
        assert_eq!(c.bridges[0].datapath_type, DatapathType::System);
        assert_eq!(c.bridges[0].desired_ports().len(), 1);
    }

    #[test]
    fn rejects_unknown_keys_duplicates_and_bad_names() {
        let e = Config::parse(r#"{"bridges":[{"name":"br0","uplnk":"eth0"}]}"#, "t").unwrap_err().to_string();
        assert!(e.contains("unknown field `uplnk`"), "{e}");
        let e = Config::parse(r#"{"bridges":[{"name":"br0","ports":["a"]},{"name":"br1","uplink":"a"}]}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t: bridges[1].uplink: interface name \"a\" is attached to the switch twice"), "{e}");
        let e = Config::parse(r#"{"bridges":[{"name":"a-very-long-bridge-name"}]}"#, "t").unwrap_err().to_string();
        assert!(e.contains("Linux allows at most 15") && e.contains("t: bridges[0].name:"), "{e}");
        let e = Config::parse(r#"{"db":"/run/db.sock","bridges":[]}"#, "t").unwrap_err().to_string();
        assert!(e.contains("unix:/path"), "{e}");
        let e = Config::parse(r#"{"bridges":[{"name":"b","datapath_type":"dpdk"}]}"#, "t").unwrap_err().to_string();
        assert!(e.contains("unknown variant"), "{e}");
    }
}

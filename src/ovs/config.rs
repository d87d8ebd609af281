//! The JSON config written by the NixOS module (`services.ghostbridge.ovs`):
//! the desired bridges, strictly parsed (unknown keys are errors) and validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{OvsError, Result};

/// Default OVSDB address when neither the config nor `--db` names one.
pub const DEFAULT_DB: &str = "unix:/run/openvswitch/db.sock";

/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// OVSDB address, `unix:/path` or `tcp:host:port`.
    #[serde(default = "default_db")]
    pub db: String,
    /// node exporter's textfile collector directory; `null` = no metrics file.
    #[serde(default)]
    pub metrics_dir: Option<PathBuf>,
    #[serde(default)]
    pub bridges: Vec<BridgeSpec>,
}

fn default_db() -> String {
    DEFAULT_DB.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSpec {
    pub name: String,
    #[serde(default)]
    pub datapath_type: DatapathType,
    /// The physical NIC facing the outside; a port, and the one whose broadcasts are dropped.
    #[serde(default)]
    pub uplink: Option<String>,
    /// Existing system interfaces attached as ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Extra ports of type internal (the bridge's own internal interface is implicit).
    #[serde(default)]
    pub internal_ports: Vec<String>,
    #[serde(default = "yes")]
    pub drop_uplink_broadcast: bool,
    /// ovs-ofctl flow strings added after the generated ones.
    #[serde(default)]
    pub extra_flows: Vec<String>,
}

fn yes() -> bool {
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
        let mut out = vec![PortSpec {
            name: self.name.clone(),
            kind: PortKind::Internal,
            uplink: false,
        }];
        out.extend(self.internal_ports.iter().map(|p| PortSpec {
            name: p.clone(),
            kind: PortKind::Internal,
            uplink: false,
        }));
        if let Some(u) = &self.uplink {
            out.push(PortSpec {
                name: u.clone(),
                kind: PortKind::System,
                uplink: true,
            });
        }
        out.extend(self.ports.iter().map(|p| PortSpec {
            name: p.clone(),
            kind: PortKind::System,
            uplink: false,
        }));
        out
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| OvsError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let config: Config = serde_json::from_str(text).map_err(|e| OvsError::Config {
            path: origin.to_string(),
            msg: format!("{e} (see examples/ovs.json for the format)"),
        })?;
        config.validate().map_err(|msg| OvsError::Config {
            path: origin.to_string(),
            msg,
        })?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        super::jsonrpc::DbAddr::parse(&self.db).map_err(|e| e.to_string())?;
        // Every interface name (bridges and ports) must be unique across the config.
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for b in &self.bridges {
            let names = std::iter::once(&b.name)
                .chain(&b.internal_ports)
                .chain(b.uplink.iter())
                .chain(&b.ports);
            for n in names {
                check_ifname(n).map_err(|e| format!("bridge {}: {e}", b.name))?;
                if let Some(prev) = seen.insert(n, &b.name) {
                    return Err(format!(
                        "interface name {n:?} appears twice (bridges {prev} and {}); each bridge and port name must be unique",
                        b.name
                    ));
                }
            }
            for f in &b.extra_flows {
                if f.contains('\n') || !f.contains("actions=") {
                    return Err(format!(
                        "bridge {}: extra flow {f:?} must be one ovs-ofctl flow line with actions=",
                        b.name
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_ifname(n: &str) -> std::result::Result<(), String> {
    if n.is_empty() || n.len() > IFNAME_MAX {
        return Err(format!(
            "interface name {n:?} must be 1 to {IFNAME_MAX} bytes long"
        ));
    }
    if n == "."
        || n == ".."
        || n.chars().any(|c| {
            c == '/' || c == ':' || c == ',' || c == '=' || c.is_whitespace() || c.is_control()
        })
    {
        return Err(format!(
            "interface name {n:?} contains a character Linux or ovs-ofctl does not accept (/ : , = or space)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_defaults_apply() {
        let c =
            Config::parse(include_str!("../../examples/ovs.json"), "examples/ovs.json").unwrap();
        assert_eq!(c.bridges.len(), 2);
        let c = Config::parse(r#"{"bridges":[{"name":"br0"}]}"#, "t").unwrap();
        assert_eq!(c.db, DEFAULT_DB);
        assert!(c.bridges[0].drop_uplink_broadcast);
        assert_eq!(c.bridges[0].datapath_type, DatapathType::System);
        assert_eq!(c.bridges[0].desired_ports().len(), 1);
    }

    #[test]
    fn rejects_unknown_keys_duplicates_and_bad_names() {
        let e = Config::parse(r#"{"bridges":[{"name":"br0","uplnk":"eth0"}]}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `uplnk`"), "{e}");
        let e = Config::parse(
            r#"{"bridges":[{"name":"br0","ports":["a"]},{"name":"br1","uplink":"a"}]}"#,
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = Config::parse(r#"{"bridges":[{"name":"a-very-long-bridge-name"}]}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 to 15 bytes"), "{e}");
        let e = Config::parse(r#"{"db":"/run/db.sock","bridges":[]}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unix:/path"), "{e}");
        let e = Config::parse(r#"{"bridges":[{"name":"b","datapath_type":"dpdk"}]}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant"), "{e}");
    }
}

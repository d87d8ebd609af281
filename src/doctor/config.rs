//! What `ghostbridge-doctor` checks on a host: the one definition of its keys
//! and defaults. The NixOS module fills in the units and the daemons' config
//! files from what the host enables; the bounds keep their defaults here.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::runtime::config::{self, DaemonConfig, Finding, PathSeg};

/// `/etc/ghostbridge/doctor.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorConfig {
    /// systemd units that must be active, e.g. "ghostbridge-snapshotter.service".
    #[serde(default)]
    pub units: Vec<String>,
    /// The snapshotter's config file: its chain is verified and its snapshots counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshotter: Option<PathBuf>,
    /// The OVS reconciler's config file: Open vSwitch must match it (no drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<PathBuf>,
    /// The Qdrant sync's config file: its cursor must follow the chain's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdrant_sync: Option<PathBuf>,
    /// The TCP port sshd must listen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// Exactly the TCP ports the NixOS firewall must open on every interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_ports: Option<Vec<u16>>,
    /// Most blocks the Qdrant sync may be behind the chain's head.
    #[serde(default = "default_max_sync_lag")]
    pub max_sync_lag: u64,
    /// Least free space on the snapshot file system, bytes.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Most snapshots in the snapshot folder (BTRFS slows down past a few thousand).
    #[serde(default = "default_max_live_snapshots")]
    pub max_live_snapshots: u64,
}

fn default_max_sync_lag() -> u64 {
    30
}

fn default_min_free_bytes() -> u64 {
    1 << 30
}

fn default_max_live_snapshots() -> u64 {
    crate::spec::check::MAX_LIVE_SNAPSHOTS
}

impl DaemonConfig for DoctorConfig {
    const DAEMON: &'static str = "doctor";

    fn validate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (key, path) in [("snapshotter", &self.snapshotter), ("ovs", &self.ovs), ("qdrant_sync", &self.qdrant_sync)]
        {
            if let Some(p) = path {
                out.extend(config::absolute(key, p));
            }
        }
        for (i, unit) in self.units.iter().enumerate() {
            if unit.is_empty() || unit.starts_with('-') || unit.chars().any(|c| c.is_whitespace() || c.is_control()) {
                out.push(Finding::new(
                    vec![PathSeg::from("units"), PathSeg::Index(i)],
                    format!("{unit:?} is not a unit name"),
                    "write it as systemctl shows it, e.g. \"ghostbridge-snapshotter.service\"",
                ));
            }
        }
        out
    }
}

//! The snapshotter's settings: the one definition of its keys, defaults and
//! rules. The same struct is the spec's `[snapshotter]` section, the JSON that
//! `services.ghostbridge.snapshotter.settings` renders, and what
//! `ghostbridge-snapshotter check-config` validates. Unknown keys are refused.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::runtime::config::{self, ConfigError, DaemonConfig, Finding, PathSeg};
use crate::runtime::duration::HumanDuration;
use crate::snapshot::retention::{Policy, Tier};

/// `[snapshotter]`: read-only BTRFS snapshots of `source` every `interval`,
/// each recorded as a block of a SHA-256 chain in SQLite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Mount point of the BTRFS subvolume to snapshot (a subvolume root).
    pub source: PathBuf,
    /// Folder, on the same BTRFS file system, that receives the read-only snapshots.
    pub snapshot_dir: PathBuf,
    /// SQLite database of the chain. Must not live inside the snapshotted subvolume.
    pub database: PathBuf,
    /// Time between snapshots.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// How long a snapshot is kept; its block stays in the chain.
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    /// Past `retention`, one snapshot per `every` for `keep`, coarser tier after
    /// coarser tier (e.g. every 1m for 1h, every 1h for 1d, every 1d for 30d).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// Record in each block which paths changed since the block before
    /// (from the kernel's send stream between the two snapshots).
    #[serde(default = "default_true")]
    pub index_changes: bool,
    /// The most changes one block records; a larger change (an unpacked
    /// archive, a removed tree) gives a block marked "too many to index", so
    /// that a tick stays short and its memory bounded.
    #[serde(default = "default_max_changes_per_block")]
    pub max_changes_per_block: u32,
    /// How long change rows are kept; older blocks keep only their change digest.
    #[serde(default = "default_change_retention")]
    pub change_retention: HumanDuration,
    /// A root-only file holding a key: every block then carries an
    /// HMAC-SHA256 of its hash, so a chain rewritten without the key does not
    /// verify (`verify --hmac-key`). The NixOS module hands it over as a
    /// systemd credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key_file: Option<PathBuf>,
    /// node exporter's textfile collector folder; absent = no metrics file
    /// (the NixOS module points it at the collector when monitoring is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_dir: Option<PathBuf>,
    /// Serve `org.ghostbridge.Snapshotter1` on the system bus.
    #[serde(default = "default_true")]
    pub dbus: bool,
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_retention() -> HumanDuration {
    HumanDuration::from_mins(1)
}
fn default_max_changes_per_block() -> u32 {
    100_000
}
fn default_change_retention() -> HumanDuration {
    HumanDuration::from_days(30)
}
fn default_true() -> bool {
    true
}

impl DaemonConfig for Config {
    const DAEMON: &'static str = "snapshotter";

    fn validate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.retention.as_millis() < self.interval.as_millis() {
            out.push(Finding::new(
                vec![PathSeg::from("retention")],
                format!("retention {} is shorter than interval {}", self.retention, self.interval),
                format!(
                    "every snapshot would be pruned before the next one exists: set retention to at least \"{}\"",
                    self.interval
                ),
            ));
        }
        out.extend(crate::snapshot::retention::validate(&self.tiers, &self.interval, &self.retention));
        for (key, value) in
            [("source", &self.source), ("snapshot_dir", &self.snapshot_dir), ("database", &self.database)]
        {
            out.extend(config::absolute(key, value));
        }
        if let Some(dir) = &self.metrics_dir {
            out.extend(config::absolute("metrics_dir", dir));
        }
        if let Some(file) = &self.hmac_key_file {
            out.extend(config::secret_file("hmac_key_file", file));
        }
        if self.max_changes_per_block == 0 {
            out.push(Finding::new(
                vec![PathSeg::from("max_changes_per_block")],
                "max_changes_per_block is 0: no block could record a change",
                "give a bound such as 100000, or set index_changes = false to record none",
            ));
        }
        out
    }
}

impl Config {
    /// A config with every default and the three required paths.
    pub fn new(source: PathBuf, snapshot_dir: PathBuf, database: PathBuf) -> Self {
        Config {
            source,
            snapshot_dir,
            database,
            interval: default_interval(),
            retention: default_retention(),
            tiers: Vec::new(),
            index_changes: default_true(),
            max_changes_per_block: default_max_changes_per_block(),
            change_retention: default_change_retention(),
            hmac_key_file: None,
            metrics_dir: None,
            dbus: default_true(),
        }
    }

    /// The change index's bound per block, `None` when it is off.
    pub fn change_limit(&self) -> Option<usize> {
        self.index_changes.then_some(self.max_changes_per_block as usize)
    }

    /// What the snapshot folder keeps: `retention`, then the tiers.
    pub fn policy(&self) -> Policy<'_> {
        Policy::new(self.retention.as_duration(), &self.tiers)
    }

    /// The most snapshots that exist at once ([`Policy::max_live`]).
    pub fn max_live_snapshots(&self) -> u64 {
        self.policy().max_live(self.interval_ns())
    }

    /// The most kept at once by the retention, then by each tier.
    pub fn max_live_per_tier(&self) -> Vec<u64> {
        self.policy().max_live_per_tier(self.interval_ns())
    }

    fn interval_ns(&self) -> i64 {
        i64::try_from(self.interval.as_duration().as_nanos()).unwrap_or(i64::MAX)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        config::load(path)
    }

    /// Parses and validates config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        config::parse(text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_example_and_defaults() {
        let c = Config::parse(
            r#"{ "source": "/var/lib/overlay", "snapshot_dir": "/s", "database": "/c.db",
                 "interval": "1s", "retention": "1m", "metrics_dir": null, "dbus": true }"#,
            Path::new("x.json"),
        )
        .unwrap();
        assert_eq!(c.interval.as_millis(), 1000);
        assert_eq!(c.metrics_dir, None);
        let d = Config::parse(r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c" }"#, Path::new("x")).unwrap();
        assert_eq!(d, Config::new("/a".into(), "/b".into(), "/c".into()));
        assert_eq!((d.interval.to_string(), d.retention.to_string(), d.dbus), ("1s".into(), "1m".into(), true));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values_at_their_key() {
        let e = Config::parse(
            r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "intervall": "1s" }"#,
            Path::new("x"),
        );
        assert!(e.unwrap_err().to_string().contains("unknown field `intervall`"));
        let e = Config::parse(
            r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "interval": "1 s" }"#,
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x: interval: invalid duration"), "{e}");
        let e = Config::parse(
            r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "interval": "1m", "retention": "1s" }"#,
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x: retention: retention 1s is shorter than interval 1m"), "{e}");
        let e = Config::parse(r#"{ "source": "a", "snapshot_dir": "/b", "database": "/c" }"#, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x: source: source must be an absolute path"), "{e}");
    }
}

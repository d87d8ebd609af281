//! What `run` needs, after the config and the command-line overrides are merged.

use std::path::PathBuf;
use std::time::Duration;

use crate::snapshot::config::Config;
use crate::snapshot::retention::Tier;

/// Everything `run` needs, after the config and the command-line overrides are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: PathBuf,
    pub snapshot_dir: PathBuf,
    pub database: PathBuf,
    pub interval: Duration,
    pub retention: Duration,
    /// Shared, so a tick borrows them beside the daemon's mutable state without copying.
    pub tiers: std::sync::Arc<[Tier]>,
    /// The change index's bound per block, `None` when it is off.
    pub change_limit: Option<usize>,
    pub change_retention: Duration,
    /// The key that seals each block: the bytes of `hmac_key_file`, read by
    /// the caller before `run` (`None` here until then).
    pub hmac_key: Option<std::sync::Arc<[u8]>>,
    pub metrics_dir: Option<PathBuf>,
    pub dbus: bool,
}

impl From<Config> for Settings {
    fn from(c: Config) -> Self {
        let change_limit = c.change_limit();
        Settings {
            source: c.source,
            snapshot_dir: c.snapshot_dir,
            database: c.database,
            interval: c.interval.as_duration(),
            retention: c.retention.as_duration(),
            tiers: c.tiers.into(),
            change_limit,
            change_retention: c.change_retention.as_duration(),
            hmac_key: None,
            metrics_dir: c.metrics_dir,
            dbus: c.dbus,
        }
    }
}

//! The snapshotter's JSON config, as the NixOS module writes it with
//! `builtins.toJSON`. Unknown keys are refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::duration::HumanDuration;

/// `ghostbridge-snapshotter run --config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The BTRFS subvolume to snapshot (must be a subvolume root).
    pub source: PathBuf,
    /// Where the read-only snapshots are created (on the same BTRFS filesystem).
    pub snapshot_dir: PathBuf,
    /// The SQLite chain database.
    pub database: PathBuf,
    /// Time between snapshots (default `"1s"`).
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// How long a snapshot is kept (default `"1m"`); its block stays forever.
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    /// node exporter's textfile collector directory; `null` = no metrics file.
    #[serde(default)]
    pub metrics_dir: Option<PathBuf>,
    /// Serve `org.ghostbridge.Snapshotter` on the system bus (default true).
    #[serde(default = "default_true")]
    pub dbus: bool,
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_retention() -> HumanDuration {
    "1m".parse().unwrap_or(HumanDuration::from_secs(60))
}
fn default_true() -> bool {
    true
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "config {path}: {source} (see the README for the keys: source, snapshot_dir, database, interval, retention, metrics_dir, dbus)"
    )]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error(
        "config: retention {retention} is shorter than interval {interval}; every snapshot would be deleted at the next tick: raise retention"
    )]
    RetentionTooShort { retention: HumanDuration, interval: HumanDuration },
    #[error("config: {key} must be an absolute path, got {value:?}")]
    Relative { key: &'static str, value: PathBuf },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let c: Config =
            serde_json::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retention.as_millis() < self.interval.as_millis() {
            return Err(ConfigError::RetentionTooShort { retention: self.retention, interval: self.interval });
        }
        for (key, value) in
            [("source", &self.source), ("snapshot_dir", &self.snapshot_dir), ("database", &self.database)]
        {
            if value.is_relative() {
                return Err(ConfigError::Relative { key, value: value.clone() });
            }
        }
        Ok(())
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
        assert_eq!((d.interval.to_string(), d.retention.to_string(), d.dbus), ("1s".into(), "1m".into(), true));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let e = Config::parse(
            r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "intervall": "1s" }"#,
            Path::new("x"),
        );
        assert!(e.unwrap_err().to_string().contains("unknown field `intervall`"));
        let e = Config::parse(
            r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "interval": "1 s" }"#,
            Path::new("x"),
        );
        assert!(e.unwrap_err().to_string().contains("invalid duration"));
        let e = Config::parse(
            r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "interval": "1m", "retention": "1s" }"#,
            Path::new("x"),
        );
        assert!(matches!(e, Err(ConfigError::RetentionTooShort { .. })));
        let e = Config::parse(r#"{ "source": "a", "snapshot_dir": "/b", "database": "/c" }"#, Path::new("x"));
        assert!(matches!(e, Err(ConfigError::Relative { key: "source", .. })));
    }
}

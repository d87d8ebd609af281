//! The Qdrant sync's JSON config, as written by the NixOS module with
//! `builtins.toJSON`: strict (unknown keys are refused), with defaults for
//! everything but the database path, and checked before anything starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::duration::HumanDuration;

/// Qdrant's distance functions, spelled as Qdrant spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distance {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

impl Distance {
    pub fn as_str(self) -> &'static str {
        match self {
            Distance::Cosine => "Cosine",
            Distance::Euclid => "Euclid",
            Distance::Dot => "Dot",
            Distance::Manhattan => "Manhattan",
        }
    }
}

impl std::fmt::Display for Distance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Largest vector size Qdrant accepts for a dense vector.
pub const MAX_DIMENSION: usize = 65_536;
/// Largest batch accepted: beyond this a single request body grows past what
/// is sensible to hold in memory and to send within one timeout.
pub const MAX_BATCH: usize = 10_000;

/// Qdrant's default largest request body (`service.max_request_size_mb: 32`).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// The most JSON text one vector component takes in an upsert body (`-0.012345678,`).
pub const JSON_BYTES_PER_COMPONENT: usize = 16;
/// The most JSON text a point takes besides its vector: ID, payload, brackets.
pub const JSON_BYTES_PER_POINT: usize = 1024;

/// The largest upsert body `batch` points of `dimension` components can make.
pub fn upsert_bytes(batch: usize, dimension: usize) -> usize {
    batch.saturating_mul(dimension.saturating_mul(JSON_BYTES_PER_COMPONENT).saturating_add(JSON_BYTES_PER_POINT))
}

/// `ghostbridge-qdrant-sync --config FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The snapshotter's chain database (SQLite).
    pub database: PathBuf,
    /// Qdrant's REST endpoint.
    #[serde(default = "default_url")]
    pub url: String,
    /// The collection that holds one point per block.
    #[serde(default = "default_collection")]
    pub collection: String,
    /// Vector size of the collection and of the embedder.
    #[serde(default = "default_dimension")]
    pub dimension: usize,
    #[serde(default = "default_distance")]
    pub distance: Distance,
    /// Most points per upsert request.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// How often `run` looks for new blocks.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// A file holding the Qdrant API key (sent as the `api-key` header).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Node exporter's textfile collector directory; `null` = no metrics file.
    #[serde(default)]
    pub metrics_dir: Option<PathBuf>,
    /// Longest a single request to Qdrant may take (connect, send, answer).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Longest wait between retries while Qdrant is down.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
}

fn default_url() -> String {
    "http://127.0.0.1:6333".to_string()
}
fn default_collection() -> String {
    "ghostbridge-blocks".to_string()
}
fn default_dimension() -> usize {
    384
}
fn default_distance() -> Distance {
    Distance::Cosine
}
fn default_batch() -> usize {
    100
}
fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(30)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("cannot read the API key file {path}: {source} (it must be readable by the sync's user)")]
    ApiKeyRead { path: PathBuf, source: std::io::Error },
    #[error("the API key file {path} is empty; write the key into it, or set api_key_file to null")]
    ApiKeyEmpty { path: PathBuf },
}

impl SyncConfig {
    /// A config with every default and the given database.
    pub fn with_database(database: impl Into<PathBuf>) -> Self {
        SyncConfig {
            database: database.into(),
            url: default_url(),
            collection: default_collection(),
            dimension: default_dimension(),
            distance: default_distance(),
            batch: default_batch(),
            interval: default_interval(),
            api_key_file: None,
            metrics_dir: None,
            request_timeout: default_request_timeout(),
            max_backoff: default_max_backoff(),
        }
    }

    /// Parses a config from JSON text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|source| ConfigError::Parse { path: origin.to_path_buf(), source })
    }

    /// Reads and parses a config file (not yet validated: flags may override it).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_json(&text, path)
    }

    /// Checks the values a type cannot: ranges, the URL scheme, the collection name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return bad(format!("dimension is {}; it must be between 1 and {MAX_DIMENSION}", self.dimension));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return bad(format!("batch is {}; it must be between 1 and {MAX_BATCH}", self.batch));
        }
        let bytes = upsert_bytes(self.batch, self.dimension);
        if bytes > MAX_REQUEST_BYTES {
            let fits = MAX_REQUEST_BYTES / upsert_bytes(1, self.dimension);
            return bad(format!(
                "batch {} of dimension {} makes upsert requests of up to {} MiB, more than Qdrant accepts by default \
                 (32 MiB, service.max_request_size_mb); set batch to at most {fits}",
                self.batch,
                self.dimension,
                bytes.div_ceil(1024 * 1024)
            ));
        }
        validate_collection_name(&self.collection).or_else(bad)?;
        validate_url(&self.url).or_else(bad)?;
        Ok(())
    }

    /// The API key from `api_key_file`, trimmed of surrounding whitespace.
    pub fn api_key(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.api_key_file else { return Ok(None) };
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::ApiKeyRead { path: path.clone(), source })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(ConfigError::ApiKeyEmpty { path: path.clone() });
        }
        Ok(Some(key.to_string()))
    }
}

/// Collection names go into URL paths unescaped, so they are kept to a safe set.
pub fn validate_collection_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("collection {name:?} must be 1 to 255 characters long"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("collection {name:?} contains {c:?}; use only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

fn validate_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!(
            "url {url:?} uses https, but this build speaks plain http only; \
             reach Qdrant over loopback (the default), or through a local TLS-terminating proxy"
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("url {url:?} must start with http://, e.g. \"http://127.0.0.1:6333\""));
    };
    if rest.trim_end_matches('/').is_empty() || rest.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(format!("url {url:?} must be http://HOST[:PORT][/PREFIX], e.g. \"http://127.0.0.1:6333\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_module_example_and_defaults() {
        let text = r#"{ "database": "/var/lib/blockchain-timing/chain.db",
            "url": "http://127.0.0.1:6333", "collection": "ghostbridge-blocks",
            "dimension": 384, "distance": "Cosine", "batch": 100, "interval": "1s",
            "api_key_file": null, "metrics_dir": "/var/lib/prometheus-node-exporter-text" }"#;
        let c = SyncConfig::from_json(text, Path::new("x.json")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dimension, 384);
        assert_eq!(c.interval.to_string(), "1s");
        let minimal = SyncConfig::from_json(r#"{"database": "/x.db"}"#, Path::new("x.json")).unwrap();
        assert_eq!(minimal, SyncConfig::with_database("/x.db"));
    }

    #[test]
    fn the_largest_accepted_batch_fits_in_a_request() {
        for dimension in [1, 384, 1536, 4096, MAX_DIMENSION] {
            let fits = MAX_REQUEST_BYTES / upsert_bytes(1, dimension);
            let mut c = SyncConfig::with_database("/x.db");
            c.dimension = dimension;
            c.batch = fits.min(MAX_BATCH);
            c.validate().unwrap();
            assert!(upsert_bytes(c.batch, dimension) <= MAX_REQUEST_BYTES);
            if fits < MAX_BATCH {
                c.batch = fits + 1;
                assert!(c.validate().unwrap_err().to_string().contains(&format!("at most {fits}")), "{dimension}");
            }
        }
        // The estimate is an upper bound of the real body: the widest f32 text.
        let widest = serde_json::to_string(&vec![-0.012_345_678_f32; 3]).unwrap();
        assert!(widest.len() <= 3 * JSON_BYTES_PER_COMPONENT, "{widest}");
    }

    #[test]
    fn the_example_in_the_repository_is_valid() {
        let text = include_str!("../../examples/qdrant-sync.json");
        let c = SyncConfig::from_json(text, Path::new("examples/qdrant-sync.json")).unwrap();
        c.validate().unwrap();
        assert_eq!((c.collection.as_str(), c.batch, c.distance), ("ghostbridge-blocks", 100, Distance::Cosine));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let err = SyncConfig::from_json(r#"{"database": "/x.db", "colection": "a"}"#, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `colection`") && err.contains("c.json"), "{err}");
        let err = SyncConfig::from_json(r#"{"database": "/x.db", "distance": "cosine"}"#, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Cosine"), "{err}");
        for (patch, needle) in [
            (r#""dimension": 0"#, "dimension is 0"),
            (r#""batch": 0"#, "batch is 0"),
            (r#""batch": 10000, "dimension": 384"#, "set batch to at most 4681"),
            (r#""batch": 100, "dimension": 65536"#, "up to 101 MiB, more than Qdrant accepts by default"),
            (r#""collection": "a/b""#, "contains '/'"),
            (r#""url": "https://q:6333""#, "plain http only"),
            (r#""url": "127.0.0.1:6333""#, "must start with http://"),
        ] {
            let c =
                SyncConfig::from_json(&format!(r#"{{"database": "/x.db", {patch}}}"#), Path::new("c.json")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{patch}: {err}");
        }
    }

    #[test]
    fn reads_the_api_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut c = SyncConfig::with_database("/x.db");
        c.api_key_file = Some(path.clone());
        assert_eq!(c.api_key().unwrap().as_deref(), Some("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert!(c.api_key().unwrap_err().to_string().contains("is empty"));
    }
}

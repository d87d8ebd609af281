//! The Qdrant sync's settings: the one definition of its keys, defaults and
//! rules. The same struct is the spec's `[qdrant_sync]` section, the JSON that
//! `services.ghostbridge.qdrant_sync.settings` renders, and what
//! `ghostbridge-qdrant-sync check-config` validates. Unknown keys are refused.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::runtime::config::{self, DaemonConfig, Finding, PathSeg};

use crate::runtime::duration::HumanDuration;

/// Qdrant's distance functions, spelled as Qdrant spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Distance {
    #[default]
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

/// `[qdrant_sync]`: every block of the snapshot chain as a point in a Qdrant collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The snapshotter's chain database (SQLite). In a spec it defaults to
    /// `[snapshotter] database`.
    pub database: PathBuf,
    /// Qdrant's REST endpoint, `http://HOST[:PORT][/PREFIX]`. A loopback host
    /// (127.0.0.1, localhost, [::1]) means a Qdrant on this machine, which the host runs.
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
    /// A file holding the Qdrant API key, sent as the `api-key` header (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// node exporter's textfile collector folder; absent = no metrics file
    /// (the NixOS module points it at the collector when monitoring is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    Distance::default()
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

/// Why the API key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("cannot read the API key file {path}: {source} (it must be readable by the sync's user)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the API key file {path} is empty; write the key into it, or set api_key_file to null")]
    Empty { path: PathBuf },
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

    /// Parses a config from JSON text, not yet validated (flags may override it).
    pub fn from_json(text: &str, origin: &Path) -> Result<Self, config::ConfigError> {
        config::decode(text, origin)
    }

    /// Reads and parses a config file (not yet validated: flags may override it).
    pub fn load(path: &Path) -> Result<Self, config::ConfigError> {
        config::load_unvalidated(path)
    }

    /// The Qdrant this host runs itself, when `url` names a loopback address:
    /// the address Qdrant binds to and its REST port (gRPC takes the next one).
    pub fn local_qdrant(&self) -> Option<(IpAddr, u16)> {
        let parsed = parse_url(&self.url).ok()?;
        let ip = match parsed.host.as_str() {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h.trim_start_matches('[').trim_end_matches(']').parse().ok()?,
        };
        ip.is_loopback().then_some((ip, parsed.port))
    }

    /// The API key from `api_key_file`, trimmed of surrounding whitespace.
    pub fn api_key(&self) -> Result<Option<String>, ApiKeyError> {
        let Some(path) = &self.api_key_file else { return Ok(None) };
        let text = std::fs::read_to_string(path).map_err(|source| ApiKeyError::Read { path: path.clone(), source })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(ApiKeyError::Empty { path: path.clone() });
        }
        Ok(Some(key.to_string()))
    }
}

impl DaemonConfig for SyncConfig {
    const DAEMON: &'static str = "qdrant-sync";

    /// Ranges, the request size, the URL and the collection name.
    fn validate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let at = |key: &str| vec![PathSeg::from(key)];
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            out.push(Finding::new(
                at("dimension"),
                format!("dimension is {}; it must be between 1 and {MAX_DIMENSION}", self.dimension),
                "set the embedding size, e.g. 384",
            ));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            out.push(Finding::new(
                at("batch"),
                format!("batch is {}; it must be between 1 and {MAX_BATCH}", self.batch),
                "set how many points go in one request, e.g. 100",
            ));
        } else if (1..=MAX_DIMENSION).contains(&self.dimension) {
            let bytes = upsert_bytes(self.batch, self.dimension);
            if bytes > MAX_REQUEST_BYTES {
                let fits = MAX_REQUEST_BYTES / upsert_bytes(1, self.dimension);
                out.push(Finding::new(
                    at("batch"),
                    format!(
                        "batch {} of dimension {} makes upsert requests of up to {} MiB, more than Qdrant accepts by default \
                         (32 MiB, service.max_request_size_mb)",
                        self.batch,
                        self.dimension,
                        bytes.div_ceil(1024 * 1024)
                    ),
                    format!("set batch to at most {fits}"),
                ));
            }
        }
        if let Err((message, help)) = validate_collection_name(&self.collection) {
            out.push(Finding::new(at("collection"), message, help));
        }
        if let Err((message, help)) = parse_url(&self.url) {
            out.push(Finding::new(at("url"), message, help));
        }
        if self.local_qdrant().is_some_and(|(_, port)| port == u16::MAX) {
            out.push(Finding::new(
                at("url"),
                format!("url {:?} puts the local Qdrant's REST API on port 65535, which leaves no port for its gRPC API (the next one)", self.url),
                "pick a lower port, e.g. 6333",
            ));
        }
        for (key, value) in [("database", Some(&self.database)), ("metrics_dir", self.metrics_dir.as_ref())] {
            if let Some(value) = value {
                out.extend(config::absolute(key, value));
            }
        }
        if let Some(file) = &self.api_key_file {
            out.extend(config::secret_file("api_key_file", file));
        }
        out
    }
}

/// Collection names go into URL paths unescaped, so they are kept to a safe set.
fn validate_collection_name(name: &str) -> Result<(), (String, String)> {
    let help = "use 1 to 255 letters, digits, '-', '_' and '.', e.g. \"ghostbridge-blocks\"".to_string();
    if name.is_empty() || name.len() > 255 {
        return Err((format!("collection {name:?} must be 1 to 255 characters long"), help));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err((format!("collection {name:?} contains {c:?}"), help));
    }
    if name == "." || name == ".." {
        return Err((format!("collection {name:?} is a path step, not a name"), help));
    }
    Ok(())
}

/// The parts of a Qdrant URL that matter: host (IPv6 in brackets) and port.
struct QdrantUrl {
    host: String,
    port: u16,
}

/// `http://HOST[:PORT][/PREFIX]`; the port defaults to 80, as in any http URL.
fn parse_url(url: &str) -> Result<QdrantUrl, (String, String)> {
    let example = "write http://HOST[:PORT][/PREFIX], e.g. \"http://127.0.0.1:6333\"".to_string();
    if url.starts_with("https://") {
        return Err((
            format!("url {url:?} uses https, but this build speaks plain http only"),
            "reach Qdrant over loopback (the default), or through a local TLS-terminating proxy".into(),
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err((format!("url {url:?} must start with http://"), example));
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '\\')) {
        return Err((format!("url {url:?} holds white space, a query, a fragment or user info"), example));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err((format!("url {url:?} opens an IPv6 address with '[' but does not close it"), example));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err((format!("url {url:?}: {addr:?} is not an IPv6 address"), example));
        }
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err((format!("url {url:?} names no host"), example));
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('+') => n,
            _ => return Err((format!("url {url:?} has port {p:?}; a port is a number from 1 to 65535"), example)),
        },
    };
    Ok(QdrantUrl { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::DaemonConfig;

    #[test]
    fn parses_the_module_example_and_defaults() {
        let text = r#"{ "database": "/var/lib/blockchain-timing/chain.db",
            "url": "http://127.0.0.1:6333", "collection": "ghostbridge-blocks",
            "dimension": 384, "distance": "Cosine", "batch": 100, "interval": "1s",
            "api_key_file": null, "metrics_dir": "/var/lib/prometheus-node-exporter-text" }"#;
        let c = SyncConfig::from_json(text, Path::new("x.json")).unwrap();
        assert_eq!(c.validate(), vec![]);
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
            assert_eq!(c.validate(), vec![]);
            assert!(upsert_bytes(c.batch, dimension) <= MAX_REQUEST_BYTES);
            if fits < MAX_BATCH {
                c.batch = fits + 1;
                assert!(
                    c.validate().iter().map(|f| f.to_string()).collect::<String>().contains(&format!("at most {fits}")),
                    "{dimension}"
                );
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
        assert_eq!(c.validate(), vec![]);
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
            (r#""url": "http://[::1:6333""#, "does not close it"),
            (r#""url": "http://q:0""#, "a port is a number from 1 to 65535"),
            (r#""url": "http://127.0.0.1:65535""#, "no port for its gRPC API"),
            (r#""api_key_file": "key""#, "api_key_file must be an absolute path"),
        ] {
            let c =
                SyncConfig::from_json(&format!(r#"{{"database": "/x.db", {patch}}}"#), Path::new("c.json")).unwrap();
            let err = c.validate().iter().map(|f| f.to_string()).collect::<String>();
            assert!(err.contains(needle), "{patch}: {err}");
        }
    }

    #[test]
    fn finds_the_local_qdrant() {
        let mut c = SyncConfig::with_database("/x.db");
        for (url, local) in [
            ("http://127.0.0.1:6333", Some(("127.0.0.1", 6333))),
            ("http://127.0.0.1", Some(("127.0.0.1", 80))),
            ("http://localhost:7000/prefix", Some(("127.0.0.1", 7000))),
            ("http://[::1]:6333", Some(("::1", 6333))),
            ("http://127.0.0.2:6333", Some(("127.0.0.2", 6333))),
            ("http://10.0.0.5:6333", None),
            ("http://qdrant.example:6333", None),
        ] {
            c.url = url.into();
            assert_eq!(c.validate(), vec![], "{url}");
            let got = c.local_qdrant().map(|(ip, port)| (ip.to_string(), port));
            assert_eq!(got, local.map(|(ip, port)| (ip.to_string(), port)), "{url}");
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

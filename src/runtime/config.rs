//! The contract every daemon config follows: a serde struct that is the single
//! definition of the daemon's settings (keys, defaults, JSON Schema), and a
//! `validate()` that returns every problem with the key it is about. The
//! daemon's `check-config`, its `run`, the NixOS module's build-time check and
//! `ghostgen check` (which maps each key back to the spec) all use it.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// One step of a path into a config (or a spec) tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(s: &str) -> Self {
        PathSeg::Key(s.to_string())
    }
}

impl From<String> for PathSeg {
    fn from(s: String) -> Self {
        PathSeg::Key(s)
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}

/// `bridges[0].extra_flows[2]`; the empty path is `(top level)`.
pub fn display_path(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() { "(top level)".into() } else { out }
}

/// A value a daemon refuses: which key, what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: Vec<PathSeg>,
    pub message: String,
    pub help: String,
}

impl Finding {
    pub fn new(path: Vec<PathSeg>, message: impl Into<String>, help: impl Into<String>) -> Self {
        Finding { path, message: message.into(), help: help.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", display_path(&self.path), self.message)?;
        if !self.help.is_empty() {
            write!(f, " ({})", self.help)?;
        }
        Ok(())
    }
}

/// A daemon's settings: the one definition of its keys, defaults and rules.
pub trait DaemonConfig: DeserializeOwned + JsonSchema {
    /// The daemon's name, as in `ghostbridge-<name>` and `services.ghostbridge.<name>`.
    const DAEMON: &'static str;
    /// Every rule a type cannot express, each finding at its key. Content only:
    /// never reads the paths it names (it runs in a build sandbox).
    fn validate(&self) -> Vec<Finding>;
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {key}: {message}")]
    Parse { path: PathBuf, key: String, message: String },
    #[error("{}", render_invalid(path, findings))]
    Invalid { path: PathBuf, findings: Vec<Finding> },
}

impl ConfigError {
    /// Exit code: 1 when the file could not be read, 2 when its content is invalid.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Read { .. } => 1,
            ConfigError::Parse { .. } | ConfigError::Invalid { .. } => 2,
        }
    }
}

fn render_invalid(path: &Path, findings: &[Finding]) -> String {
    let lines: Vec<String> = findings.iter().map(|f| format!("{}: {f}", path.display())).collect();
    lines.join("\n")
}

/// Parses config text (unknown keys refused, errors at their key), then validates it.
pub fn parse<T: DaemonConfig>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    let config = decode::<T>(text, origin)?;
    let findings = config.validate();
    if findings.is_empty() { Ok(config) } else { Err(ConfigError::Invalid { path: origin.to_path_buf(), findings }) }
}

/// Parses config text without validating it (a caller may still override keys).
pub fn decode<T: DaemonConfig>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { "(top level)".to_string() } else { key };
        ConfigError::Parse { path: origin.to_path_buf(), key, message: e.into_inner().to_string() }
    })
}

/// Reads, parses and validates a config file.
pub fn load<T: DaemonConfig>(path: &Path) -> Result<T, ConfigError> {
    let text = read(path)?;
    parse(&text, path)
}

/// Reads and parses a config file, not yet validated.
pub fn load_unvalidated<T: DaemonConfig>(path: &Path) -> Result<T, ConfigError> {
    let text = read(path)?;
    decode(&text, path)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

/// Validates an already-built config, naming `origin` in the error.
pub fn check<T: DaemonConfig>(config: &T, origin: &Path) -> Result<(), ConfigError> {
    let findings = config.validate();
    if findings.is_empty() { Ok(()) } else { Err(ConfigError::Invalid { path: origin.to_path_buf(), findings }) }
}

/// `ghostbridge-<daemon> check-config FILE`: prints what is wrong, returns the exit code
/// (0 valid, 1 unreadable, 2 invalid).
pub fn check_config_command<T: DaemonConfig>(path: &Path) -> std::process::ExitCode {
    match load::<T>(path) {
        Ok(_) => {
            println!("{}: valid ghostbridge-{} config", path.display(), T::DAEMON);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ghostbridge-{}: {}", T::DAEMON, super::exit::chain(&e));
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

/// Findings for keys that must hold absolute paths (`key` is the top-level key).
/// A file holding a secret: an absolute path outside the Nix store, which
/// every user can read.
pub fn secret_file(key: &str, value: &Path) -> Option<Finding> {
    absolute(key, value).or_else(|| {
        value.starts_with("/nix/store").then(|| {
            Finding::new(
                vec![PathSeg::from(key)],
                format!("{key} {:?} is in the Nix store, which every user can read", value.display().to_string()),
                "keep the secret in a root-only file such as \"/run/keys/NAME\" and name that file",
            )
        })
    })
}

pub fn absolute(key: &str, value: &Path) -> Option<Finding> {
    value.is_relative().then(|| {
        Finding::new(
            vec![PathSeg::from(key)],
            format!("{key} must be an absolute path, got {:?}", value.display().to_string()),
            "write it from the root, e.g. \"/var/lib/ghostbridge\"",
        )
    })
}

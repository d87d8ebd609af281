//! `.ghostgen-manifest.json`: what the last build wrote, with SHA-256 hashes, so
//! that a file the user edited since is recognised and not overwritten.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = ".ghostgen-manifest.json";
/// Written before files are moved into place, removed after the manifest is.
pub const PENDING: &str = ".ghostgen-manifest.pending.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub generator: String,
    pub spec: String,
    pub spec_sha256: String,
    /// Generated files and the SHA-256 of the bytes written.
    pub files: BTreeMap<String, String>,
    /// Files created once and then owned by the user (not tracked by hash).
    #[serde(default)]
    pub created_once: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "{path} is not a ghostgen manifest ({source}); restore it from version control, or delete it and build with --force"
    )]
    Corrupt { path: String, source: serde_json::Error },
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// Reads a manifest; a missing file is an empty manifest.
    pub fn load(path: &Path) -> Result<Option<Manifest>, ManifestError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ManifestError::Corrupt { path: path.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManifestError::Read { path: path.display().to_string(), source }),
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings and maps cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

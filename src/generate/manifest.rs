//! `.ghostgen-manifest.json`: what the last build wrote, with SHA-256 hashes, so
//! that a file the user edited since is recognised and not overwritten.

use std::collections::{BTreeMap, BTreeSet};
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
    /// In a pending manifest only: hashes that builds interrupted before this
    /// one may have left on disk, so that any run of interrupted builds is
    /// recognised by the next one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub earlier: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "{path} is not a ghostgen manifest ({source}); restore it from version control, or delete it and build with --force"
    )]
    Corrupt { path: String, source: serde_json::Error },
    #[error(
        "{path} is corrupt: it lists {entry:?}, which is not a file ghostgen generates; nothing was written or deleted. \
         Restore the manifest from version control, or delete it and build with --force"
    )]
    Foreign { path: String, entry: String },
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// Reads a manifest; a missing file is an empty manifest.
    /// Every path it names must be one ghostgen generates: the manifest is
    /// input (usually committed), and its paths decide what a build deletes.
    pub fn load(path: &Path) -> Result<Option<Manifest>, ManifestError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let m: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|source| ManifestError::Corrupt { path: path.display().to_string(), source })?;
                let named = m.files.keys().chain(&m.created_once).chain(m.earlier.keys());
                if let Some(entry) = named.into_iter().find(|p| !super::is_generated_path(p)) {
                    return Err(ManifestError::Foreign { path: path.display().to_string(), entry: entry.clone() });
                }
                Ok(Some(m))
            }
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

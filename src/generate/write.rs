//! Puts a planned tree on disk without ever leaving a half-written file or
//! overwriting the user's edits.
//!
//! All files are first written and synced into a staging folder inside the
//! output folder; then a pending manifest records their hashes; then each file
//! is renamed into place (atomic per file); then the manifest is replaced and
//! the pending one removed. A build killed at any point leaves every file
//! either old or new, never partial, and the next build recognises both.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::manifest::{MANIFEST, Manifest, ManifestError, PENDING, sha256_hex};
use super::{File, GENERATOR, Policy};

const STAGING_PREFIX: &str = ".ghostgen-staging-";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("refusing to overwrite files changed since the last build:\n{}\nmove your changes into the spec (or hardware.nix), then run again; or pass --force to overwrite them", list(.0))]
    Edited(Vec<String>),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn list(paths: &[String]) -> String {
    paths.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.display().to_string(), source }
}

/// What a build changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

/// Differences between the disk and a planned tree (for `build --check`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Staleness {
    pub missing: Vec<String>,
    pub different: Vec<String>,
    pub obsolete: Vec<String>,
}

impl Staleness {
    pub fn is_fresh(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty() && self.obsolete.is_empty()
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, WriteError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Every hash ghostgen wrote for each path.
type KnownHashes = BTreeMap<String, BTreeSet<String>>;

/// Hashes of files ghostgen itself wrote: the manifest's and a pending one's.
fn known_hashes(out: &Path) -> Result<(Option<Manifest>, KnownHashes), WriteError> {
    let old = Manifest::load(&out.join(MANIFEST))?;
    let pending = Manifest::load(&out.join(PENDING))?;
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in old.iter().chain(pending.iter()) {
        for (path, hash) in &m.files {
            known.entry(path.clone()).or_default().insert(hash.clone());
        }
    }
    Ok((old, known))
}

/// Compares the disk with `files` without writing anything.
pub fn staleness(out: &Path, files: &[File]) -> Result<Staleness, WriteError> {
    let (old, _) = known_hashes(out)?;
    let mut s = Staleness::default();
    let planned: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for f in files {
        match read_if_exists(&out.join(&f.path))? {
            None => s.missing.push(f.path.clone()),
            Some(bytes) if f.policy == Policy::Always && bytes != f.contents.as_bytes() => {
                s.different.push(f.path.clone())
            }
            Some(_) => {}
        }
    }
    if let Some(old) = old {
        for path in old.files.keys().filter(|p| !planned.contains(p.as_str())) {
            if out.join(path).exists() {
                s.obsolete.push(path.clone());
            }
        }
    }
    Ok(s)
}

/// Writes `files` into `out`. `spec_name`/`spec_text` go into the manifest.
pub fn write(out: &Path, files: &[File], spec_name: &str, spec_text: &str, force: bool) -> Result<Outcome, WriteError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    remove_stale_staging(out)?;
    let (old, known) = known_hashes(out)?;
    let is_ours = |path: &str, bytes: &[u8]| known.get(path).is_some_and(|h| h.contains(&sha256_hex(bytes)));

    let mut outcome = Outcome::default();
    let mut edited = Vec::new();
    let mut to_write: Vec<&File> = Vec::new();
    for f in files {
        let existing = read_if_exists(&out.join(&f.path))?;
        match (f.policy, existing) {
            (Policy::Once, Some(_)) => outcome.unchanged.push(f.path.clone()),
            (_, None) => to_write.push(f),
            (Policy::Always, Some(bytes)) if bytes == f.contents.as_bytes() => outcome.unchanged.push(f.path.clone()),
            (Policy::Always, Some(bytes)) => {
                if !is_ours(&f.path, &bytes) {
                    edited.push(f.path.clone());
                }
                to_write.push(f);
            }
        }
    }
    let planned: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut obsolete = Vec::new();
    if let Some(old) = &old {
        for path in old.files.keys().filter(|p| !planned.contains(p.as_str())) {
            if let Some(bytes) = read_if_exists(&out.join(path))? {
                if !is_ours(path, &bytes) {
                    edited.push(path.clone());
                }
                obsolete.push(path.clone());
            }
        }
    }
    if !edited.is_empty() && !force {
        edited.sort();
        return Err(WriteError::Edited(edited));
    }

    // 1. Stage every new file, synced.
    let staging = tempfile::Builder::new().prefix(STAGING_PREFIX).tempdir_in(out).map_err(io(out))?;
    for f in &to_write {
        let staged = staging.path().join(&f.path);
        if let Some(parent) = staged.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&staged, f.contents.as_bytes()).map_err(io(&staged))?;
    }
    // One flush of the file system instead of one fsync per file: every staged
    // byte is durable before anything is renamed into place.
    sync_filesystem(staging.path())?;

    // 2. Record what is about to land.
    let mut manifest = Manifest {
        generator: GENERATOR.to_string(),
        spec: spec_name.to_string(),
        spec_sha256: sha256_hex(spec_text.as_bytes()),
        files: BTreeMap::new(),
        created_once: Vec::new(),
    };
    for f in files {
        match f.policy {
            Policy::Always => {
                manifest.files.insert(f.path.clone(), sha256_hex(f.contents.as_bytes()));
            }
            Policy::Once => manifest.created_once.push(f.path.clone()),
        }
    }
    replace_atomically(out, PENDING, manifest.to_json().as_bytes())?;

    // 3. Move each file into place, then drop obsolete ones.
    for f in &to_write {
        let target = out.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::rename(staging.path().join(&f.path), &target).map_err(io(&target))?;
        outcome.written.push(f.path.clone());
    }
    for path in obsolete {
        let target = out.join(&path);
        std::fs::remove_file(&target).map_err(io(&target))?;
        remove_empty_parents(out, &target);
        outcome.removed.push(path);
    }

    // 4. Commit: the new manifest, then forget the pending one.
    replace_atomically(out, MANIFEST, manifest.to_json().as_bytes())?;
    let pending = out.join(PENDING);
    std::fs::remove_file(&pending).map_err(io(&pending))?;
    sync_dir(out);
    Ok(outcome)
}

fn sync_filesystem(dir: &Path) -> Result<(), WriteError> {
    let d = std::fs::File::open(dir).map_err(io(dir))?;
    nix::unistd::syncfs(&d).map_err(|e| WriteError::Io { path: dir.display().to_string(), source: e.into() })
}

fn replace_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new().prefix(".ghostgen-tmp-").tempfile_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(&target))?;
    tmp.as_file().sync_all().map_err(io(&target))?;
    tmp.persist(&target).map_err(|e| WriteError::Io { path: target.display().to_string(), source: e.error })?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir: Option<PathBuf> = file.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == root || std::fs::remove_dir(&d).is_err() {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
}

/// Staging folders left by a build that was killed hold nothing of value.
fn remove_stale_staging(out: &Path) -> Result<(), WriteError> {
    for entry in std::fs::read_dir(out).map_err(io(out))?.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(STAGING_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

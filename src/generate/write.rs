//! Puts a planned tree on disk without ever leaving a half-written file or
//! overwriting the user's edits.
//!
//! All files are first written and synced into a staging folder inside the
//! output folder; then a pending manifest records their hashes; then each file
//! is renamed into place (atomic per file); then the manifest is replaced and
//! the pending one removed. A build killed at any point leaves every file
//! either old or new, never partial, and the next build recognises both; a
//! pending manifest keeps the hashes of every interrupted build before it, so
//! any run of interrupted builds is recovered by the next one. An exclusive
//! lock on `.ghostgen.lock` in the output folder keeps two builds apart.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::manifest::{MANIFEST, Manifest, ManifestError, PENDING, sha256_hex};
use super::{File, GENERATOR, Policy};

const STAGING_PREFIX: &str = ".ghostgen-staging-";
/// Held (flock) by the build writing into the folder; holds its PID.
pub const LOCK: &str = ".ghostgen.lock";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("refusing to overwrite files changed since the last build:\n{}\nmove your changes into the spec (or hardware.nix), then run again; or pass --force to overwrite them", list(.0))]
    Edited(Vec<String>),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "another ghostgen build ({holder}) is writing into {dir}; wait for it to finish, or stop it, then run again"
    )]
    Busy { dir: String, holder: String },
    #[error(
        "{path} is a symbolic link; ghostgen writes and deletes only inside the output folder. Replace it with a real folder or file, then run again"
    )]
    Symlink { path: String },
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

/// What earlier builds left: the committed manifest, and the hashes of every
/// interrupted build since (the pending manifest's files and its `earlier`).
struct Known {
    old: Option<Manifest>,
    /// Every hash an interrupted build may have left, by path.
    interrupted: KnownHashes,
    /// `interrupted` plus the committed manifest's hashes.
    all: KnownHashes,
}

fn known_hashes(out: &Path) -> Result<Known, WriteError> {
    let old = Manifest::load(&out.join(MANIFEST))?;
    let pending = Manifest::load(&out.join(PENDING))?;
    let mut interrupted: KnownHashes = BTreeMap::new();
    if let Some(p) = &pending {
        for (path, hash) in &p.files {
            interrupted.entry(path.clone()).or_default().insert(hash.clone());
        }
        for (path, hashes) in &p.earlier {
            interrupted.entry(path.clone()).or_default().extend(hashes.iter().cloned());
        }
    }
    let mut all = interrupted.clone();
    for (path, hash) in old.iter().flat_map(|m| m.files.iter()) {
        all.entry(path.clone()).or_default().insert(hash.clone());
    }
    Ok(Known { old, interrupted, all })
}

/// Compares the disk with `files` without writing anything.
pub fn staleness(out: &Path, files: &[File]) -> Result<Staleness, WriteError> {
    let old = known_hashes(out)?.old;
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
    write_interrupted(out, files, spec_name, spec_text, force, usize::MAX)
}

/// [`write`], stopped after `steps` changes to the output folder exactly as a
/// kill at that point would leave it (for the crash-consistency tests).
#[doc(hidden)]
pub fn write_interrupted(
    out: &Path,
    files: &[File],
    spec_name: &str,
    spec_text: &str,
    force: bool,
    steps: usize,
) -> Result<Outcome, WriteError> {
    create_folder(out)?;
    let _lock = lock(out)?;
    remove_stale_staging(out)?;
    let known = known_hashes(out)?;
    let is_ours = |path: &str, bytes: &[u8]| known.all.get(path).is_some_and(|h| h.contains(&sha256_hex(bytes)));
    // Nothing is read, written or deleted through a symbolic link inside the folder.
    let touched = files.iter().map(|f| f.path.as_str()).chain(known.all.keys().map(String::as_str));
    for rel in touched.chain([MANIFEST, PENDING]) {
        no_symlink_inside(out, rel)?;
    }

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
    // Files the last build committed and this one does not plan: removed, unless edited.
    let committed: BTreeSet<&String> = known.old.iter().flat_map(|m| m.files.keys()).collect();
    for path in committed.iter().filter(|p| !planned.contains(p.as_str())) {
        if let Some(bytes) = read_if_exists(&out.join(path))? {
            if !is_ours(path, &bytes) {
                edited.push((*path).clone());
            }
            obsolete.push((*path).clone());
        }
    }
    // Files only an interrupted build may have put there: removed when they are
    // exactly what it wrote, left alone otherwise (they were never committed).
    for path in known.interrupted.keys().filter(|p| !planned.contains(p.as_str()) && !committed.contains(p)) {
        if let Some(bytes) = read_if_exists(&out.join(path))?
            && is_ours(path, &bytes)
        {
            obsolete.push(path.clone());
        }
    }
    if !edited.is_empty() && !force {
        edited.sort();
        return Err(WriteError::Edited(edited));
    }

    let mut budget = Steps(steps);
    // 1. Stage every new file, synced.
    let staging = tempfile::Builder::new().prefix(STAGING_PREFIX).tempdir_in(out).map_err(io(out))?;
    // An interrupted write stops here as a kill would: nothing cleaned up.
    macro_rules! stop_here {
        () => {
            if !budget.take() {
                let _ = staging.keep();
                return Ok(outcome);
            }
        };
    }
    for f in &to_write {
        stop_here!();
        let staged = staging.path().join(&f.path);
        if let Some(parent) = staged.parent() {
            create_folder(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&staged)
            .and_then(|mut file| file.write_all(f.contents.as_bytes()))
            .map_err(io(&staged))?;
    }
    // Every staged byte is durable before anything is renamed into place:
    // each staged file and folder is flushed, several at a time (the file
    // system batches them into few journal commits), and nothing else is
    // (a `syncfs` would also wait for every unrelated program's dirty data).
    sync_staged(staging.path(), &to_write)?;

    // 2. Record what is about to land, and what interrupted builds may have left.
    let mut manifest = Manifest {
        generator: GENERATOR.to_string(),
        spec: spec_name.to_string(),
        spec_sha256: sha256_hex(spec_text.as_bytes()),
        files: BTreeMap::new(),
        created_once: Vec::new(),
        earlier: BTreeMap::new(),
    };
    for f in files {
        match f.policy {
            Policy::Always => {
                manifest.files.insert(f.path.clone(), sha256_hex(f.contents.as_bytes()));
            }
            Policy::Once => manifest.created_once.push(f.path.clone()),
        }
    }
    let pending = Manifest { earlier: known.interrupted.clone(), ..manifest.clone() };
    stop_here!();
    replace_atomically(out, PENDING, pending.to_json().as_bytes())?;

    // 3. Move each file into place, then drop obsolete ones.
    for f in &to_write {
        stop_here!();
        let target = out.join(&f.path);
        if let Some(parent) = target.parent() {
            create_folder(parent)?;
        }
        std::fs::rename(staging.path().join(&f.path), &target).map_err(io(&target))?;
        outcome.written.push(f.path.clone());
    }
    for path in obsolete {
        stop_here!();
        let target = out.join(&path);
        std::fs::remove_file(&target).map_err(io(&target))?;
        remove_empty_parents(out, &target);
        outcome.removed.push(path);
    }

    // 4. Commit: the new manifest, then forget the pending one.
    stop_here!();
    replace_atomically(out, MANIFEST, manifest.to_json().as_bytes())?;
    stop_here!();
    let pending = out.join(PENDING);
    std::fs::remove_file(&pending).map_err(io(&pending))?;
    sync_dir(out);
    Ok(outcome)
}

/// Refuses a path under `out` any step of which is a symbolic link (the folder
/// itself may be one: the user chose it).
fn no_symlink_inside(out: &Path, rel: &str) -> Result<(), WriteError> {
    let mut path = out.to_path_buf();
    for step in rel.split('/') {
        path.push(step);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(WriteError::Symlink { path: path.display().to_string() });
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// How many more changes an interrupted write may make.
struct Steps(usize);

impl Steps {
    fn take(&mut self) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        true
    }
}

/// The exclusive lock on the output folder, held until dropped. A second
/// build fails at once with the holder's PID rather than mixing two trees.
fn lock(out: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, WriteError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = out.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io(&path))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut held) => {
            let pid = format!("pid {}\n", std::process::id());
            let _ = held.set_len(0).and_then(|()| std::io::Write::write_all(&mut *held, pid.as_bytes()));
            Ok(held)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { "pid unknown".to_string() } else { holder.to_string() };
            Err(WriteError::Busy { dir: out.display().to_string(), holder })
        }
        Err((_, e)) => Err(WriteError::Io { path: path.display().to_string(), source: e.into() }),
    }
}

/// How many files are flushed at once.
const SYNC_THREADS: usize = 16;

/// fsync of every staged file and of every staged folder (their entries).
fn sync_staged(staging: &Path, files: &[&File]) -> Result<(), WriteError> {
    let mut paths: Vec<PathBuf> = files.iter().map(|f| staging.join(&f.path)).collect();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::from([staging.to_path_buf()]);
    for f in files {
        let mut d = Path::new(&f.path).parent();
        while let Some(p) = d.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(staging.join(p));
            d = p.parent();
        }
    }
    paths.extend(dirs);
    let chunk = paths.len().div_ceil(SYNC_THREADS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<(), WriteError> {
                    for p in part {
                        std::fs::File::open(p).and_then(|f| f.sync_all()).map_err(io(p))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().map_err(|_| WriteError::Io {
                path: staging.display().to_string(),
                source: std::io::Error::other("a flushing thread panicked"),
            })?
        })
    })
}

fn replace_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(".ghostgen-tmp-")
        .permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(&target))?;
    tmp.as_file().sync_all().map_err(io(&target))?;
    tmp.persist(&target).map_err(|e| WriteError::Io { path: target.display().to_string(), source: e.error })?;
    Ok(())
}

/// Generated files are readable by all and writable by their owner only; the
/// umask can narrow this but never widen it (a umask of 000 in the caller's
/// environment does not make the flake that root builds writable by anyone).
const FILE_MODE: u32 = 0o644;
const FOLDER_MODE: u32 = 0o755;

/// Creates `dir` and its missing parents with [`FOLDER_MODE`].
fn create_folder(dir: &Path) -> Result<(), WriteError> {
    std::fs::DirBuilder::new().recursive(true).mode(FOLDER_MODE).create(dir).map_err(io(dir))
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

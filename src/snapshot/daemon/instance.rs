//! One snapshotter per chain: an exclusive `flock` on the database's folder
//! (dedicated to the chain: `ghostgen check` makes sure of it), held for the
//! daemon's life. A second `run` on the same chain stops at once instead of
//! doubling the snapshot rate. The folder, not the database file: a database
//! replaced under the daemon stays covered, and a folder can be locked when
//! it is read-only or not writable by the daemon's user.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the daemon could not take its chain.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("cannot open the chain database's folder {path}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error(
        "another ghostbridge-snapshotter is already running on the chain in {folder}; \
         stop it first (one snapshotter per chain)"
    )]
    Taken { folder: PathBuf },
    #[error("cannot lock {path}")]
    Lock { path: PathBuf, source: nix::errno::Errno },
}

/// The held lock; released when dropped (or when the process ends).
pub struct Instance {
    _lock: Flock<File>,
}

/// The folder that holds `database`.
pub fn folder_of(database: &Path) -> PathBuf {
    match database.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Instance {
    pub fn acquire(database: &Path) -> Result<Instance, InstanceError> {
        let folder = folder_of(database);
        let dir = File::open(&folder).map_err(|source| InstanceError::Open { path: folder.clone(), source })?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(Instance { _lock: held }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(InstanceError::Taken { folder }),
            Err((_, source)) => Err(InstanceError::Lock { path: folder, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("chain.db");
        let first = Instance::acquire(&db).unwrap();
        let err = Instance::acquire(&db).err().unwrap().to_string();
        assert!(err.contains("already running on the chain in"), "{err}");
        drop(first);
        Instance::acquire(&db).unwrap();
    }
}

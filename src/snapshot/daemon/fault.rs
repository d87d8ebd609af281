//! Why a tick failed, and the `kind` label each fault is counted under.

use nix::errno::Errno;

use crate::snapshot::btrfs::BtrfsError;
use crate::snapshot::recover::RecoverError;
use crate::snapshot::store::StoreError;

/// Why a tick failed. Every variant is transient from the daemon's view: retried.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Btrfs(#[from] BtrfsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recovery: {0}")]
    Recover(#[from] RecoverError),
}

impl TickError {
    /// The `kind` label of the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            TickError::Btrfs(e) | TickError::Recover(RecoverError::Btrfs(e)) => btrfs_kind(e),
            TickError::Store(e) | TickError::Recover(RecoverError::Store(e)) => e.kind(),
            TickError::Recover(RecoverError::List { .. }) => "snapshot_dir",
        }
    }
}

fn btrfs_kind(e: &BtrfsError) -> &'static str {
    match e {
        BtrfsError::NotBtrfs { .. } => "not_btrfs",
        BtrfsError::NotSubvolume { .. } => "not_subvolume",
        BtrfsError::Open { source: Errno::ENOENT, .. } => "missing",
        _ => match e.errno() {
            Some(Errno::ENOSPC) | Some(Errno::EDQUOT) => "disk_full",
            Some(Errno::EROFS) => "readonly",
            _ => "btrfs",
        },
    }
}

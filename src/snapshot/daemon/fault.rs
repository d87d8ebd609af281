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
    #[error(
        "the chain database {path} was removed or replaced while the daemon ran; no block went into the old file, \
         and recovery checks the one now there before anything is written"
    )]
    DatabaseReplaced { path: String },
    #[error(
        "the chain's head is {found}, not block {expected}, which this daemon wrote last: rows were removed under it; \
         recovery re-adopts the snapshots on disk before the next block, so no height is minted twice"
    )]
    HeadChanged { expected: u64, found: String },
}

impl TickError {
    /// The `kind` label of the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            TickError::Btrfs(e) | TickError::Recover(RecoverError::Btrfs(e)) => btrfs_kind(e),
            TickError::Store(e) | TickError::Recover(RecoverError::Store(e)) => e.kind(),
            TickError::Recover(RecoverError::List { .. }) => "snapshot_dir",
            TickError::Recover(RecoverError::UnknownChain { .. }) => "unknown_chain",
            TickError::DatabaseReplaced { .. } => "db_replaced",
            TickError::HeadChanged { .. } => "head_changed",
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

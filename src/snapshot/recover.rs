//! Reconciliation of the snapshot directory with the chain, run at start-up and
//! after every failed tick, so that any crash point ends in a consistent state:
//!
//! - a snapshot whose block is marked pruned is deleted (an interrupted prune);
//! - a snapshot without a block is adopted when it is the next height, read-only
//!   and a snapshot of the source (an interrupted append), otherwise deleted;
//! - a block whose snapshot is missing while not marked pruned is marked pruned
//!   now: expected when it is past retention (deleted while the database was
//!   unusable on a full disk), otherwise with a warning naming it;
//! - blocks past retention are marked pruned and their snapshots deleted.
//!
//! Only subvolumes named like the snapshotter's own (`<height:012>-<time_ns>`)
//! are touched; anything else in the directory is reported and left alone.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::btrfs::{self, BtrfsError, SUBVOLUME_ROOT_INODE};
use super::chain::{Block, GENESIS_PREV};
use super::changes;
use super::clock::Now;
use super::retention::Policy;
use super::store::{Store, StoreError};

/// The name of the snapshot taken for `height` at `time_ns`.
pub fn snapshot_name(height: u64, time_ns: i64) -> String {
    format!("{height:012}-{time_ns}")
}

/// Parses a name made by [`snapshot_name`].
pub fn parse_snapshot_name(name: &str) -> Option<(u64, i64)> {
    let (h, t) = name.split_once('-')?;
    if h.len() != 12 || !h.bytes().all(|b| b.is_ascii_digit()) || t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((h.parse().ok()?, t.parse().ok()?))
}

/// Why reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Btrfs(#[from] BtrfsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot list snapshot directory {path}: {source}")]
    List { path: String, source: std::io::Error },
    #[error(
        "the chain in the database ends at {head}, but {snapshot} in the snapshot folder is of height {height}: \
         this database is not the one these snapshots were recorded in (replaced, restored from an older copy, or \
         emptied). Nothing was deleted. Put the right database back, or move the snapshots away to start a new chain"
    )]
    UnknownChain { head: String, snapshot: String, height: u64 },
}

/// What reconciliation did, one line per action (also logged).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub adopted: Vec<u64>,
    pub deleted_unknown: Vec<String>,
    pub completed_prunes: Vec<String>,
    pub marked_vanished: Vec<u64>,
    pub marked_expired: Vec<u64>,
    pub pruned: Vec<u64>,
    pub foreign: Vec<String>,
}

/// Our snapshots currently on disk: name -> (height, time_ns), sorted by height.
/// Entries that are not subvolume roots named like ours go to `foreign`.
pub fn list_snapshots(dir: &Path, foreign: &mut Vec<String>) -> Result<Vec<(String, u64, i64)>, RecoverError> {
    let rd = std::fs::read_dir(dir).map_err(|source| RecoverError::List { path: dir.display().to_string(), source })?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| RecoverError::List { path: dir.display().to_string(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_subvol = entry.metadata().map(|m| m.is_dir() && m.ino() == SUBVOLUME_ROOT_INODE).unwrap_or(false);
        match parse_snapshot_name(&name) {
            Some((h, t)) if is_subvol => out.push((name, h, t)),
            _ => foreign.push(name),
        }
    }
    out.sort_by_key(|(_, h, _)| *h);
    Ok(out)
}

/// How an adopted block is written, as the daemon writes its own blocks.
#[derive(Debug, Clone, Copy)]
pub struct Seal<'a> {
    /// The change index's bound per block, `None` when it is off.
    pub change_limit: Option<usize>,
    /// The key blocks are sealed with, if any.
    pub key: Option<&'a [u8]>,
}

/// Brings the snapshot directory and the chain into agreement (see the module doc).
#[allow(clippy::too_many_arguments)]
pub fn reconcile(
    store: &mut Store,
    source: &File,
    source_path: &Path,
    snap_dir: &File,
    snap_path: &Path,
    policy: &Policy<'_>,
    seal: Seal<'_>,
    now: Now,
) -> Result<Report, RecoverError> {
    let now_ns = now.wall_ns;
    let mut report = Report::default();
    let source_uuid = btrfs::subvol_info(source, source_path)?.uuid;
    let on_disk = list_snapshots(snap_path, &mut report.foreign)?;
    for name in &report.foreign {
        crate::log!(
            Notice,
            "ghostbridge-snapshotter",
            "recovery: leaving {} alone: not a snapshot made by the snapshotter",
            snap_path.join(name).display()
        );
    }
    let mut head = store.head()?;
    // A snapshot beyond the next height cannot come from this chain: the
    // database was replaced or emptied. Deleting "unknown" snapshots then would
    // destroy the history; stop and say so instead.
    let next = head.as_ref().map(|h| h.height + 1).unwrap_or(0);
    if let Some((name, height, _)) = on_disk.iter().find(|(_, h, _)| *h > next) {
        return Err(RecoverError::UnknownChain {
            head: head.as_ref().map(|h| format!("block {}", h.height)).unwrap_or_else(|| "nothing (empty)".into()),
            snapshot: name.clone(),
            height: *height,
        });
    }
    let mut present: HashMap<String, ()> = HashMap::new();
    for (name, height, time_ns) in on_disk {
        match store.by_snapshot(&name)? {
            Some(block) if block.pruned_ns.is_some() => {
                btrfs::destroy_snapshot(snap_dir, snap_path, &name)?;
                crate::log!(
                    Notice,
                    "ghostbridge-snapshotter",
                    "recovery: deleted {name}: its block {} is marked pruned (finishing an interrupted prune)",
                    block.height
                );
                report.completed_prunes.push(name);
            }
            Some(_) => {
                present.insert(name, ());
            }
            None => {
                let next = head.as_ref().map(|h| h.height + 1).unwrap_or(0);
                let opened = btrfs::open_subvolume(snap_dir, snap_path, &name);
                // Why it cannot be the block the last tick was writing, if it cannot.
                let refused = match &opened {
                    _ if height != next => Some(format!("it is not the next block ({next})")),
                    Err(e) => Some(format!("its subvolume information cannot be read ({e})")),
                    Ok(s) if !s.info.read_only => None,
                    Ok(s) if s.info.parent_uuid != source_uuid => {
                        Some("it is not a snapshot of the source".to_string())
                    }
                    Ok(_) if head.as_ref().is_some_and(|h| h.time_ns >= time_ns) => {
                        Some("its time is not after the head's".to_string())
                    }
                    Ok(_) => None,
                };
                match (refused, opened) {
                    // A writable subvolume is not something the snapshotter made
                    // (its snapshots are read-only): someone's work, left alone.
                    (_, Ok(s)) if !s.info.read_only => {
                        crate::log!(
                            Warning,
                            "ghostbridge-snapshotter",
                            "recovery: leaving {} alone: it is named like a snapshot but writable, so not one the snapshotter took; move it out of the snapshot folder",
                            snap_path.join(&name).display()
                        );
                        report.foreign.push(name);
                    }
                    (None, Ok(snapshot)) => {
                        let prev = head.as_ref().map(|h| h.hash).unwrap_or(GENESIS_PREV);
                        let parent = head.as_ref().map(|block| changes::Parent { block, tree_id: None });
                        let changes = changes::for_block(seal.change_limit, snap_dir, snap_path, parent, &snapshot);
                        let info = snapshot.info;
                        let block = Block::new(height, prev, time_ns, name.clone(), info.uuid, info.generation)
                            .with_changes(changes.summary())
                            .sealed(seal.key);
                        // Taken as long ago on the steady clock as the wall clock says.
                        let steady_ns = now.steady_ns.saturating_sub(now.wall_ns.saturating_sub(time_ns).max(0));
                        store.append(&block, steady_ns, None, Some(&changes))?;
                        crate::log!(
                            Notice,
                            "ghostbridge-snapshotter",
                            "recovery: adopted {name} as block {height} (the snapshot was taken but its block not yet written)"
                        );
                        report.adopted.push(height);
                        present.insert(name, ());
                        head = Some(block);
                    }
                    (why, _) => {
                        btrfs::destroy_snapshot(snap_dir, snap_path, &name)?;
                        crate::log!(
                            Notice,
                            "ghostbridge-snapshotter",
                            "recovery: deleted {name}: no block records it and {}",
                            why.unwrap_or_else(|| "it cannot be adopted".to_string())
                        );
                        report.deleted_unknown.push(name);
                    }
                }
            }
        }
    }
    for block in store.unpruned()? {
        if !present.contains_key(&block.snapshot) {
            store.mark_pruned(block.height, now_ns)?;
            if block.time_ns <= now_ns - policy.retention_ns {
                crate::log!(
                    Notice,
                    "ghostbridge-snapshotter",
                    "recovery: block {}: expired snapshot {} was deleted while the database was unavailable: marked pruned",
                    block.height,
                    block.snapshot
                );
                report.marked_expired.push(block.height);
            } else {
                crate::log!(
                    Warning,
                    "ghostbridge-snapshotter",
                    "recovery: block {} claims snapshot {} which is not in {}: marked pruned (deleted outside the snapshotter)",
                    block.height,
                    block.snapshot,
                    snap_path.display()
                );
                report.marked_vanished.push(block.height);
            }
        }
    }
    for (height, name) in store.mark_expired(policy, now.steady_ns, now_ns)? {
        btrfs::destroy_snapshot(snap_dir, snap_path, &name)?;
        report.pruned.push(height);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_refused() {
        let n = snapshot_name(42, 1_763_960_000_123_456_789);
        assert_eq!(n, "000000000042-1763960000123456789");
        assert_eq!(parse_snapshot_name(&n), Some((42, 1_763_960_000_123_456_789)));
        for bad in ["42-1", "000000000042-", "000000000042-1x", "manual", "00000000004a-1", "000000000042_1"] {
            assert_eq!(parse_snapshot_name(bad), None, "{bad}");
        }
    }
}

//! One tick and what it needs: the store (opened and checked lazily), the
//! source and snapshot folder checks, recovery when due, pruning, and what a
//! fault resets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::fault::TickError;
use super::metrics::Metrics;
use super::settings::Settings;
use super::{LATENCY_BOUNDS, METRICS_NAME, MIN_FREE_BYTES, PROGRAM, STARTUP_VERIFY_BLOCKS};
use crate::bus::snapshotter::Publisher;
use crate::runtime::metrics::{Histogram, TextfileWriter};
use crate::snapshot::btrfs;
use crate::snapshot::chain::{Block, GENESIS_PREV};
use crate::snapshot::changes::{self, ChangeIndex};
use crate::snapshot::clock::{self, Now, SteadyClock};
use crate::snapshot::recover::{self, RecoverError, snapshot_name};
use crate::snapshot::store::{Store, StoreError};

/// The daemon's state between ticks.
pub struct Daemon {
    pub(super) s: Settings,
    pub(super) store: Option<Store>,
    needs_recovery: bool,
    pub(super) m: Metrics,
    pub(super) bus: Option<Publisher>,
    pub(super) bus_retry_at: Option<Instant>,
    /// (device, inode) of the database file the store opened.
    db_identity: Option<(u64, u64)>,
    /// The last block this daemon wrote or found at the head (height, hash).
    last: Option<(u64, [u8; 32])>,
    /// The snapshot this daemon took last and its tree id: the parent of the
    /// next change list when it is still the head's (tree ids are never reused).
    last_snapshot: Option<(String, u64)>,
    /// The clock retention ages are measured on, once the chain is open.
    steady: Option<SteadyClock>,
    /// The previous instant read on both clocks (to notice wall-clock steps).
    last_now: Option<Now>,
    /// When space was last reclaimed by a commit while it was short.
    reclaimed_at: Option<Instant>,
    /// Why the last block had no change list (logged when it changes).
    unindexed: Option<String>,
    /// When change retention last ran.
    changes_expired_at: Option<Instant>,
}

/// How often change retention runs.
const EXPIRE_CHANGES_EVERY: Duration = Duration::from_secs(60);

/// How often a file system short of space is committed to count freed space.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// (device, inode) of a file, if it exists.
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Daemon {
    pub fn new(s: Settings) -> Daemon {
        let writer = s.metrics_dir.as_ref().map(|d| TextfileWriter::new(d, METRICS_NAME));
        Daemon {
            s,
            store: None,
            needs_recovery: true,
            m: Metrics {
                ticks: 0,
                missed: 0,
                snapshots: 0,
                pruned: 0,
                adopted: 0,
                recovered_deleted: 0,
                errors: BTreeMap::new(),
                latency: Histogram::new(LATENCY_BOUNDS),
                height: None,
                last_snapshot_ns: 0,
                chain_valid: None,
                last_error: None,
                writer,
                written_at: None,
                wall_steps: 0,
            },
            bus: None,
            bus_retry_at: None,
            db_identity: None,
            last: None,
            last_snapshot: None,
            steady: None,
            last_now: None,
            reclaimed_at: None,
            unindexed: None,
            changes_expired_at: None,
        }
    }

    /// The current instant on the wall and steady clocks. A wall-clock step
    /// since the previous reading is logged and counted: block times follow
    /// the wall clock, retention does not.
    fn now(&mut self) -> Now {
        let Some(steady) = self.steady else {
            let wall_ns = clock::realtime_ns();
            return Now { wall_ns, steady_ns: wall_ns };
        };
        let now = steady.now();
        if let Some(before) = self.last_now {
            let step = clock::wall_step_ns(before, now);
            if step != 0 {
                self.m.wall_steps += 1;
                crate::log!(
                    Warning,
                    PROGRAM,
                    "the wall clock was stepped by {:+.3} s; block times follow it, retention keeps measuring ages on the steady clock",
                    step as f64 / 1e9
                );
            }
        }
        self.last_now = Some(now);
        now
    }

    /// The store, after checking that the database file is still the one it
    /// opened: a database removed or replaced under the daemon is noticed at
    /// the next tick instead of receiving blocks nobody will read.
    fn checked_store(&mut self) -> Result<&mut Store, TickError> {
        if self.store.is_some() && identity(&self.s.database) != self.db_identity {
            self.store = None;
            self.last = None;
            return Err(TickError::DatabaseReplaced { path: self.s.database.display().to_string() });
        }
        Ok(self.store()?)
    }

    fn store(&mut self) -> Result<&mut Store, StoreError> {
        if self.store.is_none() {
            let busy = (self.s.interval / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
            let mut store = Store::open_writer(&self.s.database, busy)?;
            if self.m.chain_valid.is_none() {
                let v = store.verify_tail(Some(STARTUP_VERIFY_BLOCKS))?;
                if !v.ok() {
                    crate::log!(
                        Warning,
                        PROGRAM,
                        "{} in {}; new blocks still extend the head",
                        v.message(),
                        self.s.database.display()
                    );
                }
                self.m.chain_valid = Some(v.ok());
            }
            let head = store.head()?;
            self.m.height = head.as_ref().map(|b| b.height);
            self.m.last_snapshot_ns = head.as_ref().map(|b| b.time_ns).unwrap_or(0);
            // The steady clock continues where the chain left it.
            let boot_id = clock::boot_id().unwrap_or_default();
            let anchor = store.steady_anchor()?;
            let steady = SteadyClock::resume(
                &boot_id,
                anchor.clone(),
                store.head_times()?,
                clock::realtime_ns(),
                clock::boottime_ns(),
            );
            if anchor != Some((boot_id.clone(), steady.offset_ns())) {
                store.set_steady_anchor(&boot_id, steady.offset_ns())?;
            }
            if self.steady != Some(steady) {
                self.last_now = None;
            }
            self.steady = Some(steady);
            self.db_identity = identity(&self.s.database);
            self.store = Some(store);
        }
        match self.store.as_mut() {
            Some(s) => Ok(s),
            None => unreachable!("the store was opened above"),
        }
    }

    /// Opens and checks the source and the snapshot directory (every tick, so a
    /// replaced or vanished source is noticed), reconciling first when needed.
    pub(super) fn prepare(&mut self) -> Result<(std::fs::File, std::fs::File), TickError> {
        let source = btrfs::open_dir(&self.s.source)?;
        btrfs::require_subvolume(&source, &self.s.source)?;
        let dir = btrfs::open_dir(&self.s.snapshot_dir)?;
        btrfs::require_btrfs(&dir, &self.s.snapshot_dir)?;
        let db_dir_path = match self.s.database.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let db_dir = btrfs::open_dir(&db_dir_path)?;
        let mut space = btrfs::require_space(&dir, &self.s.snapshot_dir, MIN_FREE_BYTES)
            .and_then(|()| btrfs::require_space(&db_dir, &db_dir_path, MIN_FREE_BYTES));
        // Space freed since (a file deleted, snapshots pruned) counts only after
        // a commit: ask for one, at most once a second, and look again.
        if space.is_err() && self.reclaimed_at.is_none_or(|t| t.elapsed() >= RECLAIM_EVERY) {
            self.reclaimed_at = Some(Instant::now());
            if let Err(e) = btrfs::sync(&dir, &self.s.snapshot_dir) {
                crate::log!(Warning, PROGRAM, "cannot commit {} to reclaim space: {e}", self.s.snapshot_dir.display());
            }
            space = btrfs::require_space(&dir, &self.s.snapshot_dir, MIN_FREE_BYTES)
                .and_then(|()| btrfs::require_space(&db_dir, &db_dir_path, MIN_FREE_BYTES));
        }
        if let Err(low) = space {
            // No snapshot while space is short, but expired snapshots are still pruned:
            // they may be what fills the disk.
            self.prune_expired(&dir);
            return Err(low.into());
        }
        if self.needs_recovery {
            let (src_path, dir_path) = (self.s.source.clone(), self.s.snapshot_dir.clone());
            self.store()?;
            let now = self.now();
            let tiers = std::sync::Arc::clone(&self.s.tiers);
            let policy = crate::snapshot::retention::Policy::new(self.s.retention, &tiers);
            let change_limit = self.s.change_limit;
            let key = self.s.hmac_key.clone();
            let store = self.store()?;
            let seal = recover::Seal { change_limit, key: key.as_deref() };
            let report = recover::reconcile(store, &source, &src_path, &dir, &dir_path, &policy, seal, now)?;
            let head = store.head()?;
            self.last = head.as_ref().map(|b| (b.height, b.hash));
            self.m.adopted += report.adopted.len() as u64;
            self.m.recovered_deleted += report.deleted_unknown.len() as u64;
            self.m.pruned += (report.pruned.len() + report.completed_prunes.len()) as u64;
            self.m.height = head.as_ref().map(|b| b.height);
            crate::log!(
                Info,
                PROGRAM,
                "recovery done: head {}, adopted {}, deleted unrecorded {}, finished prunes {}, marked vanished {}, pruned {}",
                head.as_ref().map(|b| b.height.to_string()).unwrap_or_else(|| "none (empty chain)".into()),
                report.adopted.len(),
                report.deleted_unknown.len(),
                report.completed_prunes.len(),
                report.marked_vanished.len(),
                report.pruned.len()
            );
            self.needs_recovery = false;
        }
        Ok((source, dir))
    }

    /// Used when space is short, when a tick and recovery cannot run: marks expired
    /// blocks pruned if the database still works, then deletes every snapshot whose
    /// name says it is past retention, even when the database is unusable (a full
    /// filesystem can make SQLite fail to open a WAL database). Recovery later marks
    /// any such block pruned; it knows from the block's time that retention removed it.
    fn prune_expired(&mut self, dir: &std::fs::File) {
        let _ = self.store();
        let now = self.now();
        let tiers = std::sync::Arc::clone(&self.s.tiers);
        let policy = crate::snapshot::retention::Policy::new(self.s.retention, &tiers);
        let dir_path = self.s.snapshot_dir.clone();
        if let Err(e) = self.store().and_then(|s| s.mark_expired(&policy, now.steady_ns, now.wall_ns)) {
            crate::log!(
                Warning,
                PROGRAM,
                "space is short and the chain database is unusable ({e}); deleting expired snapshots first, recovery will mark their blocks"
            );
            self.store = None;
        }
        let mut foreign = Vec::new();
        let on_disk = recover::list_snapshots(&dir_path, &mut foreign).unwrap_or_default();
        // Names carry the wall time: the only clock left without the database.
        let times: Vec<(u64, i64)> = on_disk.iter().map(|(_, h, t)| (*h, *t)).collect();
        let gone = policy.expired(now.wall_ns, &times);
        let expired: Vec<String> =
            on_disk.into_iter().filter(|(_, h, _)| gone.binary_search(h).is_ok()).map(|(name, _, _)| name).collect();
        for name in &expired {
            match btrfs::destroy_snapshot(dir, &dir_path, name) {
                Ok(()) => self.m.pruned += 1,
                Err(e) => crate::log!(Warning, PROGRAM, "pruning {name}: {e}; will retry"),
            }
        }
        if !expired.is_empty() {
            self.needs_recovery = true;
            // Commit now so the cleaner reclaims the deleted snapshots' space without
            // waiting for the next periodic commit.
            let _ = nix::unistd::syncfs(dir);
            crate::log!(Notice, PROGRAM, "space is short: deleted {} expired snapshots", expired.len());
        }
    }

    /// One tick: snapshot, append (+ mark expired), delete expired snapshots.
    pub fn tick(&mut self) -> Result<Block, TickError> {
        let (source, dir) = self.prepare()?;
        let tiers = std::sync::Arc::clone(&self.s.tiers);
        let policy = crate::snapshot::retention::Policy::new(self.s.retention, &tiers);
        let dir_path = self.s.snapshot_dir.clone();
        let expected = self.last;
        let store = self.checked_store()?;
        let head = store.head()?;
        // The head is the block this daemon knows last: removed rows would make
        // it mint a height twice (a silent fork).
        if let Some((height, hash)) = expected
            && head.as_ref().is_none_or(|b| b.height != height || b.hash != hash)
        {
            self.last = None;
            return Err(TickError::HeadChanged {
                expected: height,
                found: head.map(|b| format!("block {}", b.height)).unwrap_or_else(|| "nothing (empty)".into()),
            });
        }
        let height = head.as_ref().map(|b| b.height + 1).unwrap_or(0);
        let prev = head.as_ref().map(|b| b.hash).unwrap_or(GENESIS_PREV);
        let now = self.now();
        let time_ns = now.wall_ns;
        let name = snapshot_name(height, time_ns);
        let started = Instant::now();
        btrfs::create_snapshot(&source, &dir, &dir_path, &name)?;
        let snapshot = match btrfs::open_subvolume(&dir, &dir_path, &name) {
            Ok(s) => s,
            Err(e) => {
                self.discard(&dir, &name);
                return Err(e.into());
            }
        };
        let latency = started.elapsed();
        let known_tree = self
            .last_snapshot
            .as_ref()
            .filter(|(taken, _)| head.as_ref().is_some_and(|b| b.snapshot == *taken))
            .map(|(_, tree_id)| *tree_id);
        let parent = head.as_ref().map(|block| changes::Parent { block, tree_id: known_tree });
        let changes = changes::for_block(self.s.change_limit, &dir, &dir_path, parent, &snapshot);
        self.note_index(height, &changes);
        let info = snapshot.info;
        let block = Block::new(height, prev, time_ns, name.clone(), info.uuid, info.generation)
            .with_changes(changes.summary())
            .sealed(self.s.hmac_key.as_deref());
        let store = self.store()?;
        let marked = match store.append(&block, now.steady_ns, Some(&policy), Some(&changes)) {
            Ok(m) => m,
            Err(e) => {
                self.discard(&dir, &name);
                return Err(e.into());
            }
        };
        self.m.latency.observe(latency.as_secs_f64());
        self.m.snapshots += 1;
        self.m.height = Some(height);
        self.last = Some((height, block.hash));
        self.last_snapshot = Some((name, info.tree_id));
        self.m.last_snapshot_ns = time_ns;
        for (h, old) in marked {
            match btrfs::destroy_snapshot(&dir, &dir_path, &old) {
                Ok(()) => self.m.pruned += 1,
                Err(e) => {
                    // The block is already marked pruned; recovery finishes the deletion.
                    crate::log!(Warning, PROGRAM, "pruning block {h}: {e}; will retry");
                    *self.m.errors.entry("prune").or_default() += 1;
                    self.needs_recovery = true;
                }
            }
        }
        self.expire_changes(now.wall_ns);
        Ok(block)
    }

    /// Logs when blocks stop or start having a change list.
    fn note_index(&mut self, height: u64, changes: &ChangeIndex) {
        let now = match changes {
            ChangeIndex::Indexed(_) => None,
            ChangeIndex::Unavailable(why) => Some(why.clone()),
        };
        // The first block never has a list: nothing to say about it, or after it.
        if height == 0 {
            return;
        }
        if now == self.unindexed {
            return;
        }
        match &now {
            Some(why) => crate::log!(Warning, PROGRAM, "block {height} has no change list: {why}"),
            None => crate::log!(Info, PROGRAM, "block {height}: change lists are recorded again"),
        }
        self.unindexed = now;
    }

    /// Change retention, once a minute: change rows older than
    /// `change_retention` go; their blocks keep the digest.
    fn expire_changes(&mut self, now_wall_ns: i64) {
        if self.changes_expired_at.is_some_and(|t| t.elapsed() < EXPIRE_CHANGES_EVERY) {
            return;
        }
        self.changes_expired_at = Some(Instant::now());
        let keep = i64::try_from(self.s.change_retention.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = now_wall_ns.saturating_sub(keep);
        match self.store().and_then(|s| s.expire_changes(cutoff)) {
            Ok(0) => {}
            Ok(n) => crate::log!(Info, PROGRAM, "change retention removed {n} change rows"),
            Err(e) => crate::log!(Warning, PROGRAM, "change retention failed: {e}; will retry"),
        }
    }

    /// Removes a snapshot whose block could not be written; if that fails too,
    /// recovery adopts or deletes it before the next attempt.
    fn discard(&mut self, dir: &std::fs::File, name: &str) {
        if let Err(e) = btrfs::destroy_snapshot(dir, &self.s.snapshot_dir, name) {
            crate::log!(Warning, PROGRAM, "cannot remove unrecorded snapshot {name}: {e}; recovery will handle it");
        }
        self.needs_recovery = true;
    }

    pub(super) fn fault(&mut self, e: &TickError) {
        let kind = e.kind();
        crate::log!(Error, PROGRAM, "tick failed [{kind}]: {e}; no block written, retrying with back-off");
        *self.m.errors.entry(kind).or_default() += 1;
        self.m.last_error = Some((kind, e.to_string(), clock::realtime_ns()));
        self.needs_recovery = true;
        if matches!(e, TickError::Store(_) | TickError::Recover(RecoverError::Store(_))) {
            self.store = None;
        }
    }
}

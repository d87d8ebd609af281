//! The sync itself: ensure the collection, then move blocks past the durable
//! cursor into Qdrant in batches, advancing the cursor only after Qdrant
//! acknowledged (`wait=true`), and send pruned flags as the snapshotter sets them.
//!
//! Point IDs: UUIDv5 of the block hash (see [`point_id`]), so a replay
//! overwrites the same points instead of adding new ones.
//!
//! Pruned flags: a block is upserted with `pruned` as it is at that moment.
//! The snapshotter prunes later (after the retention), in any order, and
//! stamps `pruned_ns`. A second cursor, the key `(pruned_ns, height)` kept in
//! the rows `qdrant:<collection>:pruned_ns` and `qdrant:<collection>:pruned_height`,
//! orders pruned blocks by when they were pruned: every pruned block at or
//! before it that the sync cursor covers has `pruned: true` in Qdrant. Each pass
//! first sends `{"pruned": true}` (set payload) for the covered pruned blocks
//! after that key, then the new blocks. Pruned blocks beyond the sync cursor
//! need no flag (they are upserted with `pruned: true`), so a catch-up of
//! already pruned blocks sends no extra request.
//!
//! Watchdog: every finished request (each acknowledged batch, each flag batch)
//! and every 100 ms of waiting gives the watchdog a chance to ping, so a long
//! catch-up or a slow Qdrant never starves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::runtime::backoff::Backoff;

/// The program name in log lines.
const PROGRAM: &str = "ghostbridge-qdrant-sync";
/// A long pass logs its progress at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
use super::chain::{Block, ChainDb, ChainError, PrunedKey};
use super::config::SyncConfig;
use super::embed::{CHANGE_TOKENS_MAX, Embedder};
use super::qdrant::{CollectionShape, Point, PointId, QdrantClient, QdrantError};
use super::stats::SyncStats;
use crate::runtime::notify;
use crate::snapshot::changes::Change;

/// The namespace of block point IDs: UUIDv5(URL namespace, "urn:ghostbridge:chain-block").
pub fn point_namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"urn:ghostbridge:chain-block")
}

/// A block's point ID: UUIDv5 of its 32 hash bytes in [`point_namespace`].
pub fn point_id(block: &Block) -> PointId {
    hash_point_id(&block.hash)
}

/// The point ID of the block with this hash.
pub fn hash_point_id(hash: &[u8; 32]) -> PointId {
    PointId::Uuid(uuid::Uuid::new_v5(&point_namespace(), hash))
}

/// A block's payload. With a change list (and only then): `change_count` (all of them),
/// `changes` (the first [`CHANGE_TOKENS_MAX`] as `"<kind> <path>"`) and
/// `paths` (those changes' paths, old paths of renames, and every folder
/// above them: a filter on `paths` finds the blocks that touched a folder).
pub fn payload(block: &Block, changes: &[Change]) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(c) = block.changes.filter(|c| c.indexed) {
        m.insert("change_count".into(), json!(c.count));
        let shown = &changes[..changes.len().min(CHANGE_TOKENS_MAX)];
        let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let lines: Vec<String> = shown.iter().map(|c| format!("{} {}", c.kind.name(), text(&c.path))).collect();
        let mut paths = std::collections::BTreeSet::new();
        for p in shown.iter().flat_map(|c| std::iter::once(&c.path).chain(c.from.as_ref())) {
            let p = text(p);
            let mut at = 0;
            while let Some(i) = p[at + 1..].find('/') {
                at += i + 1;
                paths.insert(p[..at].to_string());
            }
            paths.insert(p);
        }
        m.insert("changes".into(), json!(lines));
        m.insert("paths".into(), json!(paths));
    }
    m.insert("height".into(), json!(block.height));
    m.insert("time_ns".into(), json!(block.time_ns));
    m.insert("snapshot".into(), json!(block.snapshot));
    m.insert("hash".into(), json!(hex::encode(block.hash)));
    m.insert("prev_hash".into(), json!(hex::encode(block.prev_hash)));
    m.insert("pruned".into(), json!(block.pruned_ns.is_some()));
    m
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Qdrant(#[from] QdrantError),
    #[error(
        "collection {collection:?} at {url} has vectors of size {found_size} with distance {found_distance}, \
         but the config asks for size {want_size} with distance {want_distance}. The sync never deletes a collection: \
         set `collection` to a new name (the sync creates it and fills it from the chain), or, if its points may go, \
         delete it yourself (curl -X DELETE {url}/collections/{collection}) and start the sync again"
    )]
    ShapeMismatch {
        collection: String,
        url: String,
        found_size: u64,
        found_distance: String,
        want_size: usize,
        want_distance: String,
    },
    #[error(
        "collection {collection:?} at {url} uses named vectors; the sync writes one unnamed vector per point. \
         Set `collection` to a new name (the sync creates it)"
    )]
    NamedVectors { collection: String, url: String },
    #[error("the embedder makes vectors of size {embedder}, but `dimension` is {config}")]
    EmbedderDimension { embedder: usize, config: usize },
}

impl SyncError {
    /// Errors worth retrying (Qdrant down, slow, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, SyncError::Qdrant(e) if e.is_transient())
    }
}

/// What [`Syncer::ensure_collection`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Existing,
    /// Created now; the cursors were reset so that every block is sent.
    Created,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub upserted: u64,
    pub requests: u64,
    pub pruned_flags: u64,
    pub cursor: i64,
}

/// Called with the new cursor each time Qdrant acknowledged a batch.
pub type AckHook = Box<dyn FnMut(i64) + Send>;

pub struct Syncer {
    cfg: SyncConfig,
    chain: ChainDb,
    client: QdrantClient,
    embedder: Box<dyn Embedder + Send>,
    consumers: Consumers,
    stats: SyncStats,
    ack_hook: Option<AckHook>,
    watchdog: Watchdog,
    /// Most points per upsert: `batch`, halved each time Qdrant refuses a request as too large.
    batch: usize,
    progress: Progress,
    /// Wakes `run` when the chain database is written to (the timer is the fallback).
    wake: Option<super::wake::ChainWatch>,
}

/// What the log says about an outage and a catch-up: when Qdrant answers
/// again, the progress of a long pass, and when the sync is at the chain head
/// again. Each moment comes with `synced_total` as it was then.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The outage's first failed request, until its end is logged.
    down: Option<(Instant, u64)>,
    /// The catch-up's start (the first successful request after an outage,
    /// or the start of a pass that logged its progress), until its end is logged.
    catch_up: Option<(Instant, u64)>,
    /// The start of the current pass.
    pass: (Instant, u64),
    /// The last progress line, or the start of the pass.
    last_line: (Instant, u64),
}

impl Progress {
    fn new() -> Self {
        let now = (Instant::now(), 0);
        Progress { down: None, catch_up: None, pass: now, last_line: now }
    }
}

/// The cursor rows of a collection in the `cursors` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumers {
    /// `qdrant:<collection>`: the highest height Qdrant acknowledged.
    pub blocks: String,
    /// `qdrant:<collection>:pruned_ns` and `..:pruned_height`: the pruned-flag cursor.
    pub pruned_ns: String,
    pub pruned_height: String,
    /// `qdrant:<collection>:embedding`: the embedder version of the points
    /// (kept in the `height` column).
    pub embedding: String,
}

/// The cursor names of a collection.
pub fn consumer_names(collection: &str) -> Consumers {
    Consumers {
        blocks: format!("qdrant:{collection}"),
        pruned_ns: format!("qdrant:{collection}:pruned_ns"),
        pruned_height: format!("qdrant:{collection}:pruned_height"),
        embedding: format!("qdrant:{collection}:embedding"),
    }
}

/// Nanoseconds since the epoch, now.
fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl Syncer {
    /// `cfg` must be validated; opens the chain database read-write (cursors only).
    pub fn new(cfg: SyncConfig, client: QdrantClient, embedder: Box<dyn Embedder + Send>) -> Result<Self, SyncError> {
        if embedder.dimension() != cfg.dimension {
            return Err(SyncError::EmbedderDimension { embedder: embedder.dimension(), config: cfg.dimension });
        }
        let mut chain = ChainDb::open(&cfg.database)?;
        let consumers = consumer_names(&cfg.collection);
        // The height-based pruned cursor of earlier versions; the new one starts over (flags are idempotent).
        chain.delete_cursor(&format!("qdrant:{}:pruned", cfg.collection))?;
        let stats = SyncStats { cursor: chain.cursor(&consumers.blocks)?, ..SyncStats::default() };
        let batch = cfg.batch;
        let mut syncer = Syncer {
            cfg,
            chain,
            client,
            embedder,
            consumers,
            stats,
            ack_hook: None,
            watchdog: Watchdog::systemd(),
            batch,
            progress: Progress::new(),
            wake: None,
        };
        syncer.reembed_if_needed()?;
        Ok(syncer)
    }

    /// Points written with another embedder version are re-embedded: the
    /// cursors go back to the start (in the same transaction as the new
    /// version), so the ordinary sync rewrites every point in place, resumably.
    fn reembed_if_needed(&mut self) -> Result<(), ChainError> {
        let version = self.embedder.version();
        let stored = self.chain.cursor(&self.consumers.embedding)?;
        if stored == version {
            return Ok(());
        }
        let c = &self.consumers;
        if self.stats.cursor >= 0 {
            crate::log!(
                Notice,
                PROGRAM,
                "collection {:?} holds vectors of embedding version {}; re-embedding every block with version {version} \
                 from height 0 (resumable: the sync cursor is the progress)",
                self.cfg.collection,
                if stored < 0 { "2 or earlier".to_string() } else { stored.to_string() }
            );
            let none = PrunedKey::NONE;
            self.chain.set_cursors(&[
                (&c.blocks, -1),
                (&c.pruned_ns, none.pruned_ns),
                (&c.pruned_height, none.height),
                (&c.embedding, version),
            ])?;
            self.stats.cursor = -1;
        } else {
            self.chain.set_cursors(&[(&c.embedding, version)])?;
        }
        Ok(())
    }

    pub fn set_ack_hook(&mut self, hook: AckHook) {
        self.ack_hook = Some(hook);
    }

    /// Replaces the systemd watchdog (e.g. to observe the pings).
    pub fn set_watchdog(&mut self, watchdog: Watchdog) {
        self.watchdog = watchdog;
    }

    /// Most points per upsert now: `batch`, or less after Qdrant refused a request as too large.
    pub fn effective_batch(&self) -> usize {
        self.batch
    }

    /// Resets both cursors so that every block is sent again.
    fn reset_cursors(&mut self) -> Result<(), ChainError> {
        let c = &self.consumers;
        let none = PrunedKey::NONE;
        self.chain.set_cursors(&[(&c.blocks, -1), (&c.pruned_ns, none.pruned_ns), (&c.pruned_height, none.height)])?;
        self.stats.cursor = -1;
        Ok(())
    }

    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    pub fn config(&self) -> &SyncConfig {
        &self.cfg
    }

    /// Runs one request, counting its latency and any error; then gives the
    /// watchdog its chance (a finished request is progress, whatever the answer).
    fn call<T>(
        stats: &mut SyncStats,
        watchdog: &mut Watchdog,
        f: impl FnOnce(&mut dyn FnMut(Duration)) -> Result<T, QdrantError>,
    ) -> Result<T, QdrantError> {
        let mut took = Duration::ZERO;
        let result = f(&mut |d| took = d);
        stats.observe_request(took);
        if result.is_err() {
            stats.errors_total += 1;
            stats.up_since = None;
        } else if stats.up_since.is_none() {
            stats.up_since = Some(Instant::now());
        }
        watchdog.tick();
        result
    }

    /// Whether Qdrant answers a small request now (any answer counts).
    fn answers(stats: &mut SyncStats, watchdog: &mut Watchdog, client: &QdrantClient, name: &str) -> bool {
        !matches!(Self::call(stats, watchdog, |o| client.collection(name, o)), Err(QdrantError::Unreachable { .. }))
    }

    /// Creates the collection if missing; refuses one of another shape.
    pub fn ensure_collection(&mut self) -> Result<Ensured, SyncError> {
        let (client, name) = (&self.client, self.cfg.collection.as_str());
        let found = Self::call(&mut self.stats, &mut self.watchdog, |o| client.collection(name, o))?;
        match found {
            Some(shape) => self.check_shape(&shape).map(|_| Ensured::Existing),
            None => {
                let (size, distance) = (self.cfg.dimension, self.cfg.distance);
                let created = Self::call(&mut self.stats, &mut self.watchdog, |o| {
                    client.create_collection(name, size, distance, o)
                })?;
                if !created {
                    let shape = Self::call(&mut self.stats, &mut self.watchdog, |o| client.collection(name, o))?;
                    if let Some(shape) = shape {
                        self.check_shape(&shape)?;
                    }
                    return Ok(Ensured::Existing);
                }
                let cursor = self.chain.cursor(&self.consumers.blocks)?;
                if cursor >= 0 {
                    crate::log!(
                        Notice,
                        PROGRAM,
                        "collection {name:?} was missing at {} and has been created; sending every block again (the cursor was at {cursor})",
                        self.client.url()
                    );
                }
                self.reset_cursors()?;
                Ok(Ensured::Created)
            }
        }
    }

    fn check_shape(&self, shape: &CollectionShape) -> Result<(), SyncError> {
        let collection = self.cfg.collection.clone();
        let url = self.client.url().to_string();
        match &shape.vector {
            None => Err(SyncError::NamedVectors { collection, url }),
            Some((size, distance)) if *size == self.cfg.dimension as u64 && distance == self.cfg.distance.as_str() => {
                Ok(())
            }
            Some((size, distance)) => Err(SyncError::ShapeMismatch {
                collection,
                url,
                found_size: *size,
                found_distance: distance.clone(),
                want_size: self.cfg.dimension,
                want_distance: self.cfg.distance.to_string(),
            }),
        }
    }

    /// Sends the pending pruned flags, then every pending block, batch by
    /// batch. On an error the cursors stay after the last acknowledged batch.
    pub fn sync_pending(&mut self) -> Result<PassReport, SyncError> {
        self.sync_pending_until(&AtomicBool::new(false))
    }

    /// [`sync_pending`](Self::sync_pending) that returns early, between two
    /// batches, once `stop` is set.
    pub fn sync_pending_until(&mut self, stop: &AtomicBool) -> Result<PassReport, SyncError> {
        let mut report = PassReport::default();
        let start = (Instant::now(), self.stats.synced_total);
        (self.progress.pass, self.progress.last_line) = (start, start);
        let result = self
            .restart_if_replaced()
            .and_then(|_| self.sync_pruned(&mut report, stop))
            .and_then(|_| self.sync_blocks(&mut report, stop));
        report.cursor = self.stats.cursor;
        self.refresh_gauges()?;
        result.map(|_| report)
    }

    fn restart_if_replaced(&mut self) -> Result<(), SyncError> {
        let cursor = self.chain.cursor(&self.consumers.blocks)?;
        let head = self.chain.head()?.unwrap_or(-1);
        if cursor > head {
            // The snapshotter never removes blocks: the database was replaced.
            crate::log!(
                Warning,
                PROGRAM,
                "the cursor ({cursor}) is beyond the chain head ({head}): the chain database was replaced; \
                 sending the new chain from genesis"
            );
            self.reset_cursors()?;
        }
        Ok(())
    }

    fn sync_blocks(&mut self, report: &mut PassReport, stop: &AtomicBool) -> Result<(), SyncError> {
        while !stop.load(Ordering::Relaxed) {
            let cursor = self.chain.cursor(&self.consumers.blocks)?;
            let blocks = self.chain.blocks_after(cursor, self.batch)?;
            let Some(last) = blocks.last().map(|b| b.height as i64) else { return Ok(()) };
            let changes = self.chain.changes_of(&blocks)?;
            let points: Vec<Point> = blocks
                .iter()
                .zip(&changes)
                .map(|(b, c)| Point {
                    id: point_id(b),
                    vector: self.embedder.embed_block(b, c),
                    payload: payload(b, c),
                })
                .collect();
            let (client, name) = (&self.client, self.cfg.collection.as_str());
            match Self::call(&mut self.stats, &mut self.watchdog, |o| client.upsert(name, &points, o)) {
                Ok(()) => {}
                // Too large, however the server says so: 413, a 400 with its size
                // message, or a connection dropped mid-body while the server still
                // answers a small request (then it is not an outage).
                Err(e)
                    if self.batch > 1
                        && (e.is_too_large()
                            || (e.is_connection_lost()
                                && Self::answers(&mut self.stats, &mut self.watchdog, client, name))) =>
                {
                    self.batch = (blocks.len() / 2).max(1);
                    crate::log!(
                        Warning,
                        PROGRAM,
                        "{e}; sending at most {} points per request from now on (lower `batch` in the config)",
                        self.batch
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // Acknowledged.
            self.chain.set_cursors(&[(&self.consumers.blocks, last)])?;
            self.stats.cursor = last;
            self.stats.synced_total += blocks.len() as u64;
            report.upserted += blocks.len() as u64;
            report.requests += 1;
            if let Some(hook) = self.ack_hook.as_mut() {
                hook(last);
            }
            self.log_progress()?;
        }
        Ok(())
    }

    /// After an outage, once a request succeeded: how long Qdrant was
    /// unreachable (first failed to first successful request); the catch-up starts.
    fn log_reachable_again(&mut self) {
        let (Some((since, synced)), Some(back)) = (self.progress.down, self.stats.up_since) else { return };
        crate::log!(
            Notice,
            PROGRAM,
            "Qdrant at {} is reachable again after {:.1} s unreachable",
            self.client.url(),
            back.saturating_duration_since(since).as_secs_f64()
        );
        self.progress.down = None;
        self.progress.catch_up = Some((back, synced));
    }

    /// After each acknowledged batch: the end of an outage, and the progress
    /// of a long pass, at most every [`PROGRESS_EVERY`].
    fn log_progress(&mut self) -> Result<(), ChainError> {
        self.log_reachable_again();
        let (since, synced) = self.progress.last_line;
        let elapsed = since.elapsed();
        if elapsed < PROGRESS_EVERY {
            return Ok(());
        }
        let head = self.chain.head()?.unwrap_or(self.stats.cursor);
        let rate = self.stats.synced_total.saturating_sub(synced) as f64 / elapsed.as_secs_f64();
        crate::log!(Info, PROGRAM, "catching up: height {} of {head} ({rate:.0} points/s)", self.stats.cursor);
        self.progress.catch_up = self.progress.catch_up.or(Some(self.progress.pass));
        self.progress.last_line = (Instant::now(), self.stats.synced_total);
        Ok(())
    }

    fn sync_pruned(&mut self, report: &mut PassReport, stop: &AtomicBool) -> Result<(), SyncError> {
        let c = self.consumers.clone();
        while !stop.load(Ordering::Relaxed) {
            let after = self.chain.pruned_cursor(&c.pruned_ns, &c.pruned_height)?;
            let cursor = self.chain.cursor(&c.blocks)?;
            let (flags, last_pruned) = self.chain.pruned_after(after, cursor, self.cfg.batch)?;
            let Some(last) = flags.last().map(|b| b.key) else {
                // Every covered pruned block is flagged; the others (beyond the
                // sync cursor) will be upserted as pruned.
                if let Some(last) = last_pruned.filter(|l| *l > after) {
                    self.chain.set_cursors(&[(&c.pruned_ns, last.pruned_ns), (&c.pruned_height, last.height)])?;
                }
                return Ok(());
            };
            let ids: Vec<PointId> = flags.iter().map(|b| hash_point_id(&b.hash)).collect();
            let mut flag = Map::new();
            flag.insert("pruned".into(), Value::Bool(true));
            let (client, name) = (&self.client, self.cfg.collection.as_str());
            Self::call(&mut self.stats, &mut self.watchdog, |o| client.set_payload(name, &ids, flag, o))?;
            self.chain.set_cursors(&[(&c.pruned_ns, last.pruned_ns), (&c.pruned_height, last.height)])?;
            self.stats.pruned_updates_total += ids.len() as u64;
            report.pruned_flags += ids.len() as u64;
            report.requests += 1;
        }
        Ok(())
    }

    fn refresh_gauges(&mut self) -> Result<(), ChainError> {
        let cursor = self.chain.cursor(&self.consumers.blocks)?;
        self.stats.cursor = cursor;
        self.stats.pending = self.chain.count_after(cursor)?;
        self.stats.lag_seconds = match self.chain.first_time_after(cursor)? {
            Some(t) => (now_ns().saturating_sub(t)).max(0) as f64 / 1e9,
            None => 0.0,
        };
        Ok(())
    }

    fn write_metrics(&self) {
        if let Some(dir) = &self.cfg.metrics_dir
            && let Err(e) = self.stats.write(dir)
        {
            crate::log!(Warning, PROGRAM, "cannot write metrics into {}: {e}", dir.display());
        }
    }

    /// `once`: ensure the collection, send everything pending, return.
    pub fn once(&mut self) -> Result<PassReport, SyncError> {
        self.ensure_collection()?;
        let report = self.sync_pending();
        self.stats.up = report.as_ref().map(|_| true).unwrap_or_else(|e| !e.is_transient());
        self.write_metrics();
        report
    }

    /// The daemon loop: every `interval` (absolute deadlines), send what is
    /// pending. Transient failures back off exponentially up to `max_backoff`
    /// and log only when Qdrant goes down, when it answers again (the outage)
    /// and when the sync is at the chain head again (the catch-up). Returns
    /// when `stop` is set, or with an error that retrying cannot fix.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), SyncError> {
        let interval = self.cfg.interval.as_duration();
        let mut backoff = Backoff::new(Duration::from_millis(250).min(interval), self.cfg.max_backoff.as_duration());
        let mut ensured = false;
        let mut first = true;
        let mut next_tick = Instant::now();
        if let Some(every) = self.watchdog.every
            && self.cfg.request_timeout.as_duration() >= every * 2
        {
            crate::log!(
                Warning,
                PROGRAM,
                "request_timeout ({}) is not shorter than the watchdog timeout ({:.1}s): a request that hangs that long \
                 gets the daemon restarted; lower request_timeout or raise WatchdogSec",
                self.cfg.request_timeout,
                (every * 2).as_secs_f64()
            );
        }
        self.watchdog.ping();
        self.wake = super::wake::ChainWatch::new(&self.cfg.database);
        if self.wake.is_none() {
            crate::log!(
                Warning,
                PROGRAM,
                "cannot watch {} for new blocks; syncing on the {} timer only",
                self.cfg.database.display(),
                self.cfg.interval
            );
        }
        while !stop.load(Ordering::Relaxed) {
            self.watchdog.tick();
            // What was written so far, this pass covers.
            if let Some(w) = &self.wake {
                w.drain();
            }
            let result = (|| {
                if !ensured {
                    self.ensure_collection()?;
                    ensured = true;
                }
                self.sync_pending_until(stop)
            })();
            match result {
                Ok(report) => {
                    self.stats.up = true;
                    self.log_reachable_again();
                    if first {
                        crate::log!(
                            Info,
                            PROGRAM,
                            "syncing into collection {:?} at {}; cursor at {}",
                            self.cfg.collection,
                            self.client.url(),
                            report.cursor
                        );
                    }
                    // At the chain head again (unless the pass ended early for a stop).
                    if let Some((since, synced)) = self.progress.catch_up.take()
                        && !stop.load(Ordering::Relaxed)
                    {
                        crate::log!(
                            Notice,
                            PROGRAM,
                            "caught up: {} blocks in {:.1} s; cursor at {}",
                            self.stats.synced_total.saturating_sub(synced),
                            since.elapsed().as_secs_f64(),
                            report.cursor
                        );
                    }
                    first = false;
                    backoff.reset();
                    self.write_metrics();
                    notify::status(&format!("cursor {}, {} pending", report.cursor, self.stats.pending));
                    let now = Instant::now();
                    next_tick = later(next_tick, interval).max(now);
                    self.sleep_until_new_block(next_tick, stop);
                }
                Err(SyncError::Qdrant(e)) if ensured && e.is_not_found() => {
                    // Deleted under our feet: create it again (and resend everything).
                    crate::log!(Warning, PROGRAM, "{e}; the collection is gone, creating it again");
                    ensured = false;
                    sleep_until(later(Instant::now(), backoff.next_delay()), stop, &mut self.watchdog);
                }
                Err(e) if e.is_transient() => {
                    self.stats.up = false;
                    let delay = backoff.next_delay();
                    if self.progress.down.is_none() {
                        crate::log!(
                            Warning,
                            PROGRAM,
                            "{e}; nothing is lost: retrying with exponential back-off (at most every {})",
                            self.cfg.max_backoff
                        );
                        notify::status(&format!("Qdrant unreachable, cursor {}", self.stats.cursor));
                        self.progress.down = Some((Instant::now(), self.stats.synced_total));
                    }
                    first = false;
                    self.write_metrics();
                    sleep_until(later(Instant::now(), delay), stop, &mut self.watchdog);
                    next_tick = Instant::now();
                }
                Err(e) => {
                    self.write_metrics();
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Syncer {
    /// Sleeps until `deadline`, or until the chain has a block past the
    /// cursor, whichever comes first. A write to the database wakes it; the
    /// sync's own cursor commits wake it too, so it first looks at the head
    /// (one indexed query) and runs no pass for them. SQLite publishes a commit
    /// in the WAL index, which inotify does not see, just after the last write
    /// it reports: the head is looked at a few times, briefly apart.
    fn sleep_until_new_block(&mut self, deadline: Instant, stop: &AtomicBool) {
        let Some(wake) = &self.wake else {
            return sleep_until(deadline, stop, &mut self.watchdog);
        };
        loop {
            self.watchdog.tick();
            if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                return;
            }
            if !wake.wait(deadline, Duration::from_millis(100)) {
                continue;
            }
            for _ in 0..WAKE_RECHECKS {
                if self.chain.head().ok().flatten().is_some_and(|head| head > self.stats.cursor) {
                    return;
                }
                std::thread::sleep(WAKE_RECHECK_AFTER);
            }
        }
    }
}

/// How often, and how far apart, a wake looks at the chain's head.
const WAKE_RECHECKS: u32 = 5;
const WAKE_RECHECK_AFTER: Duration = Duration::from_millis(10);

/// `at + d`, or a day after `at` when that overflows (durations from the config are capped far below).
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d).or_else(|| at.checked_add(Duration::from_secs(86_400))).unwrap_or(at)
}

/// A watchdog to keep alive: [`tick`](Self::tick) pings once `every` has
/// passed since the last ping. [`Watchdog::systemd`] pings systemd at half
/// of `WatchdogSec` (a no-op without one).
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
    ping: Box<dyn FnMut() + Send>,
}

impl Watchdog {
    /// systemd's watchdog, at the rate it asks for.
    pub fn systemd() -> Self {
        Watchdog { every: notify::watchdog_interval(), last: None, ping: Box::new(notify::watchdog) }
    }

    /// A watchdog that calls `ping` at most once per `every` (`Duration::ZERO`: at every tick).
    pub fn new(every: Duration, ping: Box<dyn FnMut() + Send>) -> Self {
        Watchdog { every: Some(every), last: None, ping }
    }

    /// Pings now.
    pub fn ping(&mut self) {
        if self.every.is_some() {
            (self.ping)();
            self.last = Some(Instant::now());
        }
    }

    /// Pings when `every` has passed since the last ping.
    pub fn tick(&mut self) {
        if let Some(every) = self.every
            && self.last.is_none_or(|last| last.elapsed() >= every)
        {
            self.ping();
        }
    }
}

/// Sleeps until `deadline`, waking every 100 ms to honour `stop` and the watchdog.
fn sleep_until(deadline: Instant, stop: &AtomicBool, watchdog: &mut Watchdog) {
    loop {
        watchdog.tick();
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::from_secs(2)), now + Duration::from_secs(2));
        let far = later(now, Duration::MAX);
        assert!(far > now && far <= now + Duration::from_secs(86_400), "capped at a day");
    }

    #[test]
    fn a_watchdog_pings_at_most_once_per_interval() {
        let pings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = pings.clone();
        let mut w =
            Watchdog::new(Duration::from_secs(3600), Box::new(move || _ = counter.fetch_add(1, Ordering::Relaxed)));
        for _ in 0..5 {
            w.tick();
        }
        assert_eq!(pings.load(Ordering::Relaxed), 1, "the first tick pings, the next ones are too soon");
        w.ping();
        assert_eq!(pings.load(Ordering::Relaxed), 2);
    }
}

//! The snapshotter daemon: recovery, then one tick per interval on absolute
//! monotonic deadlines. A tick takes a read-only snapshot of the source,
//! appends its block and marks expired blocks pruned in one SQLite
//! transaction, then deletes the expired snapshots. Any fault is logged,
//! counted, and retried with a capped back-off after reconciling the
//! snapshot directory with the chain again; the daemon keeps running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::btrfs::{self, BtrfsError};
use super::chain::{Block, GENESIS_PREV};
use super::clock::{self, Schedule};
use super::config::Config;
use super::recover::{self, RecoverError, snapshot_name};
use super::store::{Store, StoreError};
use crate::bus::snapshotter::Publisher;
use crate::runtime::metrics::{Family, Histogram, Sample, TextfileWriter};
use crate::runtime::notify;

/// The name of the metrics file in the textfile collector folder (`<name>.prom`).
pub const METRICS_NAME: &str = "ghostbridge_snapshotter";
/// Upper bounds of the snapshot latency histogram, seconds.
const LATENCY_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// The longest back-off between attempts after a fault.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Free space required on the snapshot and database filesystems before a tick
/// touches either (see [`btrfs::require_space`]).
pub const MIN_FREE_BYTES: u64 = 16 * 1024 * 1024;
/// How many of the newest blocks are recomputed at start-up (one day at 1 Hz);
/// `verify` and D-Bus `Verify()` check the whole chain.
pub const STARTUP_VERIFY_BLOCKS: u64 = 86_400;
/// How often a lost D-Bus connection is retried.
const BUS_RETRY: Duration = Duration::from_secs(10);

/// Everything `run` needs, after the config and the command-line overrides are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: PathBuf,
    pub snapshot_dir: PathBuf,
    pub database: PathBuf,
    pub interval: Duration,
    pub retention: Duration,
    pub metrics_dir: Option<PathBuf>,
    pub dbus: bool,
}

impl From<Config> for Settings {
    fn from(c: Config) -> Self {
        Settings {
            source: c.source,
            snapshot_dir: c.snapshot_dir,
            database: c.database,
            interval: c.interval.as_duration(),
            retention: c.retention.as_duration(),
            metrics_dir: c.metrics_dir,
            dbus: c.dbus,
        }
    }
}

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

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    // No SA_RESTART: the sleep returns at once so the loop sees the stop flag.
    let action = SigAction::new(SigHandler::Handler(on_stop_signal), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("snapshotter: cannot install a handler for {sig}: {e}; stopping will be abrupt");
        }
    }
}

/// What the SIGBUS handler executes: this program with the same arguments.
struct Reexec {
    path: std::ffi::CString,
    /// Owns the strings `argv` points into.
    _args: Vec<std::ffi::CString>,
    argv: Vec<*const libc::c_char>,
}
// SAFETY: built once before the handler is installed and never changed after.
unsafe impl Send for Reexec {}
unsafe impl Sync for Reexec {}

static REEXEC: std::sync::OnceLock<Reexec> = std::sync::OnceLock::new();

extern "C" fn on_sigbus(_: libc::c_int) {
    const MSG: &[u8] = b"snapshotter: SIGBUS (a write to SQLite's memory-mapped WAL index failed: the filesystem is full); restarting in place, recovery follows\n";
    // SAFETY: write(2) and execve(2) are async-signal-safe; REEXEC is immutable once set.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        if let Some(r) = REEXEC.get() {
            unsafe extern "C" {
                static environ: *const *const libc::c_char;
            }
            libc::execve(r.path.as_ptr(), r.argv.as_ptr(), environ);
        }
        libc::_exit(75);
    }
}

/// A SIGBUS from SQLite's memory-mapped WAL index on a full filesystem would kill
/// the process. Instead it re-executes itself (same PID, same arguments); since
/// every crash point is recoverable, the new image reconciles and carries on.
fn install_sigbus_restart() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};
    let args: Vec<std::ffi::CString> = std::env::args_os()
        .filter_map(|a| std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).ok())
        .collect();
    let Ok(path) = std::ffi::CString::new("/proc/self/exe") else { return };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let _ = REEXEC.set(Reexec { path, _args: args, argv });
    // A previous image may have exec'd from inside its handler: unblock SIGBUS.
    let mut set = SigSet::empty();
    set.add(Signal::SIGBUS);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let action = SigAction::new(SigHandler::Handler(on_sigbus), SaFlags::SA_NODEFER, SigSet::empty());
    // SAFETY: the handler only calls async-signal-safe functions.
    if let Err(e) = unsafe { sigaction(Signal::SIGBUS, &action) } {
        eprintln!("snapshotter: cannot install the SIGBUS handler: {e}");
    }
}

/// Counters and gauges written to the textfile collector.
struct Metrics {
    ticks: u64,
    missed: u64,
    snapshots: u64,
    pruned: u64,
    adopted: u64,
    recovered_deleted: u64,
    errors: BTreeMap<&'static str, u64>,
    latency: Histogram,
    height: Option<u64>,
    last_snapshot_ns: i64,
    chain_valid: Option<bool>,
    last_error: Option<(&'static str, String, i64)>,
    writer: Option<TextfileWriter>,
    written_at: Option<Instant>,
}

impl Metrics {
    fn families(&self) -> Vec<Family> {
        let mut errors =
            Family::counter("ghostbridge_snapshotter_errors_total", "Failed ticks and prunes, by kind.", 0.0);
        errors.samples = self
            .errors
            .iter()
            .map(|(k, v)| Sample { suffix: "", labels: vec![("kind".into(), (*k).into())], value: *v as f64 })
            .collect();
        let mut out = vec![
            Family::counter("ghostbridge_snapshotter_ticks_total", "Deadlines reached.", self.ticks as f64),
            Family::counter(
                "ghostbridge_snapshotter_missed_ticks_total",
                "Deadlines skipped because a tick overran them.",
                self.missed as f64,
            ),
            Family::counter(
                "ghostbridge_snapshotter_snapshots_total",
                "Snapshots taken and recorded.",
                self.snapshots as f64,
            ),
            Family::counter(
                "ghostbridge_snapshotter_pruned_total",
                "Snapshots deleted by retention.",
                self.pruned as f64,
            ),
            Family::counter(
                "ghostbridge_snapshotter_adopted_total",
                "Snapshots adopted by recovery.",
                self.adopted as f64,
            ),
            Family::counter(
                "ghostbridge_snapshotter_recovery_deleted_total",
                "Unrecorded snapshots deleted by recovery.",
                self.recovered_deleted as f64,
            ),
            errors,
            self.latency
                .family("ghostbridge_snapshotter_snapshot_seconds", "Time to create a snapshot and read its identity."),
            Family::gauge(
                "ghostbridge_snapshotter_height",
                "Height of the newest block (-1: empty chain).",
                self.height.map(|h| h as f64).unwrap_or(-1.0),
            ),
            Family::gauge(
                "ghostbridge_snapshotter_last_snapshot_timestamp_seconds",
                "Wall time of the newest snapshot.",
                self.last_snapshot_ns as f64 / 1e9,
            ),
        ];
        if let Some(valid) = self.chain_valid {
            out.push(Family::gauge(
                "ghostbridge_snapshotter_chain_valid",
                "1 when the newest 86400 blocks verified at start-up.",
                if valid { 1.0 } else { 0.0 },
            ));
        }
        if let Some((kind, message, ns)) = &self.last_error {
            let mut f = Family::gauge(
                "ghostbridge_snapshotter_last_error_timestamp_seconds",
                "Wall time of the last fault, with its kind and message.",
                *ns as f64 / 1e9,
            );
            f.samples[0].labels = vec![("kind".into(), (*kind).into()), ("message".into(), message.clone())];
            out.push(f);
        }
        out
    }

    fn write(&mut self, force: bool) {
        let Some(w) = &self.writer else { return };
        if !force && self.written_at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        if let Err(e) = w.write(&self.families()) {
            eprintln!("snapshotter: cannot write metrics to {}: {e}", w.path().display());
        }
        self.written_at = Some(Instant::now());
    }
}

/// The daemon's state between ticks.
pub struct Daemon {
    s: Settings,
    store: Option<Store>,
    needs_recovery: bool,
    m: Metrics,
    bus: Option<Publisher>,
    bus_retry_at: Option<Instant>,
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
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
            },
            bus: None,
            bus_retry_at: None,
        }
    }

    fn store(&mut self) -> Result<&mut Store, StoreError> {
        if self.store.is_none() {
            let busy = (self.s.interval / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
            let store = Store::open_writer(&self.s.database, busy)?;
            if self.m.chain_valid.is_none() {
                let v = store.verify_tail(Some(STARTUP_VERIFY_BLOCKS))?;
                if !v.ok() {
                    eprintln!(
                        "snapshotter: WARNING: {} in {}; new blocks still extend the head",
                        v.message(),
                        self.s.database.display()
                    );
                }
                self.m.chain_valid = Some(v.ok());
            }
            let head = store.head()?;
            self.m.height = head.as_ref().map(|b| b.height);
            self.m.last_snapshot_ns = head.as_ref().map(|b| b.time_ns).unwrap_or(0);
            self.store = Some(store);
        }
        match self.store.as_mut() {
            Some(s) => Ok(s),
            None => unreachable!("the store was opened above"),
        }
    }

    /// Opens and checks the source and the snapshot directory (every tick, so a
    /// replaced or vanished source is noticed), reconciling first when needed.
    fn prepare(&mut self) -> Result<(std::fs::File, std::fs::File), TickError> {
        let source = btrfs::open_dir(&self.s.source)?;
        btrfs::require_subvolume(&source, &self.s.source)?;
        let dir = btrfs::open_dir(&self.s.snapshot_dir)?;
        btrfs::require_btrfs(&dir, &self.s.snapshot_dir)?;
        let db_dir_path = match self.s.database.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let db_dir = btrfs::open_dir(&db_dir_path)?;
        let space = btrfs::require_space(&dir, &self.s.snapshot_dir, MIN_FREE_BYTES)
            .and_then(|()| btrfs::require_space(&db_dir, &db_dir_path, MIN_FREE_BYTES));
        if let Err(low) = space {
            // No snapshot while space is short, but expired snapshots are still pruned:
            // they may be what fills the disk.
            self.prune_expired(&dir);
            return Err(low.into());
        }
        if self.needs_recovery {
            let retention = ns(self.s.retention);
            let (src_path, dir_path) = (self.s.source.clone(), self.s.snapshot_dir.clone());
            let store = self.store()?;
            let report =
                recover::reconcile(store, &source, &src_path, &dir, &dir_path, retention, clock::realtime_ns())?;
            let head = store.head()?;
            self.m.adopted += report.adopted.len() as u64;
            self.m.recovered_deleted += report.deleted_unknown.len() as u64;
            self.m.pruned += (report.pruned.len() + report.completed_prunes.len()) as u64;
            self.m.height = head.as_ref().map(|b| b.height);
            eprintln!(
                "snapshotter: recovery done: head {}, adopted {}, deleted unrecorded {}, finished prunes {}, marked vanished {}, pruned {}",
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
        let now = clock::realtime_ns();
        let cutoff = now - ns(self.s.retention);
        let dir_path = self.s.snapshot_dir.clone();
        if let Err(e) = self.store().and_then(|s| s.mark_expired(cutoff, now)) {
            eprintln!(
                "snapshotter: space is short and the chain database is unusable ({e}); deleting expired snapshots first, recovery will mark their blocks"
            );
            self.store = None;
        }
        let mut foreign = Vec::new();
        let expired: Vec<String> = recover::list_snapshots(&dir_path, &mut foreign)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, _, t)| *t <= cutoff)
            .map(|(name, _, _)| name)
            .collect();
        for name in &expired {
            match btrfs::destroy_snapshot(dir, &dir_path, name) {
                Ok(()) => self.m.pruned += 1,
                Err(e) => eprintln!("snapshotter: pruning {name}: {e}; will retry"),
            }
        }
        if !expired.is_empty() {
            self.needs_recovery = true;
            // Commit now so the cleaner reclaims the deleted snapshots' space without
            // waiting for the next periodic commit.
            let _ = nix::unistd::syncfs(dir);
            eprintln!("snapshotter: space is short: deleted {} expired snapshots", expired.len());
        }
    }

    /// One tick: snapshot, append (+ mark expired), delete expired snapshots.
    pub fn tick(&mut self) -> Result<Block, TickError> {
        let (source, dir) = self.prepare()?;
        let retention = ns(self.s.retention);
        let dir_path = self.s.snapshot_dir.clone();
        let store = self.store()?;
        let head = store.head()?;
        let height = head.as_ref().map(|b| b.height + 1).unwrap_or(0);
        let prev = head.as_ref().map(|b| b.hash).unwrap_or(GENESIS_PREV);
        let time_ns = clock::realtime_ns();
        let name = snapshot_name(height, time_ns);
        let started = Instant::now();
        btrfs::create_snapshot(&source, &dir, &dir_path, &name)?;
        let info = match btrfs::subvol_info_at(&dir_path, &name) {
            Ok(i) => i,
            Err(e) => {
                self.discard(&dir, &name);
                return Err(e.into());
            }
        };
        let latency = started.elapsed();
        let block = Block::new(height, prev, time_ns, name.clone(), info.uuid, info.generation);
        let store = self.store()?;
        let marked = match store.append(&block, Some(time_ns - retention)) {
            Ok(m) => m,
            Err(e) => {
                self.discard(&dir, &name);
                return Err(e.into());
            }
        };
        self.m.latency.observe(latency.as_secs_f64());
        self.m.snapshots += 1;
        self.m.height = Some(height);
        self.m.last_snapshot_ns = time_ns;
        for (h, old) in marked {
            match btrfs::destroy_snapshot(&dir, &dir_path, &old) {
                Ok(()) => self.m.pruned += 1,
                Err(e) => {
                    // The block is already marked pruned; recovery finishes the deletion.
                    eprintln!("snapshotter: pruning block {h}: {e}; will retry");
                    *self.m.errors.entry("prune").or_default() += 1;
                    self.needs_recovery = true;
                }
            }
        }
        Ok(block)
    }

    /// Removes a snapshot whose block could not be written; if that fails too,
    /// recovery adopts or deletes it before the next attempt.
    fn discard(&mut self, dir: &std::fs::File, name: &str) {
        if let Err(e) = btrfs::destroy_snapshot(dir, &self.s.snapshot_dir, name) {
            eprintln!("snapshotter: cannot remove unrecorded snapshot {name}: {e}; recovery will handle it");
        }
        self.needs_recovery = true;
    }

    fn fault(&mut self, e: &TickError) {
        let kind = e.kind();
        eprintln!("snapshotter: ERROR [{kind}]: {e}; no block written, retrying with back-off");
        *self.m.errors.entry(kind).or_default() += 1;
        self.m.last_error = Some((kind, e.to_string(), clock::realtime_ns()));
        self.needs_recovery = true;
        if matches!(e, TickError::Store(_) | TickError::Recover(RecoverError::Store(_))) {
            self.store = None;
        }
    }

    fn publish(&mut self, block: &Block) {
        if !self.s.dbus {
            return;
        }
        if self.bus.is_none() && self.bus_retry_at.is_none_or(|t| Instant::now() >= t) {
            self.connect_bus();
        }
        if let Some(bus) = &self.bus
            && let Err(e) = bus.block_added(block.height, &block.hash, block.time_ns)
        {
            eprintln!("snapshotter: {e}; reconnecting later");
            *self.m.errors.entry("dbus").or_default() += 1;
            self.bus = None;
            self.bus_retry_at = Some(Instant::now() + BUS_RETRY);
        }
    }

    fn connect_bus(&mut self) {
        if !self.s.dbus {
            return;
        }
        let head = self.store.as_ref().and_then(|s| s.head().ok().flatten()).map(|b| (b.height, b.hash, b.time_ns));
        match Publisher::connect(self.s.database.clone(), head) {
            Ok(p) => {
                eprintln!("snapshotter: serving {} on D-Bus", crate::bus::snapshotter::BUS_NAME);
                self.bus = Some(p);
            }
            Err(e) => {
                eprintln!("snapshotter: {e}; retrying in {}s", BUS_RETRY.as_secs());
                *self.m.errors.entry("dbus").or_default() += 1;
                self.bus_retry_at = Some(Instant::now() + BUS_RETRY);
            }
        }
    }
}

/// Sleeps until `deadline_ns` (monotonic), pinging the watchdog on the way.
fn wait(deadline_ns: i64, watchdog: Option<Duration>, last_ping: &mut i64) {
    loop {
        if STOP.load(Ordering::SeqCst) {
            return;
        }
        let now = clock::monotonic_ns();
        if let Some(wd) = watchdog
            && now - *last_ping >= ns(wd)
        {
            notify::watchdog();
            *last_ping = now;
        }
        if now >= deadline_ns {
            return;
        }
        let wake = match watchdog {
            Some(wd) => deadline_ns.min(*last_ping + ns(wd)),
            None => deadline_ns,
        };
        clock::sleep_until(wake);
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(s: Settings) {
    install_signal_handlers();
    install_sigbus_restart();
    let interval_ns = ns(s.interval).max(1);
    let mut d = Daemon::new(s);
    eprintln!(
        "snapshotter: source {}, snapshots in {}, chain {}, every {:?}, keeping {:?}",
        d.s.source.display(),
        d.s.snapshot_dir.display(),
        d.s.database.display(),
        d.s.interval,
        d.s.retention
    );
    // Recovery before READY: a failure here is a fault like any other, retried by the loop.
    match d.prepare() {
        Ok(_) => notify::status("recovered; taking snapshots"),
        Err(e) => {
            d.fault(&e);
            notify::status(&format!("degraded: {e}"));
        }
    }
    d.connect_bus();
    d.m.write(true);
    notify::ready();

    let watchdog = notify::watchdog_interval();
    let mut last_ping = clock::monotonic_ns();
    let mut backoff_ns: i64 = 0;
    let cap_ns = ns(BACKOFF_CAP).min(interval_ns.saturating_mul(32)).max(interval_ns);
    let mut schedule = Schedule::new(clock::monotonic_ns(), interval_ns);
    loop {
        wait(schedule.deadline(), watchdog, &mut last_ping);
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        d.m.ticks += 1;
        let failed = match d.tick() {
            Ok(block) => {
                if backoff_ns > 0 {
                    eprintln!("snapshotter: recovered: block {} written", block.height);
                    notify::status("recovered; taking snapshots");
                }
                backoff_ns = 0;
                d.publish(&block);
                false
            }
            Err(e) => {
                d.fault(&e);
                backoff_ns = if backoff_ns == 0 { interval_ns } else { backoff_ns.saturating_mul(2).min(cap_ns) };
                notify::status(&format!("degraded: {e}"));
                true
            }
        };
        d.m.write(failed);
        let missed = schedule.advance(clock::monotonic_ns(), backoff_ns);
        d.m.missed += missed;
    }
    d.m.write(true);
    notify::stopping();
    eprintln!("snapshotter: stopped at height {}", d.m.height.map(|h| h.to_string()).unwrap_or_else(|| "none".into()));
}

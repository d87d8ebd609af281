//! The snapshotter daemon: recovery, then one tick per interval on absolute
//! monotonic deadlines. A tick takes a read-only snapshot of the source,
//! appends its block and marks expired blocks pruned in one SQLite
//! transaction, then deletes the expired snapshots. Any fault is logged,
//! counted, and retried with a capped back-off after reconciling the
//! snapshot directory with the chain again; the daemon keeps running.

mod crash;
mod fault;
mod instance;
mod metrics;
mod publish;
mod settings;
mod tick;

use std::time::Duration;

pub use fault::TickError;
pub use instance::{Instance, InstanceError};
pub use settings::Settings;
pub use tick::Daemon;

use super::clock::{self, Schedule};
use crate::runtime::backoff::Backoff;
use crate::runtime::notify;
use crate::runtime::signals::Stop;

/// The program name in log lines.
const PROGRAM: &str = "ghostbridge-snapshotter";

/// The name of the metrics file in the textfile collector folder (`<name>.prom`).
pub const METRICS_NAME: &str = "ghostbridge_snapshotter";
/// Upper bounds of the snapshot latency histogram, seconds.
pub(crate) const LATENCY_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// The longest back-off between attempts after a fault.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Free space required on the snapshot and database filesystems before a tick
/// touches either (see [`btrfs::require_space`]).
pub const MIN_FREE_BYTES: u64 = 16 * 1024 * 1024;
/// How many of the newest blocks are recomputed at start-up (one day at 1 Hz);
/// `verify` and D-Bus `Verify()` check the whole chain.
pub const STARTUP_VERIFY_BLOCKS: u64 = 86_400;

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Sleeps until `deadline_ns` (monotonic), pinging the watchdog on the way.
fn wait(stop: &Stop, deadline_ns: i64, watchdog: Option<Duration>, last_ping: &mut i64) {
    loop {
        if stop.requested() {
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

/// Runs the daemon until SIGTERM or SIGINT. Fails only when another
/// snapshotter already runs on the same database.
pub fn run(s: Settings, stop: &Stop) -> Result<(), InstanceError> {
    let _instance = Instance::acquire(&s.database)?;
    crash::install_sigbus_restart();
    let interval_ns = ns(s.interval).max(1);
    let mut d = Daemon::new(s);
    crate::log!(
        Info,
        PROGRAM,
        "source {}, snapshots in {}, chain {}, every {:?}, keeping {:?}",
        d.s.source.display(),
        d.s.snapshot_dir.display(),
        d.s.database.display(),
        d.s.interval,
        d.s.retention
    );
    // Recovery before READY: a failure here is a fault like any other, retried by the loop.
    let started_degraded = match d.prepare() {
        Ok(_) => {
            notify::status("recovered; taking snapshots");
            false
        }
        Err(e) => {
            d.fault(&e);
            notify::status(&format!("degraded: {e}"));
            true
        }
    };
    d.connect_bus();
    d.m.write(true);
    notify::ready();

    let watchdog = notify::watchdog_interval();
    let mut last_ping = clock::monotonic_ns();
    // After a fault the next attempt waits one interval, doubling up to the cap.
    let cap = BACKOFF_CAP.min(d.s.interval.saturating_mul(32)).max(d.s.interval);
    let mut backoff = Backoff::new(d.s.interval, cap);
    let mut degraded = started_degraded;
    let mut schedule = Schedule::new(clock::monotonic_ns(), interval_ns);
    loop {
        wait(stop, schedule.deadline(), watchdog, &mut last_ping);
        if stop.requested() {
            break;
        }
        d.m.ticks += 1;
        let (state_changed, backoff_ns) = match d.tick() {
            Ok(block) => {
                let recovered = std::mem::replace(&mut degraded, false);
                if recovered {
                    crate::log!(Info, PROGRAM, "recovered: block {} written", block.height);
                    notify::status("recovered; taking snapshots");
                }
                backoff.reset();
                d.publish(&block);
                (recovered, 0)
            }
            Err(e) => {
                d.fault(&e);
                degraded = true;
                // A full disk is checked again every interval (a statfs, and a
                // commit at most once a second): snapshots resume as soon as
                // space returns, not after a back-off of up to 30 s.
                let delay = if e.kind() == "disk_full" { 0 } else { ns(backoff.next_delay()) };
                notify::status(&format!("degraded: {e}"));
                (true, delay)
            }
        };
        d.m.write(state_changed);
        let missed = schedule.advance(clock::monotonic_ns(), backoff_ns);
        d.m.missed += missed;
    }
    d.m.write(true);
    notify::stopping();
    crate::log!(
        Info,
        PROGRAM,
        "stopped at height {}",
        d.m.height.map(|h| h.to_string()).unwrap_or_else(|| "none".into())
    );
    Ok(())
}

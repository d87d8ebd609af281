//! `watch`: apply, then keep the database converged. An OVSDB `monitor` on the
//! tables the reconciler owns wakes it on any change; a periodic re-check also
//! catches what OVSDB does not see (flows, offloads, an ovs-vswitchd restart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::apply::{self, Options, Report};
use super::config::Config;
use super::error::Result;
use super::jsonrpc::{Connection, DbAddr};
use super::schema::DATABASE;

/// Opens a monitor connection whose `update` notifications signal drift.
pub fn monitor(addr: &DbAddr) -> Result<Connection> {
    let mut conn = apply::connect(addr)?;
    let select = json!({"initial": false, "insert": true, "delete": true, "modify": true});
    let requests = json!({
        "Open_vSwitch": {"columns": ["bridges"], "select": select},
        "Bridge": {"columns": ["name", "ports", "datapath_type", "external_ids"], "select": select},
        "Port": {"columns": ["name", "interfaces", "external_ids"], "select": select},
        "Interface": {"columns": ["name", "type"], "select": select},
    });
    conn.call("monitor", json!([DATABASE, "ghostbridge-watch", requests]))?;
    Ok(conn)
}

/// Waits until the database changes or `period` passes. Returns `true` on a change.
/// Changes arriving in a burst (`settle`) are coalesced into one wake-up.
pub fn wait_for_change(conn: &mut Connection, period: Duration, settle: Duration) -> Result<bool> {
    let Some(_) = conn.next_notification(period)? else {
        return Ok(false);
    };
    let until = super::jsonrpc::deadline_after(settle);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if conn.next_notification(left)?.is_none() {
            break;
        }
    }
    Ok(true)
}

/// Runs until `stop` is set: `on_result` is told the outcome and duration of every apply (log it,
/// notify systemd). Connection failures are retried with backoff and reported through
/// `on_result`. `stop` is checked at least every `period`.
pub fn run(
    addr: &DbAddr,
    config: &Config,
    opts: &Options,
    period: Duration,
    stop: &AtomicBool,
    mut on_result: impl FnMut(&Result<Report>, Duration),
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let mut mon = match monitor(addr) {
            Ok(m) => m,
            Err(e) => {
                on_result(&Err(e), Duration::ZERO);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Subscribe first, then apply: nothing that happens in between is missed.
        let started = Instant::now();
        let r = apply::apply(addr, config, opts);
        on_result(&r, started.elapsed());
        while !stop.load(Ordering::Relaxed) {
            match wait_for_change(&mut mon, period, Duration::from_millis(10)) {
                Ok(false) if stop.load(Ordering::Relaxed) => return,
                Ok(_) => {
                    let started = Instant::now();
                    let r = apply::apply(addr, config, opts);
                    if r.is_ok() {
                        backoff = Duration::from_millis(100);
                    }
                    on_result(&r, started.elapsed());
                }
                Err(e) => {
                    on_result(&Err(e), Duration::ZERO);
                    break;
                }
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

//! Prometheus metrics of the reconciler, written to node exporter's textfile directory.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::runtime::metrics::{Family, TextfileWriter};

use super::apply::Report;
use super::error::{OvsError, Result};

/// Running totals across applies (one process, e.g. `watch`).
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub applies: u64,
    pub failures: u64,
    pub changes: u64,
    pub transactions: u64,
    pub flow_replacements: u64,
}

impl Totals {
    pub fn record(&mut self, result: std::result::Result<&Report, ()>) {
        self.applies += 1;
        match result {
            Ok(r) => {
                self.changes += r.changes.len() as u64;
                self.transactions += u64::from(r.transactions);
                self.flow_replacements += r.flows_replaced.len() as u64;
            }
            Err(()) => self.failures += 1,
        }
    }
}

/// Writes `ghostbridge_ovs.prom` into `dir`.
pub fn write(dir: &Path, totals: &Totals, last_duration: Duration, last_ok: bool) -> Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let families = vec![
        Family::counter("ghostbridge_ovs_applies_total", "Reconcile runs.", totals.applies as f64),
        Family::counter("ghostbridge_ovs_apply_failures_total", "Reconcile runs that failed.", totals.failures as f64),
        Family::counter(
            "ghostbridge_ovs_changes_total",
            "Bridge/port changes written to OVSDB.",
            totals.changes as f64,
        ),
        Family::counter(
            "ghostbridge_ovs_transactions_total",
            "Write transactions committed to OVSDB.",
            totals.transactions as f64,
        ),
        Family::counter(
            "ghostbridge_ovs_flow_replacements_total",
            "Bridges whose flows were replaced.",
            totals.flow_replacements as f64,
        ),
        Family::gauge(
            "ghostbridge_ovs_last_apply_seconds",
            "Duration of the last reconcile run.",
            last_duration.as_secs_f64(),
        ),
        Family::gauge(
            "ghostbridge_ovs_last_apply_success",
            "1 if the last reconcile run succeeded.",
            if last_ok { 1.0 } else { 0.0 },
        ),
        Family::gauge("ghostbridge_ovs_last_apply_timestamp_seconds", "Unix time of the last reconcile run.", now),
    ];
    let w = TextfileWriter::new(dir, "ghostbridge_ovs");
    w.write(&families).map_err(|source| OvsError::Metrics { path: w.path().to_path_buf(), source })
}

//! The sync's counters and gauges, rendered for node exporter's textfile
//! collector as `ghostbridge_qdrant_*`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::runtime::metrics::{Family, Histogram, TextfileWriter};

/// Request latency buckets, seconds.
const LATENCY_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone)]
pub struct SyncStats {
    /// Points acknowledged by Qdrant since start.
    pub synced_total: u64,
    /// Points whose pruned flag was sent since start.
    pub pruned_updates_total: u64,
    /// Failed requests since start.
    pub errors_total: u64,
    /// Blocks not yet in Qdrant.
    pub pending: i64,
    /// Age of the oldest block not yet in Qdrant; 0 when caught up.
    pub lag_seconds: f64,
    /// The cursor: highest height acknowledged.
    pub cursor: i64,
    /// Whether the last attempt reached Qdrant.
    pub up: bool,
    /// When the current run of successful requests began (`None` after a
    /// failed request): the end of an outage.
    pub up_since: Option<Instant>,
    pub latency: Histogram,
}

impl Default for SyncStats {
    fn default() -> Self {
        SyncStats {
            synced_total: 0,
            pruned_updates_total: 0,
            errors_total: 0,
            pending: 0,
            lag_seconds: 0.0,
            cursor: -1,
            up: false,
            up_since: None,
            latency: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

impl SyncStats {
    pub fn observe_request(&mut self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    pub fn families(&self) -> Vec<Family> {
        vec![
            Family::gauge(
                "ghostbridge_qdrant_pending_blocks",
                "Blocks in the chain not yet acknowledged by Qdrant.",
                self.pending as f64,
            ),
            Family::counter(
                "ghostbridge_qdrant_synced_blocks_total",
                "Blocks acknowledged by Qdrant since the sync started.",
                self.synced_total as f64,
            ),
            Family::counter(
                "ghostbridge_qdrant_pruned_updates_total",
                "Pruned flags sent to Qdrant since the sync started.",
                self.pruned_updates_total as f64,
            ),
            Family::gauge(
                "ghostbridge_qdrant_cursor_height",
                "Highest block height acknowledged by Qdrant.",
                self.cursor as f64,
            ),
            Family::gauge(
                "ghostbridge_qdrant_lag_seconds",
                "Age of the oldest block not yet in Qdrant (0 when caught up).",
                self.lag_seconds,
            ),
            Family::counter(
                "ghostbridge_qdrant_errors_total",
                "Failed requests to Qdrant since the sync started.",
                self.errors_total as f64,
            ),
            Family::gauge(
                "ghostbridge_qdrant_up",
                "1 when the last attempt reached Qdrant.",
                if self.up { 1.0 } else { 0.0 },
            ),
            self.latency.family("ghostbridge_qdrant_request_duration_seconds", "Duration of requests to Qdrant."),
        ]
    }

    /// Writes `<dir>/ghostbridge_qdrant_sync.prom`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        TextfileWriter::new(dir, "ghostbridge_qdrant_sync").write(&self.families())
    }
}

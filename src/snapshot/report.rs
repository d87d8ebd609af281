//! What `verify`, `list` and `status` print: read-only views of the chain
//! database and the snapshot directory.

use std::fmt::Write as _;
use std::path::Path;

use super::chain::Verdict;
use super::clock;
use super::config::Config;
use super::daemon::METRICS_NAME;
use super::recover::list_snapshots;
use super::store::{Store, StoreError};

/// Recomputes the chain in `db`, with each block's MAC when `key` is given.
pub fn verify(db: &Path, key: Option<&[u8]>) -> Result<Verdict, StoreError> {
    let store = Store::open_reader(db)?;
    match key {
        Some(key) => store.verify_sealed(key),
        None => store.verify(),
    }
}

/// Formats a CLOCK_REALTIME ns value as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// The newest `n` blocks as a table: height, time, snapshot, kept/pruned, hash.
pub fn list(db: &Path, n: u32) -> Result<String, StoreError> {
    let store = Store::open_reader(db)?;
    let mut out = String::new();
    let _ = writeln!(out, "{:>8}  {:<24}  {:<32}  {:<6}  hash", "height", "time (UTC)", "snapshot", "state");
    for b in store.recent(n)? {
        let state = if b.pruned_ns.is_some() { "pruned" } else { "kept" };
        let _ = writeln!(
            out,
            "{:>8}  {:<24}  {:<32}  {:<6}  {}",
            b.height,
            utc(b.time_ns),
            b.snapshot,
            state,
            hex::encode(b.hash)
        );
    }
    Ok(out)
}

/// Head, lag, snapshots on disk and the last fault recorded in the metrics file.
pub fn status(config: &Config) -> Result<String, StoreError> {
    let mut out = String::new();
    let store = Store::open_reader(&config.database)?;
    let (blocks, pruned) = store.counts()?;
    match store.head()? {
        Some(h) => {
            let lag = (clock::realtime_ns() - h.time_ns) as f64 / 1e9;
            let _ = writeln!(out, "head:      height {} at {} ({lag:.3}s ago)", h.height, utc(h.time_ns));
            let _ = writeln!(out, "head hash: {}", hex::encode(h.hash));
        }
        None => {
            let _ = writeln!(out, "head:      none (empty chain)");
        }
    }
    let _ = writeln!(out, "blocks:    {blocks} ({pruned} pruned, {} kept)", blocks - pruned);
    let mut foreign = Vec::new();
    match list_snapshots(&config.snapshot_dir, &mut foreign) {
        Ok(s) => {
            let _ = writeln!(out, "on disk:   {} snapshots in {}", s.len(), config.snapshot_dir.display());
        }
        Err(e) => {
            let _ = writeln!(out, "on disk:   unknown ({e})");
        }
    }
    let last_error = config
        .metrics_dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join(format!("{METRICS_NAME}.prom"))).ok())
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("ghostbridge_snapshotter_last_error_timestamp_seconds{"))
                .map(str::to_string)
        });
    let _ = writeln!(
        out,
        "last error: {}",
        last_error.as_deref().map(describe_error).unwrap_or_else(|| "none recorded".into())
    );
    Ok(out)
}

fn describe_error(line: &str) -> String {
    let (labels, value) = line.rsplit_once(' ').unwrap_or((line, "0"));
    let when = value.parse::<f64>().map(|s| utc((s * 1e9) as i64)).unwrap_or_default();
    let labels = labels.split_once('{').map(|(_, l)| l.trim_end_matches('}')).unwrap_or(labels);
    format!("{when} {labels}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_763_960_000_123_456_789), "2025-11-24T04:53:20.123Z");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}

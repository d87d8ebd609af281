//! Benchmark of the Qdrant sync (`cargo bench --bench qdrant_sync`).
//!
//! 1. Catch-up: a backlog of 3,600 and 86,400 blocks (an hour and a day at
//!    1 Hz), batches of 100, against a baseline that sends one request per
//!    block (the same program with `batch = 1`: one upsert and one cursor
//!    commit per block, as a cron-style script would).
//! 2. Steady state: a writer appends about one block per second (the period is
//!    1 s + 1/N s, so the inserts sweep every phase of the sync's tick) while
//!    `run` syncs with `interval = 1s`; lag = time from the block's insert to
//!    Qdrant's acknowledgement.
//!
//! The server is the Qdrant test double from `tests/qdrant_support` (HTTP on
//! 127.0.0.1, every request checked against Qdrant's OpenAPI description),
//! because no Qdrant server runs on the development machine. With
//! `QDRANT_URL` set, the double forwards to that real Qdrant instead.
//! `GB_BENCH_QUICK=1` skips the 86,400-block baseline; `GB_BENCH_STEADY_SECS`
//! sets the steady-state duration (default 30).

#[path = "../tests/qdrant_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ghostbridge::vectors::{FeatureHashEmbedder, QdrantClient, SyncConfig, Syncer};
use support::{Chain, Probe, QdrantDouble, config};

fn syncer(cfg: &SyncConfig) -> Syncer {
    let client = QdrantClient::new(&cfg.url, None, cfg.request_timeout.as_duration());
    Syncer::new(cfg.clone(), client, Box::new(FeatureHashEmbedder::new(cfg.dimension))).unwrap()
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// Seconds to send a backlog of `n` blocks with the given batch size.
fn catch_up(double: &QdrantDouble, n: i64, batch: usize) -> f64 {
    let mut probe = Probe::new(double);
    let mut chain = Chain::new();
    chain.append(n);
    let mut cfg = config(&chain, double, &format!("bench-{n}-{batch}"));
    cfg.batch = batch;
    cfg.request_timeout = "60s".parse().unwrap();
    probe.owns(&cfg.collection);
    let mut s = syncer(&cfg);
    s.ensure_collection().unwrap();
    let start = Instant::now();
    let report = s.sync_pending().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.upserted, n as u64);
    assert_eq!(probe.count(&cfg.collection), n as u64, "every block arrived once");
    assert!(double.invalid().is_empty(), "{:?}", double.invalid());
    probe.delete(&cfg.collection);
    secs
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let quick = std::env::var("GB_BENCH_QUICK").is_ok_and(|v| v == "1");
    let steady_secs: i64 = std::env::var("GB_BENCH_STEADY_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let double = QdrantDouble::start();
    let server = if double.is_proxy() { "real Qdrant (through the checking proxy)" } else { "Qdrant test double" };
    println!("server: {server} at {}; dimension 384, Cosine, wait=true", double.url());
    println!();
    println!("| backlog | mode | requests | time | blocks/s |");
    println!("|---:|---|---:|---:|---:|");
    for n in [3_600i64, 86_400] {
        for (batch, label) in [(100usize, "batch 100"), (1, "baseline: 1 request per block")] {
            if quick && n == 86_400 && batch == 1 {
                continue;
            }
            let secs = catch_up(&double, n, batch);
            let requests = (n as usize).div_ceil(batch);
            println!("| {n} | {label} | {requests} | {secs:.2} s | {:.0} |", n as f64 / secs);
        }
    }

    // Steady state at 1 Hz.
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(1);
    let mut cfg = config(&chain, &double, "bench-steady");
    cfg.interval = "1s".parse().unwrap();
    probe.owns(&cfg.collection);
    let mut s = syncer(&cfg);
    s.once().unwrap();
    let acks: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let sink = acks.clone();
    s.set_ack_hook(Box::new(move |height| sink.lock().unwrap().push((height, now_ns()))));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || s.run(&stop).unwrap())
    };
    // One block per period; the period is 1 s + 1/N s so that over N blocks
    // the inserts sweep every phase of the sync's 1 s tick (worst case included).
    let period_ms = 1000 + 1000 / steady_secs as u64;
    let mut inserted: Vec<(i64, i64)> = Vec::new();
    let start = Instant::now();
    for k in 1..=steady_secs {
        let deadline = start + Duration::from_millis(k as u64 * period_ms);
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        let t = now_ns();
        let h = chain.len();
        chain.append_at(1, |_| t);
        inserted.push((h, t));
    }
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    let acks = acks.lock().unwrap().clone();
    let mut lags: Vec<f64> = inserted
        .iter()
        .map(|(h, t)| {
            let (_, acked) = acks.iter().find(|(through, _)| through >= h).expect("every block acknowledged");
            (acked - t) as f64 / 1e9
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let mean = lags.iter().sum::<f64>() / lags.len() as f64;
    println!();
    println!(
        "| steady state: {steady_secs} blocks, one every {period_ms} ms, interval 1s | mean | p50 | p95 | p99 | max |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| lag insert -> acknowledged | {mean:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
        percentile(&lags, 0.5),
        percentile(&lags, 0.95),
        percentile(&lags, 0.99),
        lags[lags.len() - 1]
    );
    assert_eq!(probe.count(&cfg.collection), steady_secs as u64 + 1);
    assert!(double.invalid().is_empty(), "{:?}", double.invalid());
}

//! Chain-length benchmark: the database work of one tick (read the head,
//! append a block, mark the expired ones pruned, all in the tick's
//! transaction) on chains of 10 k, 100 k and 1 M blocks (10 M with
//! `GB_BENCH_LONG=1`), to show that a tick costs the same after a day or
//! after a year at 1 Hz. No root needed: the BTRFS part of a tick does not
//! depend on the chain's length; the database part is what used to grow.
//!
//! The chains are written with the project's own block type (`Block::new`
//! computes every hash) in one transaction per 100 k rows; all but the newest
//! 60 blocks are already pruned, as with `retention = "1m"`. Then 300 ticks
//! are timed, each appending one block and pruning the oldest live one.
//!
//! `cargo bench --bench chain_length`

use std::time::{Duration, Instant};

use ghostbridge::snapshot::chain::{Block, GENESIS_PREV};
use ghostbridge::snapshot::retention::Policy;
use ghostbridge::snapshot::store::Store;

const LIVE: u64 = 60;
const TICKS: u64 = 300;
const SECOND: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SECOND;

fn block(h: u64, prev: [u8; 32]) -> Block {
    let t = T0 + h as i64 * SECOND;
    Block::new(h, prev, t, format!("{h:012}-{t}"), [(h % 251) as u8; 16], h + 7)
}

/// A chain of `n` blocks, the newest `LIVE` of them unpruned. Returns the head's hash.
fn build(path: &std::path::Path, n: u64) -> [u8; 32] {
    drop(Store::open_writer(path, Duration::from_secs(5)).unwrap());
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let mut prev = GENESIS_PREV;
    let mut h = 0;
    while h < n {
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO blocks (height, time_ns, snapshot, subvol_uuid, generation, prev_hash, hash, pruned_ns, steady_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?2)",
                )
                .unwrap();
            for _ in 0..100_000.min(n - h) {
                let b = block(h, prev);
                let pruned = (h + LIVE < n).then_some(b.time_ns + LIVE as i64 * SECOND);
                let uuid = uuid::Uuid::from_bytes(b.subvol_uuid).hyphenated().to_string();
                st.execute(rusqlite::params![
                    h as i64,
                    b.time_ns,
                    b.snapshot,
                    uuid,
                    b.generation as i64,
                    &b.prev_hash[..],
                    &b.hash[..],
                    pruned
                ])
                .unwrap();
                prev = b.hash;
                h += 1;
            }
        }
        tx.commit().unwrap();
    }
    prev
}

fn main() {
    let long = std::env::var("GB_BENCH_LONG").is_ok_and(|v| v == "1");
    let mut sizes = vec![10_000u64, 100_000, 1_000_000];
    if long {
        sizes.push(10_000_000);
    }
    let dir = tempfile::tempdir().unwrap();
    println!("| chain length | build | tick (head + append + prune): mean | p50 | p99 | max |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let path = dir.path().join(format!("chain-{n}.db"));
        let started = Instant::now();
        let mut prev = build(&path, n);
        let built = started.elapsed();
        let mut store = Store::open_writer(&path, Duration::from_secs(5)).unwrap();
        let mut times = Vec::new();
        for h in n..n + TICKS {
            let b = block(h, prev);
            let t = Instant::now();
            let head = store.head().unwrap().expect("a head");
            assert_eq!(head.height + 1, h);
            let policy = Policy::new(Duration::from_secs(LIVE), &[]);
            let marked = store.append(&b, b.time_ns, Some(&policy), None).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(marked.len(), 1, "one block leaves retention per tick");
            prev = b.hash;
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {n} | {:.1} s | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            built.as_secs_f64(),
            times.iter().sum::<f64>() / times.len() as f64,
            pct(0.5),
            pct(0.99),
            times[times.len() - 1]
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}

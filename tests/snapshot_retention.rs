//! Retention is exact to one interval: a snapshot is deleted at the first tick
//! at which it is at least `retention` old, never earlier, and its block stays,
//! marked pruned at that tick's time.

mod snapshot_support;

use std::path::Path;
use std::time::Duration;

use snapshot_support::*;

#[test]
#[ignore = "needs root: retention on a loop-mounted BTRFS image"]
fn prunes_at_the_first_tick_past_retention() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let retention_ns = 1_000_000_000i64;
    let metrics = img.path("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let d = Daemon::run(&img, &db, "100ms", "1s", &["--no-dbus", "--metrics-dir", metrics.to_str().unwrap()]);
    d.wait(Duration::from_secs(30), "30 blocks", || block_count(&db) >= 30);
    d.stop();

    let blocks = blocks(&db);
    let by_time: std::collections::HashMap<i64, usize> = blocks.iter().enumerate().map(|(i, b)| (b.1, i)).collect();
    let head_time = blocks.last().unwrap().1;
    let mut pruned = 0;
    for b in &blocks {
        match b.3 {
            Some(pruned_ns) => {
                pruned += 1;
                // pruned by the tick whose block has time == pruned_ns ...
                let &c = by_time
                    .get(&pruned_ns)
                    .unwrap_or_else(|| panic!("block {} pruned at {pruned_ns}, which is no tick", b.0));
                let age = blocks[c].1 - b.1;
                assert!(age >= retention_ns, "block {} pruned {age} ns after it was taken, before retention", b.0);
                // ... and not later than needed: one tick earlier it was still young.
                let age_before = blocks[c - 1].1 - b.1;
                assert!(age_before < retention_ns, "block {} should have been pruned by block {} already", b.0, c - 1);
            }
            None => assert!(
                head_time - b.1 < retention_ns,
                "block {} is {} ns old at the head and still kept",
                b.0,
                head_time - b.1
            ),
        }
    }
    assert!(pruned >= 15, "{pruned} pruned");
    assert_eq!(on_disk(&img.snapshots()), unpruned(&db));
    let prom = std::fs::read_to_string(metrics.join("ghostbridge_snapshotter.prom")).unwrap();
    assert!(prom.contains(&format!("ghostbridge_snapshotter_pruned_total {pruned}\n")), "{prom}");
    assert!(prom.contains(&format!("ghostbridge_snapshotter_height {}\n", blocks.len() - 1)), "{prom}");
    assert!(prom.contains("ghostbridge_snapshotter_snapshot_seconds_count"), "{prom}");
}

/// libfaketime (Debian's `faketime`): moves CLOCK_REALTIME for the daemon
/// only, by the offset written in a file re-read on every call, and leaves
/// CLOCK_MONOTONIC and CLOCK_BOOTTIME alone. The machine's clock is never touched.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[test]
#[ignore = "needs root: retention on a loop-mounted BTRFS image"]
fn wall_clock_steps_neither_empty_nor_overfill_the_snapshot_folder() {
    require_root();
    assert!(Path::new(FAKETIME_LIB).exists(), "{FAKETIME_LIB} missing: install faketime (bash .ci/deps)");
    let img = BtrfsImage::new(300);
    let db = img.db();
    let offset = img.path("wall-offset");
    let step = |to: &str| std::fs::write(&offset, format!("{to}\n")).unwrap();
    step("+0");
    let metrics = img.path("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let envs = [
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let live = || unpruned(&db).len();
    let extra = ["--no-dbus", "--metrics-dir", metrics.to_str().unwrap()];
    // 100 ms interval, 2 s retention: about 20 live snapshots.
    let d = Daemon::run_env(&img, &db, "100ms", "2s", &extra, &envs);
    d.wait(Duration::from_secs(30), "40 blocks", || block_count(&db) >= 40);
    let before = live();
    assert!((18..=22).contains(&before), "{before} live before the step");

    // +1 h: ages on the wall clock would all exceed retention at once.
    step("+1h");
    let n = block_count(&db);
    d.wait(Duration::from_secs(30), "5 more blocks", || block_count(&db) >= n + 5);
    let after_forward = live();
    assert!(after_forward >= 15, "a +1 h step left {after_forward} of {before} live snapshots");

    // Back by 1 h: blocks stamped an hour ahead must still leave on time.
    step("+0");
    let n = block_count(&db);
    d.wait(Duration::from_secs(30), "40 more blocks", || block_count(&db) >= n + 40);
    let after_back = live();
    assert!(after_back <= 23, "a -1 h step let {after_back} snapshots pile up (bound 20)");
    d.stop();

    // Stepped again while the daemon is down, within the same boot: the
    // steady clock continues from its anchor, recovery deletes nothing extra.
    step("+1h");
    let kept = live();
    let d = Daemon::run_env(&img, &db, "100ms", "2s", &extra, &envs);
    let n = block_count(&db);
    d.wait(Duration::from_secs(30), "a block after the restart", || block_count(&db) > n);
    assert!(live() + 3 >= kept, "a restart under a +1 h wall clock left {} of {kept}", live());
    d.stop();
    assert_eq!(on_disk(&img.snapshots()), unpruned(&db));

    let log = std::fs::read_to_string(img.path("daemon.log")).unwrap();
    assert!(log.contains("the wall clock was stepped by +3600."), "{log}");
    assert!(log.contains("the wall clock was stepped by -3600."), "{log}");
    let prom = std::fs::read_to_string(metrics.join("ghostbridge_snapshotter.prom")).unwrap();
    assert!(prom.contains("ghostbridge_snapshotter_wall_clock_steps_total 0\n"), "restart resets the counter: {prom}");
    let (code, out) = verify(&db);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the recorded time goes backwards at 1 block(s)"), "{out}");
}

#[test]
#[ignore = "needs root: tiered retention on a loop-mounted BTRFS image"]
fn tiers_keep_exactly_what_the_policy_says_whatever_the_runs() {
    use ghostbridge::snapshot::retention::{Policy, Tier};
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let cfg = img.path("snapshotter.json");
    let tiers = serde_json::json!([{"every": "500ms", "keep": "3s"}, {"every": "1s", "keep": "6s"}]);
    std::fs::write(
        &cfg,
        serde_json::json!({"source": img.source(), "snapshot_dir": img.snapshots(), "database": db,
            "interval": "100ms", "retention": "400ms", "dbus": false, "tiers": tiers})
        .to_string(),
    )
    .unwrap();
    // Two runs with a pause between them: what is kept must not depend on it.
    for blocks in [40, 80] {
        let d = Daemon::spawn(&["run", "--config", cfg.to_str().unwrap()], &img.path("daemon.log"), &[]);
        d.wait(Duration::from_secs(30), "blocks", || block_count(&db) >= blocks);
        d.stop();
        std::thread::sleep(Duration::from_millis(700));
    }
    let rows: Vec<(u64, i64, bool)> = conn(&db)
        .prepare("SELECT height, steady_ns, pruned_ns IS NOT NULL FROM blocks ORDER BY height")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let tiers: Vec<Tier> = serde_json::from_value(tiers).unwrap();
    let policy = Policy::new(Duration::from_millis(400), &tiers);
    // The pure function, applied once to every block at the last tick's time.
    let head_steady = rows.last().unwrap().1;
    let all: Vec<(u64, i64)> = rows.iter().map(|(h, t, _)| (*h, *t)).collect();
    let expected_gone = policy.expired(head_steady, &all);
    let gone: Vec<u64> = rows.iter().filter(|r| r.2).map(|r| r.0).collect();
    assert_eq!(gone, expected_gone, "the daemon pruned otherwise than the policy says");
    let kept = rows.len() - gone.len();
    assert!(kept > 4 + 1 && kept as u64 <= policy.max_live(100_000_000), "{kept} kept");
    assert!(kept < rows.len() / 2, "the tiers thinned nothing: {kept} of {}", rows.len());
    assert_eq!(on_disk(&img.snapshots()), unpruned(&db));
}

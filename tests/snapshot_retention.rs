//! Retention is exact to one interval: a snapshot is deleted at the first tick
//! at which it is at least `retention` old, never earlier, and its block stays,
//! marked pruned at that tick's time.

mod snapshot_support;

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

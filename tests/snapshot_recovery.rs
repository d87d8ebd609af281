//! Recovery, branch by branch, on states a crash (or an operator) can leave:
//! an unrecorded snapshot at the next height (adopted), an unrecorded snapshot
//! that cannot be the next block (deleted), a snapshot whose block is already
//! marked pruned (deleted), a block whose snapshot vanished (marked, with a
//! warning), and a subvolume that is not the snapshotter's (left alone).

mod snapshot_support;

use std::time::Duration;

use snapshot_support::*;

#[test]
#[ignore = "needs root: recovery on a loop-mounted BTRFS image"]
fn reconciles_every_kind_of_disagreement() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let d = Daemon::run(&img, &db, "50ms", "1h", &["--no-dbus"]);
    d.wait(Duration::from_secs(20), "10 blocks", || block_count(&db) >= 10);
    d.stop();

    let blocks = blocks(&db);
    let head = blocks.last().unwrap().clone();
    let snaps = img.snapshots();
    let src = img.source();
    // The next height, taken but never recorded (crash between snapshot and insert).
    let next = format!("{:012}-{}", head.0 + 1, head.1 + 1_000_000);
    sh_ok(&format!("btrfs subvolume snapshot -r {} {}/{next} >/dev/null", src.display(), snaps.display()));
    // Looks like ours but is no block: read-only, at a height the chain already
    // has. (A height beyond the next one would mean another chain: recovery
    // then deletes nothing and stops, see tests/snapshot_holds.rs.)
    let stray = "000000000005-1";
    sh_ok(&format!("btrfs subvolume snapshot -r {} {}/{stray} >/dev/null", src.display(), snaps.display()));
    // Named like ours but writable: the snapshotter never makes those, so it is
    // someone's work and stays, even at the next height.
    let writable = format!("{:012}-{}", head.0 + 1, head.1 + 2_000_000);
    sh_ok(&format!("btrfs subvolume snapshot {} {}/{writable} >/dev/null", src.display(), snaps.display()));
    // Block 2 marked pruned but its snapshot still there (crash between commit and delete).
    conn(&db).execute("UPDATE blocks SET pruned_ns = ?1 WHERE height = 2", [head.1]).unwrap();
    // Block 3's snapshot deleted behind the snapshotter's back.
    sh_ok(&format!("btrfs subvolume delete {}/{} >/dev/null", snaps.display(), blocks[3].2));
    // Not ours at all.
    sh_ok(&format!("btrfs subvolume create {}/manual >/dev/null", snaps.display()));

    let d = Daemon::run(&img, &db, "1h", "1h", &["--no-dbus"]);
    d.wait(Duration::from_secs(20), "recovery", || d.log_text().matches("recovery done").count() >= 2);
    d.stop();
    let log = std::fs::read_to_string(img.path("daemon.log")).unwrap();

    assert!(log.contains(&format!("adopted {next} as block {}", head.0 + 1)), "{log}");
    assert!(log.contains(&format!("deleted {stray}: no block records it and it is not the next block")), "{log}");
    assert!(log.contains(&format!("{writable} alone: it is named like a snapshot but writable")), "{log}");
    assert!(log.contains(&format!("deleted {}: its block 2 is marked pruned", blocks[2].2)), "{log}");
    assert!(log.contains(&format!("block 3 claims snapshot {}", blocks[3].2)), "{log}");
    assert!(log.contains("leaving") && log.contains("manual"), "{log}");

    let (code, text) = verify(&db);
    assert_eq!(code, 0, "{text}");
    let after = snapshot_support::blocks(&db);
    // The adopted block, then possibly the first tick of the restarted daemon.
    assert_eq!(after[blocks.len()].2, next);
    assert!(after[3].3.is_some(), "block 3 must be marked pruned");
    let adopted_uuid: String =
        conn(&db).query_row("SELECT subvol_uuid FROM blocks WHERE snapshot = ?1", [&next], |r| r.get(0)).unwrap();
    let show = sh_ok(&format!("btrfs subvolume show {}/{next}", snaps.display()));
    let uuid = show.lines().find_map(|l| l.trim().strip_prefix("UUID:")).map(str::trim);
    assert_eq!(uuid, Some(adopted_uuid.as_str()), "{show}");
    let mut expected = unpruned(&db);
    expected.insert("manual".to_string());
    expected.insert(writable.clone());
    assert_eq!(on_disk(&snaps), expected);
}

//! The daemon holds its database: one instance per chain; a database removed,
//! replaced by an older copy, or with its head row deleted while the daemon
//! runs never receives a re-minted height, and recovery deletes no snapshot
//! of a chain the database does not know.

mod snapshot_support;

use std::time::Duration;

use snapshot_support::*;

fn errors_logged(d: &Daemon, kind: &str) -> usize {
    d.log_text().matches(&format!("tick failed [{kind}]")).count()
}

#[test]
#[ignore = "needs root: second instance on a loop-mounted BTRFS image"]
fn a_second_instance_on_the_same_chain_stops_at_once() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let mut first = Daemon::run(&img, &db, "100ms", "5s", &["--no-dbus"]);
    first.wait(Duration::from_secs(15), "blocks", || block_count(&db) >= 3);
    let log = img.path("second.log");
    let mut second = Daemon::spawn(
        &[
            "run",
            "--source",
            img.source().to_str().unwrap(),
            "--snapshot-dir",
            img.snapshots().to_str().unwrap(),
            "--database",
            db.to_str().unwrap(),
            "--no-dbus",
        ],
        &log,
        &[],
    );
    let status = second.child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("another ghostbridge-snapshotter is already running on the chain in"), "{text}");
    assert!(first.alive());
    first.stop();
    assert_eq!(verify(&db).0, 0);
}

#[test]
#[ignore = "needs root: database removed under the daemon, loop-mounted BTRFS image"]
fn a_removed_database_is_noticed_and_no_snapshot_is_lost() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let mut d = Daemon::run(&img, &db, "100ms", "30s", &["--no-dbus"]);
    d.wait(Duration::from_secs(15), "blocks", || block_count(&db) >= 5);
    let before = on_disk(&img.snapshots());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    d.wait(Duration::from_secs(15), "the removal noticed", || errors_logged(&d, "db_replaced") >= 1);
    d.wait(Duration::from_secs(15), "recovery refusing the empty chain", || errors_logged(&d, "unknown_chain") >= 1);
    assert!(d.alive(), "{}", d.log_text());
    // Every snapshot taken before the removal is still there: nothing was deleted.
    let after = on_disk(&img.snapshots());
    assert!(before.is_subset(&after), "deleted: {:?}\n{}", before.difference(&after), d.log_text());
    assert!(d.log_text().contains("Nothing was deleted"), "{}", d.log_text());
    d.stop();
}

#[test]
#[ignore = "needs root: database replaced by an older copy, loop-mounted BTRFS image"]
fn an_older_copy_of_the_database_does_not_fork_the_chain() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let d = Daemon::run(&img, &db, "100ms", "30s", &["--no-dbus"]);
    d.wait(Duration::from_secs(15), "blocks", || block_count(&db) >= 5);
    let copy = img.path("old.db");
    conn(&db).execute_batch(&format!("VACUUM INTO '{}'", copy.display())).unwrap();
    d.wait(Duration::from_secs(15), "more blocks", || block_count(&db) >= 12);
    // Restored as a backup is: the file, without the running chain's WAL.
    std::fs::rename(&copy, &db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    d.wait(Duration::from_secs(15), "the replacement noticed", || errors_logged(&d, "db_replaced") >= 1);
    d.wait(Duration::from_secs(15), "recovery refusing the older chain", || errors_logged(&d, "unknown_chain") >= 1);
    // The older copy did not grow: no height was minted a second time.
    let count = block_count(&db);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(block_count(&db), count, "{}", d.log_text());
    d.stop();
}

#[test]
#[ignore = "needs root: head row deleted under the daemon, loop-mounted BTRFS image"]
fn a_deleted_head_row_is_re_adopted_not_re_minted() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let d = Daemon::run(&img, &db, "200ms", "30s", &["--no-dbus"]);
    d.wait(Duration::from_secs(15), "blocks", || block_count(&db) >= 5);
    let c = conn(&db);
    let (height, hash): (i64, Vec<u8>) = c
        .query_row("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    c.execute("DELETE FROM blocks WHERE height = ?1", [height]).unwrap();
    drop(c);
    d.wait(Duration::from_secs(15), "the change noticed", || errors_logged(&d, "head_changed") >= 1);
    d.wait(Duration::from_secs(15), "more blocks", || block_count(&db) >= height + 3);
    // The height came back with its own snapshot and hash: recovery adopted it.
    let again: Vec<u8> =
        conn(&db).query_row("SELECT hash FROM blocks WHERE height = ?1", [height], |r| r.get(0)).unwrap();
    assert_eq!(again, hash, "height {height} was minted anew\n{}", d.log_text());
    d.stop();
    assert_eq!(verify(&db).0, 0);
}

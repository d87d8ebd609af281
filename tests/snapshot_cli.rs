//! The command line: config errors, exit codes, `list` and `status` output.

mod snapshot_support;

use std::process::Command;
use std::time::Duration;

use snapshot_support::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_are_clear_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "retension": "1m" }"#).unwrap();
    let (code, _, err) = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `retension`") && err.contains("expected one of"), "{err}");

    std::fs::write(&cfg, r#"{ "source": "/a", "snapshot_dir": "/b", "database": "/c", "interval": "1 s" }"#).unwrap();
    let (code, _, err) = run(&["status", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid duration \"1 s\""), "{err}");

    let (code, _, err) = run(&["run", "--source", "/a"]);
    assert_eq!(code, 2);
    assert!(err.contains("give --source, --snapshot-dir and --database"), "{err}");

    // A database that is not there is a runtime failure, not a usage error.
    let (code, _, err) = run(&["verify", "--db", dir.path().join("missing/chain.db").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot verify"), "{err}");
}

#[test]
fn example_config_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/snapshotter.json")).unwrap();
    let c =
        ghostbridge::snapshot::config::Config::parse(&text, std::path::Path::new("examples/snapshotter.json")).unwrap();
    assert_eq!(c.interval.to_string(), "1s");
    assert_eq!(c.retention.to_string(), "1m");
    assert!(c.dbus);
}

#[test]
#[ignore = "needs root: list/status on a loop-mounted BTRFS image"]
fn list_and_status_describe_a_running_chain() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let metrics = img.path("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let cfg = img.path("snapshotter.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "source": img.source(), "snapshot_dir": img.snapshots(), "database": db,
            "interval": "50ms", "retention": "500ms", "metrics_dir": metrics, "dbus": false
        })
        .to_string(),
    )
    .unwrap();
    let d = Daemon::spawn(&["run", "--config", cfg.to_str().unwrap()], &img.path("daemon.log"), &[]);
    d.wait(Duration::from_secs(20), "20 blocks", || block_count(&db) >= 20);
    d.stop();

    let (code, out, err) = run(&["list", "--db", db.to_str().unwrap(), "-n", "15"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 15, "{out}");
    assert!(rows.iter().any(|r| r.contains(" kept ")) && rows.iter().any(|r| r.contains(" pruned ")), "{out}");
    let head: String = conn(&db)
        .query_row("SELECT lower(hex(hash)) FROM blocks ORDER BY height DESC LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(rows[0].ends_with(&head), "{out}");

    let (code, out, err) = run(&["status", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let kept = unpruned(&db).len();
    assert!(out.contains(&format!("on disk:   {kept} snapshots")), "{out}");
    assert!(out.contains(&format!("head hash: {head}")), "{out}");
    assert!(out.contains("last error: none recorded"), "{out}");
}

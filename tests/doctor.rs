//! `ghostbridge-doctor` on a real host part: a running snapshotter on a
//! loop-mounted BTRFS image, its chain database, a real listening socket;
//! healthy, unhealthy (a tampered block, a unit that is not active) and
//! not checkable (no config), with the exit codes 0, 1 and 2.

mod snapshot_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use snapshot_support::*;

fn doctor(config: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghostbridge-doctor"));
    cmd.arg("--config").arg(config);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

#[test]
#[ignore = "needs root: a snapshotter on a loop-mounted BTRFS image"]
fn healthy_unhealthy_and_not_checkable() {
    require_root();
    let img = BtrfsImage::new(300);
    let db = img.db();
    let snap_cfg = img.path("snapshotter.json");
    std::fs::write(
        &snap_cfg,
        serde_json::json!({"source": img.source(), "snapshot_dir": img.snapshots(), "database": db,
            "interval": "100ms", "retention": "2s", "dbus": false})
        .to_string(),
    )
    .unwrap();
    let d = Daemon::spawn(&["run", "--config", snap_cfg.to_str().unwrap()], &img.path("daemon.log"), &[]);
    d.wait(Duration::from_secs(20), "blocks", || block_count(&db) >= 5);
    // The Qdrant sync's cursor, as the sync keeps it, two blocks behind.
    let sync_cfg = img.path("qdrant-sync.json");
    std::fs::write(&sync_cfg, serde_json::json!({"database": db, "collection": "doctor"}).to_string()).unwrap();
    let head = block_count(&db) - 1;
    conn(&db).execute("INSERT INTO cursors (consumer, height) VALUES ('qdrant:doctor', ?1)", [head - 2]).unwrap();
    let ssh = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = ssh.local_addr().unwrap().port();

    let cfg = img.path("doctor.json");
    let write_cfg_lag = |units: &[&str], max_sync_lag: u64| {
        std::fs::write(
            &cfg,
            serde_json::json!({"units": units, "snapshotter": snap_cfg, "qdrant_sync": sync_cfg, "ssh_port": port,
                "min_free_bytes": 1, "max_sync_lag": max_sync_lag})
            .to_string(),
        )
        .unwrap();
    };
    let write_cfg = |units: &[&str]| write_cfg_lag(units, 1000);
    write_cfg(&[]);
    let o = doctor(&cfg, true);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{report:#}");
    assert_eq!(report["healthy"], true);
    let names: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in ["snapshot chain", "newest snapshot", "free space", "live snapshots", "qdrant sync lag"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(names.contains(&format!("sshd on port {port}").as_str()), "{names:?}");
    let table = String::from_utf8(doctor(&cfg, false).stdout).unwrap();
    assert!(table.ends_with("healthy\n") && table.contains("blocks verify"), "{table}");

    // The sync further behind than its bound: named with how far.
    d.stop();
    write_cfg_lag(&[], 1);
    let o = doctor(&cfg, false);
    let table = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{table}");
    let behind = block_count(&db) - 1 - (head - 2);
    assert!(table.contains("FAIL  qdrant sync lag"), "{table}");
    assert!(table.contains(&format!("{behind} block(s) behind the head")) && table.contains("(bound 1)"), "{table}");

    // Nothing listening, and a unit that is not active: unhealthy, each named.
    drop(ssh);
    write_cfg(&["ghostbridge-no-such-unit.service"]);
    let o = doctor(&cfg, false);
    let table = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{table}");
    assert!(table.contains("FAIL  unit ghostbridge-no-such-unit.service"), "{table}");
    assert!(table.contains(&format!("nothing listens on TCP port {port}")), "{table}");
    assert!(table.ends_with("NOT healthy\n"), "{table}");

    // A block changed after the fact: the chain check names its height.
    write_cfg(&[]);
    conn(&db).execute("UPDATE blocks SET generation = generation + 1 WHERE height = ?1", [head - 1]).unwrap();
    let o = doctor(&cfg, false);
    let table = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{table}");
    assert!(table.contains(&format!("chain broken at height {}", head - 1)), "{table}");

    // No config, or a config naming a file that is not there: could not check.
    let o = doctor(&img.path("missing.json"), false);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&cfg, serde_json::json!({"snapshotter": img.path("nope.json")}).to_string()).unwrap();
    let o = doctor(&cfg, true);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(2), "{report:#}");
    assert_eq!(report["checks"][0]["state"], "unknown");
}

/// Runs `ip netns exec NS CMD...`, asserting success.
fn in_ns(ns: &str, args: &[&str]) {
    let out = Command::new("ip").args(["netns", "exec", ns]).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "needs root: iptables rules in a network namespace"]
fn the_firewall_opens_exactly_the_declared_ports() {
    require_root();
    // The rules the NixOS firewall's iptables backend loads, in a namespace of
    // the test's own: the machine's firewall is never touched.
    let ns = format!("gbdoc-{}", std::process::id());
    assert!(Command::new("ip").args(["netns", "add", &ns]).status().unwrap().success());
    struct DropNs(String);
    impl Drop for DropNs {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _guard = DropNs(ns.clone());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("doctor.json");
    std::fs::write(&cfg, serde_json::json!({"tcp_ports": [22, 443]}).to_string()).unwrap();
    let run_with = |cfg: &std::path::Path| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_ghostbridge-doctor"), "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let run = || run_with(&cfg);
    let (code, table) = run();
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("no NixOS firewall is loaded"), "{table}");

    in_ns(&ns, &["iptables", "-N", "nixos-fw-accept"]);
    in_ns(&ns, &["iptables", "-N", "nixos-fw"]);
    in_ns(&ns, &["iptables", "-A", "nixos-fw", "-i", "lo", "-j", "nixos-fw-accept"]);
    for port in ["22", "443"] {
        in_ns(&ns, &["iptables", "-A", "nixos-fw", "-p", "tcp", "--dport", port, "-j", "nixos-fw-accept"]);
    }
    // Opened for one interface only: not "every interface", not counted.
    in_ns(&ns, &["iptables", "-A", "nixos-fw", "-i", "eth9", "-p", "tcp", "--dport", "99", "-j", "nixos-fw-accept"]);
    let (code, table) = run();
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains("opens exactly TCP 22, 443"), "{table}");

    in_ns(&ns, &["iptables", "-A", "nixos-fw", "-p", "tcp", "--dport", "8000:8001", "-j", "nixos-fw-accept"]);
    in_ns(&ns, &["iptables", "-D", "nixos-fw", "-p", "tcp", "--dport", "443", "-j", "nixos-fw-accept"]);
    let (code, table) = run();
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("open but not declared: 8000, 8001; declared but not open: 443"), "{table}");

    // A firewall that matches its declaration but keeps SSH out locks everyone out.
    let locked = dir.path().join("locked.json");
    std::fs::write(&locked, serde_json::json!({"tcp_ports": [22, 8000, 8001], "ssh_port": 2222}).to_string()).unwrap();
    let (code, table) = run_with(&locked);
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("the SSH port 2222 is not open: nobody could log in over the network"), "{table}");
}

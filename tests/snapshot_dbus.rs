//! D-Bus: the daemon on a private `dbus-daemon` (as the system bus through
//! DBUS_SYSTEM_BUS_ADDRESS), read and called by external clients (`dbus-send`,
//! `gdbus`, `busctl`), and the shipped bus policy: only root may own the name,
//! anyone may call.

mod snapshot_support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use snapshot_support::*;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn config(img: &BtrfsImage, db: &Path) -> PathBuf {
    let path = img.path("snapshotter.json");
    let json = serde_json::json!({
        "source": img.source(), "snapshot_dir": img.snapshots(), "database": db,
        "interval": "100ms", "retention": "5s", "metrics_dir": null, "dbus": true
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn gdbus(address: &str, method: &str, args: &[&str]) -> (bool, String) {
    run(Command::new("gdbus")
        .args([
            "call",
            "--address",
            address,
            "--dest",
            "org.ghostbridge.Snapshotter",
            "--object-path",
            "/org/ghostbridge/Snapshotter",
            "--method",
            method,
        ])
        .args(args))
}

#[test]
#[ignore = "needs root: D-Bus test with a private dbus-daemon and a loop-mounted BTRFS image"]
fn external_clients_read_properties_call_methods_and_see_signals() {
    require_root();
    let img = BtrfsImage::new(300);
    let bus = Bus::start(img.dir.path());
    let db = img.db();
    let cfg = config(&img, &db);
    let monitor_log = img.path("monitor.log");
    let mut monitor = Command::new("gdbus")
        .args(["monitor", "--address", &bus.address, "--dest", "org.ghostbridge.Snapshotter"])
        .stdout(Stdio::from(std::fs::File::create(&monitor_log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &img.path("daemon.log"),
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    d.wait(Duration::from_secs(20), "the name on the bus and 5 blocks", || {
        block_count(&db) >= 5 && d.log_text().contains("serving org.ghostbridge.Snapshotter")
    });

    // Properties, with dbus-send.
    let (ok, text) = run(Command::new("dbus-send").args([
        &format!("--bus={}", bus.address),
        "--print-reply",
        "--dest=org.ghostbridge.Snapshotter",
        "/org/ghostbridge/Snapshotter",
        "org.freedesktop.DBus.Properties.GetAll",
        "string:org.ghostbridge.Snapshotter1",
    ]));
    assert!(ok, "{text}");
    let height: u64 = text
        .split("\"Height\"")
        .nth(1)
        .and_then(|t| t.split("uint64 ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let head_hash = text
        .split("\"HeadHash\"")
        .nth(1)
        .and_then(|t| t.split("string \"").nth(1))
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    assert!(text.contains("\"LastSnapshotNs\"") && text.contains("int64 "), "{text}");
    let stored: String = conn(&db)
        .query_row("SELECT lower(hex(hash)) FROM blocks WHERE height = ?1", [height as i64], |r| r.get(0))
        .unwrap();
    assert_eq!(head_hash, stored, "HeadHash must be the hash of block Height");

    // Methods, with gdbus.
    let (ok, text) = gdbus(&bus.address, "org.ghostbridge.Snapshotter1.Verify", &[]);
    assert!(ok && text.starts_with("(true, uint64 "), "{text}");
    assert!(text.contains("chain valid"), "{text}");
    let (ok, text) = gdbus(&bus.address, "org.ghostbridge.Snapshotter1.Recent", &["3"]);
    assert!(ok, "{text}");
    // gdbus annotates types on the first tuple only: count the snapshot names.
    assert_eq!(text.matches(", '00000000").count(), 3, "three blocks: {text}");

    // The change index's queries agree with the command line.
    std::fs::create_dir(img.source().join("etc")).unwrap();
    std::fs::write(img.source().join("etc/app.conf"), "a = 1\n").unwrap();
    std::fs::rename(img.source().join("data"), img.source().join("etc/data")).unwrap();
    let now = block_count(&db);
    d.wait(Duration::from_secs(10), "two more blocks", || block_count(&db) >= now + 2);
    let call = |method: &str, signature: &str, args: &[&str]| -> serde_json::Value {
        let (ok, text) = run(Command::new("busctl")
            .args([
                &format!("--address={}", bus.address),
                "--json=short",
                "call",
                "org.ghostbridge.Snapshotter",
                "/org/ghostbridge/Snapshotter",
                "org.ghostbridge.Snapshotter1",
                method,
                signature,
            ])
            .args(args));
        assert!(ok, "{method}: {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"][0].clone()
    };
    let changes = call("Changes", "sx", &["/etc", "0"]);
    let kinds: Vec<(String, String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[2].as_str().unwrap().into(), r[3].as_str().unwrap().into(), r[4].as_str().unwrap().into()))
        .collect();
    for want in [("created", "/etc", ""), ("created", "/etc/app.conf", ""), ("renamed", "/etc/data", "/data")] {
        assert!(kinds.contains(&(want.0.into(), want.1.into(), want.2.into())), "{want:?} in {kinds:?}");
    }
    let cli = std::process::Command::new(bin())
        .args(["changes", "/etc", "--database", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cli.stdout).lines().count(), kinds.len());
    let head = block_count(&db) as u64 - 1;
    let diff = call("Diff", "tt", &["0", &head.to_string()]);
    let (ok, text) = run(Command::new("busctl").args([
        &format!("--address={}", bus.address),
        "call",
        "org.ghostbridge.Snapshotter",
        "/org/ghostbridge/Snapshotter",
        "org.ghostbridge.Snapshotter1",
        "Diff",
        "tt",
        "1",
        &head.to_string(),
    ]));
    assert!(ok, "{text}");
    assert_eq!(diff.as_array().unwrap().len(), 3, "{diff}");
    let log = call("Log", "xu", &["0", "5"]);
    assert_eq!(log.as_array().unwrap().len(), 5, "{log}");
    let counted: i64 =
        call("Log", "xu", &["0", "10000"]).as_array().unwrap().iter().map(|r| r[3].as_i64().unwrap().max(0)).sum();
    assert_eq!(counted as usize, kinds.len());
    let (ok, text) = gdbus(&bus.address, "org.ghostbridge.Snapshotter1.Changes", &["../x", "0"]);
    assert!(!ok && text.contains("InvalidArgs"), "{text}");

    // busctl, as the VM check uses it.
    let (ok, text) = run(Command::new("busctl").args([
        &format!("--address={}", bus.address),
        "get-property",
        "org.ghostbridge.Snapshotter",
        "/org/ghostbridge/Snapshotter",
        "org.ghostbridge.Snapshotter1",
        "Height",
    ]));
    assert!(ok && text.starts_with("t "), "{text}");

    // Signals seen by the monitor.
    d.wait(Duration::from_secs(10), "BlockAdded signals", || {
        std::fs::read_to_string(&monitor_log)
            .unwrap_or_default()
            .matches("org.ghostbridge.Snapshotter1.BlockAdded")
            .count()
            >= 3
    });
    let _ = monitor.kill();
    let _ = monitor.wait();
    let seen = std::fs::read_to_string(&monitor_log).unwrap();
    let last = seen.lines().rfind(|l| l.contains("BlockAdded")).unwrap().to_string();
    d.stop();
    // "... BlockAdded (uint64 H, 'hash')": the hash is the stored hash of H.
    let h: i64 = last.split("uint64 ").nth(1).unwrap().split(',').next().unwrap().trim().parse().unwrap();
    let hash = last.split('\'').nth(1).unwrap();
    let stored: String =
        conn(&db).query_row("SELECT lower(hex(hash)) FROM blocks WHERE height = ?1", [h], |r| r.get(0)).unwrap();
    assert_eq!(hash, stored);
    assert!(seen.contains("PropertiesChanged"), "{seen}");
}

#[test]
#[ignore = "needs root: D-Bus policy test with a private dbus-daemon"]
fn policy_lets_only_root_own_the_name_and_anyone_call() {
    require_root();
    let img = BtrfsImage::new(300);
    // The unprivileged user needs to reach the socket.
    std::fs::set_permissions(img.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bus = Bus::start(img.dir.path());
    let db = img.db();
    let cfg = config(&img, &db);
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    // As nobody: the bus refuses the name.
    let log = img.path("nobody.log");
    let mut nobody = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .uid(65534)
        .gid(65534)
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the refused name request", || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("D-Bus")
    });
    let _ = nobody.kill();
    let _ = nobody.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("not allowed to own") || text.contains("AccessDenied"), "{text}");

    // As root: served; an unprivileged caller may read and call.
    let d = Daemon::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &img.path("daemon.log"),
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    d.wait(Duration::from_secs(20), "the name on the bus", || {
        block_count(&db) >= 2 && d.log_text().contains("serving org.ghostbridge.Snapshotter")
    });
    let (ok, text) = run(Command::new("gdbus")
        .args([
            "call",
            "--address",
            &bus.address,
            "--dest",
            "org.ghostbridge.Snapshotter",
            "--object-path",
            "/org/ghostbridge/Snapshotter",
            "--method",
            "org.ghostbridge.Snapshotter1.Verify",
        ])
        .uid(65534)
        .gid(65534));
    assert!(ok && text.starts_with("(true,"), "{text}");
    let (ok, text) = run(Command::new("dbus-send")
        .args([
            &format!("--bus={}", bus.address),
            "--print-reply",
            "--dest=org.ghostbridge.Snapshotter",
            "/org/ghostbridge/Snapshotter",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.ghostbridge.Snapshotter1",
            "string:Height",
        ])
        .uid(65534)
        .gid(65534));
    assert!(ok && text.contains("uint64"), "{text}");
    d.stop();
}

#[test]
#[ignore = "needs root: Verify() in a loop on a long chain, private dbus-daemon, loop-mounted BTRFS image"]
fn verify_calls_on_a_long_chain_never_delay_a_tick() {
    // A million blocks: about eleven and a half days at 1 Hz.
    const CHAIN: u64 = 1_000_000;
    require_root();
    let img = BtrfsImage::new(300);
    let bus = Bus::start(img.dir.path());
    let db = img.db();
    // A long chain, written quickly with the project's own block layout: all
    // pruned (their snapshots are long gone), so the daemon extends it.
    {
        let mut c = conn(&db);
        ghostbridge::snapshot::schema::configure(&c).unwrap();
        ghostbridge::snapshot::schema::migrate(&mut c).unwrap();
        let tx = c.transaction().unwrap();
        let mut prev = ghostbridge::snapshot::chain::GENESIS_PREV;
        let start = 1_700_000_000_000_000_000i64;
        for h in 0..CHAIN {
            let t = start + h as i64 * 1_000_000_000;
            let b = ghostbridge::snapshot::chain::Block::new(h, prev, t, format!("{h:012}-{t}"), [7; 16], h + 1);
            tx.execute(
                "INSERT INTO blocks (height, time_ns, snapshot, subvol_uuid, generation, prev_hash, hash, pruned_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![
                    h as i64,
                    t,
                    b.snapshot,
                    "07070707-0707-0707-0707-070707070707",
                    (h + 1) as i64,
                    &prev[..],
                    &b.hash[..],
                    t + 1
                ],
            )
            .unwrap();
            prev = b.hash;
        }
        tx.commit().unwrap();
    }
    let cfg = config(&img, &db);
    // Started as its unit starts it, at SCHED_FIFO 1.
    let d = Daemon::spawn_fifo(
        &["run", "--config", cfg.to_str().unwrap()],
        &img.path("daemon.log"),
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    d.wait(Duration::from_secs(60), "the name on the bus and new blocks", || {
        block_count(&db) >= CHAIN as i64 + 5 && d.log_text().contains("serving org.ghostbridge.Snapshotter")
    });
    // The tick (and the send it waits for) keeps the real-time policy; the bus's
    // threads, where Verify() runs, do not: a caller gets no real-time CPU.
    let policies = d.thread_policies();
    for (name, policy) in &policies {
        let tick = name == "main" || name == "btrfs-send";
        assert_eq!(*policy, if tick { 1 } else { 0 }, "thread {name}: {policies:?}");
    }
    assert!(policies.iter().any(|(name, _)| name.starts_with("zbus")), "{policies:?}");
    // Verify() back to back from another client for 12 s, while the daemon ticks at 100 ms.
    let first_new = block_count(&db);
    let address = bus.address.clone();
    let caller = std::thread::spawn(move || {
        let until = std::time::Instant::now() + Duration::from_secs(12);
        let mut calls = 0;
        while std::time::Instant::now() < until {
            let (ok, text) = gdbus(&address, "org.ghostbridge.Snapshotter1.Verify", &[]);
            assert!(ok, "{text}");
            calls += 1;
        }
        calls
    });
    let calls = caller.join().unwrap();
    let times: Vec<i64> = conn(&db)
        .prepare("SELECT time_ns FROM blocks WHERE height >= ?1 ORDER BY height")
        .unwrap()
        .query_map([first_new], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    d.stop();
    assert!(calls >= 2, "only {calls} Verify() calls");
    assert!(times.len() >= 80, "only {} blocks in 12 s at 100 ms", times.len());
    let worst = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        worst < 180_000_000,
        "a tick came {} ms after the one before, during {calls} Verify() calls",
        worst / 1_000_000
    );
}

//! `ghostbridge-qdrant-sync` as systemd runs it: `run` through a 5xx storm
//! (one log line when Qdrant goes down, one when it is back), SIGTERM, the
//! metrics file; `once` with flag overrides; `status`; `search`; bad configs.

#[path = "qdrant_support/mod.rs"]
mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use ghostbridge::vectors::sync::consumer_names;
use support::{Chain, Probe, QdrantDouble, unique_collection, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_ghostbridge-qdrant-sync");

fn write_config(chain: &Chain, double: &QdrantDouble, collection: &str, extra: &str) -> std::path::PathBuf {
    let path = chain.dir().join(format!("{collection}.json"));
    let text = format!(
        r#"{{ "database": "{}", "url": "{}", "collection": "{collection}",
             "dimension": 384, "distance": "Cosine", "batch": 100, "interval": "100ms",
             "api_key_file": null, "metrics_dir": "{}", "max_backoff": "300ms"{extra} }}"#,
        chain.path.display(),
        double.url(),
        chain.dir().display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A child process killed (and reaped) when dropped, so that a failing
/// assertion never leaves a daemon behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_rides_out_a_storm_logs_state_changes_once_and_stops_on_sigterm() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(500);
    let collection = unique_collection("cli-run");
    probe.owns(&collection);
    let config = write_config(&chain, &double, &collection, "");
    let consumer = consumer_names(&collection).blocks;

    double.fail(0, 9, 503);
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(wait_for(Duration::from_secs(30), || chain.cursor(&consumer) == Some(499)), "caught up");
    for _ in 0..5 {
        chain.append(3);
        std::thread::sleep(Duration::from_millis(120));
    }
    assert!(wait_for(Duration::from_secs(10), || chain.cursor(&consumer) == Some(514)), "followed new blocks");
    let metrics = chain.dir().join("ghostbridge_qdrant_sync.prom");
    assert!(wait_for(Duration::from_secs(5), || std::fs::read_to_string(&metrics)
        .is_ok_and(|m| m.contains("ghostbridge_qdrant_pending_blocks 0\n"))));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr.matches("HTTP 503").count(), 1, "one line when it goes down:\n{stderr}");
    assert_eq!(stderr.matches("reachable again").count(), 1, "one line when it is back:\n{stderr}");
    assert_eq!(double.seen().iter().filter(|s| s.status == 503).count(), 9);

    let m = std::fs::read_to_string(&metrics).unwrap();
    for needle in [
        "ghostbridge_qdrant_synced_blocks_total 515\n",
        "ghostbridge_qdrant_cursor_height 514\n",
        "ghostbridge_qdrant_up 1\n",
        "ghostbridge_qdrant_lag_seconds 0\n",
        "ghostbridge_qdrant_errors_total 9\n",
        "# TYPE ghostbridge_qdrant_request_duration_seconds histogram\n",
    ] {
        assert!(m.contains(needle), "{needle:?} missing:\n{m}");
    }
    assert_eq!(probe.count(&collection), 515);
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn once_status_and_search_with_flag_overrides() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(30);
    let collection = unique_collection("cli-once");
    probe.owns(&collection);
    let db = chain.path.display().to_string();
    let url = double.url();

    let flags = ["--db", &db, "--url", &url, "--collection", &collection];
    let out = Command::new(BIN).arg("once").args(flags).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sent 30 blocks in 1 requests (0 pruned flags); cursor at 29\n");
    assert_eq!(probe.count(&collection), 30);

    chain.append(4);
    let out = Command::new(BIN).arg("status").args(flags).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("$ ghostbridge-qdrant-sync status\n{text}");
    assert!(out.status.success(), "{text}");
    for needle in ["cursor:         29\n", "pending:        4\n", "reachable:      yes\n", "size 384 Cosine, 30 points"]
    {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }

    // The first block's own snapshot name finds it first.
    let name = probe.payloads(&collection)[&0].1["snapshot"].as_str().unwrap().to_string();
    let out = Command::new(BIN).args(["search", "-n", "3"]).args(flags).arg(&name).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("$ ghostbridge-qdrant-sync search -n 3 {name}\n{text}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("height 0 ") && lines[0].contains(&name), "{text}");
    assert!(lines[0].contains("2026-11-24T00:00:00.000Z"), "{text}");

    // Another dimension: status says so and exits 1.
    let config = write_config(&chain, &double, &collection, "");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"dimension\": 384", "\"dimension\": 16");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(BIN).args(["status", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DOES NOT MATCH"));
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn bad_configs_and_unreachable_qdrant_are_reported() {
    let double = QdrantDouble::start();
    let chain = Chain::new();
    let config = write_config(&chain, &double, "cli-bad", r#", "colection": "x""#);
    let out = Command::new(BIN).args(["once", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an invalid config exits 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `colection`"), "{err}");

    let out = Command::new(BIN)
        .args(["status", "--db"])
        .arg(&chain.path)
        .args(["--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reachable:      no"));

    let out = Command::new(BIN).args(["once", "--db", "/nonexistent/chain.db"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("start the snapshotter first"));
}

#[test]
fn run_pings_the_watchdog_during_a_long_catch_up() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(2_000);
    let collection = unique_collection("cli-watchdog");
    probe.owns(&collection);
    let config = write_config(&chain, &double, &collection, "");
    let consumer = consumer_names(&collection).blocks;

    // systemd's side: a notify socket, WatchdogSec=400ms (so a ping is due every
    // 200 ms), and a slow Qdrant: 20 batches of at least 100 ms each, all in the
    // first pass. A ping once per pass would leave about 2 s without one.
    let socket_path = chain.dir().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut messages = Vec::new();
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    messages.extend(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_string));
                }
            }
            messages
        })
    };
    double.delay(Duration::from_millis(100));
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let caught_up = wait_for(Duration::from_secs(60), || chain.cursor(&consumer) == Some(1_999));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let messages = reader.join().unwrap();
    assert!(caught_up && status.success(), "{status}");
    let upserts = double.acknowledged_upserts().len();
    assert_eq!(upserts, 20);
    assert_eq!(messages.iter().filter(|m| *m == "READY=1").count(), 1, "{messages:?}");
    assert_eq!(messages.last().map(String::as_str), Some("STOPPING=1"), "{messages:?}");
    // Each ping comes at least 200 ms after the previous one, and every batch
    // takes at least 100 ms: at least one ping per two batches.
    let pings = messages.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= upserts / 2, "{pings} pings during {upserts} slow batches: {messages:?}");
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

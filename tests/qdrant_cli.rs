//! `ghostbridge-qdrant-sync` as systemd runs it: `run` through a 5xx storm
//! (one log line when Qdrant goes down, one when it is back), SIGTERM, the
//! metrics file; the outage, the catch-up and its progress in the log; `once`
//! with flag overrides; `status`; `search`; bad configs.

#[path = "qdrant_support/mod.rs"]
mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// `run --config FILE`, its log lines piped (without the journal's prefixes).
fn spawn_run(config: &std::path::Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Stops the daemon with SIGTERM; its log.
fn stop_run(mut child: KillOnDrop) -> String {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    stderr
}

/// The number `N` (one decimal) of the one log line `{prefix}N{suffix}`.
fn logged_seconds(stderr: &str, prefix: &str, suffix: &str) -> f64 {
    let found: Vec<&str> = stderr.lines().filter_map(|l| l.strip_prefix(prefix)?.strip_suffix(suffix)).collect();
    assert_eq!(found.len(), 1, "one line {prefix:?} N {suffix:?}:\n{stderr}");
    let n: f64 = found[0].parse().unwrap_or_else(|e| panic!("{:?}: {e}\n{stderr}", found[0]));
    assert_eq!(format!("{n:.1}"), found[0], "one decimal");
    n
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
fn run_logs_the_outage_and_the_catch_up_as_two_durations() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(50);
    let collection = unique_collection("cli-outage");
    probe.owns(&collection);
    let config = write_config(&chain, &double, &collection, "");
    let consumer = consumer_names(&collection).blocks;
    let child = spawn_run(&config);
    assert!(wait_for(Duration::from_secs(10), || chain.cursor(&consumer) == Some(49)), "synced");

    // Down from the first request that carries the new blocks, for 1.5 s.
    double.fail(0, usize::MAX, 503);
    chain.append(300);
    assert!(wait_for(Duration::from_secs(10), || double.seen().iter().any(|s| s.status == 503)), "down");
    let down = Instant::now();
    std::thread::sleep(Duration::from_millis(1_500));
    // Back, and slow: the first answer (batch 50..=149) comes 0.3 s after the
    // outage ends, the catch-up (two more batches) takes 0.6 s more.
    double.delay(Duration::from_millis(300));
    double.fail(0, 0, 503);
    assert!(wait_for(Duration::from_secs(20), || chain.cursor(&consumer) == Some(349)), "caught up");
    let wall = down.elapsed().as_secs_f64();
    let stderr = stop_run(child);

    let back = format!("ghostbridge-qdrant-sync: Qdrant at {} is reachable again after ", double.url());
    let unreachable = logged_seconds(&stderr, &back, " s unreachable");
    let caught_up = logged_seconds(&stderr, "ghostbridge-qdrant-sync: caught up: 300 blocks in ", " s; cursor at 349");
    assert!(unreachable >= 1.7, "1.5 s down, then a 0.3 s answer:\n{stderr}");
    assert!(caught_up >= 0.6, "two batches of 0.3 s after the first answer:\n{stderr}");
    // Two parts of one stretch: neither counts the other's time.
    assert!(unreachable + caught_up <= wall + 0.25, "{unreachable} + {caught_up} s in {wall:.2} s:\n{stderr}");
    let line = |needle: &str| stderr.lines().position(|l| l.contains(needle));
    assert!(line("reachable again") < line("caught up: "), "{stderr}");
    assert_eq!(stderr.matches("HTTP 503").count(), 1, "one line when it goes down:\n{stderr}");
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn run_logs_the_progress_of_a_long_first_catch_up() {
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    chain.append(1_050);
    let collection = unique_collection("cli-progress");
    probe.owns(&collection);
    let config = write_config(&chain, &double, &collection, "");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"batch\": 100", "\"batch\": 10");
    std::fs::write(&config, text).unwrap();
    let consumer = consumer_names(&collection).blocks;

    // 105 batches of 10 blocks, each answered after 100 ms: one pass of more than 10 s.
    double.delay(Duration::from_millis(100));
    let started = Instant::now();
    let child = spawn_run(&config);
    assert!(wait_for(Duration::from_secs(60), || chain.cursor(&consumer) == Some(1_049)), "caught up");
    let wall = started.elapsed().as_secs_f64();
    let stderr = stop_run(child);

    let progress: Vec<(i64, u64)> = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("ghostbridge-qdrant-sync: catching up: height ")?;
            let (height, rate) = rest.split_once(" of 1049 (")?;
            Some((height.parse().unwrap(), rate.strip_suffix(" points/s)")?.parse().unwrap()))
        })
        .collect();
    assert_eq!(stderr.matches("catching up: ").count(), progress.len(), "{stderr}");
    // At most one line per 10 s: the first after 100 batches at the latest.
    assert!(!progress.is_empty() && progress.len() as f64 <= wall / 10.0, "in {wall:.1} s:\n{stderr}");
    assert!(progress[0].0 <= 999, "{stderr}");
    for (height, rate) in &progress {
        assert!(height % 10 == 9 && *height <= 1_049, "after a whole batch:\n{stderr}");
        assert!((1..=100).contains(rate), "at most 10 points per 100 ms:\n{stderr}");
    }
    let took = logged_seconds(&stderr, "ghostbridge-qdrant-sync: caught up: 1050 blocks in ", " s; cursor at 1049");
    assert!(took >= 10.5 && took <= wall + 0.1, "105 batches of 100 ms, in {wall:.1} s:\n{stderr}");
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

    // The first block's own snapshot name ranks it first; hits print newest first.
    let name = probe.payloads(&collection)[&0].1["snapshot"].as_str().unwrap().to_string();
    let out = Command::new(BIN).args(["search", "-n", "3"]).args(flags).arg(&name).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("$ ghostbridge-qdrant-sync search -n 3 {name}\n{text}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let score = |l: &str| l.split_whitespace().next().unwrap().parse::<f64>().unwrap();
    let best = lines.iter().copied().max_by(|a, b| score(a).total_cmp(&score(b))).unwrap();
    assert!(best.contains("height 0 ") && best.contains(&name), "{text}");
    assert!(best.contains("2026-11-24T00:00:00.000Z"), "{text}");
    let heights: Vec<u64> =
        lines.iter().map(|l| l.split("height ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()).collect();
    assert!(heights.windows(2).all(|w| w[0] > w[1]), "newest first: {text}");

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
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nreachable:      no, unreachable (io: Connection refused"), "{text}");

    let out = Command::new(BIN).args(["once", "--db", "/nonexistent/chain.db"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("start the snapshotter first"));
}

#[test]
fn status_tells_a_refused_api_key_from_an_unreachable_qdrant() {
    let double = QdrantDouble::start();
    let mut chain = Chain::new();
    chain.append(3);
    double.require_api_key(Some("k3y-for-tests"));
    let collection = unique_collection("cli-unauthorised");
    let out = Command::new(BIN)
        .args(["status", "--db"])
        .arg(&chain.path)
        .args(["--url", &double.url(), "--collection", &collection])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("\nreachable:      unauthorised (Qdrant answered 401: check api_key_file)\n"), "{text}");
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
}

#[test]
fn search_in_a_missing_collection_says_that_the_sync_creates_it() {
    let double = QdrantDouble::start();
    let mut chain = Chain::new();
    chain.append(3);
    let collection = unique_collection("cli-missing");
    let url = double.url();
    let out = Command::new(BIN)
        .args(["search", "--db"])
        .arg(&chain.path)
        .args(["--url", &url, "--collection", &collection, "overlay"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failure, not a usage error");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "ghostbridge-qdrant-sync: error: collection {collection:?} does not exist at {url}: \
             the sync creates it on its first run (`run` or `once`)\n"
        )
    );
    assert!(out.stdout.is_empty());
    assert!(double.invalid().is_empty(), "{:#?}", double.invalid());
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

/// `ghostbridge-snapshotter verify --against-qdrant`: the mirror sees what
/// the chain alone cannot, its newest blocks deleted and a rewritten chain.
#[test]
fn verify_against_the_mirror_finds_deleted_newest_blocks_and_a_rewrite() {
    use ghostbridge::snapshot::changes::{Change, ChangeKind};
    const SNAPSHOTTER: &str = env!("CARGO_BIN_EXE_ghostbridge-snapshotter");
    let double = QdrantDouble::start();
    let mut probe = Probe::new(&double);
    let mut chain = Chain::new();
    let list = |h: u64| Some(vec![Change::new(format!("/srv/f{h}").as_bytes(), ChangeKind::Created)]);
    chain.append_with_changes(&(0..20).map(list).collect::<Vec<_>>());
    let collection = unique_collection("witness");
    probe.owns(&collection);
    let config = write_config(&chain, &double, &collection, "");
    let out = Command::new(BIN).args(["once", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = chain.path.clone();
    let verify = || {
        let out = Command::new(SNAPSHOTTER)
            .args(["verify", "--database"])
            .arg(&db)
            .arg("--against-qdrant")
            .arg(&config)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = verify();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("chain valid: 20 blocks") && text.contains("the mirror agrees: 20 mirrored blocks"),
        "{text}"
    );

    // The newest three blocks deleted: the chain alone still verifies.
    let conn = rusqlite::Connection::open(&chain.path).unwrap();
    conn.execute("DELETE FROM changes WHERE height >= 17", []).unwrap();
    conn.execute("DELETE FROM blocks WHERE height >= 17", []).unwrap();
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("chain valid: 17 blocks"), "{text}");
    assert!(
        text.contains("the mirror disagrees at height 17: the mirror holds block 17, beyond the local head (16)"),
        "{text}"
    );

    // Rewritten from height 10 on, with valid hashes: only the mirror can tell.
    conn.execute("DELETE FROM changes WHERE height >= 10", []).unwrap();
    conn.execute("DELETE FROM blocks WHERE height >= 10", []).unwrap();
    let forged = |h: u64| Some(vec![Change::new(format!("/srv/forged{h}").as_bytes(), ChangeKind::Created)]);
    chain.append_with_changes(&(10..20).map(forged).collect::<Vec<_>>());
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("chain valid: 20 blocks"), "{text}");
    assert!(text.contains("the mirror disagrees at height 10: the local block's hash"), "{text}");

    // A missing collection is an error, not a verdict.
    let other = write_config(&chain, &double, &unique_collection("witness-none"), "");
    let out = Command::new(SNAPSHOTTER)
        .args(["verify", "--database"])
        .arg(&chain.path)
        .arg("--against-qdrant")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Snapshotter benchmark (needs root): the daemon against a cron-style shell
//! baseline that forks `btrfs subvolume snapshot -r`, `sha256sum` and `sqlite3`
//! each tick and then `sleep 1`. Measures CPU time per snapshot (getrusage of
//! the child and everything it waited for), mean period error and p99 lateness
//! at 1 Hz, and the highest sustained snapshot rate with pruning active.
//!
//! `cargo bench --bench snapshotter`; `GB_BENCH_SECS=10` for a quick run
//! (default 60 s per 1 Hz run), `GB_BENCH_LOAD=1` adds two busy processes
//! (one per core) during the 1 Hz runs, `GB_BENCH_FIFO=1` runs the daemon with
//! SCHED_FIFO priority 1 (what `CPUSchedulingPolicy=fifo` in its unit gives),
//! `GB_BENCH_PRODUCTION=1` runs only the production configuration (D-Bus,
//! metrics, change index, pruning), the same without D-Bus and without the
//! change index, and the floor: the kernel's work of a tick alone, measured on
//! the same image; `GB_BENCH_COMPARE=/path/to/ghostbridge-snapshotter` adds
//! the production configuration run by another build, in the same run;
//! `GB_BENCH_ROUNDS` (default 3) is how many times each of those runs,
//! interleaved. CPU time is read from a cgroup holding the daemon, so that
//! threads which have exited count too.

#[path = "../tests/snapshot_support/mod.rs"]
mod snapshot_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use snapshot_support::*;

/// CPU seconds (user + system) of all waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) }, 0);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// A cgroup (v2) holding one daemon: its `cpu.stat` counts every thread the
/// daemon ran, those that have exited too (which `/proc/PID/task` forgets),
/// to the microsecond (`/proc/PID/stat` counts in 10 ms clock ticks).
struct CpuGroup(std::path::PathBuf);

impl CpuGroup {
    fn new(tag: &str) -> CpuGroup {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let root = mounts
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == "cgroup2")
            .map(|f| f[1].to_string())
            .expect("a cgroup2 hierarchy is mounted (for the daemon's CPU time)");
        let dir = Path::new(&root).join(format!("gb-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        CpuGroup(dir)
    }

    /// Moves the process `pid` (all its threads) into the group.
    fn add(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// CPU seconds (user + system) the group's processes have run since they joined it.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(self.0.join("cpu.stat")).unwrap();
        let usec = stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).unwrap().trim().parse::<u64>().unwrap();
        usec as f64 / 1e6
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn term_and_wait(child: &mut Child) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}

struct Run {
    snapshots: usize,
    /// Blocks per second between the first and the last block.
    rate: f64,
    cpu_per_snapshot_ms: f64,
    /// CPU per snapshot once running: after the first 5 s (start-up and recovery excluded).
    steady_cpu_per_snapshot_ms: f64,
    mean_period_error_ms: f64,
    p99_lateness_ms: f64,
    max_lateness_ms: f64,
    missed: u64,
}

/// Lateness of each block against the ideal grid `base + k * interval`, where
/// `base` is the earliest-aligned block (so the least late tick is 0).
fn timing(times_ns: &[i64], interval_ns: i64) -> (f64, f64, f64) {
    assert!(times_ns.len() >= 2, "the run produced {} blocks", times_ns.len());
    let periods: Vec<f64> = times_ns.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    let mean_period = periods.iter().sum::<f64>() / periods.len().max(1) as f64;
    let t0 = times_ns[0];
    let offsets: Vec<i64> = times_ns
        .iter()
        .map(|t| {
            let k = ((t - t0) as f64 / interval_ns as f64).round() as i64;
            t - (t0 + k * interval_ns)
        })
        .collect();
    let base = *offsets.iter().min().unwrap();
    let mut late: Vec<f64> = offsets.iter().map(|o| (o - base) as f64 / 1e6).collect();
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = late[((late.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(late.len() - 1)];
    ((mean_period - interval_ns as f64).abs() / 1e6, p99, *late.last().unwrap())
}

fn block_times(db: &Path) -> Vec<i64> {
    let c = conn(db);
    let mut st = c.prepare("SELECT time_ns FROM blocks ORDER BY height").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn metric(metrics: &Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(metrics.join("ghostbridge_snapshotter.prom")).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.parse::<f64>().ok())).unwrap_or(0.0)
        as u64
}

/// How a run starts the daemon: flags added to the command line, the bus
/// address it serves D-Bus on as on the system bus (without one, D-Bus is
/// off, as without `--config`), and the build that runs.
#[derive(Clone, Copy)]
struct Launch<'a> {
    extra: &'a [&'a str],
    bus: Option<&'a str>,
    exe: &'a Path,
}

impl Launch<'static> {
    fn plain() -> Self {
        Launch { extra: &[], bus: None, exe: bin() }
    }
}

/// One daemon run.
fn daemon_run(img: &BtrfsImage, tag: &str, interval_ms: u64, retention: &str, secs: u64, launch: Launch<'_>) -> Run {
    let Launch { extra, bus, exe } = launch;
    let db = img.path(&format!("{tag}.db"));
    let metrics = img.path(&format!("{tag}-metrics"));
    std::fs::create_dir_all(&metrics).unwrap();
    let cpu0 = children_cpu();
    // GB_BENCH_FIFO=1 runs the daemon as a unit with `CPUSchedulingPolicy=fifo` would.
    let fifo = std::env::var("GB_BENCH_FIFO").is_ok_and(|v| v == "1");
    let mut cmd = Command::new(exe);
    if fifo {
        at_fifo(&mut cmd);
    }
    cmd.args([
        "run",
        "--source",
        img.source().to_str().unwrap(),
        "--snapshot-dir",
        img.snapshots().to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--interval",
        &format!("{interval_ms}ms"),
        "--retention",
        retention,
        "--metrics-dir",
        metrics.to_str().unwrap(),
    ])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .env_remove("NOTIFY_SOCKET");
    if let Some(address) = bus {
        // D-Bus is served only as a config file asks (the flags above override the rest).
        let config = img.path(&format!("{tag}.json"));
        let json = serde_json::json!({
            "source": img.source(), "snapshot_dir": img.snapshots(), "database": db, "dbus": true
        });
        std::fs::write(&config, json.to_string()).unwrap();
        cmd.arg("--config").arg(&config).env("DBUS_SYSTEM_BUS_ADDRESS", address);
    }
    let mut child = cmd.spawn().unwrap();
    let group = CpuGroup::new(tag);
    group.add(child.id());
    let warm = Duration::from_secs(5.min(secs / 2));
    std::thread::sleep(warm);
    if let Some(address) = bus {
        let owned = sh_ok(&format!(
            "dbus-send --bus={address} --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.ghostbridge.Snapshotter"
        ));
        assert!(owned.contains("boolean true"), "the daemon is not on the bench's bus: {owned}");
    }
    let (cpu_warm, blocks_warm) = (group.cpu(), block_times(&db).len());
    std::thread::sleep(Duration::from_secs(secs) - warm);
    let (cpu_end, blocks_end) = (group.cpu(), block_times(&db).len());
    term_and_wait(&mut child);
    let cpu = children_cpu() - cpu0;
    let steady_cpu_per_snapshot_ms = (cpu_end - cpu_warm) * 1e3 / (blocks_end - blocks_warm).max(1) as f64;
    let times = block_times(&db);
    let (err, p99, max) = timing(&times, interval_ms as i64 * 1_000_000);
    let run = Run {
        snapshots: times.len(),
        rate: (times.len() as f64 - 1.0) * 1e9 / (times[times.len() - 1] - times[0]).max(1) as f64,
        cpu_per_snapshot_ms: cpu * 1e3 / times.len().max(1) as f64,
        steady_cpu_per_snapshot_ms,
        mean_period_error_ms: err,
        p99_lateness_ms: p99,
        max_lateness_ms: max,
        missed: metric(&metrics, "ghostbridge_snapshotter_missed_ticks_total"),
    };
    // Leave the directory empty for the next run.
    clear_snapshots(img);
    run
}

/// CPU seconds this thread has run so far, to the nanosecond.
fn thread_cpu() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    text.split_whitespace().next().unwrap().parse::<u64>().unwrap() as f64 / 1e9
}

/// The floor: what the kernel does for one tick, alone, at 1 Hz on this
/// thread with the project's own BTRFS calls: a read-only snapshot of the
/// source (the kernel commits a transaction for it), the deletion of the
/// snapshot five ticks older, and one row committed to a database configured
/// as the chain's (WAL, `synchronous = FULL`: an fsync per commit). No
/// snapshotter that keeps a durable chain and its retention does less per
/// tick. CPU per tick after the first 5 s, in ms.
fn floor_run(img: &BtrfsImage, secs: u64) -> f64 {
    use ghostbridge::snapshot::btrfs;
    let source = btrfs::open_dir(&img.source()).unwrap();
    let dir = btrfs::open_dir(&img.snapshots()).unwrap();
    for file in ["floor.db", "floor.db-wal", "floor.db-shm"] {
        let _ = std::fs::remove_file(img.path(file));
    }
    let db = rusqlite::Connection::open(img.path("floor.db")).unwrap();
    ghostbridge::snapshot::schema::configure(&db).unwrap();
    db.execute_batch("CREATE TABLE IF NOT EXISTS t (height INTEGER PRIMARY KEY, hash BLOB)").unwrap();
    let name = |i: u64| format!("floor-{i:06}");
    let mut next = std::time::Instant::now();
    let (mut cpu0, mut n0) = (0.0, 0);
    for i in 0..secs {
        if i == 5.min(secs / 2) {
            (cpu0, n0) = (thread_cpu(), i);
        }
        btrfs::create_snapshot(&source, &dir, &img.snapshots(), &name(i)).unwrap();
        if i >= 5 {
            btrfs::destroy_snapshot(&dir, &img.snapshots(), &name(i - 5)).unwrap();
        }
        db.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![i as i64, [7u8; 32].to_vec()]).unwrap();
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    let ms = (thread_cpu() - cpu0) * 1e3 / (secs - n0).max(1) as f64;
    clear_snapshots(img);
    ms
}

/// Deletes every snapshot a run left and waits until the kernel has dropped
/// them (`btrfs subvolume sync`): otherwise the next run's commits pay for
/// this run's deletions.
fn clear_snapshots(img: &BtrfsImage) {
    for name in on_disk(&img.snapshots()) {
        sh_ok(&format!("btrfs subvolume delete {} >/dev/null", img.snapshots().join(name).display()));
    }
    sh_ok(&format!("btrfs subvolume sync {} >/dev/null", img.mnt.display()));
}

/// What a typical cron-style script does each tick.
const BASELINE: &str = r#"
set -u
src=$1 snaps=$2 db=$3 secs=$4
sqlite3 "$db" "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, time_ns INTEGER, snapshot TEXT, prev_hash TEXT, hash TEXT);" >/dev/null
height=0 prev=0000000000000000000000000000000000000000000000000000000000000000
end=$(( $(date +%s) + secs ))
while [ "$(date +%s)" -lt "$end" ]; do
  t=$(date +%s%N)
  name=$(printf '%012d-%s' "$height" "$t")
  btrfs subvolume snapshot -r "$src" "$snaps/$name" >/dev/null
  uuid=$(btrfs subvolume show "$snaps/$name" | awk '$1 == "UUID:" {print $2}')
  hash=$(printf '%s %s %s %s %s' "$height" "$prev" "$t" "$name" "$uuid" | sha256sum | cut -d' ' -f1)
  sqlite3 "$db" "INSERT INTO blocks VALUES ($height, $t, '$name', '$prev', '$hash');"
  prev=$hash height=$((height + 1))
  sleep 1
done
"#;

fn baseline_run(img: &BtrfsImage, secs: u64) -> Run {
    let db = img.path("baseline.db");
    let cpu0 = children_cpu();
    let status = Command::new("bash")
        .args(["-c", BASELINE, "baseline"])
        .args([
            img.source().to_str().unwrap(),
            img.snapshots().to_str().unwrap(),
            db.to_str().unwrap(),
            &secs.to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let cpu = children_cpu() - cpu0;
    let times = block_times(&db);
    let (err, p99, max) = timing(&times, 1_000_000_000);
    clear_snapshots(img);
    Run {
        snapshots: times.len(),
        rate: 0.0,
        cpu_per_snapshot_ms: cpu * 1e3 / times.len().max(1) as f64,
        // A process per step and per tick: every snapshot costs the same.
        steady_cpu_per_snapshot_ms: cpu * 1e3 / times.len().max(1) as f64,
        mean_period_error_ms: err,
        p99_lateness_ms: p99,
        max_lateness_ms: max,
        missed: 0,
    }
}

/// The production configuration and what each part of it costs: each
/// configuration runs `rounds` times, interleaved and in a rotating order, so
/// that a disturbance of the machine, or what a run leaves to the next, does
/// not land on one configuration only.
struct Production {
    /// (configuration, CPU per tick after the first 5 s of each round, in ms).
    rows: Vec<(String, Vec<f64>)>,
    /// The first run of the full configuration, for the main table.
    full: Run,
}

/// The production configuration: D-Bus served (on a private bus with the
/// shipped policy), metrics on, the change index on, and a retention shorter
/// than the run, so that after 5 s every tick also prunes a snapshot; the
/// same run by another build (`GB_BENCH_COMPARE`), without D-Bus, without
/// D-Bus and the change index; and the floor under all of them.
fn production(img: &BtrfsImage, secs: u64, rounds: usize) -> Production {
    let bus_dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(bus_dir.path());
    let other = std::env::var("GB_BENCH_COMPARE").ok();
    let full_launch = Launch { bus: Some(&bus.address), ..Launch::plain() };
    let mut configs: Vec<(String, Option<Launch<'_>>)> =
        vec![("production: D-Bus, change index".into(), Some(full_launch))];
    if let Some(other) = &other {
        configs.push((format!("production, run by {other}"), Some(Launch { exe: Path::new(other), ..full_launch })));
    }
    configs.push(("without D-Bus".into(), Some(Launch::plain())));
    configs.push((
        "without D-Bus and change index".into(),
        Some(Launch { extra: &["--no-index-changes"], ..Launch::plain() }),
    ));
    configs.push((
        "floor: the kernel's work alone (snapshot, delete one 5 s old, one row committed with fsync)".into(),
        None,
    ));
    let mut rows: Vec<(String, Vec<f64>)> = configs.iter().map(|(name, _)| (name.clone(), Vec::new())).collect();
    let mut full = None;
    for round in 0..rounds {
        // Each round starts one configuration later, so that none always
        // follows the same other one.
        for i in (0..configs.len()).map(|k| (k + round) % configs.len()) {
            let launch = &configs[i].1;
            let ms = match launch {
                Some(launch) => {
                    let run = daemon_run(img, &format!("production-{round}-{i}"), 1000, "5s", secs, *launch);
                    let ms = run.steady_cpu_per_snapshot_ms;
                    if i == 0 && full.is_none() {
                        full = Some(run);
                    }
                    ms
                }
                None => floor_run(img, secs),
            };
            rows[i].1.push(ms);
        }
    }
    Production { rows, full: full.expect("at least one round") }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn print_production(p: &Production, secs: u64) {
    let rounds = p.rows[0].1.len();
    let floor = median(&p.rows.last().unwrap().1);
    println!();
    println!(
        "| 1 Hz, pruning every tick (retention 5 s), metrics; {rounds} rounds of {secs} s | CPU per tick after the first 5 s: median | min–max | median above the floor |"
    );
    println!("|---|---|---|---|");
    for (name, values) in &p.rows {
        let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = values.iter().cloned().fold(0.0, f64::max);
        let m = median(values);
        println!("| {name} | {m:.3} ms | {min:.3}–{max:.3} ms | {:.3} ms |", m - floor);
    }
}

fn main() {
    require_root();
    let secs: u64 = std::env::var("GB_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let load = std::env::var("GB_BENCH_LOAD").is_ok_and(|v| v == "1");
    let img = BtrfsImage::new(2048);
    // Some content in the source, so snapshots are of a real tree.
    for i in 0..200 {
        std::fs::write(img.source().join(format!("file-{i}")), vec![i as u8; 4096]).unwrap();
    }
    let fifo = std::env::var("GB_BENCH_FIFO").is_ok_and(|v| v == "1");
    println!(
        "snapshotter benchmark: {secs} s per 1 Hz run{}{}",
        if load { ", 2 busy processes" } else { "" },
        if fifo { ", daemon at SCHED_FIFO 1" } else { "" }
    );
    /// Busy processes, killed on drop (also when a measurement panics).
    struct Hogs(Vec<Child>);
    impl Drop for Hogs {
        fn drop(&mut self) {
            for h in &mut self.0 {
                let _ = h.kill();
                let _ = h.wait();
            }
        }
    }
    let rounds: usize = std::env::var("GB_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    // GB_BENCH_PRODUCTION=1: only the production configuration and its floor.
    if std::env::var("GB_BENCH_PRODUCTION").is_ok_and(|v| v == "1") {
        print_production(&production(&img, secs, rounds), secs);
        return;
    }
    let mut hogs = Hogs(Vec::new());
    if load {
        for _ in 0..2 {
            hogs.0.push(Command::new("sh").args(["-c", "while :; do :; done"]).stdout(Stdio::null()).spawn().unwrap());
        }
    }
    let ours = daemon_run(&img, "daemon-1hz", 1000, "1m", secs, Launch::plain());
    // The change index's own cost: the same without it, and with it while
    // files change (ten appends and a new file per second).
    let unindexed = daemon_run(
        &img,
        "unindexed-1hz",
        1000,
        "1m",
        secs,
        Launch { extra: &["--no-index-changes"], ..Launch::plain() },
    );
    // Ten appends and a new file per second in the source, during one run.
    let with_writer = |tag: &str, extra: &[&str]| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, src, tag) = (std::sync::Arc::clone(&stop), img.source(), tag.to_string());
            std::thread::spawn(move || {
                use std::io::Write;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = src.join(format!("file-{}", i % 200));
                    let mut f = std::fs::OpenOptions::new().append(true).open(name).unwrap();
                    f.write_all(b"more\n").unwrap();
                    if i.is_multiple_of(10) {
                        std::fs::write(src.join(format!("new-{tag}-{i}")), b"new").unwrap();
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let r = daemon_run(&img, tag, 1000, "1m", secs, Launch { extra, ..Launch::plain() });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        r
    };
    let active = with_writer("active-1hz", &[]);
    let active_unindexed = with_writer("active-unindexed-1hz", &["--no-index-changes"]);
    let prod = production(&img, secs, rounds);
    let base = baseline_run(&img, secs);
    drop(hogs);

    println!();
    println!(
        "| 1 Hz for {secs} s | snapshots | CPU per snapshot | after the first 5 s | mean period error | p99 lateness | max lateness | missed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("ghostbridge-snapshotter (change index, nothing changing)", &ours),
        ("ghostbridge-snapshotter --no-index-changes", &unindexed),
        ("ghostbridge-snapshotter (change index, 11 changes per second)", &active),
        ("ghostbridge-snapshotter --no-index-changes (11 changes per second)", &active_unindexed),
        (
            "ghostbridge-snapshotter, production: D-Bus, metrics, change index, pruning every tick (retention 5 s)",
            &prod.full,
        ),
        ("shell baseline (btrfs + sha256sum + sqlite3 + sleep 1)", &base),
    ] {
        println!(
            "| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {} |",
            r.snapshots,
            r.cpu_per_snapshot_ms,
            r.steady_cpu_per_snapshot_ms,
            r.mean_period_error_ms,
            r.p99_lateness_ms,
            r.max_lateness_ms,
            r.missed
        );
    }
    println!("CPU ratio baseline/daemon: {:.1}x", base.cpu_per_snapshot_ms / ours.cpu_per_snapshot_ms.max(1e-9));
    print_production(&prod, secs);

    // Highest sustained rate, with pruning (retention 1 s) in every run.
    let rate_secs = (secs / 6).clamp(5, 15);
    println!();
    println!(
        "| interval (retention 1 s, {rate_secs} s each) | target/s | achieved/s | missed | CPU per snapshot | p99 lateness |"
    );
    println!("|---|---|---|---|---|---|");
    let mut best = 0.0;
    for interval_ms in [50u64, 40, 25, 20, 10, 5, 2] {
        let r = daemon_run(&img, &format!("rate-{interval_ms}"), interval_ms, "1s", rate_secs, Launch::plain());
        let target = 1000.0 / interval_ms as f64;
        let deadlines = r.snapshots as u64 + r.missed;
        println!(
            "| {interval_ms} ms | {target:.0} | {:.1} | {} of {deadlines} | {:.3} ms | {:.3} ms |",
            r.rate, r.missed, r.cpu_per_snapshot_ms, r.p99_lateness_ms
        );
        if r.missed as f64 <= deadlines as f64 * 0.01 {
            best = f64::max(best, r.rate);
        }
    }
    println!("highest sustained rate with pruning (<= 1% missed deadlines): {best:.1} snapshots/s");
}

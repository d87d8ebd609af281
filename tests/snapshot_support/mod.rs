//! Shared fixtures of the snapshotter tests: a loop-mounted BTRFS image with a
//! source subvolume, the daemon as a child process, and chain/disk queries.
//! Every fixture cleans up in `Drop` (unmount, kill), also when a test fails.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The snapshotter binary of this build, as `/proc/self/fd/N` of an open file.
///
/// Cargo's `target/<profile>/ghostbridge-snapshotter` is shared by every checkout that
/// uses the same target directory and can be replaced by another checkout's build at any
/// moment. The first call finds this build's binary (the uplifted one or the hashed copy
/// under `deps/`) and keeps it open, so later replacements of the path do not matter.
pub fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<(std::fs::File, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = BIN.get_or_init(|| {
        let ours = |p: &Path| {
            Command::new(p)
                .arg("--help")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("Recompute the whole chain"))
                .unwrap_or(false)
        };
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_ghostbridge-snapshotter"));
        let deps = exe.parent().unwrap().join("deps");
        let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("ghostbridge_snapshotter-") && !n.contains('.')
            })
            .chain([exe])
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        candidates.sort();
        for (_, p) in candidates.into_iter().rev() {
            // Open first, then check what was opened: the path may change in between.
            let Ok(file) = std::fs::File::open(&p) else { continue };
            let fd_path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file)));
            if ours(&fd_path) {
                return (file, fd_path);
            }
        }
        panic!(
            "no ghostbridge-snapshotter build of this checkout found next to {}",
            env!("CARGO_BIN_EXE_ghostbridge-snapshotter")
        );
    });
    path
}

/// Fails the test unless running as root: these tests are marked
/// `#[ignore = "needs root: ..."]` and never pass by skipping.
pub fn require_root() {
    assert!(unsafe { libc::geteuid() } == 0, "this test needs root (CI runs it as root with --include-ignored)");
}

pub fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

pub fn sh_ok(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A BTRFS image loop-mounted under a temporary directory, with `source`
/// (a subvolume holding one file) and `snapshots` (a plain directory).
pub struct BtrfsImage {
    pub dir: tempfile::TempDir,
    pub mnt: PathBuf,
}

impl BtrfsImage {
    pub fn new(size_mb: u64) -> BtrfsImage {
        let dir = tempfile::Builder::new().prefix("gb-snap-").tempdir_in("/var/tmp").unwrap();
        let img = dir.path().join("btrfs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        sh_ok(&format!("truncate -s {size_mb}M {}", img.display()));
        let mixed = if size_mb < 200 { "--mixed" } else { "" };
        sh_ok(&format!("mkfs.btrfs -q -f {mixed} {} >/dev/null 2>&1", img.display()));
        sh_ok(&format!("mount -o loop {} {}", img.display(), mnt.display()));
        let me = BtrfsImage { dir, mnt };
        sh_ok(&format!("btrfs subvolume create {} >/dev/null", me.source().display()));
        std::fs::write(me.source().join("data"), b"ghostbridge").unwrap();
        std::fs::create_dir(me.snapshots()).unwrap();
        me
    }
    pub fn source(&self) -> PathBuf {
        self.mnt.join("source")
    }
    pub fn snapshots(&self) -> PathBuf {
        self.mnt.join("snapshots")
    }
    /// A path for the database outside the image.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("chain.db")
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for BtrfsImage {
    fn drop(&mut self) {
        for _ in 0..50 {
            if sh(&format!("umount {}", self.mnt.display())).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sh(&format!("umount -l {}", self.mnt.display()));
    }
}

/// Makes `cmd` start at SCHED_FIFO priority 1, what `CPUSchedulingPolicy=fifo`
/// and `CPUSchedulingPriority=1` in a unit give.
pub fn at_fifo(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only the async-signal-safe sched_setscheduler runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 1 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The daemon as a child process; its stderr goes to a file. Killed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_cmd(Command::new(bin()), args, log, envs)
    }

    /// [`Daemon::spawn`] at SCHED_FIFO priority 1, as its unit starts it
    /// (`CPUSchedulingPolicy=fifo`, `CPUSchedulingPriority=1`).
    pub fn spawn_fifo(args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(bin());
        at_fifo(&mut cmd);
        Daemon::spawn_cmd(cmd, args, log, envs)
    }

    fn spawn_cmd(mut cmd: Command, args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Daemon {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::from(err)).env_remove("NOTIFY_SOCKET");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Daemon { child: cmd.spawn().unwrap(), log: log.to_path_buf() }
    }

    /// (thread name, scheduling policy) of each of the daemon's threads
    /// (`policy`, field 41 of `/proc/PID/task/TID/stat`: 0 normal, 1 FIFO);
    /// the main thread is named "main".
    pub fn thread_policies(&self) -> Vec<(String, u32)> {
        let pid = self.child.id().to_string();
        let mut out = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            // The name is in parentheses and may hold spaces: count fields after its end.
            let (head, rest) = stat.rsplit_once(')').unwrap();
            let name = if task.file_name() == pid.as_str() { "main" } else { head.split_once('(').unwrap().1 };
            let policy = rest.split_whitespace().nth(41 - 3).unwrap().parse().unwrap();
            out.push((name.to_string(), policy));
        }
        out
    }

    /// `run` with the usual flags for an image.
    pub fn run(img: &BtrfsImage, db: &Path, interval: &str, retention: &str, extra: &[&str]) -> Daemon {
        Daemon::run_env(img, db, interval, retention, extra, &[])
    }

    /// [`Daemon::run`] with extra environment variables.
    pub fn run_env(
        img: &BtrfsImage,
        db: &Path,
        interval: &str,
        retention: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Daemon {
        let (src, snaps, db) = (img.source(), img.snapshots(), db.to_path_buf());
        let mut args = vec![
            "run",
            "--source",
            src.to_str().unwrap(),
            "--snapshot-dir",
            snaps.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--interval",
            interval,
            "--retention",
            retention,
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::spawn(&refs, &img.path("daemon.log"), envs)
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Like [`wait_for`], with the daemon's log in the failure message.
    pub fn wait(&self, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; daemon log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM and wait; asserts a clean exit.
    pub fn stop(mut self) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "daemon exited with {status}; log:\n{}", self.log_text());
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn conn(db: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// Number of blocks (0 when the database or table does not exist yet).
pub fn block_count(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    conn(db).query_row("SELECT count(*) FROM blocks", [], |r| r.get(0)).unwrap_or(0)
}

/// Snapshot names of blocks not marked pruned.
pub fn unpruned(db: &Path) -> BTreeSet<String> {
    let c = conn(db);
    let mut st = c.prepare("SELECT snapshot FROM blocks WHERE pruned_ns IS NULL").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Names in the snapshot directory.
pub fn on_disk(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// Runs `verify`; returns (exit code, stdout + stderr).
pub fn verify(db: &Path) -> (i32, String) {
    let out = Command::new(bin()).args(["verify", "--db", db.to_str().unwrap()]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// (height, time_ns, snapshot, pruned_ns) of every block, by height.
pub fn blocks(db: &Path) -> Vec<(i64, i64, String, Option<i64>)> {
    let c = conn(db);
    let mut st = c.prepare("SELECT height, time_ns, snapshot, pruned_ns FROM blocks ORDER BY height").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
}

pub const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bus/org.ghostbridge.Snapshotter.conf");

/// A private bus: permissive defaults, then the shipped policy file included.
pub struct Bus {
    child: Child,
    pub address: String,
}

impl Bus {
    pub fn start(dir: &Path) -> Bus {
        let socket = dir.join("bus.sock");
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <include>{POLICY}</include>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(Duration::from_secs(10), "the bus socket", || socket.exists());
        Bus { child, address: format!("unix:path={}", socket.display()) }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

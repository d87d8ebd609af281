//! Test support for the OVS reconciler: a private ovsdb-server + ovs-vswitchd
//! (userspace `netdev` datapath) inside a private network namespace, so tests
//! run in parallel with each other and with any system Open vSwitch. Everything
//! is torn down on drop, also when the test fails.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ghostbridge::ovs::flows::Ofctl;
use ghostbridge::ovs::{Config, DbAddr, Options};

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Fails the test unless it can run: these tests are marked
/// `#[ignore = "needs root: ..."]`, and a run that includes them must be root
/// with Open vSwitch installed (`bash .ci/deps`); they never pass by skipping.
pub fn require_root() {
    assert!(unsafe { libc::geteuid() } == 0, "this test needs root (CI runs it as root with --include-ignored)");
    assert!(Path::new(SCHEMA).exists(), "this test needs openvswitch-switch: run `bash .ci/deps`");
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sh(line: &str) -> String {
    ok(Command::new("sh").arg("-c").arg(line))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short unique tag (interface names are limited to 15 bytes).
pub fn tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{n}", std::process::id() % 0xffff)
}

/// A network namespace, deleted on drop.
pub struct NetnsGuard(pub String);

impl NetnsGuard {
    /// Creates the namespace; the guard exists from the moment it does.
    pub fn add(name: &str) -> NetnsGuard {
        ok(Command::new("ip").args(["netns", "add", name]));
        NetnsGuard(name.to_string())
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child process killed (and reaped) on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private Open vSwitch in its own network namespace, entered by the calling thread.
pub struct Ovs {
    pub dir: tempfile::TempDir,
    pub netns: String,
    extra_netns: Vec<NetnsGuard>,
    original_ns: File,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    // Dropped after `Drop for Ovs` has left the namespace.
    _netns: NetnsGuard,
}

impl Ovs {
    pub fn start(name: &str) -> Ovs {
        Ovs::start_with(name, true)
    }

    /// `init = false` leaves the database without its `Open_vSwitch` row.
    pub fn start_with(name: &str, init: bool) -> Ovs {
        let dir = tempfile::Builder::new().prefix("gb-ovs-").tempdir().unwrap();
        let netns = format!("gbt-{name}-{}", tag());
        let netns_guard = NetnsGuard::add(&netns);
        let original_ns = File::open("/proc/thread-self/ns/net").unwrap();
        let target = File::open(format!("/run/netns/{netns}")).unwrap();
        // SAFETY: plain syscall on valid fds; only this thread changes namespace.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let mut ovs =
            Ovs { dir, netns, extra_netns: vec![], original_ns, ovsdb: None, vswitchd: None, _netns: netns_guard };
        ok(Command::new("ip").args(["link", "set", "lo", "up"]));
        ok(Command::new("ovsdb-tool").arg("create").arg(ovs.db_file()).arg(SCHEMA));
        ovs.start_ovsdb();
        if init {
            ovs.vsctl(&["--no-wait", "init"]);
        }
        ovs.start_vswitchd();
        ovs
    }

    pub fn db_file(&self) -> PathBuf {
        self.dir.path().join("conf.db")
    }
    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }
    pub fn addr(&self) -> DbAddr {
        DbAddr::parse(&format!("unix:{}", self.sock().display())).unwrap()
    }
    pub fn ofctl(&self) -> Ofctl {
        Ofctl { program: "ovs-ofctl".into(), rundir: Some(self.dir.path().to_path_buf()) }
    }
    pub fn options(&self) -> Options {
        Options { ofctl: self.ofctl(), ..Options::default() }
    }

    fn envs(&self, cmd: &mut Command) {
        let d = self.dir.path();
        cmd.env("OVS_RUNDIR", d).env("OVS_DBDIR", d).env("OVS_LOGDIR", d).env("OVS_SYSCONFDIR", d);
    }

    pub fn start_ovsdb(&mut self) {
        let d = self.dir.path();
        let _ = std::fs::remove_file(self.sock());
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(self.db_file())
            .arg(format!("--remote=punix:{}", self.sock().display()))
            // Each test has its own network namespace, so a fixed loopback port cannot collide.
            .arg("--remote=ptcp:6640:127.0.0.1")
            .arg(format!("--unixctl={}", d.join("ovsdb.ctl").display()))
            .arg(format!("--log-file={}", d.join("ovsdb.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.envs(&mut cmd);
        self.ovsdb = Some(cmd.spawn().expect("spawn ovsdb-server"));
        wait_for(|| self.sock().exists(), "ovsdb-server socket");
    }

    /// An OVSDB relay (`ovsdb-server relay:Open_vSwitch:...`) in front of the
    /// database: a second ovsdb-server that clients can use, and that can be
    /// killed and restarted without ovs-vswitchd (connected to the main
    /// server) losing its connection and backing off for seconds.
    pub fn start_relay(&self) -> Relay {
        let d = self.dir.path();
        let sock = d.join("relay.sock");
        let _ = std::fs::remove_file(&sock);
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(format!("--remote=punix:{}", sock.display()))
            .arg(format!("--unixctl={}", d.join("relay.ctl").display()))
            .arg(format!("--log-file={}", d.join("relay.log").display()))
            .arg(format!("relay:Open_vSwitch:unix:{}", self.sock().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.envs(&mut cmd);
        let child = cmd.spawn().expect("spawn the ovsdb relay");
        wait_for(|| sock.exists(), "the relay's socket");
        Relay { child, sock }
    }

    pub fn kill_ovsdb(&mut self) {
        if let Some(mut c) = self.ovsdb.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) ovs-vswitchd.
    pub fn pause_vswitchd(&self, pause: bool) {
        pause_child(self.vswitchd.as_ref().expect("ovs-vswitchd running"), pause);
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) ovsdb-server: a hung database.
    pub fn pause_ovsdb(&self, pause: bool) {
        pause_child(self.ovsdb.as_ref().expect("ovsdb-server running"), pause);
    }

    fn start_vswitchd(&mut self) {
        let d = self.dir.path();
        let mut cmd = Command::new("ovs-vswitchd");
        cmd.arg(format!("unix:{}", self.sock().display()))
            .arg("--disable-system")
            // The default control socket, <rundir>/ovs-vswitchd.<pid>.ctl, found through the pidfile.
            .arg(format!("--pidfile={}", d.join("ovs-vswitchd.pid").display()))
            .arg(format!("--log-file={}", d.join("vswitchd.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.envs(&mut cmd);
        self.vswitchd = Some(cmd.spawn().expect("spawn ovs-vswitchd"));
        wait_for(
            || ghostbridge::ovs::flows::vswitchd_ctl(Some(d)).is_some_and(|c| c.exists()),
            "ovs-vswitchd control socket",
        );
    }

    pub fn vsctl_out(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.arg(format!("--db=unix:{}", self.sock().display())).arg("--timeout=10").args(args);
        self.envs(&mut cmd);
        String::from_utf8_lossy(&run(&mut cmd).stdout).into_owned()
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.arg(format!("--db=unix:{}", self.sock().display())).arg("--timeout=10").args(args);
        self.envs(&mut cmd);
        ok(&mut cmd)
    }

    pub fn ofctl_out(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ovs-ofctl");
        cmd.args(args);
        self.envs(&mut cmd);
        ok(&mut cmd)
    }

    /// A veth pair in the test namespace, both ends up.
    pub fn veth(&self, a: &str, b: &str) {
        ok(Command::new("ip").args(["link", "add", a, "type", "veth", "peer", "name", b]));
        ok(Command::new("ip").args(["link", "set", a, "up"]));
        ok(Command::new("ip").args(["link", "set", b, "up"]));
    }

    /// Another named namespace, deleted on drop.
    pub fn add_netns(&mut self, prefix: &str) -> String {
        let name = format!("gbt-{prefix}-{}", tag());
        self.extra_netns.push(NetnsGuard::add(&name));
        name
    }

    /// The config text for `bridges` (JSON array) pointing at this instance.
    pub fn config(&self, bridges: serde_json::Value) -> Config {
        let text = serde_json::json!({"db": format!("unix:{}", self.sock().display()), "bridges": bridges}).to_string();
        Config::parse(&text, "test").unwrap()
    }

    /// Committed transactions whose comment says they came from ghostbridge-ovs, read from the database file.
    pub fn reconciler_commits(&self) -> usize {
        let text = std::fs::read(self.db_file()).unwrap();
        String::from_utf8_lossy(&text).matches("\"_comment\":\"ghostbridge-ovs").count()
    }

    /// `_uuid` and `_version` of every row of `table`, read with ovsdb-client (sorted).
    pub fn row_versions(&self, table: &str) -> Vec<String> {
        let q = serde_json::json!(["Open_vSwitch", {"op": "select", "table": table, "where": [], "columns": ["_uuid", "_version"]}]);
        let out = ok(Command::new("ovsdb-client")
            .arg("transact")
            .arg(format!("unix:{}", self.sock().display()))
            .arg(q.to_string()));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut rows: Vec<String> = v[0]["rows"].as_array().unwrap().iter().map(|r| r.to_string()).collect();
        rows.sort();
        rows
    }

    pub fn next_cfg(&self) -> String {
        self.vsctl(&["get", "Open_vSwitch", ".", "next_cfg"]).trim().to_string()
    }

    pub fn bridges(&self) -> Vec<String> {
        self.vsctl(&["list-br"]).lines().map(str::to_string).collect()
    }

    pub fn ports(&self, bridge: &str) -> Vec<String> {
        let mut v: Vec<String> = self.vsctl(&["list-ports", bridge]).lines().map(str::to_string).collect();
        v.sort();
        v
    }
}

/// A running OVSDB relay; killed on drop.
pub struct Relay {
    child: Child,
    pub sock: PathBuf,
}

impl Relay {
    pub fn addr(&self) -> DbAddr {
        DbAddr::parse(&format!("unix:{}", self.sock.display())).unwrap()
    }
    /// kill -9, as a crash or a restart would end it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pause_child(child: &Child, pause: bool) {
    let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if let Some(mut c) = self.vswitchd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill_ovsdb();
        // SAFETY: restoring this thread's original namespace from a valid fd.
        unsafe { libc::setns(self.original_ns.as_raw_fd(), libc::CLONE_NEWNET) };
        // The namespaces go when their guards drop, right after this.
    }
}

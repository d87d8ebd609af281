//! Targets for `ghostgen deploy` tests: each is a network namespace running
//! a real OpenSSH server, in a mount namespace where `/run`,
//! `/nix/var/nix/profiles`, `/usr/local/bin` and `/etc/passwd` are the
//! test's own. Its "system" is a fake generation layout: profile links and
//! generations whose `switch-to-configuration` records what it was asked
//! (and can fail, or take the network down); `systemd-run` and `nix-env` are
//! small doubles in `/usr/local/bin`. The deployer side runs the real
//! `ghostgen` and `ssh`, with a `nix` double that prints the fake systems.

#![allow(dead_code)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Fails the test unless it can run (never passes by skipping).
pub fn require_root() {
    assert!(unsafe { libc::geteuid() } == 0, "this test needs root (CI runs it as root with --include-ignored)");
    for tool in ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/sudo", "/usr/bin/unshare"] {
        assert!(Path::new(tool).exists(), "this test needs {tool}: run `bash .ci/deps`");
    }
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(line: &str) -> String {
    ok(Command::new("sh").arg("-c").arg(line))
}

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// How a fake generation behaves when activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Activates, brings the link up, doctor healthy.
    Good,
    /// Activates, doctor reports a failed unit.
    Unhealthy,
    /// `switch-to-configuration test` takes the network link down.
    CutsNetwork,
    /// `switch-to-configuration test` fails.
    BrokenActivation,
    /// The doctor takes 60 s to answer (the window stays open).
    SlowDoctor,
    /// `switch-to-configuration boot` fails (a full /boot, a broken boot loader).
    BrokenBoot,
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The operator's side: an SSH key, a `nix` double, and a spec folder.
pub struct Deployer {
    pub dir: tempfile::TempDir,
}

impl Deployer {
    pub fn new() -> Deployer {
        let dir = tempfile::Builder::new().prefix("gbdeploy-op").tempdir().unwrap();
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@desk", "-f"])
            .arg(dir.path().join("key")));
        write_exec(
            &dir.path().join("bin/nix"),
            &format!(
                r#"#!/bin/sh
# The operator's nix, as a double: `build` prints the fake system of the
# host its attribute names; every call is recorded with NIX_SSHOPTS.
echo "NIX_SSHOPTS=$NIX_SSHOPTS nix $*" >> {log}
for a in "$@"; do last=$a; done
case " $* " in
  *" build "*) host=${{last##*nixosConfigurations.}}; cat "{builds}/${{host%%.*}}" ;;
esac
"#,
                log = dir.path().join("nix.log").display(),
                builds = dir.path().join("builds").display()
            ),
        );
        std::fs::create_dir_all(dir.path().join("builds")).unwrap();
        Deployer { dir }
    }

    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("key.pub")).unwrap().trim().to_string()
    }

    /// A fleet spec with one host per target, built into `flake/`.
    pub fn spec(&self, targets: &[&Target]) -> PathBuf {
        self.spec_with(targets, "")
    }

    /// As `spec`, with `deploy` (TOML lines; ADDRESS is the host's) added to
    /// each `[hosts.deploy]`, whose `address` they may replace.
    pub fn spec_with(&self, targets: &[&Target], deploy: &str) -> PathBuf {
        let mut spec = String::from("[defaults]\nstate_version = \"25.11\"\n\n");
        spec.push_str(&format!(
            "[[defaults.users]]\nname = \"admin\"\nadmin = true\nssh_keys = [\"{}\"]\n\n",
            self.public_key()
        ));
        for t in targets {
            let address =
                if deploy.contains("address =") { String::new() } else { format!("address = \"{}\"\n", t.address) };
            spec.push_str(&format!(
                "[[hosts]]\nname = \"{}\"\n[hosts.deploy]\n{address}{}\n\n",
                t.host,
                deploy.replace("ADDRESS", &t.address)
            ));
        }
        let path = self.dir.path().join("spec.toml");
        std::fs::write(&path, spec).unwrap();
        ok(Command::new(env!("CARGO_BIN_EXE_ghostgen"))
            .arg("build")
            .arg(&path)
            .arg("-o")
            .arg(self.dir.path().join("flake")));
        for t in targets {
            std::fs::write(self.dir.path().join("builds").join(&t.host), format!("{}\n", t.new_system().display()))
                .unwrap();
        }
        path
    }

    /// `ghostgen deploy SPEC ARGS...` as the operator runs it.
    pub fn command(&self, spec: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ghostgen"));
        cmd.arg("deploy").arg(spec).arg("-o").arg(self.dir.path().join("flake")).args(args);
        let path = format!("{}:{}", self.dir.path().join("bin").display(), std::env::var("PATH").unwrap_or_default());
        cmd.env("PATH", path).env(
            "NIX_SSHOPTS",
            format!(
                "-i {} -F /dev/null -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR",
                self.dir.path().join("key").display()
            ),
        );
        cmd
    }

    /// `ghostgen deploy` started in the background, its output captured.
    pub fn spawn(&self, spec: &Path, args: &[&str]) -> Child {
        self.command(spec, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// An ssh config file that every connection reads, jump hosts included
    /// (options on the command line apply to the destination only).
    pub fn ssh_config(&self) -> PathBuf {
        let path = self.dir.path().join("ssh_config");
        std::fs::write(
            &path,
            format!(
                "Host *\n  IdentityFile {}\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  LogLevel ERROR\n",
                self.dir.path().join("key").display()
            ),
        )
        .unwrap();
        path
    }

    pub fn deploy(&self, spec: &Path, args: &[&str]) -> Output {
        self.command(spec, args).output().unwrap()
    }

    pub fn nix_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nix.log")).unwrap_or_default()
    }
}

/// One target host.
pub struct Target {
    pub host: String,
    pub address: String,
    ns: String,
    veth: String,
    pub dir: tempfile::TempDir,
    sshd: Child,
}

impl Target {
    /// A host on generation 1 (good), with generation 2 built to behave as `next`.
    pub fn new(host: &str, deployer: &Deployer, next: Behaviour) -> Target {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 10000);
        let ns = format!("gbdeploy-{tag}");
        let veth = format!("gbd{tag}");
        let subnet = format!("10.213.{}", n % 250);
        let address = format!("{subnet}.2");
        let dir = tempfile::Builder::new().prefix("gbdeploy-host").tempdir().unwrap();
        let d = dir.path().to_path_buf();
        sh(&format!(
            "ip netns add {ns} && ip link add {veth}h type veth peer name {veth}t && ip link set {veth}t netns {ns} \
             && ip addr add {subnet}.1/24 dev {veth}h && ip link set {veth}h up \
             && ip -n {ns} addr add {address}/24 dev {veth}t && ip -n {ns} link set {veth}t up && ip -n {ns} link set lo up"
        ));
        for sub in ["run/sshd", "run/units", "profiles", "bin", "etc", "store"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::set_permissions(d.join("run/sshd"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(d.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = d.join("log");
        for (label, behaviour) in [("gen1", Behaviour::Good), ("gen2", next)] {
            generation(&d.join("store").join(label), label, behaviour, &format!("{veth}t"), &log);
        }
        symlink(d.join("store/gen1"), d.join("run/current-system")).unwrap();
        symlink(d.join("store/gen1"), d.join("profiles/system-1-link")).unwrap();
        symlink("system-1-link", d.join("profiles/system")).unwrap();
        write_exec(
            &d.join("bin/systemd-run"),
            r#"#!/bin/sh
# systemd-run, as a double: the command runs in its own session, outliving
# the SSH session; its pid is kept in /run/units/UNIT.pid.
unit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit=${1#--unit=} ;;
    -E) shift ;;
    --) shift; break ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
setsid "$@" > "/run/units/$unit.log" 2>&1 < /dev/null &
echo $! > "/run/units/$unit.pid"
"#,
        );
        write_exec(
            &d.join("bin/nix-env"),
            &format!(
                r#"#!/bin/sh
# nix-env --profile P (--set PATH | --switch-generation N), as a double.
echo "nix-env $*" >> {log}
p=$2
case "$3" in
  --set)
    n=$(ls -d "$p"-*-link | sed 's/.*-\([0-9]*\)-link$/\1/' | sort -n | tail -1)
    n=$((n + 1))
    ln -s "$4" "$p-$n-link"
    ln -sfn "$(basename "$p")-$n-link" "$p" ;;
  --switch-generation)
    ln -sfn "$(basename "$p")-$4-link" "$p" ;;
  *) exit 2 ;;
esac
"#,
                log = log.display()
            ),
        );
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        std::fs::write(d.join("etc/passwd"), format!("{passwd}admin:x:0:0:deploy test:/root:/bin/sh\n")).unwrap();
        ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join("host_key")));
        std::fs::write(d.join("authorized_keys"), format!("{}\n", deployer.public_key())).unwrap();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress {address}\nListenAddress 127.0.0.1\nPort 22\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n",
                d = d.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/nix/var/nix/profiles").unwrap();
        let mounts = format!(
            "mount --bind {d}/run /run && mount --bind {d}/profiles /nix/var/nix/profiles \
             && mount --bind {d}/bin /usr/local/bin && mount --bind {d}/etc/passwd /etc/passwd \
             && exec /usr/sbin/sshd -D -e -f {d}/sshd_config",
            d = d.display()
        );
        let sshd = Command::new("ip")
            .args(["netns", "exec", &ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", &mounts])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let target = Target { host: host.to_string(), address, ns, veth, dir, sshd };
        target.wait_listening();
        target
    }

    fn wait_listening(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        let addr: std::net::SocketAddr = format!("{}:22", self.address).parse().unwrap();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < end, "sshd did not listen: {}", self.file("sshd.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn new_system(&self) -> PathBuf {
        self.dir.path().join("store/gen2")
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// What the generations were asked to do, in order (`gen2 test`, `nix-env ...`).
    pub fn log(&self) -> Vec<String> {
        self.file("log").lines().map(str::to_string).collect()
    }

    /// The running system's label (`gen1`, `gen2`).
    pub fn current(&self) -> String {
        label(&std::fs::read_link(self.dir.path().join("run/current-system")).unwrap())
    }

    /// The boot default: the system profile's generation and its system's label.
    pub fn boot_default(&self) -> (String, String) {
        let link = std::fs::read_link(self.dir.path().join("profiles/system")).unwrap();
        let system = std::fs::read_link(self.dir.path().join("profiles").join(&link)).unwrap();
        (link.display().to_string(), label(&system))
    }

    /// The deployments' state files.
    pub fn states(&self) -> Vec<serde_json::Value> {
        let dir = self.dir.path().join("run/ghostbridge-deploy");
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .filter_map(|e| std::fs::read(e.ok()?.path().join("state.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Waits until some deployment reaches `phase`.
    pub fn wait_phase(&self, phase: &str, limit: Duration) -> serde_json::Value {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.states().into_iter().find(|s| s["phase"] == phase) {
                return s;
            }
            assert!(Instant::now() < end, "no deployment reached {phase}: {:?}; log {:?}", self.states(), self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Back on generation 1 with no deployment recorded (for repeated runs).
    pub fn reset(&self) {
        let d = self.dir.path();
        for entry in std::fs::read_dir(d.join("profiles")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name != "system-1-link" {
                std::fs::remove_file(&path).unwrap();
            }
        }
        symlink("system-1-link", d.join("profiles/system")).unwrap();
        let current = d.join("run/current-system");
        std::fs::remove_file(&current).unwrap();
        symlink(d.join("store/gen1"), &current).unwrap();
        let _ = std::fs::remove_dir_all(d.join("run/ghostbridge-deploy"));
        let _ = std::fs::remove_file(d.join("log"));
    }

    /// `ssh` to this host as the deployer runs it, with the deployer's key.
    pub fn ssh(&self, deployer: &Deployer, remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-i"])
            .arg(deployer.dir.path().join("key"))
            .arg(format!("admin@{}", self.address))
            .arg(remote);
        cmd
    }

    /// Kills the transient unit's process, as a reboot or `systemctl kill` would.
    pub fn kill_agent(&self) {
        for entry in std::fs::read_dir(self.dir.path().join("run/units")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pid") {
                let pid = std::fs::read_to_string(&path).unwrap();
                sh(&format!("kill -9 {}", pid.trim()));
            }
        }
    }

    /// Whether the target's link is up (a generation may take it down).
    pub fn link_up(&self) -> bool {
        let out = ok(Command::new("ip").args(["-n", &self.ns, "-o", "link", "show", &format!("{}t", self.veth)]));
        out.contains(",UP") || out.contains("<UP")
    }
}

fn label(system: &Path) -> String {
    system.file_name().unwrap().to_string_lossy().into_owned()
}

/// A fake NixOS generation: `bin/switch-to-configuration` records the call
/// and acts as `behaviour` says; `sw/bin` has the doctor (a double) and the
/// real deploy agent.
fn generation(dir: &Path, label: &str, behaviour: Behaviour, link: &str, log: &Path) {
    let act = match behaviour {
        Behaviour::CutsNetwork => format!("[ \"$1\" = test ] && ip link set dev {link} down"),
        Behaviour::BrokenActivation => "[ \"$1\" = test ] && exit 1".to_string(),
        Behaviour::BrokenBoot => format!("[ \"$1\" = boot ] && exit 1; ip link set dev {link} up"),
        _ => format!("[ \"$1\" = boot ] || ip link set dev {link} up"),
    };
    write_exec(
        &dir.join("bin/switch-to-configuration"),
        &format!(
            "#!/bin/sh\necho \"{label} $1\" >> {log}\ncase \"$1\" in test|switch) ln -sfn {dir} /run/current-system ;; esac\n{act}\nexit 0\n",
            log = log.display(),
            dir = dir.display()
        ),
    );
    let healthy = r#"{"healthy":true,"checks":[{"name":"unit sshd.service","state":"ok","detail":"active"}]}"#;
    let doctor = match behaviour {
        Behaviour::Unhealthy => r#"echo '{"healthy":false,"checks":[{"name":"unit ghostbridge-ovs.service","state":"fail","detail":"failed (exit 1)"}]}'; exit 1"#.to_string(),
        Behaviour::SlowDoctor => format!("sleep 60; echo '{healthy}'"),
        _ => format!("echo '{healthy}'"),
    };
    write_exec(&dir.join("sw/bin/ghostbridge-doctor"), &format!("#!/bin/sh\n{doctor}\n"));
    symlink(env!("CARGO_BIN_EXE_ghostbridge-deploy-agent"), dir.join("sw/bin/ghostbridge-deploy-agent")).unwrap();
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        // Agents still waiting (a test that failed midway) end with the namespace's processes.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}; ip link del {veth}h 2>/dev/null",
                ns = self.ns,
                veth = self.veth
            ))
            .status();
    }
}

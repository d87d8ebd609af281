//! The target half of `ghostgen deploy`, run as `ghostbridge-deploy-agent`
//! inside a transient systemd unit so that it outlives the SSH session that
//! started it: remember the running system, activate the new one live
//! (`switch-to-configuration test`, boot entry untouched), wait for a
//! confirmation, then make it the boot default (system profile plus
//! `switch-to-configuration boot`); without a confirmation in time, or on a
//! rejection, switch back to the remembered system. The state is a JSON file
//! in `/run`, which a reboot clears along with the unconfirmed generation.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::state::{DeployState, Phase, generation_of};
use crate::runtime::signals::Stop;

/// Where a NixOS host keeps what the agent reads and writes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The running system (`/run/current-system`), set by every activation.
    pub current_system: PathBuf,
    /// The system profile whose generations the boot menu lists.
    pub system_profile: PathBuf,
    /// One folder per deployment, in `/run` so that a reboot clears it.
    pub state_dir: PathBuf,
}

impl Layout {
    /// The paths of a NixOS host.
    pub fn nixos() -> Layout {
        Layout {
            current_system: "/run/current-system".into(),
            system_profile: "/nix/var/nix/profiles/system".into(),
            state_dir: "/run/ghostbridge-deploy".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("deployment id {0:?} is not lower-case letters, digits and '-' (at most 64)")]
    BadId(String),
    #[error("another deployment holds {0} (one deployment at a time per host)")]
    Busy(PathBuf),
    #[error("deployment {0} already exists on this host")]
    Exists(String),
    #[error("{} is not a NixOS system: it has no bin/switch-to-configuration", .0.display())]
    NotASystem(PathBuf),
    #[error("no deployment {0} on this host (a reboot clears {1})")]
    NoDeployment(String, PathBuf),
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state of deployment {id} is unreadable")]
    BadState {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("deployment {0} did not finish within {1:?}")]
    StillRunning(String, Duration),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AgentError + 'a {
    move |source| AgentError::Io { what, path: path.to_path_buf(), source }
}

/// The rule for deployment ids (they name a folder and a systemd unit).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
}

/// How often the agent and the waiting commands look at the state folder.
const POLL: Duration = Duration::from_millis(100);

/// One deployment's folder.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(layout: &Layout, id: &str) -> Result<Files, AgentError> {
        if !valid_id(id) {
            return Err(AgentError::BadId(id.to_string()));
        }
        Ok(Files { dir: layout.state_dir.join(id) })
    }
    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    fn confirm(&self) -> PathBuf {
        self.dir.join("confirm")
    }
    fn reject(&self) -> PathBuf {
        self.dir.join("reject")
    }

    /// Replaces the state file atomically (write, fsync, rename).
    fn write(&self, state: &DeployState) -> Result<(), AgentError> {
        let tmp = self.dir.join("state.json.tmp");
        let mut f = fs::File::create(&tmp).map_err(io("write", &tmp))?;
        let json = serde_json::to_vec(state).map_err(|source| AgentError::BadState { id: state.id.clone(), source })?;
        f.write_all(&json).and_then(|()| f.sync_all()).map_err(io("write", &tmp))?;
        fs::rename(&tmp, self.state()).map_err(io("write", &self.state()))
    }

    fn read(&self, id: &str, layout: &Layout) -> Result<DeployState, AgentError> {
        let path = self.state();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AgentError::NoDeployment(id.to_string(), layout.state_dir.clone()));
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| AgentError::BadState { id: id.to_string(), source })
    }
}

/// Runs `SYSTEM/bin/switch-to-configuration ACTION`; its output goes to the unit's journal.
fn switch(system: &Path, action: &str) -> Result<(), String> {
    let program = system.join("bin/switch-to-configuration");
    let status = Command::new(&program)
        .arg(action)
        .env_remove("NIXOS_INSTALL_BOOTLOADER")
        .status()
        .map_err(|e| format!("cannot run {} {action}: {e}", program.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("switch-to-configuration {action} of {} {status}", system.display()))
    }
}

/// Runs `nix-env --profile PROFILE ARGS...` (the one way the agent changes the profile).
fn nix_env(profile: &Path, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let status = Command::new("nix-env")
        .arg("--profile")
        .arg(profile)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run nix-env: {e}"))?;
    let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    if status.success() { Ok(()) } else { Err(format!("nix-env {} {status}", shown.join(" "))) }
}

/// Points the system profile at `system` (a new generation), as nixos-rebuild does.
fn set_profile(profile: &Path, system: &Path) -> Result<(), String> {
    nix_env(profile, &["--set".as_ref(), system.as_os_str()])
}

/// Points the system profile back at generation `number`.
fn restore_profile(profile: &Path, number: u32) -> Result<(), String> {
    nix_env(profile, &["--switch-generation".as_ref(), number.to_string().as_ref()])
}

/// Removes a profile that did not exist before the deployment (the profile
/// link and the one generation link `nix-env --set` made).
fn remove_profile(profile: &Path) -> Result<(), String> {
    let Ok(generation) = fs::read_link(profile) else { return Ok(()) };
    let generation = profile.parent().map(|dir| dir.join(&generation)).unwrap_or(generation);
    fs::remove_file(profile)
        .and_then(|()| fs::remove_file(&generation))
        .map_err(|e| format!("cannot remove the new profile {}: {e}", profile.display()))
}

fn profile_generation(profile: &Path) -> Option<u32> {
    fs::read_link(profile).ok().as_deref().and_then(generation_of)
}

/// What ended the wait for a confirmation.
enum Verdict {
    Confirmed,
    Rejected(String),
    TimedOut,
    Stopped,
}

/// The whole deployment on the target: activate, wait, commit or roll back.
/// Returns the final state (also written to the state folder).
pub fn activate(
    layout: &Layout,
    id: &str,
    system: &Path,
    confirm_timeout: Duration,
    stop: &Stop,
) -> Result<DeployState, AgentError> {
    let files = Files::new(layout, id)?;
    fs::create_dir_all(&layout.state_dir).map_err(io("create", &layout.state_dir))?;
    let lock_path = layout.state_dir.join("lock");
    let lock_file = fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| AgentError::Busy(lock_path))?;
    match fs::create_dir(&files.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(AgentError::Exists(id.to_string())),
        Err(e) => return Err(io("create", &files.dir)(e)),
    }
    if !system.join("bin/switch-to-configuration").is_file() {
        return Err(AgentError::NotASystem(system.to_path_buf()));
    }
    let before = fs::canonicalize(&layout.current_system).map_err(io("resolve", &layout.current_system))?;
    let mut state = DeployState {
        id: id.to_string(),
        phase: Phase::Activating,
        pid: std::process::id(),
        pid_started: process_stat(std::process::id()).map(|(_, t)| t),
        system_before: before.display().to_string(),
        system_after: system.display().to_string(),
        generation_before: profile_generation(&layout.system_profile),
        generation_after: None,
        confirm_within_ms: None,
        confirm_deadline_ms: None,
        reason: None,
    };
    files.write(&state)?;

    if let Err(why) = switch(system, "test") {
        return roll_back(&files, state, &before, format!("activation failed: {why}"));
    }

    let deadline = Instant::now() + confirm_timeout;
    state.phase = Phase::Waiting;
    state.confirm_within_ms = Some(confirm_timeout.as_millis() as u64);
    state.confirm_deadline_ms = boot_clock_ms().map(|now| now + confirm_timeout.as_millis() as u64);
    files.write(&state)?;
    let verdict = loop {
        if files.confirm().exists() {
            break Verdict::Confirmed;
        }
        if let Ok(reason) = fs::read_to_string(files.reject()) {
            break Verdict::Rejected(reason.trim().to_string());
        }
        if stop.requested() {
            break Verdict::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            break Verdict::TimedOut;
        }
        std::thread::sleep(POLL.min(deadline - now));
    };
    state.confirm_within_ms = None;
    state.confirm_deadline_ms = None;
    match verdict {
        Verdict::Confirmed => commit(&files, layout, state, system, &before),
        Verdict::Rejected(reason) => {
            let reason = if reason.is_empty() { "rejected by the deployer".to_string() } else { reason };
            roll_back(&files, state, &before, reason)
        }
        Verdict::TimedOut => roll_back(
            &files,
            state,
            &before,
            format!("no confirmation within {}", humantime::format_duration(confirm_timeout)),
        ),
        Verdict::Stopped => {
            state.phase = Phase::Interrupted;
            state.reason = Some("the agent was stopped while waiting; the boot default is unchanged".into());
            files.write(&state)?;
            Ok(state)
        }
    }
}

fn commit(
    files: &Files,
    layout: &Layout,
    mut state: DeployState,
    system: &Path,
    before: &Path,
) -> Result<DeployState, AgentError> {
    state.phase = Phase::Committing;
    files.write(&state)?;
    let result = set_profile(&layout.system_profile, system).and_then(|()| switch(system, "boot"));
    match result {
        Ok(()) => {
            state.phase = Phase::Committed;
            state.generation_after = profile_generation(&layout.system_profile);
            files.write(&state)?;
            Ok(state)
        }
        Err(why) => {
            // Put the boot default back where it was, then the live system.
            let profile_back = match state.generation_before {
                Some(n) if profile_generation(&layout.system_profile) != Some(n) => {
                    restore_profile(&layout.system_profile, n).and_then(|()| switch(before, "boot"))
                }
                Some(_) => Ok(()),
                None => remove_profile(&layout.system_profile),
            };
            match profile_back {
                Ok(()) => roll_back(files, state, before, format!("making it the boot default failed: {why}")),
                Err(undo) => {
                    state.phase = Phase::Failed;
                    state.reason = Some(format!(
                        "making it the boot default failed ({why}), and restoring the old boot default failed too ({undo})"
                    ));
                    files.write(&state)?;
                    Ok(state)
                }
            }
        }
    }
}

fn roll_back(files: &Files, mut state: DeployState, before: &Path, reason: String) -> Result<DeployState, AgentError> {
    state.phase = Phase::RollingBack;
    state.reason = Some(reason.clone());
    files.write(&state)?;
    match switch(before, "test") {
        Ok(()) => state.phase = Phase::RolledBack,
        Err(why) => {
            state.phase = Phase::Failed;
            state.reason = Some(format!("{reason}; switching back failed too: {why}"));
        }
    }
    files.write(&state)?;
    Ok(state)
}

/// A process's state letter and start time (clock ticks after boot), from
/// `/proc/PID/stat`: the start time tells the agent from a later process
/// that reuses its pid.
fn process_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// The host's boot clock in milliseconds (shared by every process, never stepped).
fn boot_clock_ms() -> Option<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    Some(now.tv_sec() as u64 * 1000 + now.tv_nsec() as u64 / 1_000_000)
}

/// Whether the process that wrote `state` still runs it.
fn agent_alive(state: &DeployState) -> bool {
    matches!(process_stat(state.pid), Some((s, started)) if s != 'Z' && Some(started) == state.pid_started)
}

/// The deployment's state; a deployment whose agent is gone before the end
/// reads as `interrupted`.
pub fn status(layout: &Layout, id: &str) -> Result<DeployState, AgentError> {
    let files = Files::new(layout, id)?;
    let mut state = files.read(id, layout)?;
    if let (Some(deadline), Some(now)) = (state.confirm_deadline_ms, boot_clock_ms()) {
        state.confirm_within_ms = Some(deadline.saturating_sub(now));
    }
    if !state.phase.is_final() && !agent_alive(&state) {
        let boot = if state.phase == Phase::Committing { "may be either generation" } else { "is unchanged" };
        state.reason = Some(format!(
            "the agent stopped while {} (killed, or the host rebooted); the boot default {boot}",
            state.phase.as_str()
        ));
        state.phase = Phase::Interrupted;
        state.confirm_within_ms = None;
        state.confirm_deadline_ms = None;
    }
    Ok(state)
}

/// The deployment's state, or for a deployment this host does not know (a
/// reboot clears `/run`) an `interrupted` state that says so and names the
/// boot default.
pub fn status_or_gone(layout: &Layout, id: &str) -> Result<DeployState, AgentError> {
    match status(layout, id) {
        Err(AgentError::NoDeployment(..)) => {
            let generation = profile_generation(&layout.system_profile);
            Ok(DeployState {
                id: id.to_string(),
                phase: Phase::Interrupted,
                pid: 0,
                pid_started: None,
                system_before: fs::canonicalize(&layout.current_system)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                system_after: String::new(),
                generation_before: generation,
                generation_after: None,
                confirm_within_ms: None,
                confirm_deadline_ms: None,
                reason: Some(format!(
                    "this host has no deployment {id} (a reboot clears {}); it runs and boots generation {}",
                    layout.state_dir.display(),
                    generation.map(|g| g.to_string()).unwrap_or_else(|| "unknown".into())
                )),
            })
        }
        other => other,
    }
}

/// Waits until the deployment waits for its confirmation or has ended
/// (the deployer's first look, after activation).
pub fn wait_activated(layout: &Layout, id: &str, limit: Duration) -> Result<DeployState, AgentError> {
    wait_until(layout, id, limit, |p| p == Phase::Waiting || p.is_final())
}

fn wait_until(
    layout: &Layout,
    id: &str,
    limit: Duration,
    done: impl Fn(Phase) -> bool,
) -> Result<DeployState, AgentError> {
    let end = Instant::now() + limit;
    loop {
        match status(layout, id) {
            Ok(state) if done(state.phase) => return Ok(state),
            // The agent may not have written its first state yet.
            Ok(_) | Err(AgentError::NoDeployment(..)) if Instant::now() < end => std::thread::sleep(POLL),
            Ok(_) => return Err(AgentError::StillRunning(id.to_string(), limit)),
            Err(e) => return Err(e),
        }
    }
}

/// Confirms the deployment and waits until the agent has committed it (or
/// ended otherwise, e.g. when the confirmation came too late).
pub fn confirm(layout: &Layout, id: &str, limit: Duration) -> Result<DeployState, AgentError> {
    decide(layout, id, limit, None)
}

/// Rejects the deployment (the agent rolls back at once) and waits for the end.
pub fn reject(layout: &Layout, id: &str, reason: &str, limit: Duration) -> Result<DeployState, AgentError> {
    decide(layout, id, limit, Some(reason))
}

fn decide(layout: &Layout, id: &str, limit: Duration, reject: Option<&str>) -> Result<DeployState, AgentError> {
    let files = Files::new(layout, id)?;
    let state = status_or_gone(layout, id)?;
    if state.phase.is_final() {
        return Ok(state);
    }
    let (path, body) = match reject {
        None => (files.confirm(), String::new()),
        Some(reason) => (files.reject(), reason.to_string()),
    };
    // Whole or not at all: the agent may read it at any moment.
    let tmp = files.dir.join("decision.tmp");
    fs::write(&tmp, body).map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("write", &path))?;
    wait_until(layout, id, limit, Phase::is_final)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    /// A layout in a temporary folder with two systems whose
    /// switch-to-configuration appends "LABEL ACTION" to `log`.
    fn fake() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for label in ["gen1", "gen2"] {
            let bin = d.join(label).join("bin");
            fs::create_dir_all(&bin).unwrap();
            let script = bin.join("switch-to-configuration");
            fs::write(&script, format!("#!/bin/sh\necho \"{label} $1\" >> {}/log\n", d.display())).unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        symlink(d.join("gen1"), d.join("current-system")).unwrap();
        let layout = Layout {
            current_system: d.join("current-system"),
            system_profile: d.join("system"),
            state_dir: d.join("state"),
        };
        (dir, layout)
    }

    fn log(dir: &tempfile::TempDir) -> String {
        fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    }

    #[test]
    fn a_rejection_rolls_back_at_once_and_a_second_deployment_waits_its_turn() {
        let (dir, layout) = fake();
        let gen2 = dir.path().join("gen2");
        let agent = {
            let (layout, gen2) = (layout.clone(), gen2.clone());
            std::thread::spawn(move || activate(&layout, "d-1", &gen2, Duration::from_secs(60), &Stop::never()))
        };
        let waiting = wait_until(&layout, "d-1", Duration::from_secs(10), |p| p == Phase::Waiting).unwrap();
        assert_eq!(waiting.system_before, dir.path().join("gen1").display().to_string());
        // What is left is counted when the state is read, not when it was written.
        std::thread::sleep(Duration::from_millis(300));
        let left = status(&layout, "d-1").unwrap().confirm_within_ms.unwrap();
        assert!((50_000..=59_700).contains(&left), "{left} ms left");
        assert!(matches!(
            activate(&layout, "d-2", &gen2, Duration::from_secs(1), &Stop::never()),
            Err(AgentError::Busy(_))
        ));
        let end = reject(&layout, "d-1", "unhealthy: unit x failed", Duration::from_secs(10)).unwrap();
        assert_eq!(end.phase, Phase::RolledBack);
        assert_eq!(end.reason.as_deref(), Some("unhealthy: unit x failed"));
        assert_eq!(agent.join().unwrap().unwrap(), end);
        assert_eq!(log(&dir), "gen2 test\ngen1 test\n");
        assert!(matches!(
            activate(&layout, "d-1", &gen2, Duration::from_secs(1), &Stop::never()),
            Err(AgentError::Exists(_))
        ));
    }

    #[test]
    fn without_a_confirmation_the_agent_rolls_back_by_itself() {
        let (dir, layout) = fake();
        let end =
            activate(&layout, "d-1", &dir.path().join("gen2"), Duration::from_millis(300), &Stop::never()).unwrap();
        assert_eq!(end.phase, Phase::RolledBack);
        assert_eq!(end.reason.as_deref(), Some("no confirmation within 300ms"));
        assert_eq!(log(&dir), "gen2 test\ngen1 test\n");
        // A confirmation that comes too late changes nothing.
        assert_eq!(confirm(&layout, "d-1", Duration::from_secs(1)).unwrap().phase, Phase::RolledBack);
    }

    #[test]
    fn a_dead_agent_reads_as_interrupted_and_bad_ids_or_systems_are_refused() {
        let (dir, layout) = fake();
        let files = Files::new(&layout, "d-9").unwrap();
        fs::create_dir_all(&files.dir).unwrap();
        let state = DeployState {
            id: "d-9".into(),
            phase: Phase::Waiting,
            pid: std::process::id(),
            pid_started: Some(0),
            system_before: "/a".into(),
            system_after: "/b".into(),
            generation_before: Some(3),
            generation_after: None,
            confirm_within_ms: Some(1000),
            confirm_deadline_ms: None,
            reason: None,
        };
        files.write(&state).unwrap();
        let read = status(&layout, "d-9").unwrap();
        assert_eq!(read.phase, Phase::Interrupted);
        assert!(read.reason.unwrap().contains("the boot default is unchanged"));
        assert!(matches!(status(&layout, "../x"), Err(AgentError::BadId(_))));
        assert!(matches!(status(&layout, "nope"), Err(AgentError::NoDeployment(..))));
        let gone = status_or_gone(&layout, "nope").unwrap();
        assert_eq!(gone.phase, Phase::Interrupted);
        assert!(gone.reason.unwrap().starts_with("this host has no deployment nope (a reboot clears"));
        assert_eq!(confirm(&layout, "nope", Duration::from_secs(1)).unwrap().phase, Phase::Interrupted);
        let not_a_system = dir.path().join("state");
        assert!(matches!(
            activate(&layout, "d-3", &not_a_system, Duration::from_secs(1), &Stop::never()),
            Err(AgentError::NotASystem(_))
        ));
    }
}

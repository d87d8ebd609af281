//! One host's deployment, deployer side: build, copy, start the agent, then
//! over a new SSH connection run the new generation's doctor and confirm
//! only if it is healthy (reject otherwise). When the host cannot be reached
//! before the agent's deadline, wait for the agent to roll back by itself
//! and report what it did.

use std::process::Command;
use std::time::{Duration, Instant};

use super::build;
use super::process;
use super::state::{DeployState, Phase};
use super::target::{Remote, Target};
use crate::doctor::{Report, State};
use crate::spec::model::BuildOn;

/// How one host ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// On the new generation, which is the boot default.
    Committed,
    /// Back on the old generation (the reason says why).
    RolledBack(String),
    /// Stopped before the host was changed (build, copy or start failed).
    Failed(String),
    /// The agent ended in a state that needs an operator, or was never heard of again.
    Unknown(String),
    /// Not started: an earlier host failed.
    NotStarted,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::RolledBack(_) => "rolled back",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "UNKNOWN",
            Outcome::NotStarted => "not started",
        }
    }
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::RolledBack(r) | Outcome::Failed(r) | Outcome::Unknown(r) => Some(r),
            Outcome::Committed | Outcome::NotStarted => None,
        }
    }
}

/// What the new generation's doctor said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// The failed (or uncheckable) checks, in words.
    Unhealthy(String),
    /// The host could not be asked.
    Unchecked,
}

impl Health {
    pub fn label(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy(_) => "unhealthy",
            Health::Unchecked => "-",
        }
    }
}

/// One line of the summary.
#[derive(Debug, Clone)]
pub struct HostReport {
    pub host: String,
    pub generation_before: Option<u32>,
    pub generation_after: Option<u32>,
    pub health: Health,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// The deployer's settings for every host.
#[derive(Debug, Clone)]
pub struct Settings {
    pub confirm_timeout: Duration,
    /// Overrides each host's `[deploy] build_on`.
    pub build_on: Option<BuildOn>,
    /// The words of `NIX_SSHOPTS`.
    pub user_opts: Vec<String>,
    /// How long `switch-to-configuration test` may take.
    pub activation_limit: Duration,
}

/// How long one SSH attempt may take to connect.
const CONNECT: Duration = Duration::from_secs(10);
/// Pause between attempts to reach a host.
const RETRY: Duration = Duration::from_secs(1);

/// Reports progress lines (`host: what`).
pub type Progress<'a> = &'a (dyn Fn(&str, &str) + Sync);

struct Session<'a> {
    target: &'a Target,
    settings: &'a Settings,
    progress: Progress<'a>,
}

/// What became of a remote command.
enum Answer {
    /// It ran (whatever its exit code).
    Ran(process::Finished),
    /// ssh could not connect, lost the connection or ran out of time (why, in ssh's words).
    Unreachable(String),
}

fn ssh(target: &Target, settings: &Settings, remote: &str, limit: Duration) -> Result<Answer, String> {
    let args = target.ssh_args(&settings.user_opts, remote, CONNECT.min(limit));
    let out = process::run(Command::new("ssh").args(&args), limit).map_err(|e| format!("cannot run ssh: {e}"))?;
    Ok(if out.timed_out {
        Answer::Unreachable(format!("no answer within {}", humantime::format_duration(limit)))
    } else if out.code == Some(255) || out.code.is_none() {
        Answer::Unreachable(out.last_error_line())
    } else {
        Answer::Ran(out)
    })
}

/// The agent's state from a command's last output line.
fn parse_state(out: &process::Finished) -> Result<DeployState, String> {
    let line = out.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).map_err(|_| {
        let err = out.last_error_line();
        if err.is_empty() { format!("the agent answered no state (exit {:?})", out.code) } else { err }
    })
}

/// A fresh id for one deployment: time and process, lower-case hex.
pub fn new_id(host: &str) -> String {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    format!("{}-{micros:x}-{:x}", host.to_ascii_lowercase(), std::process::id())
}

/// Deploys one host to its end.
pub fn deploy(target: &Target, attr: &str, settings: &Settings, progress: Progress) -> HostReport {
    let started = Instant::now();
    let s = Session { target, settings, progress };
    let mut report = HostReport {
        host: target.host.clone(),
        generation_before: None,
        generation_after: None,
        health: Health::Unchecked,
        outcome: Outcome::NotStarted,
        duration: Duration::ZERO,
    };
    report.outcome = s.run(attr, &mut report);
    report.duration = started.elapsed();
    report
}

impl Session<'_> {
    fn say(&self, what: &str) {
        (self.progress)(&self.target.host, what);
    }

    fn run(&self, attr: &str, report: &mut HostReport) -> Outcome {
        let t = self.target;
        let build_on = self.settings.build_on.unwrap_or(t.build_on);
        self.say(if build_on == BuildOn::Remote { "building on the host" } else { "building" });
        let system = match build::build(t, attr, build_on, &self.settings.user_opts) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(e),
        };
        if build_on == BuildOn::Local {
            self.say("copying");
            if let Err(e) = build::copy(t, &system, &self.settings.user_opts) {
                return Outcome::Failed(e);
            }
        }
        let id = new_id(&t.host);
        let remote = Remote { target: t, id: &id, system: &system };
        self.say("activating");
        match ssh(t, self.settings, &remote.start(self.settings.confirm_timeout), CONNECT * 3) {
            Err(e) => return Outcome::Failed(e),
            Ok(Answer::Unreachable(why)) => {
                return Outcome::Failed(format!("cannot reach {} over SSH to start the deployment: {why}", t.address));
            }
            Ok(Answer::Ran(out)) if out.code != Some(0) => {
                return Outcome::Failed(format!("the deployment did not start: {}", out.last_error_line()));
            }
            Ok(Answer::Ran(_)) => {}
        }
        // A new connection: the activation may take the one before it down.
        let limit = self.settings.activation_limit + CONNECT;
        let first = match ssh(t, self.settings, &remote.activated(self.settings.activation_limit), limit) {
            Err(e) => return Outcome::Failed(e),
            Ok(Answer::Ran(out)) => parse_state(&out).ok(),
            Ok(Answer::Unreachable(_)) => None,
        };
        let Some(state) = first else {
            self.say("no answer after activation; waiting for the host to roll back by itself");
            let until = Instant::now() + self.settings.activation_limit + self.grace();
            return match self.until_final(&remote.status(), until, CONNECT) {
                Some(state) => self.ended(state, report),
                None => self.lost(),
            };
        };
        // Known from here on, even if the host is never heard of again.
        report.generation_before = state.generation_before;
        report.generation_after = state.generation_before;
        if state.phase != Phase::Waiting {
            return self.ended(state, report);
        }
        let deadline = Instant::now() + Duration::from_millis(state.confirm_within_ms.unwrap_or(0));
        self.say("checking health over a new connection");
        let mut said_unreachable = false;
        let health = loop {
            if Instant::now() >= deadline {
                break None;
            }
            match ssh(t, self.settings, &remote.doctor(), deadline - Instant::now()) {
                Ok(Answer::Ran(out)) => {
                    // The state comes first: a deployment no longer waiting has ended.
                    let (first, doctor) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
                    match serde_json::from_str::<DeployState>(first) {
                        Ok(state) if state.phase.is_final() => return self.ended(state, report),
                        Ok(state) if state.phase == Phase::Waiting => break Some(health_of(doctor, &out)),
                        _ => {
                            break Some(Health::Unhealthy(format!(
                                "the agent's state is unreadable: {}",
                                out.last_error_line()
                            )));
                        }
                    }
                }
                Ok(Answer::Unreachable(why)) => {
                    if !said_unreachable {
                        self.say(&format!(
                            "cannot reach the host over a new connection ({why}); retrying until the deadline"
                        ));
                        said_unreachable = true;
                    }
                    std::thread::sleep(RETRY)
                }
                Err(e) => return Outcome::Failed(e),
            }
        };
        let decision = match &health {
            Some(Health::Healthy) => remote.confirm(),
            Some(Health::Unhealthy(why)) => remote.reject(&format!("unhealthy: {why}")),
            _ => String::new(),
        };
        report.health = health.clone().unwrap_or(Health::Unchecked);
        if !decision.is_empty() {
            self.say(if report.health == Health::Healthy { "confirming" } else { "rejecting: unhealthy" });
            // The agent answers once it has committed or rolled back, which
            // takes a boot loader install: each try may take the activation limit.
            if let Some(state) = self.until_final(&decision, deadline, self.settings.activation_limit) {
                return self.ended(state, report);
            }
        }
        self.say("no confirmation before the deadline; waiting for the host to roll back by itself");
        match self.until_final(&remote.status(), Instant::now() + self.grace(), CONNECT) {
            Some(state) => self.ended(state, report),
            None => self.lost(),
        }
    }

    /// How long to keep trying to hear from a host after its deadline.
    fn grace(&self) -> Duration {
        (self.settings.confirm_timeout * 2).max(Duration::from_secs(120))
    }

    fn lost(&self) -> Outcome {
        Outcome::Unknown(format!(
            "{} stayed unreachable; its agent rolls back by itself when not confirmed within {}: check it from a console",
            self.target.address,
            humantime::format_duration(self.settings.confirm_timeout)
        ))
    }

    /// Runs `remote` (which prints the agent's state) until it answers with a
    /// final state or `until` passes; at least once, each try at most `per_try`.
    fn until_final(&self, remote: &str, until: Instant, per_try: Duration) -> Option<DeployState> {
        loop {
            if let Ok(Answer::Ran(out)) = ssh(self.target, self.settings, remote, per_try)
                && let Ok(state) = parse_state(&out)
                && state.phase.is_final()
            {
                return Some(state);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(RETRY);
        }
    }

    /// The outcome of a final state; the report takes its generations.
    fn ended(&self, state: DeployState, report: &mut HostReport) -> Outcome {
        let reason = state.reason.clone().unwrap_or_default();
        report.generation_before = state.generation_before.or(report.generation_before);
        report.generation_after = report.generation_before;
        match state.phase {
            Phase::Committed => {
                report.generation_after = state.generation_after;
                self.say(&format!("committed (generation {})", shown(state.generation_after)));
                Outcome::Committed
            }
            Phase::RolledBack => {
                self.say(&format!("rolled back: {reason}"));
                Outcome::RolledBack(reason)
            }
            Phase::Failed | Phase::Interrupted => {
                self.say(&format!("{}: {reason}", state.phase.as_str()));
                Outcome::Unknown(format!("{}: {reason}", state.phase.as_str()))
            }
            other => Outcome::Unknown(format!("the agent is still {}", other.as_str())),
        }
    }
}

/// A generation number, or `-`.
pub fn shown(generation: Option<u32>) -> String {
    generation.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
}

/// What the doctor's answer means for the deployment.
fn health_of(doctor: &str, out: &process::Finished) -> Health {
    match serde_json::from_str::<Report>(doctor) {
        Ok(report) if report.healthy && out.code == Some(0) => Health::Healthy,
        Ok(report) => {
            let bad: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.state != State::Ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            Health::Unhealthy(if bad.is_empty() { "the doctor reported unhealthy".into() } else { bad.join("; ") })
        }
        Err(_) => Health::Unhealthy(format!(
            "ghostbridge-doctor gave no report (exit {}): {}",
            out.code.map(|c| c.to_string()).unwrap_or_else(|| "signal".into()),
            out.last_error_line()
        )),
    }
}

//! `ghostbridge-doctor`: is everything the spec promised working on this host?
//! One report of independent checks (units, Open vSwitch drift, the chain,
//! the Qdrant sync's lag, disk space and live snapshots, sshd, the firewall), each healthy,
//! unhealthy, or not checkable, as a table or JSON. `ghostgen deploy` reads
//! the JSON over a fresh SSH connection before it confirms a generation.

pub mod checks;
pub mod config;
pub mod firewall;

use serde::{Deserialize, Serialize};

pub use config::DoctorConfig;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Fail,
    /// The check could not run (a file unreadable, a tool missing).
    Unknown,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, e.g. `unit ghostbridge-ovs.service`.
    pub name: String,
    pub state: State,
    /// What was found, in words.
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, state: State, detail: impl Into<String>) -> Check {
        Check { name: name.into(), state, detail: detail.into() }
    }
}

/// Every check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub healthy: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Report {
        Report { healthy: checks.iter().all(|c| c.state == State::Ok), checks }
    }

    /// 0 healthy, 1 unhealthy (a check failed), 2 could not check (none failed, one could not run).
    pub fn exit_code(&self) -> u8 {
        if self.checks.iter().any(|c| c.state == State::Fail) {
            crate::runtime::exit::FAILURE
        } else if self.checks.iter().any(|c| c.state == State::Unknown) {
            crate::runtime::exit::INVALID
        } else {
            crate::runtime::exit::OK
        }
    }

    /// A table for people: one line per check.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.state {
                State::Ok => "ok  ",
                State::Fail => "FAIL",
                State::Unknown => "??  ",
            };
            out.push_str(&format!("{mark}  {:width$}  {}\n", c.name, c.detail));
        }
        out.push_str(if self.healthy { "healthy\n" } else { "NOT healthy\n" });
        out
    }
}

/// Runs every check `config` asks for.
pub fn run(config: &DoctorConfig) -> Report {
    let mut checks = Vec::new();
    checks.extend(config.units.iter().map(|u| checks::unit(u)));
    if let Some(path) = &config.ovs {
        checks.push(checks::ovs(path));
    }
    if let Some(path) = &config.snapshotter {
        checks.extend(checks::snapshotter(path, config));
    }
    if let Some(path) = &config.qdrant_sync {
        checks.push(checks::qdrant_sync(path, config.max_sync_lag));
    }
    if let Some(port) = config.ssh_port {
        checks.push(checks::listening("sshd", port));
    }
    if let Some(ports) = &config.tcp_ports {
        checks.push(firewall::check(ports, config.ssh_port));
    }
    Report::new(checks)
}

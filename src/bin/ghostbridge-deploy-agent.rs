//! `ghostbridge-deploy-agent`: the target half of `ghostgen deploy`. Logic
//! lives in `ghostbridge::deploy::agent`; this is the command line. Every
//! command prints the deployment's state as one JSON line.
//!
//! Exit codes: 0 the command did what it was asked (for `activate` and
//! `confirm`: the generation is committed), 1 it did not, 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use ghostbridge::deploy::agent::{self, Layout};
use ghostbridge::deploy::state::{DeployState, Phase};
use ghostbridge::runtime::duration::HumanDuration;
use ghostbridge::runtime::exit;
use ghostbridge::runtime::signals::Stop;

/// Activates a NixOS generation live, waits for a confirmation, then makes it
/// the boot default; rolls back by itself without one. Started by
/// `ghostgen deploy` through `systemd-run`.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a deployment to its end (inside a transient unit).
    Activate {
        #[arg(long)]
        id: String,
        /// The system to activate (a store path with bin/switch-to-configuration).
        #[arg(long)]
        system: PathBuf,
        /// Roll back unless confirmed within this long, e.g. "60s".
        #[arg(long)]
        confirm_timeout: HumanDuration,
    },
    /// Print a deployment's state; with --wait, first wait until it waits for its confirmation or has ended.
    Status {
        #[arg(long)]
        id: String,
        #[arg(long)]
        wait: Option<HumanDuration>,
        /// Exit 1 unless the deployment is waiting for its confirmation.
        #[arg(long)]
        expect_waiting: bool,
    },
    /// Confirm a deployment and wait until it is committed (exit 0) or ended otherwise (exit 1).
    Confirm {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "10m")]
        wait: HumanDuration,
    },
    /// Reject a deployment: it rolls back at once; waits for the end.
    Reject {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "10m")]
        wait: HumanDuration,
    },
}

const PROGRAM: &str = "ghostbridge-deploy-agent";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report(PROGRAM, &e),
    }
}

fn print(state: &DeployState) -> Result<()> {
    println!("{}", serde_json::to_string(state)?);
    Ok(())
}

fn committed(state: &DeployState) -> u8 {
    if state.phase == Phase::Committed { exit::OK } else { exit::FAILURE }
}

fn run(cli: Cli) -> Result<u8> {
    let layout = Layout::nixos();
    match cli.command {
        Command::Activate { id, system, confirm_timeout } => {
            let stop = Stop::install()?;
            let state = agent::activate(&layout, &id, &system, confirm_timeout.as_duration(), &stop)?;
            eprintln!("{PROGRAM}: {id}: {}{}", state.phase.as_str(), reason(&state));
            print(&state)?;
            Ok(committed(&state))
        }
        Command::Status { id, wait, expect_waiting } => {
            let state = match wait {
                Some(limit) => agent::wait_activated(&layout, &id, limit.as_duration())?,
                None => agent::status_or_gone(&layout, &id)?,
            };
            print(&state)?;
            Ok(if expect_waiting && state.phase != Phase::Waiting { exit::FAILURE } else { exit::OK })
        }
        Command::Confirm { id, wait } => {
            let state = agent::confirm(&layout, &id, wait.as_duration())?;
            print(&state)?;
            Ok(committed(&state))
        }
        Command::Reject { id, reason, wait } => {
            let state = agent::reject(&layout, &id, &reason, wait.as_duration())?;
            print(&state)?;
            Ok(if state.phase == Phase::RolledBack { exit::OK } else { exit::FAILURE })
        }
    }
}

fn reason(state: &DeployState) -> String {
    state.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
}

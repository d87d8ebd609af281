//! `ghostbridge-doctor`: checks that this host runs as its spec promised.
//! Logic lives in `ghostbridge::doctor`; this is the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use ghostbridge::doctor::{self, DoctorConfig};
use ghostbridge::runtime::config::{self, check_config_command};
use ghostbridge::runtime::exit;

/// Is everything the spec promised working on this host? Every GhostBridge
/// unit active, Open vSwitch without drift, the chain verifying and on time,
/// the Qdrant sync close behind, disk space and live snapshots within their
/// bounds, sshd listening. Exit 0 healthy, 1 unhealthy, 2 could not check.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// What to check (written by the NixOS module).
    #[arg(long, default_value = "/etc/ghostbridge/doctor.json")]
    config: PathBuf,
    /// The report as JSON, for `ghostgen deploy` and other programs.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file; exit 0 valid, 1 unreadable, 2 invalid (the NixOS module runs it at build time).
    CheckConfig {
        /// The JSON config.
        file: PathBuf,
    },
}

const PROGRAM: &str = "ghostbridge-doctor";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config_command::<DoctorConfig>(file);
    }
    // Without its config nothing can be checked: exit 2, whatever the cause.
    let cfg: DoctorConfig = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{PROGRAM}: error: {}", exit::terminal_safe(&exit::chain(&e)));
            return ExitCode::from(exit::INVALID);
        }
    };
    match check(&cli, &cfg) {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report(PROGRAM, &e),
    }
}

fn check(cli: &Cli, cfg: &DoctorConfig) -> Result<u8> {
    let report = doctor::run(cfg);
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(report.exit_code())
}
